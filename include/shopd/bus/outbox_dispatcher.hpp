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
/// Metrics (labelled with the producer's role): shopd_outbox_published_total,
/// shopd_outbox_publish_failures_total, and the backlog: shopd_outbox_pending_events is counted
/// after every pass (one indexed COUNT/MIN over the unsent rows of this producer; passes happen at
/// least every `poll_interval`, and after every failure), shopd_outbox_oldest_pending_age_seconds is
/// computed from that pass's oldest row when /metrics is scraped, so it keeps growing while the
/// dispatcher is stuck.

#include "shopd/bus/outbox.hpp"
#include "shopd/obs/metrics.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace shopd::bus {

class outbox_dispatcher {
 public:
  /// Publish `events` in order. Returns the message ids of the accepted prefix (all of them when
  /// everything was accepted); throws or returns fewer when the rest must be retried.
  using publish_fn = std::function<std::vector<std::string>(std::span<const pending_event> events)>;

  struct options {
    std::string producer;  ///< the role whose rows this publishes
    int batch_size = 100;
    std::chrono::milliseconds poll_interval{1'000};
    std::chrono::milliseconds min_backoff{100};
    std::chrono::milliseconds max_backoff{30'000};
  };

  /// `metrics` must outlive the dispatcher.
  outbox_dispatcher(db::database& db, options opts, publish_fn publish, obs::registry& metrics);
  ~outbox_dispatcher();  ///< stop()
  outbox_dispatcher(const outbox_dispatcher&) = delete;
  outbox_dispatcher& operator=(const outbox_dispatcher&) = delete;

  void start();
  /// Wake the dispatcher: new rows were committed. Cheap, thread-safe.
  void notify() noexcept;
  /// Finish the batch in flight, then stop. Unsent rows stay in the outbox for the next start.
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
  obs::counter& publish_failures_;
  obs::gauge& backlog_;
  obs::gauge& oldest_age_;
  std::atomic<std::int64_t> oldest_pending_ms_{-1};  // created_at of the oldest unsent row; -1: none
  obs::registry::collector_id collector_ = 0;        // 0: not registered
  std::mutex mutex_;
  std::condition_variable wake_;
  bool pending_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace shopd::bus
