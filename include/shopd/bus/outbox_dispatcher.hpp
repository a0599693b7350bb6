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

#include "shopd/bus/outbox.hpp"

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace shopd::obs {
class registry;
}

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

  db::database& db_;
  options opts_;
  publish_fn publish_;
  obs::registry& metrics_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool pending_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace shopd::bus
