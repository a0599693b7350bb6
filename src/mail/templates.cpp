#include "shopd/mail/templates.hpp"

#include "shopd/mail/money.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace shopd::mail {

namespace {

using boost::json::array;
using boost::json::object;
using boost::json::value;

// Thrown by the variable accessors below and caught in render_template(), so that each template
// reads like the message it renders instead of a ladder of error checks.
struct variable_error {
  mail_error error;
};

[[noreturn]] void fail_missing(const std::string& path) {
  throw variable_error{{mail_errc::missing_variable, path, "template variable '" + path + "' is missing"}};
}

[[noreturn]] void fail_invalid(const std::string& path, std::string_view what) {
  throw variable_error{
      {mail_errc::invalid_variable, path, "template variable '" + path + "' " + std::string(what)}};
}

std::string_view kind_name(const value& v) {
  switch (v.kind()) {
    case boost::json::kind::null:
      return "null";
    case boost::json::kind::bool_:
      return "a boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
    case boost::json::kind::double_:
      return "a number";
    case boost::json::kind::string:
      return "a string";
    case boost::json::kind::array:
      return "an array";
    case boost::json::kind::object:
      return "an object";
  }
  return "unknown";
}

std::string member_path(std::string_view parent, std::string_view key) {
  return parent.empty() ? std::string(key) : std::string(parent) + "." + std::string(key);
}

const value& require(const object& obj, std::string_view parent, std::string_view key) {
  const auto* v = obj.if_contains(key);
  if (v == nullptr) fail_missing(member_path(parent, key));
  return *v;
}

std::string_view get_string(const object& obj, std::string_view parent, std::string_view key) {
  const auto& v = require(obj, parent, key);
  if (!v.is_string())
    fail_invalid(member_path(parent, key), "must be a string, not " + std::string(kind_name(v)));
  return v.get_string();
}

// Integers only: money and quantities are whole numbers of minor units, and 12.5 or 2.0 are
// mistakes upstream rather than something to round.
std::int64_t get_integer(const object& obj, std::string_view parent, std::string_view key) {
  const auto& v = require(obj, parent, key);
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    if (v.get_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return static_cast<std::int64_t>(v.get_uint64());
    }
    fail_invalid(member_path(parent, key), "is out of range");
  }
  fail_invalid(member_path(parent, key), "must be an integer, not " + std::string(kind_name(v)));
}

std::int64_t get_integer_at_least(const object& obj, std::string_view parent, std::string_view key,
                                  std::int64_t minimum) {
  const auto n = get_integer(obj, parent, key);
  if (n < minimum) fail_invalid(member_path(parent, key), "must be at least " + std::to_string(minimum));
  return n;
}

bool is_single_line(std::string_view s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

// For values that end up in the Subject header.
std::string_view get_line(const object& obj, std::string_view key) {
  const auto s = get_string(obj, "", key);
  if (s.empty()) fail_invalid(std::string(key), "must not be empty");
  if (!is_single_line(s)) fail_invalid(std::string(key), "must be a single line without control characters");
  return s;
}

// Order ids are strings in the design but numeric ids are common enough to accept as well.
std::string get_order_id(const object& obj) {
  const auto* v = obj.if_contains("orderId");
  if (v == nullptr) fail_missing("orderId");
  if (v->is_int64() || v->is_uint64()) return boost::json::serialize(*v);
  if (!v->is_string()) fail_invalid("orderId", "must be a string, not " + std::string(kind_name(*v)));
  return std::string(get_line(obj, "orderId"));
}

std::string_view get_currency(const object& obj) {
  const auto c = get_string(obj, "", "currency");
  if (!is_currency_code(c)) fail_invalid("currency", "must be an ISO 4217 code such as \"EUR\"");
  return c;
}

struct order_line {
  std::string_view sku;
  std::string_view name;
  std::int64_t quantity = 0;
  std::int64_t unit_price_cents = 0;
  std::int64_t line_total_cents = 0;
};

std::vector<order_line> get_order_lines(const object& obj) {
  const auto& v = require(obj, "", "items");
  if (!v.is_array()) fail_invalid("items", "must be an array, not " + std::string(kind_name(v)));
  const auto& items = v.get_array();
  if (items.empty()) fail_invalid("items", "must not be empty");

  std::vector<order_line> lines;
  lines.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto path = "items[" + std::to_string(i) + "]";
    if (!items[i].is_object())
      fail_invalid(path, "must be an object, not " + std::string(kind_name(items[i])));
    const auto& item = items[i].get_object();
    lines.push_back({
        .sku = get_string(item, path, "sku"),
        .name = get_string(item, path, "name"),
        .quantity = get_integer_at_least(item, path, "quantity", 1),
        .unit_price_cents = get_integer_at_least(item, path, "unitPriceCents", 0),
        .line_total_cents = get_integer_at_least(item, path, "lineTotalCents", 0),
    });
  }
  return lines;
}

