#pragma once
/// The event payloads of DESIGN §2 (the envelope's `data`) as C++ types, their event type names and
/// consuming roles, and the validation every consumer applies before acting on one.
///
/// Each payload type T has
///   - `T::event_type`, its `eventType` string;
///   - `static result<T> T::from_json(const boost::json::object& data)`: decodes and validates,
///     reporting the first problem with its path prefixed `data.` (`data.items[1].quantity`);
///   - a free `boost::json::object to_json(const T&)` writing the exact JSON field names.
/// For every valid `p`, `T::from_json(to_json(p))` yields `p` again.
///
/// Conventions shared by every payload:
///   - an optional field may be absent or `null`; object-valued fields (`variables`, `detail`,
///     `tags`) default to `{}` when absent; unknown fields are ignored;
///   - integers must be JSON integers: `1.0`, `1e3` and `"1"` are refused, as is anything beyond
///     the field's range (which is always within int64);
///   - money is integer minor units (cents), 0..max_money_cents, with an ISO 4217-shaped currency;
///   - "single-line text" has no control characters (C0, DEL, C1) and no U+2028/U+2029, so it cannot
///     inject CR/LF into mail headers or logs; "multi-line text" additionally allows TAB, LF and CR;
///   - length caps count Unicode code points for human text and bytes for ids.
/// All functions are pure and thread-safe.

#include "shopd/bus/envelope.hpp"

#include <boost/json/object.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shopd::bus {

/// The `eventType` strings.
namespace event_types {
inline constexpr std::string_view checkout_command = "command.checkout";
inline constexpr std::string_view order_created = "order.created";
inline constexpr std::string_view email_notification = "notification.email";
inline constexpr std::string_view stock_updated = "inventory.stock.updated";
inline constexpr std::string_view audit_record = "analytics.audit";
inline constexpr std::string_view metric_point = "analytics.metric";
inline constexpr std::string_view dead_letter = "analytics.dlq";
}  // namespace event_types

/// One known event type and the role (as named in the role table) whose webhook consumes it.
struct event_route {
  std::string_view event_type;
  std::string_view consumer;
};

/// Every known event type, in DESIGN §2 order.
[[nodiscard]] std::span<const event_route> event_routes() noexcept;

/// The role that consumes `event_type` ("orders", "email", "inventory", "analytics"), or nullopt
/// for a type shopd does not know.
[[nodiscard]] std::optional<std::string_view> consumer_role(std::string_view event_type) noexcept;

// ---------------------------------------------------------------------------------------------
// Limits and field rules (public so that APIs accepting the same fields apply the same rules)

inline constexpr std::int64_t max_quantity = 10'000;
/// 10^15 cents: sums over max_order_lines lines can never overflow int64.
inline constexpr std::int64_t max_money_cents = 1'000'000'000'000'000;
inline constexpr std::size_t max_order_lines = 100;
/// |delta| of one stock movement.
inline constexpr std::int64_t max_stock_delta = 1'000'000'000;
inline constexpr std::size_t max_name_chars = 200;        ///< customer and product names
inline constexpr std::size_t max_note_chars = 2'000;      ///< checkout note
inline constexpr std::size_t max_subject_chars = 200;     ///< email subject
inline constexpr std::size_t max_text_bytes = 64 * 1024;  ///< dead-letter body and response
inline constexpr std::size_t max_tags = 32;

/// `[A-Za-z0-9._-]{1,64}`.
[[nodiscard]] bool is_valid_sku(std::string_view sku) noexcept;

/// Exactly three ASCII uppercase letters (the shape of ISO 4217; the code list is not checked).
[[nodiscard]] bool is_valid_currency(std::string_view currency) noexcept;

/// A deliberately plain address: at most 254 bytes, ASCII only, exactly one '@'; a local part of
/// 1..64 visible characters other than `()<>[]:;,\"` and without leading, trailing or doubled dots
/// (quoted local parts are refused); a domain of two or more dot-separated labels of
/// [A-Za-z0-9-], each 1..63 long and not starting or ending with '-'.
[[nodiscard]] bool is_valid_email(std::string_view address) noexcept;

/// Valid UTF-8 without control characters (U+0000..U+001F, U+007F..U+009F) or the Unicode line and
/// paragraph separators U+2028/U+2029.
[[nodiscard]] bool is_single_line(std::string_view text) noexcept;

