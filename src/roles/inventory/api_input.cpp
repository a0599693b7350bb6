#include "shopd/roles/inventory/api_input.hpp"

#include "shopd/bus/crypto.hpp"
#include "shopd/roles/inventory/stock_rules.hpp"
#include "shopd/text/space.hpp"
#include "shopd/text/utf8.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <initializer_list>
#include <utility>

namespace shopd::inventory {

namespace {

namespace json = boost::json;
using bus::validation_error;

constexpr std::string_view product_cursor_tag = "p1:";
constexpr std::string_view movement_cursor_tag = "m1:";

// The rule for single-line human text; the complaint, or nullopt when `s` is acceptable.
std::optional<std::string> text_problem(std::string_view s, std::size_t max_chars) {
  if (s.empty()) return "must not be empty";
  if (!bus::is_single_line(s)) return "must be a single line of UTF-8 without control characters";
  std::size_t chars = 0;
  bool blank = true;
  for (std::size_t i = 0; i < s.size(); ++chars) {
    // s is valid UTF-8 (is_single_line above): the replacement character never comes up.
    if (!shopd::text::is_space(shopd::text::next_code_point(s, i).value_or(U'\uFFFD'))) blank = false;
  }
  if (blank) return "must not be blank";
  if (chars > max_chars) return "must be at most " + std::to_string(max_chars) + " characters";
  return std::nullopt;
}

// Reads the fields of one JSON object, keeping the first problem found.
class fields {
 public:
  explicit fields(const json::object& o) : object_(o) {}

  [[nodiscard]] bool ok() const noexcept { return !error_; }
  [[nodiscard]] validation_error error() const { return *error_; }

  void fail(std::string_view field, std::string message) {
    if (!error_) error_.emplace(std::string(field), std::move(message));
  }

  // An unknown key is refused, naming it.
  void only(std::initializer_list<std::string_view> known) {
    for (const auto& kv : object_) {
      if (std::find(known.begin(), known.end(), kv.key()) == known.end()) {
        fail(kv.key(), "is not a field of this request");
        return;
      }
    }
  }

  // nullptr when absent or null (optional fields treat both alike).
  const json::value* find(std::string_view key) const {
    const auto it = object_.find(key);
    if (it == object_.end() || it->value().is_null()) return nullptr;
    return &it->value();
  }

  const json::value* required(std::string_view key) {
    const auto* v = find(key);
    if (v == nullptr) fail(key, "is required");
    return v;
  }

  std::optional<std::string> text(std::string_view key, bool is_required,
                                  std::optional<std::string> (*rule)(std::string_view)) {
    if (!ok()) return std::nullopt;
    const auto* v = is_required ? required(key) : find(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) {
      fail(key, "must be a string");
      return std::nullopt;
    }
    std::string_view s = v->get_string();
    if (auto problem = rule(s)) {
      fail(key, std::move(*problem));
      return std::nullopt;
    }
    return std::string(s);
  }

  std::optional<std::int64_t> integer(std::string_view key, bool is_required, std::int64_t min,
                                      std::int64_t max) {
    if (!ok()) return std::nullopt;
    const auto* v = is_required ? required(key) : find(key);
    if (v == nullptr) return std::nullopt;
    const auto range = "must be an integer from " + std::to_string(min) + " to " + std::to_string(max);
    if (v->is_uint64()) {  // Boost.JSON keeps only values above INT64_MAX as uint64
      fail(key, range);
      return std::nullopt;
    }
    if (!v->is_int64()) {
      fail(key, "must be a JSON integer");
      return std::nullopt;
    }
    const std::int64_t n = v->get_int64();
    if (n < min || n > max) {
      fail(key, range);
      return std::nullopt;
    }
    return n;
  }

  std::optional<bool> boolean(std::string_view key) {
    if (!ok()) return std::nullopt;
    const auto* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_bool()) {
      fail(key, "must be true or false");
      return std::nullopt;
    }
    return v->get_bool();
  }

 private:
  const json::object& object_;
  std::optional<validation_error> error_;
};

std::optional<std::string> sku_problem(std::string_view s) {
  if (bus::is_valid_sku(s)) return std::nullopt;
  return "must be 1 to 64 of A-Z a-z 0-9 . _ -";
}
std::optional<std::string> name_problem(std::string_view s) {
  return text_problem(s, bus::max_name_chars);
}
std::optional<std::string> currency_problem(std::string_view s) {
  if (bus::is_valid_currency(s)) return std::nullopt;
  return "must be a three-letter uppercase ISO 4217 code such as EUR";
}
std::optional<std::string> id_problem(std::string_view s) {
  if (bus::is_valid_id(s)) return std::nullopt;
  return "must be 1 to " + std::to_string(bus::default_max_id_bytes) +
         " printable ASCII characters without spaces";
}
std::optional<std::string> note_problem(std::string_view s) {
  return text_problem(s, max_adjust_note_chars);
}
std::optional<std::string> reason_problem(std::string_view s) {
  if (s == "restock" || s == "adjustment" || s == "cancel") return std::nullopt;
  return "must be one of restock, adjustment, cancel (order movements come from events)";
}

const json::object* as_object(const json::value& body) {
  return body.is_object() ? &body.get_object() : nullptr;
}

std::optional<std::int64_t> parse_decimal(std::string_view s) {
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return n;
}

}  // namespace

