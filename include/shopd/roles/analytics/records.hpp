#pragma once
/// What the analytics role stores (one struct per table row, as the schema of migration 1 has
/// them), how an event becomes a row, and how rows read back appear in the API (camelCase JSON,
/// RFC 3339 times). Pure and thread-safe.

#include "shopd/bus/envelope.hpp"
#include "shopd/bus/events.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace shopd::roles::analytics {

/// A row of `audit_log`. `id` is 0 until stored.
struct audit_row {
  std::int64_t id = 0;
  std::string event_id;
  std::optional<std::string> correlation_id;
  std::optional<std::string> causation_id;
  std::string action;
  std::string actor;
  std::string entity_type;
  std::string entity_id;
  std::string outcome;  ///< "success" | "failure"
  std::string detail;   ///< a JSON object, serialized
  std::int64_t occurred_at_ms = 0;
  std::int64_t recorded_at_ms = 0;
  friend bool operator==(const audit_row&, const audit_row&) = default;
};

/// A row of `metric_points`.
struct metric_row {
  std::string event_id;
  std::string name;
  double value = 0;
  std::optional<std::string> unit;
  std::string tags;  ///< a JSON object of strings, serialized
  std::int64_t occurred_at_ms = 0;
  std::int64_t recorded_at_ms = 0;
  friend bool operator==(const metric_row&, const metric_row&) = default;
};

/// A row of `dead_letters`. Every column but the ids and times is nullable in the schema, so rows
/// written by other tools read back too.
struct dead_letter_row {
  std::int64_t id = 0;
  std::string event_id;
  std::optional<std::string> dlq_id;
  std::optional<std::string> source_message_id;
  std::optional<std::string> destination;
  std::optional<std::int64_t> last_status;
  std::optional<std::string> last_response;
  std::optional<std::int64_t> attempts;
  std::optional<std::string> body;
  std::optional<std::string> correlation_id;
  std::int64_t occurred_at_ms = 0;
  std::int64_t recorded_at_ms = 0;
  std::optional<std::int64_t> replayed_at_ms;
  friend bool operator==(const dead_letter_row&, const dead_letter_row&) = default;
};

/// A row of `sales`: one per order.
struct sale_row {
  std::string order_id;
  std::string event_id;
  std::int64_t subtotal_cents = 0;
  std::string currency;
  std::int64_t item_count = 0;  ///< units sold: the sum of the lines' quantities
  std::int64_t created_at_ms = 0;
  friend bool operator==(const sale_row&, const sale_row&) = default;
};

/// `GET /api/metrics/summary`.
struct summary {
  struct revenue {
    std::string currency;
    std::int64_t total_cents = 0;
    friend bool operator==(const revenue&, const revenue&) = default;
  };
  struct event_count {
    std::string action;
    std::string outcome;
    std::int64_t count = 0;
    friend bool operator==(const event_count&, const event_count&) = default;
  };
  std::int64_t orders = 0;
  std::vector<revenue> revenues;    ///< by currency, ascending
  std::vector<event_count> events;  ///< by action then outcome, ascending
  std::int64_t dead_letters = 0;
  std::int64_t unreplayed_dead_letters = 0;
  std::int64_t shortfalls = 0;  ///< metric points named shortfall_metric
  friend bool operator==(const summary&, const summary&) = default;
};

/// The metric inventory reports for stock it could not take.
inline constexpr std::string_view shortfall_metric = "stock.shortfall";

/// The row an event becomes. Times: `occurred_at_ms` is the envelope's timestamp (for a sale, the
/// order's createdAt); `recorded_at_ms` is `now_ms`. Correlation and causation come from the envelope.
[[nodiscard]] audit_row to_row(const bus::envelope& ev, const bus::audit_record& r, std::int64_t now_ms);
[[nodiscard]] metric_row to_row(const bus::envelope& ev, const bus::metric_point& m, std::int64_t now_ms);
[[nodiscard]] dead_letter_row to_row(const bus::envelope& ev, const bus::dead_letter& d, std::int64_t now_ms);
[[nodiscard]] sale_row to_row(const bus::envelope& ev, const bus::order_created& o);

/// {id, eventId, correlationId, causationId, action, actor, entityType, entityId, outcome, detail,
/// occurredAt, recordedAt}; absent ids are null; `detail` is the stored object (a string if what is
/// stored is not a JSON object).
[[nodiscard]] boost::json::object to_json(const audit_row& r);

/// {id, eventId, dlqId, sourceMessageId, destination, lastStatus, lastResponse, attempts, body,
/// correlationId, occurredAt, recordedAt, replayedAt}; absent values are null.
[[nodiscard]] boost::json::object to_json(const dead_letter_row& r);

/// {orders, revenue: [{currency, totalCents}], events: [{action, outcome, count}],
/// dlq: {count, unreplayed}, shortfalls}.
[[nodiscard]] boost::json::object to_json(const summary& s);

/// Unix milliseconds as RFC 3339 (bus::format_timestamp).
[[nodiscard]] std::string format_ms(std::int64_t ms);

}  // namespace shopd::roles::analytics
