#include "shopd/roles/orders/order_api.hpp"

#include "shopd/bus/crypto.hpp"

#include <boost/json.hpp>

#include <charconv>
#include <limits>

namespace shopd::roles::orders {

namespace json = boost::json;

namespace {

// Decimal digits only (no sign, no spaces), within [0, max].
std::optional<std::int64_t> parse_decimal(std::string_view s, std::int64_t max) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v > max) return std::nullopt;
  return v;
}

}  // namespace

bus::result<std::size_t> parse_limit(const std::optional<std::string>& value) {
  if (!value) return default_page_limit;
  const auto n = parse_decimal(*value, static_cast<std::int64_t>(max_page_limit));
  if (!n || *n < 1) {
    return bus::validation_error{"limit", "must be an integer from 1 to " + std::to_string(max_page_limit)};
  }
  return static_cast<std::size_t>(*n);
}

std::string encode_cursor(const page_key& key) {
  return bus::crypto::base64url_encode(std::to_string(key.created_at_ms) + ":" + key.order_id);
}

bus::result<page_key> decode_cursor(std::string_view cursor) {
  const bus::validation_error bad{"cursor", "must be a nextCursor value from a previous page"};
  const auto text = bus::crypto::base64url_decode(cursor);
  if (!text) return bad;
  const auto colon = text->find(':');
  if (colon == std::string::npos) return bad;
  const auto ms =
      parse_decimal(std::string_view(*text).substr(0, colon), std::numeric_limits<std::int64_t>::max());
  std::string order_id = text->substr(colon + 1);
  if (!ms || !bus::is_valid_id(order_id)) return bad;
  return page_key{*ms, std::move(order_id)};
}

std::string request_field(std::string_view event_field) {
  if (event_field == "data") return {};
  if (event_field.starts_with("data.")) return std::string(event_field.substr(5));
  return std::string(event_field);
}

bus::result<bus::checkout_command> decode_checkout_request(
    std::string_view body, const std::function<std::string()>& new_checkout_id) {
  auto parsed = bus::parse_json(body);
  if (!parsed)
    return bus::validation_error{parsed.error().field,
                                 "the body is not valid JSON: " + parsed.error().message};
  if (!parsed->is_object()) return bus::validation_error{"", "the body must be a JSON object"};
  json::object& data = parsed->as_object();
  if (const auto* id = data.if_contains("checkoutId"); id == nullptr || id->is_null()) {
    data["checkoutId"] = new_checkout_id();
  }
  auto cmd = bus::checkout_command::from_json(data);
  if (!cmd) return bus::validation_error{request_field(cmd.error().field), cmd.error().message};
  return std::move(*cmd);
}

json::object order_view(const stored_order& order) {
  json::object out = bus::to_json(order.order);
  out["status"] = order.status;
  if (order.shipping_address) out["shippingAddress"] = *order.shipping_address;
  if (order.note) out["note"] = *order.note;
  return out;
}

json::object checkout_view(std::string_view checkout_id, const std::optional<checkout_record>& record) {
  json::object out{{"checkoutId", checkout_id}};
  if (!record) {
    out["status"] = "pending";
    return out;
  }
  out["status"] = to_string(record->status);
  if (record->order_id) out["orderId"] = *record->order_id;
  if (record->reason) out["reason"] = *record->reason;
  return out;
}

std::string checkout_location(std::string_view checkout_id) {
  constexpr char hex[] = "0123456789ABCDEF";
  std::string out = "/api/checkouts/";
  for (const char c : checkout_id) {
    const auto b = static_cast<unsigned char>(c);
    const bool unreserved = (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') ||
                            b == '-' || b == '.' || b == '_' || b == '~';
    if (unreserved) {
      out += c;
    } else {
      out += '%';
      out += hex[b >> 4];
      out += hex[b & 0x0F];
    }
  }
  return out;
}

}  // namespace shopd::roles::orders