bus::result<product_upsert> parse_product_upsert(const json::value& body) {
  const auto* o = as_object(body);
  if (o == nullptr) return validation_error{"", "must be a JSON object"};
  fields f(*o);
  f.only({"sku", "name", "priceCents", "currency", "active", "stock"});
  product_upsert p;
  auto sku = f.text("sku", true, sku_problem);
  auto name = f.text("name", true, name_problem);
  auto price = f.integer("priceCents", true, 0, bus::max_money_cents);
  auto currency = f.text("currency", true, currency_problem);
  p.active = f.boolean("active");
  p.stock = f.integer("stock", false, 0, max_stock);
  if (!f.ok()) return f.error();
  p.sku = std::move(*sku);
  p.name = std::move(*name);
  p.price_cents = *price;
  p.currency = std::move(*currency);
  return p;
}

bus::result<stock_adjustment> parse_stock_adjustment(const json::value& body) {
  const auto* o = as_object(body);
  if (o == nullptr) return validation_error{"", "must be a JSON object"};
  fields f(*o);
  f.only({"delta", "reason", "orderId", "note"});
  stock_adjustment a;
  auto delta = f.integer("delta", true, -bus::max_stock_delta, bus::max_stock_delta);
  auto reason = f.text("reason", true, reason_problem);
  a.order_id = f.text("orderId", false, id_problem);
  a.note = f.text("note", false, note_problem);
  if (!f.ok()) return f.error();
  a.delta = *delta;
  if (*reason == "restock") a.reason = bus::stock_reason::restock;
  if (*reason == "cancel") a.reason = bus::stock_reason::cancel;
  if (a.delta == 0) return validation_error{"delta", "must not be zero"};
  if ((a.reason == bus::stock_reason::restock || a.reason == bus::stock_reason::cancel) && a.delta < 0) {
    return validation_error{"delta", "must be positive when reason is " + *reason};
  }
  if (a.reason == bus::stock_reason::cancel && !a.order_id) {
    return validation_error{"orderId", "is required when reason is cancel"};
  }
  return a;
}

bus::result<int> parse_limit(const std::optional<std::string>& text) {
  if (!text) return default_page_size;
  const auto n = parse_decimal(*text);
  if (!n || *n < 1 || *n > max_page_size) {
    return validation_error{"limit", "must be an integer from 1 to " + std::to_string(max_page_size)};
  }
  return static_cast<int>(*n);
}

bus::result<std::optional<bool>> parse_active_filter(const std::optional<std::string>& text) {
  if (!text) return std::optional<bool>{};
  if (*text == "true") return std::optional<bool>{true};
  if (*text == "false") return std::optional<bool>{false};
  return validation_error{"active", "must be true or false"};
}

std::string product_cursor(std::string_view last_sku) {
  std::string raw(product_cursor_tag);
  raw += last_sku;
  return bus::crypto::base64url_encode(raw);
}

std::optional<std::string> parse_product_cursor(std::string_view cursor) {
  auto raw = bus::crypto::base64url_decode(cursor);
  if (!raw || !raw->starts_with(product_cursor_tag)) return std::nullopt;
  std::string sku = raw->substr(product_cursor_tag.size());
  if (!bus::is_valid_sku(sku)) return std::nullopt;
  return sku;
}

std::string movement_cursor(std::int64_t last_id) {
  std::string raw(movement_cursor_tag);
  raw += std::to_string(last_id);
  return bus::crypto::base64url_encode(raw);
}

std::optional<std::int64_t> parse_movement_cursor(std::string_view cursor) {
  auto raw = bus::crypto::base64url_decode(cursor);
  if (!raw || !raw->starts_with(movement_cursor_tag)) return std::nullopt;
  const std::string_view digits = std::string_view(*raw).substr(movement_cursor_tag.size());
  // Canonical decimal only (no leading zeros), so each position has exactly one cursor.
  if (digits.size() > 1 && digits.front() == '0') return std::nullopt;
  auto id = parse_decimal(digits);
  if (!id || *id < 1) return std::nullopt;
  return id;
}

}  // namespace shopd::inventory
