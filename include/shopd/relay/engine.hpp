#pragma once
/// The relay's delivery engine: leases due messages from the store and delivers them over HTTP,
/// signed as QStash signs them, then records each outcome (delivered, retry later, or failed into
/// the DLQ with the callback and failure-callback messages it triggers).
///
/// Scheduling: one loop claims due work whenever it is woken (notify(), after a publish commits;
/// an attempt finishing) and otherwise every poll interval, or sooner when the earliest scheduled
/// message falls due. It claims only what free slots allow: at most `concurrency` attempts in
/// flight in this process and at most `per_destination_concurrency` to one destination origin, so
/// a slow service holds its own slots and never the others'. Each claim leases its messages to this
/// node for one attempt (timeout + lease margin); a message whose lease ran out (its node died) is
/// claimed again by any node. At start-up the node first hands back its own leases, so what a
/// killed predecessor had in flight is re-sent at once.
///
/// Outcomes are recorded in batches: one recording transaction runs at a time, and the outcomes of
/// attempts that finish meanwhile are recorded together in the next one (at most 256), so the
/// database's write turn is taken once per batch rather than once per message. An attempt holds
/// its slot until its own outcome is recorded. A batch that meets a transient database error is
/// retried with back-off; after the last try (or any other error for a single outcome) the outcome
/// is logged as not recorded and the message is delivered again once its lease runs out. A batch
/// failing otherwise is recorded again one outcome at a time, so one refused outcome loses no other.
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

  /// Look for due work now (a publish committed). Thread-safe, cheap, never blocks.
  void notify();

  /// See the shutdown notes above. Blocks for up to the shutdown timeout (plus one database call);
  /// idempotent. Called from an io_context thread, it only starts the shutdown.
  void stop();

  /// Attempts in flight now (for tests and diagnostics). Thread-safe.
  [[nodiscard]] std::size_t in_flight() const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace shopd::relay