// ---------------------------------------------------------------------------------------------
// Shared parts

struct customer_info {
  std::string email;  ///< is_valid_email
  std::string name;   ///< single-line, 1..max_name_chars, not blank

  friend bool operator==(const customer_info&, const customer_info&) = default;
};

/// A postal address. `country` is ISO 3166-1 alpha-2 shaped (two uppercase letters); postalCode is
/// optional because several countries have none. Every text field is single-line, at most 200
/// characters; required ones are not blank.
struct postal_address {
  std::string line1;
  std::optional<std::string> line2;
  std::string city;
  std::optional<std::string> region;
  std::optional<std::string> postal_code;  ///< JSON `postalCode`
  std::string country;

  friend bool operator==(const postal_address&, const postal_address&) = default;
};

// ---------------------------------------------------------------------------------------------
// command.checkout -> orders

struct checkout_item {
  std::string sku;            ///< is_valid_sku
  std::int64_t quantity = 0;  ///< 1..max_quantity

  friend bool operator==(const checkout_item&, const checkout_item&) = default;
};

/// A customer's request to buy. Prices are never taken from it: they come from the catalogue.
struct checkout_command {
  static constexpr std::string_view event_type = event_types::checkout_command;

  std::string checkout_id;  ///< idempotency key: one order per checkoutId, ever; is_valid_id
  customer_info customer;
  /// 1..max_order_lines lines. A sku may appear only once: a repeated sku is refused (naming both
  /// lines) rather than merged, so a client bug cannot silently change a quantity.
  std::vector<checkout_item> items;
  std::string currency;  ///< is_valid_currency
  std::optional<postal_address> shipping_address;
  std::optional<std::string> note;  ///< multi-line, at most max_note_chars

  [[nodiscard]] static result<checkout_command> from_json(const boost::json::object& data);
  friend bool operator==(const checkout_command&, const checkout_command&) = default;
};

// ---------------------------------------------------------------------------------------------
// order.created -> analytics

struct order_line {
  std::string sku;
  std::string name;  ///< the catalogue name, single-line, 1..max_name_chars
  std::int64_t quantity = 0;
  std::int64_t unit_price_cents = 0;
  std::int64_t line_total_cents = 0;  ///< must equal quantity * unit_price_cents

  friend bool operator==(const order_line&, const order_line&) = default;
};

struct order_created {
  static constexpr std::string_view event_type = event_types::order_created;

  std::string order_id;
  std::string checkout_id;
  customer_info customer;
  std::vector<order_line> items;    ///< same rules as the checkout's lines
  std::int64_t subtotal_cents = 0;  ///< must equal the sum of lineTotalCents
  std::string currency;
  timestamp created_at{};  ///< RFC 3339 on the wire

  [[nodiscard]] static result<order_created> from_json(const boost::json::object& data);
  friend bool operator==(const order_created&, const order_created&) = default;
};

// ---------------------------------------------------------------------------------------------
// notification.email -> email

struct email_notification {
  static constexpr std::string_view event_type = event_types::email_notification;

  std::string to;  ///< is_valid_email: one bare address, so never a header injection or a list
  /// JSON `template`: `[a-z][a-z0-9_]{0,63}`, so it can name a template file safely.
  std::string template_name;
  boost::json::object variables;       ///< any JSON object; the template decides what it needs
  std::optional<std::string> subject;  ///< single-line, 1..max_subject_chars

  [[nodiscard]] static result<email_notification> from_json(const boost::json::object& data);
  friend bool operator==(const email_notification&, const email_notification&) = default;
};

// ---------------------------------------------------------------------------------------------
// inventory.stock.updated -> inventory

enum class stock_reason { order, restock, adjustment, cancel };

[[nodiscard]] std::string_view to_string(stock_reason r) noexcept;

struct stock_movement {
  std::string sku;
  std::int64_t delta = 0;  ///< non-zero, |delta| <= max_stock_delta

  friend bool operator==(const stock_movement&, const stock_movement&) = default;
};

/// Rules tying the fields together: `orderId` is required for reasons `order` and `cancel` and
/// optional otherwise; `order` movements are negative (stock leaves), `restock` and `cancel` ones
/// positive, `adjustment` ones either; one movement per sku, 1..max_order_lines movements.
struct stock_updated {
  static constexpr std::string_view event_type = event_types::stock_updated;

  std::optional<std::string> order_id;
  stock_reason reason = stock_reason::order;
  std::vector<stock_movement> movements;

