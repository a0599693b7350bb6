#pragma once
/// Publishes a role's outbox: reads unsent rows in id order and hands them to a publish function
/// (the relay or Upstash QStash), then marks what was accepted as sent. One thread per role.
///
/// Promptness: notify() wakes it at once (called after every commit that queued events), so the
/// happy path has no polling delay; it also polls every `poll_interval` to pick up rows left by a
/// crash or due for a retry. Order: rows go out in id order; when a publish fails part-way, the
/// rest of the batch waits and is sent again later, in order. Each event carries its eventId as its
/// deduplication id, so a row published but not yet marked sent when the process died is not
/// delivered twice. Crash safety: a row is marked sent only after the publisher accepted it.
///
/// Refusals: a row the relay or QStash refuses for good (row_outcome::refused) is set aside
/// (outbox::mark_refused: kept with its error, logged at error level, counted) and the rows after it
/// go on; one bad event never holds up the rest of its producer's events. A batch of several rows
/// refused as a whole for its content (batch_refused) is sent again one row at a time, so only the
/// row at fault is set aside. Any other failure (relay down, 5xx, 429, a bad token) is retried with
/// back-off, and nothing is set aside. `shopd outbox list` shows the rows set aside, `shopd outbox
/// requeue` offers them again.
///
/// Rows that the relay of this process stored in the very transaction that wrote them (an event
/// handler's, bus/local_relay.hpp) are written sent: the dispatcher never sees them, and counts
/// them when told (count_in_transaction).
///
/// Metrics (labelled with the producer's role): shopd_outbox_published_total (those too),
/// shopd_outbox_published_in_transaction_total (those alone), shopd_outbox_publish_failures_total,
/// shopd_outbox_refused_total, and the backlog: shopd_outbox_pending_events (and
/// shopd_outbox_refused_events, the rows set aside now) is counted
/// at least every `poll_interval` (between the batches of a backlog too) and after every failure
/// (one indexed COUNT/MIN over the unsent rows of this producer), shopd_outbox_oldest_pending_age_seconds is
/// computed from that pass's oldest row when /metrics is scraped, so it keeps growing while the
/// dispatcher is stuck.
///
/// Shutdown: stop() lets the batch in flight finish for up to `stop_timeout` and marks what the
/// publisher accepted; past that the batch is abandoned and its rows stay unsent for the next start
/// (their deduplication ids keep a late acceptance from being delivered twice). No row is ever
/// marked sent that the publisher did not accept.

#include "shopd/bus/outbox.hpp"
#include "shopd/obs/metrics.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace shopd::bus {

/// Thrown by a publish function that gave up waiting because its stop token was triggered.
class publish_abandoned : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Thrown by a publish function when the relay or QStash refused a batch of several rows as a whole
/// for what it holds (a bad request, too large), not for who sent it or when: one of its rows may
/// be at fault, and the dispatcher sends them one at a time to find out.
class batch_refused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What the relay or QStash answered for one row of a batch.
struct row_outcome {
  std::string message_id{};  ///< accepted, with this message id (empty otherwise)
  std::string error{};       ///< not accepted: why
  /// Not accepted and never will be as it is (an entry of the batch answered with an error, or a
  /// one-row batch refused as a bad request or too large): the row is set aside, not offered again.
  /// Otherwise a row not accepted waits, with every row after it, for the next attempt.
  bool refused = false;
};

class outbox_dispatcher {
 public:
  /// Publish `events` in order. Returns one outcome per row, in order, for the rows it has an
  /// answer for: every row, or fewer when the rest must be tried again later (from the first row
  /// not accepted and not refused on, the rest of the batch waits). Throws when the batch failed as
  /// a whole (batch_refused when for its content). When `stop` is triggered it should return at
  /// once, throwing publish_abandoned.
  using publish_fn =
      std::function<std::vector<row_outcome>(std::span<const pending_event> events, std::stop_token stop)>;

  struct options {
    std::string producer;  ///< the role whose rows this publishes
    int batch_size = 100;
    /// A batch also ends before the row that would take its bodies and headers past this many bytes
    /// (it holds one row at least): a /v2/batch request stays well inside the relay's HTTP_BODY_LIMIT
    /// (1 MiB by default) and QStash's request size, however large a backlog's events are. A batch
    /// the relay refuses whole would be sent again and again, and hold up every row behind it.
    std::size_t max_batch_bytes = 256 * 1024;
    std::chrono::milliseconds poll_interval{1'000};
    std::chrono::milliseconds min_backoff{100};
    std::chrono::milliseconds max_backoff{30'000};
    std::chrono::milliseconds stop_timeout{10'000};  ///< how long stop() waits for the batch in flight
  };

  /// `metrics` must outlive the dispatcher.
  outbox_dispatcher(db::database& db, options opts, publish_fn publish, obs::registry& metrics);
  ~outbox_dispatcher();  ///< stop()
  outbox_dispatcher(const outbox_dispatcher&) = delete;
  outbox_dispatcher& operator=(const outbox_dispatcher&) = delete;

  void start();
  /// Wake the dispatcher: new rows were committed. Cheap, thread-safe.
  void notify() noexcept;
  /// Count `rows` written sent because the relay stored them in the same transaction. Thread-safe.
  void count_in_transaction(std::size_t rows) noexcept;
  /// Begin stopping without waiting: no new batch starts, and the stop timeout starts counting.
  /// Call it on every dispatcher first to stop several within one timeout. Thread-safe.
  void request_stop();
  /// request_stop(), then wait for the batch in flight until the stop timeout, abandon it past
  /// that (see above), and join. Unsent rows stay in the outbox for the next start.
  void stop();

 private:
  void run();
  bool publish_once();  // true when it made progress and more rows may be waiting
  void refresh_backlog() noexcept;

  db::database& db_;
  options opts_;
  publish_fn publish_;
  obs::registry& metrics_;
  obs::counter& published_;
  obs::counter& published_in_transaction_;
  obs::counter& publish_failures_;
  obs::counter& refused_;
  obs::gauge& backlog_;
  obs::gauge& refused_rows_;
  obs::gauge& oldest_age_;
  std::atomic<std::int64_t> oldest_pending_ms_{-1};  // created_at of the oldest unsent row; -1: none
  obs::registry::collector_id collector_ = 0;        // 0: not registered
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable finished_cv_;
  bool pending_ = false;
  bool stopping_ = false;
  bool finished_ = false;
  std::optional<std::chrono::steady_clock::time_point> stop_deadline_;
  std::stop_source abandon_;  // triggered when the stop timeout is over
  std::thread thread_;
  std::size_t one_by_one_ = 0;  // rows still to send alone after a batch_refused (dispatcher thread)
};

}  // namespace shopd::bus
