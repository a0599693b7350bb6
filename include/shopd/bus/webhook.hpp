#pragma once
/// `POST /api/webhook`: where the relay (or Upstash QStash) delivers a role's events.
///
/// 1. The `Upstash-Signature` is verified over the raw body before anything is parsed (current or
///    next key, issuer, expiry, body hash, and the subject when the role's URL is configured); a
///    missing or bad one is 401 and the reason is logged, never sent.
/// 2. The body is parsed as an envelope; an invalid one, or an event type this role does not
///    consume, is answered 489 + `Upstash-NonRetryable-Error: true` with the JSON error naming the
///    field, and an `analytics.audit` failure is emitted.
/// 3. The role's handler runs (inbox, effects and outbox in one transaction): 200 when processed or
///    already processed, 489 when rejected, 503 on a transient fault (the relay retries), 500 on a bug.
///
/// Steps 1 and 2 run on the I/O thread that read the request; only work that may block (a handler
/// registered `blocking`, the default, and the audit of a refused envelope) goes to the worker
/// pool. A flood of forged deliveries is refused without occupying a worker.

#include "shopd/bus/dispatch.hpp"
#include "shopd/bus/signature.hpp"
#include "shopd/http/router.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace shopd::obs {
class registry;
}

namespace shopd::bus {

class local_relay;

struct webhook_config {
  std::string role;
  signing_keys keys;
  std::chrono::seconds clock_tolerance{5};
  std::optional<std::string> expected_url;  ///< checked against the token's `sub` when set
};

class webhook {
 public:
  /// All references must outlive the webhook, and so must `relay`. `on_emit` wakes the role's outbox
  /// dispatcher; `relay` (may be null) stores the events handlers emit in the queue of a relay in
  /// this process (local_relay.hpp), and `on_stored(n)` counts them (delivery).
  /// `handlers` must hold every event type the role consumes already: their metric series
  /// (shopd_events_handled_total, shopd_event_handler_duration_seconds) are resolved here, once, so
  /// that counting an event takes no lock and allocates nothing.
  webhook(webhook_config cfg, db::database& db, const destinations& dest, const event_router& handlers,
          obs::registry& metrics, std::function<void()> on_emit, const local_relay* relay = nullptr,
          std::function<void(std::size_t)> on_stored = {});
  ~webhook();
  webhook(const webhook&) = delete;
  webhook& operator=(const webhook&) = delete;

  /// Register `POST /api/webhook` on `routes`.
  void add_route(http::router& routes);

 private:
  struct instruments;

  /// Steps 1 and 2, and the handler too when it runs on the I/O thread.
  std::variant<http::response, http::deferred> screen(http::request_context& ctx);
  http::response run_handler(const envelope& ev, const event_router::entry& handler);

  http::response reject(http::request_context& ctx, const envelope* ev, std::string_view code,
                        std::string_view field, std::string_view message);

  webhook_config cfg_;
  db::database& db_;
  const destinations& dest_;
  const event_router& handlers_;
  std::unique_ptr<const instruments> instruments_;
  std::function<void()> on_emit_;
  const local_relay* relay_;
  std::function<void(std::size_t)> on_stored_;
};

}  // namespace shopd::bus