  [[nodiscard]] static result<stock_updated> from_json(const boost::json::object& data);
  friend bool operator==(const stock_updated&, const stock_updated&) = default;
};

// ---------------------------------------------------------------------------------------------
// analytics.audit, analytics.metric, analytics.dlq -> analytics

enum class audit_outcome { success, failure };

[[nodiscard]] std::string_view to_string(audit_outcome o) noexcept;

/// `action`, `actor` and `entityType` are names: `[a-z][a-z0-9_.-]{0,63}` (e.g. "order.create",
/// "orders", "order"); `entityId` is an id (is_valid_id).
struct audit_record {
  static constexpr std::string_view event_type = event_types::audit_record;

  std::string action;
  std::string actor;
  std::string entity_type;
  std::string entity_id;
  audit_outcome outcome = audit_outcome::success;
  boost::json::object detail;

  [[nodiscard]] static result<audit_record> from_json(const boost::json::object& data);
  friend bool operator==(const audit_record&, const audit_record&) = default;
};

/// `name`: `[A-Za-z_][A-Za-z0-9_.:-]{0,127}`; `value`: any finite JSON number (integers beyond
/// 2^53 lose precision); `unit`: `[A-Za-z0-9_%/.-]{1,32}`; `tags`: at most max_tags entries, keys
/// `[A-Za-z_][A-Za-z0-9_]{0,63}`, values single-line strings of at most 256 bytes.
struct metric_point {
  static constexpr std::string_view event_type = event_types::metric_point;

  std::string name;
  double value = 0;
  std::optional<std::string> unit;
  std::map<std::string, std::string> tags;

  [[nodiscard]] static result<metric_point> from_json(const boost::json::object& data);
  friend bool operator==(const metric_point&, const metric_point&) = default;
};

/// The report of a delivery that exhausted its retries (the relay's or QStash's failure callback,
/// normalized). `body` and `lastResponse` are opaque text (any valid UTF-8, at most max_text_bytes):
/// whoever displays them escapes them; a producer truncates longer ones.
struct dead_letter {
  static constexpr std::string_view event_type = event_types::dead_letter;

  std::string source_message_id;            ///< is_valid_id
  std::string destination;                  ///< the URL delivered to: single-line, 1..2048 bytes
  std::optional<std::int64_t> last_status;  ///< the last HTTP status, 100..599
  std::optional<std::string> last_response;
  std::int64_t attempts = 0;          ///< 1..1'000'000
  std::string body;                   ///< the original message body
  std::optional<std::string> dlq_id;  ///< is_valid_id

  [[nodiscard]] static result<dead_letter> from_json(const boost::json::object& data);
  friend bool operator==(const dead_letter&, const dead_letter&) = default;
};

// ---------------------------------------------------------------------------------------------

[[nodiscard]] boost::json::object to_json(const checkout_command& p);
[[nodiscard]] boost::json::object to_json(const order_created& p);
[[nodiscard]] boost::json::object to_json(const email_notification& p);
[[nodiscard]] boost::json::object to_json(const stock_updated& p);
[[nodiscard]] boost::json::object to_json(const audit_record& p);
[[nodiscard]] boost::json::object to_json(const metric_point& p);
[[nodiscard]] boost::json::object to_json(const dead_letter& p);

/// Validate `data` as the payload of `event_type` with that type's from_json. nullopt when valid;
/// an error on `eventType` for a type shopd does not know.
[[nodiscard]] std::optional<validation_error> validate_payload(std::string_view event_type,
                                                               const boost::json::object& data);

/// The payload of `e` as T: an error on `eventType` if `e` is not a T::event_type event, else
/// T::from_json(e.data).
template <class T>
[[nodiscard]] result<T> payload_of(const envelope& e) {
  if (e.event_type != T::event_type) {
    return validation_error{"eventType", "expected " + std::string(T::event_type) + ", got " + e.event_type};
  }
  return T::from_json(e.data);
}

/// make_envelope(T::event_type, source, to_json(payload), correlation_id, causation_id).
template <class T>
[[nodiscard]] envelope make_event(const T& payload, std::string_view source, std::string_view correlation_id,
                                  std::optional<std::string_view> causation_id = std::nullopt) {
  return make_envelope(T::event_type, source, to_json(payload), correlation_id, causation_id);
}

}  // namespace shopd::bus
