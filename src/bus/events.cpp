#include "shopd/bus/events.hpp"

#include "shopd/text/space.hpp"
#include "shopd/text/utf8.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <unordered_map>
#include <utility>

namespace shopd::bus {

namespace json = boost::json;

namespace {

constexpr std::array<event_route, 7> routes{{
    {event_types::checkout_command, "orders"},
    {event_types::order_created, "analytics"},
    {event_types::email_notification, "email"},
    {event_types::stock_updated, "inventory"},
    {event_types::audit_record, "analytics"},
    {event_types::metric_point, "analytics"},
    {event_types::dead_letter, "analytics"},
}};

constexpr std::size_t max_address_chars = 200;
constexpr std::size_t max_postal_code_chars = 32;
constexpr std::size_t max_destination_chars = 2048;
constexpr std::size_t max_tag_value_bytes = 256;
constexpr std::int64_t max_attempts = 1'000'000;

// ---------------------------------------------------------------------------------------------
// Text

bool is_control(char32_t cp) noexcept {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

bool is_line_separator(char32_t cp) noexcept {
  return cp == 0x2028 || cp == 0x2029;
}

enum class lines { single, multi };

// The rule for human text; returns the complaint, or nullopt when `s` is acceptable.
std::optional<std::string> check_text(std::string_view s, std::size_t max_chars, lines kind) {
  std::size_t chars = 0;
  bool blank = true;
  for (std::size_t i = 0; i < s.size();) {
    const auto decoded = shopd::text::next_code_point(s, i);
    if (!decoded) return "must be valid UTF-8";
    const char32_t cp = *decoded;
    const bool allowed_break =
        kind == lines::multi && (cp == '\t' || cp == '\n' || cp == '\r' || is_line_separator(cp));
    if (!allowed_break && (is_control(cp) || is_line_separator(cp))) {
      return kind == lines::single ? "must be a single line without control characters"
                                   : "must not contain control characters other than tab and line breaks";
    }
    blank = blank && shopd::text::is_space(cp);
    ++chars;
  }
  if (s.empty()) return "must not be empty";
  if (blank) return "must not be blank";
  if (chars > max_chars) return "must be at most " + std::to_string(max_chars) + " characters";
  return std::nullopt;
}

bool is_ascii_alpha(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_ascii_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}
bool is_lower_alnum(char c) noexcept {
  return (c >= 'a' && c <= 'z') || is_ascii_digit(c);
}

// `first` for the first byte, `rest` for the others, 1..max bytes.
bool matches(std::string_view s, std::size_t max, bool (*first)(char), bool (*rest)(char)) noexcept {
  if (s.empty() || s.size() > max || !first(s[0])) return false;
  for (std::size_t i = 1; i < s.size(); ++i) {
    if (!rest(s[i])) return false;
  }
  return true;
}

bool is_template_name(std::string_view s) noexcept {
  return matches(
      s, 64, [](char c) { return c >= 'a' && c <= 'z'; },
      [](char c) { return is_lower_alnum(c) || c == '_'; });
}

bool is_label(std::string_view s) noexcept {
  return matches(
      s, 64, [](char c) { return c >= 'a' && c <= 'z'; },
      [](char c) { return is_lower_alnum(c) || c == '_' || c == '.' || c == '-'; });
}

bool is_metric_name(std::string_view s) noexcept {
  return matches(
      s, 128, [](char c) { return is_ascii_alpha(c) || c == '_'; },
      [](char c) {
        return is_ascii_alpha(c) || is_ascii_digit(c) || c == '_' || c == '.' || c == ':' || c == '-';
      });
}

bool is_tag_name(std::string_view s) noexcept {
  return matches(
      s, 64, [](char c) { return is_ascii_alpha(c) || c == '_'; },
      [](char c) { return is_ascii_alpha(c) || is_ascii_digit(c) || c == '_'; });
}

bool is_unit(std::string_view s) noexcept {
  constexpr auto unit_char = [](char c) {
    return is_ascii_alpha(c) || is_ascii_digit(c) || c == '_' || c == '%' || c == '/' || c == '.' || c == '-';
  };
  return matches(s, 32, unit_char, unit_char);
}

bool is_country(std::string_view s) noexcept {
  return s.size() == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z';
}

// Field rules as used by the decoder: the complaint, or nullopt.
using rule = std::function<std::optional<std::string>(std::string_view)>;

rule predicate(bool (*ok)(std::string_view) noexcept, std::string message) {
  return [ok, message = std::move(message)](std::string_view s) -> std::optional<std::string> {
    if (ok(s)) return std::nullopt;
    return message;
  };
}

rule text_rule(std::size_t max_chars, lines kind = lines::single) {
  return [max_chars, kind](std::string_view s) { return check_text(s, max_chars, kind); };
}

const rule& id_rule() {
  static const rule r = [](std::string_view s) -> std::optional<std::string> {
    if (is_valid_id(s)) return std::nullopt;
    return "must be 1 to " + std::to_string(default_max_id_bytes) +
           " printable ASCII characters without spaces";
  };
  return r;
}

const rule& sku_rule() {
  static const rule r = predicate(is_valid_sku, "must be 1 to 64 of A-Z a-z 0-9 . _ -");
  return r;
}

const rule& email_rule() {
  static const rule r = predicate(is_valid_email, "must be a plain email address such as name@example.com");
  return r;
}

const rule& currency_rule() {
  static const rule r =
      predicate(is_valid_currency, "must be a three-letter uppercase ISO 4217 code such as EUR");
  return r;
}

const rule& label_rule() {
  static const rule r = predicate(is_label, "must match [a-z][a-z0-9_.-]{0,63}");
  return r;
}

rule opaque_text_rule(std::size_t max_bytes) {
  return [max_bytes](std::string_view s) -> std::optional<std::string> {
    if (s.size() <= max_bytes) return std::nullopt;
    return "must be at most " + std::to_string(max_bytes) + " bytes";
  };
}

// ---------------------------------------------------------------------------------------------
// Decoding. A `decoder` keeps the first error; once one is recorded the remaining reads still run
// on default values but record nothing, which keeps every from_json a straight list of fields.

class decoder {
 public:
  [[nodiscard]] bool ok() const noexcept { return !error_; }
  void fail(std::string field, std::string message) {
    if (!error_) error_ = validation_error{std::move(field), std::move(message)};
  }
  template <class T>
  [[nodiscard]] result<T> finish(T value) {
    if (error_) return std::move(*error_);
    return value;
  }

 private:
  std::optional<validation_error> error_;
};

class fields {
 public:
  fields(decoder& d, const json::object& o, std::string path) : d_(d), o_(o), path_(std::move(path)) {}

  [[nodiscard]] decoder& errors() const noexcept { return d_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] std::string path_of(std::string_view key) const { return path_ + "." + std::string(key); }

  // The member, or nullptr when absent or null ("is required" recorded when it must be there).
  const json::value* get(std::string_view key, bool required) {
    auto it = o_.find(key);
    if (it == o_.end() || it->value().is_null()) {
      if (required) d_.fail(path_of(key), "is required");
      return nullptr;
    }
    return &it->value();
  }

  std::optional<std::string> optional_string(std::string_view key, const rule& check, bool required = false) {
    const json::value* v = get(key, required);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) {
      d_.fail(path_of(key), "must be a string");
      return std::nullopt;
    }
    const std::string_view s = v->get_string();
    if (auto complaint = check(s)) {
      d_.fail(path_of(key), std::move(*complaint));
      return std::nullopt;
    }
    return std::string(s);
  }

  std::string string(std::string_view key, const rule& check) {
    return optional_string(key, check, true).value_or(std::string());
  }

  std::optional<std::int64_t> optional_integer(std::string_view key, std::int64_t lo, std::int64_t hi,
                                               bool required = false) {
    const json::value* v = get(key, required);
    if (v == nullptr) return std::nullopt;
    if (v->is_int64() && v->get_int64() >= lo && v->get_int64() <= hi) return v->get_int64();
    if (v->is_double()) {
      d_.fail(path_of(key), "must be an integer, written without a fraction or exponent");
    } else if (v->is_number()) {
      d_.fail(path_of(key), "must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    } else {
      d_.fail(path_of(key), "must be an integer");
    }
    return std::nullopt;
  }

  std::int64_t integer(std::string_view key, std::int64_t lo, std::int64_t hi) {
    return optional_integer(key, lo, hi, true).value_or(0);
  }

  // A JSON object member copied whole; `{}` when absent.
  json::object object_or_empty(std::string_view key) {
    const json::value* v = get(key, false);
    if (v == nullptr) return {};
    if (!v->is_object()) {
      d_.fail(path_of(key), "must be an object");
      return {};
    }
    return v->get_object();
  }

  // Calls f(fields) on a nested object; false when absent (or on error).
  template <class F>
  bool nested(std::string_view key, bool required, F&& f) {
    const json::value* v = get(key, required);
    if (v == nullptr) return false;
    if (!v->is_object()) {
      d_.fail(path_of(key), "must be an object");
      return false;
    }
    fields sub(d_, v->get_object(), path_of(key));
    f(sub);
    return d_.ok();
  }

  // Calls f(fields, index) on each element of an array of objects holding min..max elements.
  template <class F>
  void each_object(std::string_view key, std::size_t min, std::size_t max, F&& f) {
    const json::value* v = get(key, true);
    if (v == nullptr) return;
    if (!v->is_array()) {
      d_.fail(path_of(key), "must be an array");
      return;
    }
    const json::array& a = v->get_array();
    if (a.size() < min) {
      d_.fail(path_of(key),
              min == 1 ? "must not be empty" : "must have at least " + std::to_string(min) + " entries");
      return;
    }
    if (a.size() > max) {
      d_.fail(path_of(key), "must have at most " + std::to_string(max) + " entries");
      return;
    }
    for (std::size_t i = 0; i < a.size() && d_.ok(); ++i) {
      std::string element = path_of(key) + "[" + std::to_string(i) + "]";
      if (!a[i].is_object()) {
        d_.fail(std::move(element), "must be an object");
        return;
      }
      fields sub(d_, a[i].get_object(), std::move(element));
      f(sub, i);
    }
  }

 private:
  decoder& d_;
  const json::object& o_;
  std::string path_;
};

customer_info read_customer(fields& f) {
  customer_info c;
  f.nested("customer", true, [&](fields& cf) {
    c.email = cf.string("email", email_rule());
    c.name = cf.string("name", text_rule(max_name_chars));
  });
  return c;
}

postal_address read_address(fields& f) {
  postal_address a;
  a.line1 = f.string("line1", text_rule(max_address_chars));
  a.line2 = f.optional_string("line2", text_rule(max_address_chars));
  a.city = f.string("city", text_rule(max_address_chars));
  a.region = f.optional_string("region", text_rule(max_address_chars));
  a.postal_code = f.optional_string("postalCode", text_rule(max_postal_code_chars));
  a.country =
      f.string("country", predicate(is_country, "must be a two-letter uppercase ISO 3166-1 code such as DE"));
  return a;
}

// Refuses a second line for the same sku, naming both.
template <class Line>
void reject_duplicate_skus(fields& f, std::string_view key, const std::vector<Line>& lines) {
  std::unordered_map<std::string_view, std::size_t> seen;
  for (std::size_t i = 0; i < lines.size() && f.errors().ok(); ++i) {
    auto [it, inserted] = seen.emplace(lines[i].sku, i);
    if (!inserted) {
      const std::string list = f.path_of(key);
      f.errors().fail(list + "[" + std::to_string(i) + "].sku",
                      "duplicate sku \"" + lines[i].sku + "\" (also in " + std::string(key) + "[" +
                          std::to_string(it->second) + "]); send one line per sku");
    }
  }
}

json::object customer_json(const customer_info& c) {
  return json::object{{"email", c.email}, {"name", c.name}};
}

}  // namespace

// -------------------------------------------------------------------------------------------------

std::span<const event_route> event_routes() noexcept {
  return routes;
}

std::optional<std::string_view> consumer_role(std::string_view event_type) noexcept {
  for (const event_route& r : routes) {
    if (r.event_type == event_type) return r.consumer;
  }
  return std::nullopt;
}

bool is_valid_sku(std::string_view sku) noexcept {
  constexpr auto sku_char = [](char c) {
    return is_ascii_alpha(c) || is_ascii_digit(c) || c == '.' || c == '_' || c == '-';
  };
  return matches(sku, 64, sku_char, sku_char);
}

bool is_valid_currency(std::string_view currency) noexcept {
  return currency.size() == 3 &&
         std::all_of(currency.begin(), currency.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

bool is_valid_email(std::string_view address) noexcept {
  if (address.empty() || address.size() > 254) return false;
  const std::size_t at = address.find('@');
  if (at == std::string_view::npos || address.find('@', at + 1) != std::string_view::npos) return false;
  const std::string_view local = address.substr(0, at);
  const std::string_view domain = address.substr(at + 1);

  if (local.empty() || local.size() > 64 || local.front() == '.' || local.back() == '.' ||
      local.find("..") != std::string_view::npos) {
    return false;
  }
  constexpr std::string_view specials = "()<>[]:;,\\\"";
  for (char c : local) {
    if (c < 0x21 || c > 0x7E || specials.find(c) != std::string_view::npos) return false;
  }

  if (domain.empty() || domain.size() > 253) return false;
  std::size_t labels = 0;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = domain.find('.', start);
    const std::string_view label = domain.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!is_ascii_alpha(c) && !is_ascii_digit(c) && c != '-') return false;
    }
    ++labels;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return labels >= 2;
}

bool is_single_line(std::string_view text) noexcept {
  for (std::size_t i = 0; i < text.size();) {
    const auto cp = shopd::text::next_code_point(text, i);
    if (!cp || is_control(*cp) || is_line_separator(*cp)) return false;
  }
  return true;
}

std::string_view to_string(stock_reason r) noexcept {
  switch (r) {
    case stock_reason::order:
      return "order";
    case stock_reason::restock:
      return "restock";
    case stock_reason::adjustment:
      return "adjustment";
    case stock_reason::cancel:
      return "cancel";
  }
  return "order";
}

std::string_view to_string(audit_outcome o) noexcept {
  return o == audit_outcome::success ? "success" : "failure";
}

// -------------------------------------------------------------------------------------------------
// command.checkout

result<checkout_command> checkout_command::from_json(const json::object& data) {
  decoder d;
  fields f(d, data, "data");
  checkout_command c;
  c.checkout_id = f.string("checkoutId", id_rule());
  c.customer = read_customer(f);
  f.each_object("items", 1, max_order_lines, [&](fields& item, std::size_t) {
    checkout_item line;
    line.sku = item.string("sku", sku_rule());
    line.quantity = item.integer("quantity", 1, max_quantity);
    c.items.push_back(std::move(line));
  });
  reject_duplicate_skus(f, "items", c.items);
  c.currency = f.string("currency", currency_rule());
  f.nested("shippingAddress", false, [&](fields& a) { c.shipping_address = read_address(a); });
  c.note = f.optional_string("note", text_rule(max_note_chars, lines::multi));
  return d.finish(std::move(c));
}

json::object to_json(const checkout_command& p) {
  json::array items;
  items.reserve(p.items.size());
  for (const checkout_item& i : p.items)
    items.push_back(json::object{{"sku", i.sku}, {"quantity", i.quantity}});
  json::object o{{"checkoutId", p.checkout_id},
                 {"customer", customer_json(p.customer)},
                 {"items", std::move(items)},
                 {"currency", p.currency}};
  if (p.shipping_address) {
    const postal_address& a = *p.shipping_address;
    json::object addr{{"line1", a.line1}};
    if (a.line2) addr.emplace("line2", *a.line2);
    addr.emplace("city", a.city);
    if (a.region) addr.emplace("region", *a.region);
    if (a.postal_code) addr.emplace("postalCode", *a.postal_code);
    addr.emplace("country", a.country);
    o.emplace("shippingAddress", std::move(addr));
  }
  if (p.note) o.emplace("note", *p.note);
  return o;
}

// -------------------------------------------------------------------------------------------------
// order.created

result<order_created> order_created::from_json(const json::object& data) {
  decoder d;
  fields f(d, data, "data");
  order_created c;
  c.order_id = f.string("orderId", id_rule());
  c.checkout_id = f.string("checkoutId", id_rule());
  c.customer = read_customer(f);
  std::int64_t sum = 0;
  f.each_object("items", 1, max_order_lines, [&](fields& item, std::size_t) {
    order_line line;
    line.sku = item.string("sku", sku_rule());
    line.name = item.string("name", text_rule(max_name_chars));
    line.quantity = item.integer("quantity", 1, max_quantity);
    line.unit_price_cents = item.integer("unitPriceCents", 0, max_money_cents);
    line.line_total_cents = item.integer("lineTotalCents", 0, max_money_cents);
    std::int64_t expected = 0;
    if (item.errors().ok() && (__builtin_mul_overflow(line.quantity, line.unit_price_cents, &expected) ||
                               expected != line.line_total_cents)) {
      item.errors().fail(item.path_of("lineTotalCents"), "must equal quantity * unitPriceCents");
    }
    sum += line.line_total_cents;  // at most 100 lines of at most 10^15: cannot overflow
    c.items.push_back(std::move(line));
  });
  reject_duplicate_skus(f, "items", c.items);
  c.subtotal_cents = f.integer("subtotalCents", 0, max_money_cents);
  if (d.ok() && c.subtotal_cents != sum) {
    d.fail(f.path_of("subtotalCents"),
           "must equal the sum of the lines' lineTotalCents (" + std::to_string(sum) + ")");
  }
  c.currency = f.string("currency", currency_rule());
  const auto created = f.string("createdAt", [](std::string_view s) -> std::optional<std::string> {
    if (parse_timestamp(s)) return std::nullopt;
    return "must be an RFC 3339 date-time such as 2026-11-23T10:00:00.000Z";
  });
  if (d.ok()) c.created_at = *parse_timestamp(created);
  return d.finish(std::move(c));
}

json::object to_json(const order_created& p) {
  json::array items;
  items.reserve(p.items.size());
  for (const order_line& i : p.items) {
    items.push_back(json::object{{"sku", i.sku},
                                 {"name", i.name},
                                 {"quantity", i.quantity},
                                 {"unitPriceCents", i.unit_price_cents},
                                 {"lineTotalCents", i.line_total_cents}});
  }
  return json::object{{"orderId", p.order_id},
                      {"checkoutId", p.checkout_id},
                      {"customer", customer_json(p.customer)},
                      {"items", std::move(items)},
                      {"subtotalCents", p.subtotal_cents},
                      {"currency", p.currency},
                      {"createdAt", format_timestamp(p.created_at)}};
}

// -------------------------------------------------------------------------------------------------
// notification.email

result<email_notification> email_notification::from_json(const json::object& data) {
  decoder d;
  fields f(d, data, "data");
  email_notification n;
  n.to = f.string("to", email_rule());
  n.template_name = f.string("template", predicate(is_template_name, "must match [a-z][a-z0-9_]{0,63}"));
  n.variables = f.object_or_empty("variables");
  n.subject = f.optional_string("subject", text_rule(max_subject_chars));
  return d.finish(std::move(n));
}

json::object to_json(const email_notification& p) {
  json::object o{{"to", p.to}, {"template", p.template_name}, {"variables", p.variables}};
  if (p.subject) o.emplace("subject", *p.subject);
  return o;
}

// -------------------------------------------------------------------------------------------------
// inventory.stock.updated

result<stock_updated> stock_updated::from_json(const json::object& data) {
  decoder d;
  fields f(d, data, "data");
  stock_updated u;
  const auto reason = f.string("reason", [](std::string_view s) -> std::optional<std::string> {
    if (s == "order" || s == "restock" || s == "adjustment" || s == "cancel") return std::nullopt;
    return "must be one of order, restock, adjustment, cancel";
  });
  if (reason == "restock") u.reason = stock_reason::restock;
  if (reason == "adjustment") u.reason = stock_reason::adjustment;
  if (reason == "cancel") u.reason = stock_reason::cancel;
  const bool needs_order = u.reason == stock_reason::order || u.reason == stock_reason::cancel;
  if (d.ok()) {
    u.order_id = f.optional_string("orderId", id_rule());
    if (d.ok() && needs_order && !u.order_id)
      d.fail(f.path_of("orderId"), "is required when reason is " + reason);
  }
  f.each_object("movements", 1, max_order_lines, [&](fields& m, std::size_t) {
    stock_movement mv;
    mv.sku = m.string("sku", sku_rule());
    mv.delta = m.integer("delta", -max_stock_delta, max_stock_delta);
    if (m.errors().ok()) {
      if (mv.delta == 0) {
        m.errors().fail(m.path_of("delta"), "must not be zero");
      } else if (u.reason == stock_reason::order && mv.delta > 0) {
        m.errors().fail(m.path_of("delta"), "must be negative when reason is order");
      } else if ((u.reason == stock_reason::restock || u.reason == stock_reason::cancel) && mv.delta < 0) {
        m.errors().fail(m.path_of("delta"), "must be positive when reason is " + reason);
      }
    }
    u.movements.push_back(std::move(mv));
  });
  reject_duplicate_skus(f, "movements", u.movements);
  return d.finish(std::move(u));
}

json::object to_json(const stock_updated& p) {
  json::array movements;
  movements.reserve(p.movements.size());
  for (const stock_movement& m : p.movements)
    movements.push_back(json::object{{"sku", m.sku}, {"delta", m.delta}});
  json::object o;
  if (p.order_id) o.emplace("orderId", *p.order_id);
  o.emplace("reason", to_string(p.reason));
  o.emplace("movements", std::move(movements));
  return o;
}

// -------------------------------------------------------------------------------------------------
// analytics.audit

result<audit_record> audit_record::from_json(const json::object& data) {
  decoder d;
  fields f(d, data, "data");
  audit_record r;
  r.action = f.string("action", label_rule());
  r.actor = f.string("actor", label_rule());
  r.entity_type = f.string("entityType", label_rule());
  r.entity_id = f.string("entityId", id_rule());
  const auto outcome = f.string("outcome", [](std::string_view s) -> std::optional<std::string> {
    if (s == "success" || s == "failure") return std::nullopt;
    return "must be success or failure";
  });
  r.outcome = outcome == "failure" ? audit_outcome::failure : audit_outcome::success;
  r.detail = f.object_or_empty("detail");
  return d.finish(std::move(r));
}

json::object to_json(const audit_record& p) {
  return json::object{{"action", p.action},
                      {"actor", p.actor},
                      {"entityType", p.entity_type},
                      {"entityId", p.entity_id},
                      {"outcome", to_string(p.outcome)},
                      {"detail", p.detail}};
}

// -------------------------------------------------------------------------------------------------
// analytics.metric

result<metric_point> metric_point::from_json(const json::object& data) {
  decoder d;
  fields f(d, data, "data");
  metric_point m;
  m.name = f.string("name", predicate(is_metric_name, "must match [A-Za-z_][A-Za-z0-9_.:-]{0,127}"));
  if (const json::value* v = f.get("value", true); v != nullptr) {
    if (v->is_number()) {
      m.value = v->to_number<double>();
    } else {
      d.fail(f.path_of("value"), "must be a number");
    }
  }
  m.unit = f.optional_string("unit", predicate(is_unit, "must be 1 to 32 of A-Z a-z 0-9 _ % / . -"));
  const json::object tags = f.object_or_empty("tags");
  if (d.ok() && tags.size() > max_tags) {
    d.fail(f.path_of("tags"), "must have at most " + std::to_string(max_tags) + " entries");
  }
  for (const auto& [key, value] : tags) {
    if (!d.ok()) break;
    if (!is_tag_name(key)) {
      d.fail(f.path_of("tags"), "tag names must match [A-Za-z_][A-Za-z0-9_]{0,63}");
    } else if (!value.is_string()) {
      d.fail(f.path_of("tags") + "." + std::string(key), "must be a string");
    } else if (value.get_string().size() > max_tag_value_bytes || !is_single_line(value.get_string())) {
      d.fail(f.path_of("tags") + "." + std::string(key),
             "must be a single line of at most " + std::to_string(max_tag_value_bytes) + " bytes");
    } else {
      m.tags.emplace(std::string(key), std::string(value.get_string()));
    }
  }
  return d.finish(std::move(m));
}

json::object to_json(const metric_point& p) {
  json::object tags;
  for (const auto& [k, v] : p.tags) tags.emplace(k, v);
  json::object o{{"name", p.name}, {"value", p.value}};
  if (p.unit) o.emplace("unit", *p.unit);
  o.emplace("tags", std::move(tags));
  return o;
}

// -------------------------------------------------------------------------------------------------
// analytics.dlq

result<dead_letter> dead_letter::from_json(const json::object& data) {
  decoder d;
  fields f(d, data, "data");
  dead_letter l;
  l.source_message_id = f.string("sourceMessageId", id_rule());
  l.destination = f.string("destination", text_rule(max_destination_chars));
  l.last_status = f.optional_integer("lastStatus", 100, 599);
  l.last_response = f.optional_string("lastResponse", opaque_text_rule(max_text_bytes));
  l.attempts = f.integer("attempts", 1, max_attempts);
  // The original body may legitimately be empty, so it gets no "not empty" rule.
  l.body = f.string("body", opaque_text_rule(max_text_bytes));
  l.dlq_id = f.optional_string("dlqId", id_rule());
  return d.finish(std::move(l));
}

json::object to_json(const dead_letter& p) {
  json::object o{{"sourceMessageId", p.source_message_id}, {"destination", p.destination}};
  if (p.last_status) o.emplace("lastStatus", *p.last_status);
  if (p.last_response) o.emplace("lastResponse", *p.last_response);
  o.emplace("attempts", p.attempts);
  o.emplace("body", p.body);
  if (p.dlq_id) o.emplace("dlqId", *p.dlq_id);
  return o;
}

std::optional<validation_error> validate_payload(std::string_view event_type,
                                                 const boost::json::object& data) {
  auto check = [&](auto r) -> std::optional<validation_error> {
    if (r) return std::nullopt;
    return r.error();
  };
  if (event_type == checkout_command::event_type) return check(checkout_command::from_json(data));
  if (event_type == order_created::event_type) return check(order_created::from_json(data));
  if (event_type == email_notification::event_type) return check(email_notification::from_json(data));
  if (event_type == stock_updated::event_type) return check(stock_updated::from_json(data));
  if (event_type == audit_record::event_type) return check(audit_record::from_json(data));
  if (event_type == metric_point::event_type) return check(metric_point::from_json(data));
  if (event_type == dead_letter::event_type) return check(dead_letter::from_json(data));
  return validation_error{"eventType", "unknown event type \"" + std::string(event_type) + "\""};
}

}  // namespace shopd::bus
