#pragma once
/// Event handling inside a role: which handler takes which event type, and the transaction a
/// handler's effects, its inbox record and the events it emits share (DESIGN §3).
///
/// A handler receives a `delivery`. Most handlers put everything in `delivery::once`, which runs
/// in one database transaction that first records the event in the inbox (and runs nothing when it
/// was handled before). Handlers with an effect outside the database (sending mail) use `seen()` and
/// `once()` around it. Handlers run on the worker pool and may block.

#include "shopd/bus/envelope.hpp"
#include "shopd/http/execution.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace soci {
class session;
}
namespace shopd::config {
struct settings;
}
namespace shopd::db {
class database;
}

namespace shopd::bus {

class local_relay;
struct relay_hand_off;

/// Input that can never succeed (unknown SKU, invalid payload): answered 489 with
/// `Upstash-NonRetryable-Error: true`, so the relay does not retry it.
struct rejection {
  std::string code;     ///< machine code, e.g. "unknown_sku"
  std::string field;    ///< offending field path, e.g. "data.items[0].sku"; may be empty
  std::string message;  ///< for humans
};

/// A fault that may pass (SMTP server down): answered 503 so the relay retries.
class transient_failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The webhook URL of each role and the consumer of each event type, from configuration.
class destinations {
 public:
  explicit destinations(const config::settings& s);
  /// `<ROLE>_SERVICE_URL` without a trailing '/'. Throws std::invalid_argument for an unknown role.
  [[nodiscard]] const std::string& service_url(std::string_view role) const;
  /// service_url(role) + "/api/webhook".
  [[nodiscard]] std::string webhook_url(std::string_view role) const;
  /// The webhook of the role consuming `event_type`. Throws std::invalid_argument if none does.
  [[nodiscard]] std::string url_for(std::string_view event_type) const;
  /// Where the relay reports a message that exhausted its retries or was refused
  /// (`Upstash-Failure-Callback`): analytics' `/api/dlq/callback`, so every dead letter is visible there.
  [[nodiscard]] std::string failure_callback_url() const;

 private:
  std::map<std::string, std::string, std::less<>> urls_;
};

/// The open transaction of one handled event, and the events it emits.
class unit_of_work {
 public:
  /// With `hand_off`, emit() stores each event in the co-located relay's queue as well, inside this
  /// transaction, and its outbox row already sent (local_relay.hpp); the caller hands them to the
  /// relay's engine once the transaction has committed.
  unit_of_work(soci::session& tx, std::string_view role, const envelope* cause, const destinations& dest,
               std::int64_t now_ms, relay_hand_off* hand_off = nullptr)
      : tx_(tx), role_(role), cause_(cause), dest_(dest), now_ms_(now_ms), hand_off_(hand_off) {}

  [[nodiscard]] soci::session& tx() noexcept { return tx_; }
  [[nodiscard]] std::int64_t now_ms() const noexcept { return now_ms_; }
  [[nodiscard]] std::string_view role() const noexcept { return role_; }

  /// Queue an event in the outbox, inside this transaction. It carries the cause's correlation id
  /// (or `correlation_id` when there is no cause) and the cause's eventId as its causationId. The
  /// row's headers hold a `traceparent`: a child of the thread's current trace (obs::current_trace:
  /// the request or delivery being handled), or a new trace when there is none.
  const envelope& emit(std::string_view event_type, boost::json::object data,
                       std::optional<std::string_view> correlation_id = std::nullopt);

  /// Emit an `analytics.audit` record with this role as the actor.
  void audit(std::string_view action, std::string_view entity_type, std::string_view entity_id, bool success,
             boost::json::object detail = {});

  [[nodiscard]] std::size_t emitted() const noexcept { return emitted_; }

 private:
  soci::session& tx_;
  std::string_view role_;
  const envelope* cause_;
  const destinations& dest_;
  std::int64_t now_ms_;
  relay_hand_off* hand_off_;
  std::size_t emitted_ = 0;
  std::vector<envelope> kept_;  // emit() returns a reference into this
};

/// One delivery of one event to one role.
class delivery {
 public:
  /// `on_emit` wakes the role's outbox dispatcher; `relay`, when it stores events in the queue of a
  /// relay on `db` (local_relay::stage_for), takes the events once() emits directly, and
  /// `on_stored(n)` is told how many it took once they are committed.
  delivery(const envelope& ev, std::string_view role, db::database& db, const destinations& dest,
           std::function<void()> on_emit, const local_relay* relay = nullptr,
           std::function<void(std::size_t)> on_stored = {})
      : event_(ev),
        role_(role),
        db_(db),
        dest_(dest),
        on_emit_(std::move(on_emit)),
        relay_(relay),
        on_stored_(std::move(on_stored)) {}

  [[nodiscard]] const envelope& event() const noexcept { return event_; }
  [[nodiscard]] std::string_view role() const noexcept { return role_; }
  [[nodiscard]] db::database& db() noexcept { return db_; }

  /// True when this role already handled the event (read only).
  [[nodiscard]] bool seen();

  /// Run f(unit_of_work&) in one transaction together with the inbox record. Returns false, without
  /// calling f, when the event was handled before. f may throw to roll everything back.
  bool once(const std::function<void(unit_of_work&)>& f);

 private:
  const envelope& event_;
  std::string_view role_;
  db::database& db_;
  const destinations& dest_;
  std::function<void()> on_emit_;
  const local_relay* relay_;
  std::function<void(std::size_t)> on_stored_;
};

struct processed {};
struct duplicate {};
using outcome = std::variant<processed, duplicate, rejection>;
using event_handler = std::function<outcome(delivery&)>;

/// A handler whose effects fit one transaction: f returns a rejection (still committed: the
/// rejection is recorded and audited by f) or nothing.
[[nodiscard]] event_handler transactional(std::function<std::optional<rejection>(unit_of_work&)> f);

/// The handlers of one role, by event type. Filled at start-up, read concurrently afterwards.
class event_router {
 public:
  struct entry {
    event_handler fn;
    /// Where the webhook runs it: `blocking` (the default: handlers use the database) on the
    /// worker pool; `io` on the I/O thread that verified the delivery, for handlers that never block.
    http::execution exec;
  };

  /// Throws std::invalid_argument for a type registered twice.
  void on(std::string_view event_type, event_handler h, http::execution exec = http::execution::blocking);
  [[nodiscard]] const entry* find(std::string_view event_type) const;
  [[nodiscard]] std::vector<std::string> types() const;

 private:
  std::map<std::string, entry, std::less<>> handlers_;
};

/// Milliseconds since the Unix epoch, the unit of every *_ms column.
[[nodiscard]] std::int64_t now_ms();

}  // namespace shopd::bus
