#pragma once
/// The relay's delivery engine: leases due messages from the store and delivers them over HTTP,
/// signed as QStash signs them, then records each outcome (delivered, retry later, or failed into
/// the DLQ with the callback and failure-callback messages it triggers).
///
/// Scheduling: one loop claims due work whenever it is woken (notify() or stored(), after a publish
/// commits; an attempt finishing while stored work waits) and otherwise every poll interval, or
/// sooner when the earliest scheduled message falls due. It claims only what free slots allow: at
/// most `concurrency` attempts in flight in this process and at most `per_destination_concurrency`
/// to one destination origin, so a slow service holds its own slots and never the others'. Each
/// claim leases its messages to this node for one attempt (timeout + lease margin); a message whose
/// lease ran out (its node died) is claimed again by any node. At start-up the node first hands
/// back its own leases, so what a killed predecessor had in flight is re-sent at once.
///
/// The fast path: a publish due at once takes a slot before it is stored (reserve()), is stored
/// already leased to this node, and is handed to the engine after its commit (deliver()), with no
/// claim in between. It is taken only when no stored work could want that slot: not for an origin
/// with due messages waiting (reported by stored() after a publish found no slot, or left behind
/// by a claim, a saturated origin's included), not while work of unknown origin may wait (after
/// notify(): a DLQ retry, callbacks an outcome created, expired leases) until a claim that started
/// later finds none, and not once the earliest scheduled message (a delay, a retry) falls due,
/// until a claim has run. An origin stops waiting once a claim that started after it began to wait
/// leaves none of its due work behind; work reported during that claim is taken by the next one
/// (its report woke it), so a publish may pass it by one claim's time, never for longer. A claim's
/// picks take their slots as their leases are written, so publishes and claims never hold more
/// than the limits between them.
///
/// Outcomes are recorded in batches: one recording transaction runs at a time, and the outcomes of
/// attempts that finish meanwhile are recorded together in the next one (at most 256), so the
/// database's write turn is taken once per batch rather than once per message. An attempt gives
/// its slot back when its destination has answered (or the attempt failed), before its outcome is
/// recorded: the limits count requests at the destinations. A batch that meets a transient database error
/// (the database down or busy) is retried with back-off (200 ms growing to 2 s) for as long as its messages'
/// leases last, less 2 s, and at least 5 times: an outage that ends while the leases last costs no second
/// delivery. After the last try (or any other error for a single outcome) the outcome is logged as not
/// recorded and the message is delivered again once its lease runs out. A batch failing otherwise is recorded
/// again one outcome at a time, so one refused outcome loses no other.
///
/// Threading: the loops and attempts are coroutines on a strand of the given io_context; every
/// database call runs on the given worker pool, never on an I/O thread. notify() may be called
/// from any thread. start() and stop() block on the database: call them from a thread that runs
/// neither pool (serve's main and stopper threads do).
///
/// Shutdown: stop() stops claiming, lets attempts in flight finish for up to the shutdown timeout,
/// then hands back the leases of those still running. Delivery is at least once: an attempt cut
/// off by shutdown or a crash may already have reached its destination and is sent again.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "shopd/relay/message_spec.hpp"

namespace boost::asio {
class io_context;
class thread_pool;
}  // namespace boost::asio

namespace shopd::http {
class client;
}

namespace shopd::relay {

class relay_store;
struct relay_metrics;
struct stored_message;

struct engine_options {
  std::size_t concurrency = 64;                  ///< attempts in flight in this process
  std::size_t per_destination_concurrency = 16;  ///< ... to one destination origin
  std::chrono::milliseconds poll_interval{200};  ///< claim at least this often
  /// Per-attempt timeout of messages that carry none (their spec's timeout is normally set).
  std::chrono::milliseconds default_timeout{30'000};
  /// A lease lasts the attempt's timeout plus this: time to record the outcome.
  std::chrono::milliseconds lease_margin{30'000};
  std::chrono::milliseconds shutdown_timeout{10'000};
  /// How often the gauges (queue depth, DLQ size) are refreshed from the database.
  std::chrono::milliseconds metrics_interval{5'000};
  /// How often expired dedup ids and old finished messages are purged, and how old they must be.
  std::chrono::milliseconds purge_interval{600'000};
  std::chrono::milliseconds retention{7LL * 24 * 3600 * 1000};
  /// Multiplies the default back-off (reference §2.3); 1 is QStash's schedule.
  double backoff_scale = 1.0;
  std::string signing_key;  ///< QSTASH_CURRENT_SIGNING_KEY: signs every attempt
  message_limits limits{};  ///< defaults of callback messages (their timeout)
};

class engine {
  struct impl;

 public:
  /// `store` is shared with the coroutines, which may outlive the engine object until the
  /// io_context is destroyed; `ioc`, `workers` and the registry behind `metrics` must outlive the
  /// engine and every coroutine it started. Throws std::invalid_argument for an empty signing key.
  engine(engine_options opts, std::shared_ptr<relay_store> store, const http::client& client,
         boost::asio::io_context& ioc, boost::asio::thread_pool& workers, relay_metrics& metrics);
  ~engine();  ///< stop()
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  /// Hand back this node's leases left by a previous run (blocking), then start the loops.
  /// Throws what the store throws when the database is unreachable. Call once.
  void start();

  /// Work of any origin was stored for a claim (a DLQ retry): look for due work now, and close the
  /// fast path until a claim that starts later leaves nothing due behind. Thread-safe, cheap,
  /// never blocks.
  void notify();

  /// `m`, a publish at `now_ms` without a reservation, was stored (committed) for a claim: look for
  /// due work now; the fast path stays closed to its origin until a claim takes it (or, scheduled
  /// later, to all from when it falls due). Thread-safe, cheap, never blocks.
  void stored(const message_spec& m, std::int64_t now_ms);

  /// A delivery slot taken for one publish on the fast path; given back when destroyed unless
  /// handed to deliver(). Movable; thread-safe.
  class reservation {
   public:
    reservation(reservation&& other) noexcept;
    reservation& operator=(reservation&& other) noexcept;
    reservation(const reservation&) = delete;
    reservation& operator=(const reservation&) = delete;
    ~reservation();
    /// Store the message leased to this node until then.
    [[nodiscard]] std::int64_t lease_until_ms() const noexcept { return lease_until_ms_; }

   private:
    friend class engine;
    reservation(std::shared_ptr<impl> engine, std::string origin, std::int64_t lease_until_ms);
    void release() noexcept;
    std::shared_ptr<impl> engine_;  // empty once given back or delivered
    std::string origin_;
    std::int64_t lease_until_ms_ = 0;
  };

  /// The fast path for a message about to be stored at `now_ms`: a slot for its origin when it is
  /// due now, the engine runs and the fast path is open (see above); nullopt otherwise (store it
  /// for a claim, then call stored()). Thread-safe, never blocks on the database.
  [[nodiscard]] std::optional<reservation> reserve(const message_spec& m, std::int64_t now_ms);

  /// Start the attempt of `m`, stored (committed) ACTIVE under `r`'s lease. When the engine is
  /// stopping, the lease is handed back instead (blocking on the database: call it from the worker
  /// pool, as the publish handlers are). Thread-safe.
  void deliver(reservation r, stored_message m);

  /// See the shutdown notes above. Blocks for up to the shutdown timeout (plus one database call);
  /// idempotent. Called from an io_context thread, it only starts the shutdown.
  void stop();

  /// Attempts in flight now (for tests and diagnostics). Thread-safe.
  [[nodiscard]] std::size_t in_flight() const;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace shopd::relay