rendered_mail render_order_confirmation(const object& vars) {
  const auto order_id = get_order_id(vars);
  const auto customer = get_string(vars, "", "customerName");
  const auto currency = get_currency(vars);
  const auto lines = get_order_lines(vars);
  const auto total = format_money(get_integer(vars, "", "subtotalCents"), currency);

  rendered_mail out;
  out.subject = "Your order " + order_id + " is confirmed";

  auto& t = out.text;
  t += customer.empty() ? std::string("Hello,\n") : "Hello " + std::string(customer) + ",\n";
  t += "\nthank you for your order " + order_id + ". Here is what you ordered:\n\n";
  for (const auto& l : lines) {
    t += "  " + std::to_string(l.quantity) + " x " + std::string(l.name) + " (" + std::string(l.sku) + "), " +
         format_money(l.unit_price_cents, currency) + " each: " + format_money(l.line_total_cents, currency) +
         "\n";
  }
  t += "\nTotal: " + total + "\n\nWe will let you know when your order ships.\n";

  const auto e = [](std::string_view s) { return html_escape(s); };
  auto& h = out.html;
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" + e(out.subject) +
       "</title>\n</head>\n<body>\n";
  h += customer.empty() ? std::string("<p>Hello,</p>\n") : "<p>Hello " + e(customer) + ",</p>\n";
  h += "<p>thank you for your order <strong>" + e(order_id) + "</strong>. Here is what you ordered:</p>\n";
  h += "<table cellpadding=\"6\" cellspacing=\"0\" border=\"1\" style=\"border-collapse:collapse\">\n"
       "<thead><tr><th align=\"left\">Item</th><th align=\"left\">SKU</th><th align=\"right\">Quantity</th>"
       "<th align=\"right\">Unit price</th><th align=\"right\">Line total</th></tr></thead>\n<tbody>\n";
  for (const auto& l : lines) {
    h += "<tr><td>" + e(l.name) + "</td><td>" + e(l.sku) + "</td><td align=\"right\">" +
         std::to_string(l.quantity) + "</td><td align=\"right\">" +
         e(format_money(l.unit_price_cents, currency)) + "</td><td align=\"right\">" +
         e(format_money(l.line_total_cents, currency)) + "</td></tr>\n";
  }
  h += "</tbody>\n<tfoot><tr><th colspan=\"4\" align=\"right\">Total</th><th align=\"right\">" + e(total) +
       "</th></tr></tfoot>\n</table>\n<p>We will let you know when your order ships.</p>\n</body>\n</html>\n";
  return out;
}

rendered_mail render_plain(const object& vars) {
  rendered_mail out;
  out.subject = std::string(get_line(vars, "subject"));
  out.text = std::string(get_string(vars, "", "text"));

  // Paragraphs at blank lines, <br> at single line ends, CRLF treated as LF.
  std::string body;
  std::string paragraph;
  const auto flush = [&] {
    if (!paragraph.empty()) body += "<p>" + paragraph + "</p>\n";
    paragraph.clear();
  };
  std::string_view rest = out.text;
  while (!rest.empty()) {
    auto end = rest.find('\n');
    auto line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      flush();
      continue;
    }
    if (!paragraph.empty()) paragraph += "<br>\n";
    paragraph += html_escape(line);
  }
  flush();

  out.html = "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>" + html_escape(out.subject) +
             "</title>\n</head>\n<body>\n" + body + "</body>\n</html>\n";
  return out;
}

struct template_entry {
  std::string_view name;
  rendered_mail (*render)(const object&);
};

constexpr std::array<template_entry, 2> templates{{
    {"order_confirmation", &render_order_confirmation},
    {"plain", &render_plain},
}};

constexpr std::array<std::string_view, templates.size()> names = [] {
  std::array<std::string_view, templates.size()> out{};
  for (std::size_t i = 0; i < templates.size(); ++i) out[i] = templates[i].name;
  return out;
}();

}  // namespace

mail_result<rendered_mail> render_template(std::string_view name, const boost::json::object& variables) {
  for (const auto& t : templates) {
    if (t.name != name) continue;
    try {
      return t.render(variables);
    } catch (variable_error& e) {
      return std::move(e.error);
    }
  }
  std::string valid;
  for (const auto n : names) valid += (valid.empty() ? "" : ", ") + std::string(n);
  return mail_error{mail_errc::unknown_template, "template",
                    "unknown template '" + std::string(name) + "' (valid: " + valid + ")"};
}

std::span<const std::string_view> template_names() noexcept {
  return names;
}

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace shopd::mail
