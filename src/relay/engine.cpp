#include "shopd/relay/engine.hpp"

#include "shopd/db/database.hpp"
#include "shopd/http/client.hpp"
#include "shopd/obs/log.hpp"
#include "shopd/obs/metrics.hpp"
#include "shopd/obs/trace.hpp"
#include "shopd/relay/delivery.hpp"
#include "shopd/relay/headers.hpp"
#include "shopd/relay/relay_metrics.hpp"
#include "shopd/relay/responses.hpp"
#include "shopd/relay/store.hpp"
#include "shopd/text/utf8.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

namespace shopd::relay {

using text::is_valid_utf8;

namespace {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Recording an outcome is retried on transient database errors (the database is down or busy) for
// as long as the message's lease lasts, less a safety margin: while this node holds the lease, the
// outcome it knows is still the one to record, and recording it when the database is back beats
// delivering the message again after the lease. Past that, or after at least `record_attempts`
// tries when the lease is shorter, the engine gives up and lets the lease expire (the message is
// then delivered again: at least once).
constexpr int record_attempts = 5;
constexpr std::chrono::milliseconds record_backoff{200};
constexpr std::chrono::milliseconds record_backoff_max{2'000};
constexpr std::int64_t record_safety_ms = 2'000;

// Outcomes that finish while one is being recorded wait and are recorded together, at most this
// many to one transaction.
constexpr std::size_t max_record_batch = 256;

// After a failed claim (database down), the loop waits this long at least before the next one.
constexpr std::chrono::milliseconds claim_error_pause{1'000};

// A destination's header values may hold any bytes (obs-text); they end up in JSON documents (the
// DLQ row, callback bodies) that must be valid UTF-8, so other bytes become '?'.
std::string utf8_or_ascii(std::string value) {
  if (is_valid_utf8(value)) return value;
  for (auto& c : value) {
    if (static_cast<unsigned char>(c) >= 0x80) c = '?';
  }
  return value;
}

void log_exception(std::string_view what, std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    obs::error(what, {{"error", ex.what()}});
  } catch (...) {
    obs::error(what, {{"error", "unknown exception"}});
  }
}

// The trace a message belongs to: its forwarded `traceparent` (delivered to the destination as is).
std::optional<obs::trace_context> trace_of(const message_spec& spec) {
  for (const auto& h : spec.headers) {
    if (iequals(h.name, "traceparent")) return obs::trace_context::parse(h.value);
  }
  return std::nullopt;
}

// Runs `log` under the message's trace, so the relay's lines about it carry the chain's trace_id.
// The scope covers that synchronous call only, never a co_await.
template <typename F>
void log_for(const stored_message& m, F&& log) {
  if (const auto trace = trace_of(m.spec)) {
    const obs::trace_scope scope(*trace);
    log();
  } else {
    log();
  }
}

}  // namespace

struct engine::impl : std::enable_shared_from_this<impl> {
  impl(engine_options o, std::shared_ptr<relay_store> s, const http::client& c, asio::io_context& io,
       asio::thread_pool& w, relay_metrics& m)
      : opts(std::move(o)),
        store(std::move(s)),
        client(c),
        ioc(io),
        workers(w),
        metrics(m),
        strand(asio::make_strand(io)),
        wake_timer(strand),
        maintenance_timer(strand),
        slots(opts.concurrency, opts.per_destination_concurrency) {}

  engine_options opts;
  std::shared_ptr<relay_store> store;
  http::client client;
  asio::io_context& ioc;
  asio::thread_pool& workers;
  relay_metrics metrics;  // references into the registry, which outlives every coroutine
  asio::strand<asio::io_context::executor_type> strand;

  // Owned by the strand.
  asio::steady_timer wake_timer;
  asio::steady_timer maintenance_timer;
  bool wake_pending = false;

  // Shared with the publishing threads (reserve(), deliver(), stored()): the slots, and what the
  // fast path needs to know to never overtake stored work.
  std::mutex slots_mutex;
  delivery_slots slots;
  // Counts the reports of work stored for a claim; a claim notes it when it starts, so it knows
  // which reports it may have missed (their work committed after its read).
  std::uint64_t stamp = 0;
  // The origins with due work stored for a claim, each with the stamp of the report that made it
  // wait. A claim that started after that report and took all it found of the origin's due work
  // ends the wait: work reported meanwhile is taken by the next claim, which its report woke, so a
  // publish overtakes it by one claim's time at most (and then, if the origin is saturated, that
  // claim finds it waiting again).
  std::map<std::string, std::uint64_t, std::less<>> waiting;
  // False while work no origin names may wait (notify(), a claim that reported other_due): until
  // a claim that started after `closed_at` finds none.
  bool fast_open = false;
  std::uint64_t closed_at = 0;
  // When the earliest scheduled message falls due: claims take over from then on. `schedules`
  // counts the reports that lowered it, so a claim knows whether its own answer is complete.
  std::int64_t fast_until_ms = std::numeric_limits<std::int64_t>::max();
  std::uint64_t schedules = 0;
  struct claim_start {
    std::uint64_t stamp = 0;
    std::uint64_t schedules = 0;
  };

  std::atomic<bool> started{false};
  std::atomic<bool> stopping{false};

  // Shared with stop(), which waits on another thread.
  mutable std::mutex mutex;
  std::condition_variable changed;
  std::set<std::string> in_flight_ids;
  bool scheduler_running = false;
  bool maintenance_running = false;

  // An attempt waiting, suspended, for its outcome to be recorded; it lives in the attempt's frame.
  struct record_waiter {
    explicit record_waiter(const asio::strand<asio::io_context::executor_type>& ex)
        : signal(ex, steady::time_point::max()) {}
    std::optional<recorded_outcome> result;  // nullopt: not recorded, for the reason in `error`
    std::string error;
    std::int64_t retry_until_ms = 0;  // transient errors are retried until then (Unix ms)
    bool done = false;
    asio::steady_timer signal;  // cancelled when done
  };
  struct queued_outcome {
    attempt_outcome outcome;
    record_waiter* waiter;
  };
  // Owned by the strand: outcomes waiting for the recorder, and whether it runs.
  std::deque<queued_outcome> to_record;
  bool recorder_running = false;

  /// Run f() on the worker pool and resume on the strand with its result (or exception).
  template <typename F>
  asio::awaitable<std::invoke_result_t<F&>> on_workers(F f) {
    using result = std::invoke_result_t<F&>;
    co_return co_await asio::co_spawn(
        workers, [f = std::move(f)]() mutable -> asio::awaitable<result> { co_return f(); },
        asio::use_awaitable);
  }

  void wake() {
    wake_pending = true;
    wake_timer.cancel();
  }

  // -- what waits for a claim (under slots_mutex) ---------------------------------------------

  void stored_unnamed_locked() {
    fast_open = false;
    closed_at = ++stamp;
  }
  void stored_for_locked(std::string_view origin) {
    ++stamp;
    if (!waiting.contains(origin)) waiting.emplace(std::string(origin), stamp);
  }
  void scheduled_locked(std::int64_t due_ms) {
    fast_until_ms = std::min(fast_until_ms, due_ms);
    ++schedules;
  }
  // A claim that started at `start` ended: forget the waiting origins it drained, unless they
  // began to wait after it started.
  void claimed_locked(claim_start start, const claim_result& c) {
    for (auto it = waiting.begin(); it != waiting.end();) {
      const bool still = std::binary_search(c.waiting_origins.begin(), c.waiting_origins.end(), it->first);
      it = (!still && it->second <= start.stamp) ? waiting.erase(it) : std::next(it);
    }
    for (const auto& origin : c.waiting_origins) {
      if (!waiting.contains(origin)) waiting.emplace(origin, start.stamp);
    }
    if (c.other_due) {
      stored_unnamed_locked();
    } else if (closed_at <= start.stamp) {
      fast_open = true;
    }
    const auto until = c.next_due_ms.value_or(std::numeric_limits<std::int64_t>::max());
    fast_until_ms = schedules == start.schedules ? until : std::min(fast_until_ms, until);
  }

  void post_wake() {
    asio::post(strand, [self = shared_from_this()] { self->wake(); });
  }

  // Whether a claim should run now whatever slot frees: it is not known where work waits, or
  // scheduled work fell due. Under slots_mutex.
  [[nodiscard]] bool claim_due_locked() const { return !fast_open || now_ms() >= fast_until_ms; }

  // Gives back `origin`'s slot; true when a claim should run now: work may wait for this slot
  // (of its origin, or the last free one overall), or claim_due_locked().
  bool give_back(std::string_view origin) {
    std::lock_guard lock(slots_mutex);
    const bool was_full = slots.free() == 0;
    slots.give_back(origin);
    return claim_due_locked() || waiting.contains(origin) || (was_full && !waiting.empty());
  }

  void spawn(asio::awaitable<void> work, std::string_view what) {
    asio::co_spawn(strand, std::move(work), [what](std::exception_ptr e) { log_exception(what, e); });
  }

  // -- the scheduler ---------------------------------------------------------------------------

  // Each coroutine takes `self`, so the state lives as long as its frame, from creation on.
  asio::awaitable<void> schedule(std::shared_ptr<impl> /*self*/) {
    while (!stopping.load()) {
      wake_pending = false;
      std::optional<std::int64_t> next_due;
      bool again = false;
      auto pause = opts.poll_interval;
      std::optional<delivery_slots> room;
      claim_start start;
      {
        std::lock_guard lock(slots_mutex);
        if (slots.free() > 0) room = slots;
        start = {.stamp = stamp, .schedules = schedules};
      }
      if (room) {
        claim_result claimed;
        bool claimed_ok = false;
        try {
          claimed = co_await on_workers([this, &room] {
            // Publishes take slots meanwhile: each pick takes its real one as its lease is written.
            const claim_slots owner{.take =
                                        [this](std::string_view origin) {
                                          std::lock_guard lock(slots_mutex);
                                          return slots.try_take(origin);
                                        },
                                    .give_back =
                                        [this](std::string_view origin) {
                                          std::lock_guard lock(slots_mutex);
                                          slots.give_back(origin);
                                        }};
            return store->claim(now_ms(), *room, opts.lease_margin.count(), opts.default_timeout.count(),
                                owner);
          });
          claimed_ok = true;
        } catch (const std::exception& e) {
          obs::warn("relay claim failed", {{"error", e.what()}});
          pause = std::max(pause, claim_error_pause);
        }
        if (stopping.load()) {
          {
            std::lock_guard lock(slots_mutex);
            for (const auto& m : claimed.messages) slots.give_back(origin_of(m.spec.destination));
          }
          co_await hand_back(ids_of(claimed.messages));
          break;
        }
        bool free_left = false;
        bool left_with_room = false;
        {
          std::lock_guard lock(slots_mutex);
          if (claimed_ok) claimed_locked(start, claimed);
          free_left = slots.free() > 0;
          // The claim read from its copy of the slots: an origin it left work at as saturated may have
          // had a slot given back meanwhile, whose give_back saw no work waiting there yet and woke
          // nothing. Claim again at once rather than leave that work to the poll.
          left_with_room = std::any_of(claimed.waiting_origins.begin(), claimed.waiting_origins.end(),
                                       [this](const std::string& origin) { return slots.can_take(origin); });
        }
        if (!claimed.messages.empty()) {
          std::lock_guard lock(mutex);
          for (const auto& m : claimed.messages) in_flight_ids.insert(m.message_id);
        }
        for (auto& m : claimed.messages) {
          auto origin = origin_of(m.spec.destination);
          start_attempt(std::move(m), std::move(origin), metrics.started_by_claim);
        }
        again = (claimed.more_due && !claimed.messages.empty() && free_left) || left_with_room;
        next_due = claimed.next_due_ms;
      }
      if (again || wake_pending) continue;
      if (next_due) {
        const auto until_due = std::chrono::milliseconds(std::max<std::int64_t>(0, *next_due - now_ms()));
        pause = std::min(pause, until_due);
      }
      wake_timer.expires_after(pause);
      boost::system::error_code ec;
      co_await wake_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    {
      std::lock_guard lock(mutex);
      scheduler_running = false;
    }
    changed.notify_all();
  }

  static std::vector<std::string> ids_of(const std::vector<stored_message>& messages) {
    std::vector<std::string> ids;
    ids.reserve(messages.size());
    for (const auto& m : messages) ids.push_back(m.message_id);
    return ids;
  }

  // Claimed after stop() began: never attempted, so their leases go back at once.
  asio::awaitable<void> hand_back(const std::vector<std::string>& ids) {
    if (ids.empty()) co_return;
    try {
      co_await on_workers([this, &ids] { return store->release_leases(ids, now_ms()); });
    } catch (const std::exception& e) {
      obs::warn("relay could not release leases; they expire by themselves", {{"error", e.what()}});
    }
  }

  // Starts the attempt of a leased message whose slot is taken, already counted in
  // in_flight_ids. Any thread.
  void start_attempt(stored_message m, std::string origin, obs::counter& started_via) {
    started_via.inc();
    spawn(attempt(shared_from_this(), std::move(m), std::move(origin)), "relay attempt failed");
  }

  // -- one attempt -------------------------------------------------------------------------------

  asio::awaitable<void> attempt(std::shared_ptr<impl> /*self*/, stored_message m, std::string origin) {
    attempt_record rec;
    metrics.in_flight.inc();
    const auto started_at = steady::now();
    try {
      auto dr = make_delivery_request(m.message_id, m.spec, m.retried, opts.signing_key,
                                      std::chrono::system_clock::now(), opts.default_timeout.count());
      http::client_request req;
      req.method = boost::beast::http::string_to_verb(dr.method);
      if (req.method == boost::beast::http::verb::unknown)
        throw std::invalid_argument("unknown method " + dr.method);
      req.url = std::move(dr.url);
      req.body = std::move(dr.body);
      req.timeout = std::chrono::milliseconds(dr.timeout_ms);
      req.headers.reserve(dr.headers.size());
      for (auto& h : dr.headers) req.headers.emplace_back(std::move(h.name), std::move(h.value));
      auto res = co_await client.send(std::move(req));
      if (res) {
        rec.response.status = static_cast<int>(res->status);
        for (auto& [name, value] : res->headers) {
          rec.response.headers.push_back({std::move(name), utf8_or_ascii(std::move(value))});
        }
        rec.response.body = recorded_body(res->body);
        if (rec.response.status < 200 || rec.response.status > 299)
          rec.error = "HTTP " + std::to_string(res->status);
      } else {
        rec.error = res.error().message;
      }
    } catch (const std::exception& e) {
      rec.error = e.what();
    }
    metrics.duration.observe(std::chrono::duration<double>(steady::now() - started_at).count());
    metrics.in_flight.dec();
    // The destination is done with this attempt: its slot serves the next one while the outcome is
    // recorded (the lease keeps the message from being claimed again meanwhile). Held until the
    // recording too, a slot spent half its time waiting for the database's write turn, and a busy
    // destination got fewer requests than its limit allows.
    if (give_back(origin)) wake();

    const auto stored = co_await finish(m, std::move(rec));
    if (stored.retry_due_ms || stored.callbacks) {
      bool claim_now = false;
      {
        std::lock_guard lock(slots_mutex);
        if (stored.retry_due_ms) scheduled_locked(*stored.retry_due_ms);
        if (stored.callbacks) stored_unnamed_locked();
        claim_now = claim_due_locked();
      }
      if (claim_now) wake();
    }
    {
      std::lock_guard lock(mutex);
      in_flight_ids.erase(m.message_id);
    }
    changed.notify_all();
  }

  std::vector<message_spec> follow_ups(const stored_message& m, const attempt_record& rec, std::int64_t now,
                                       std::optional<std::string_view> dlq_id) const {
    std::vector<message_spec> out;
    if (m.spec.callback) {
      auto body = boost::json::serialize(callback_body(m.message_id, m.spec, rec.response, m.retried));
      if (auto cb = make_callback_spec(m.spec, m.message_id, message_kind::callback, std::move(body), now,
                                       opts.limits))
        out.push_back(std::move(*cb));
    }
    if (dlq_id && m.spec.failure_callback) {
      auto body = boost::json::serialize(
          failure_callback_body(m.message_id, m.spec, rec.response, m.retried, *dlq_id));
      if (auto fcb = make_callback_spec(m.spec, m.message_id, message_kind::failure_callback, std::move(body),
                                        now, opts.limits))
        out.push_back(std::move(*fcb));
    }
    return out;
  }

  // What recording an outcome stored for a claim.
  struct stored_work {
    std::optional<std::int64_t> retry_due_ms;  // the retry
    bool callbacks = false;                    // callback messages, due at once
  };

  // Records the outcome.
  asio::awaitable<stored_work> finish(const stored_message& m, attempt_record rec) {
    const std::int64_t now = now_ms();
    const auto decision = decide({.response = rec.response,
                                  .retried = m.retried,
                                  .max_retries = m.spec.max_retries,
                                  .retry_delay_expr = m.spec.retry_delay_expr,
                                  .backoff_scale = opts.backoff_scale,
                                  .now_ms = now});
    if (decision.expression_error) {
      obs::warn("relay retry delay expression failed; default back-off used",
                {{"message_id", m.message_id}, {"error", decision.expression_error->message}});
    }
    if (decision.non_retryable) rec.error = "non-retryable error (489)";

    const std::int64_t outcome_due = now + decision.retry_delay_ms;
    attempt_outcome outcome{.message_id = m.message_id,
                            .verdict = decision.verdict,
                            .attempt = rec,
                            .next_attempt_ms = outcome_due,
                            .now_ms = now};
    if (m.spec.callback || m.spec.failure_callback) {
      // `m` and `rec` stay put in this frame until the outcome is recorded.
      outcome.follow_ups = [this, &m, &rec, now](std::optional<std::string_view> dlq_id) {
        return follow_ups(m, rec, now, dlq_id);
      };
    }
    record_waiter waiter(strand);
    waiter.retry_until_ms = m.lease_until_ms.value_or(now) - record_safety_ms;
    to_record.push_back({std::move(outcome), &waiter});
    if (!recorder_running) {
      recorder_running = true;
      spawn(recorder(shared_from_this()), "relay recorder failed");
    }
    while (!waiter.done) {
      boost::system::error_code ec;
      co_await waiter.signal.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (!waiter.result) {
      obs::error("relay could not record an outcome; the message will be delivered again",
                 {{"message_id", m.message_id}, {"error", waiter.error}});
      co_return stored_work{};
    }

    const bool held = waiter.result->held;
    switch (decision.verdict) {
      case attempt_verdict::delivered:
        if (held) metrics.delivered.inc();
        log_for(m, [&] {
          obs::debug("relay delivered", {{"message_id", m.message_id},
                                         {"url", m.spec.destination},
                                         {"status", rec.response.status},
                                         {"retried", m.retried}});
        });
        break;
      case attempt_verdict::retry:
        if (held) metrics.retries.inc();
        log_for(m, [&] {
          obs::debug("relay attempt failed; retry scheduled",
                     {{"message_id", m.message_id},
                      {"url", m.spec.destination},
                      {"error", rec.error},
                      {"retried", m.retried + 1},
                      {"delay_ms", decision.retry_delay_ms},
                      {"delay_source", to_string(decision.delay_source)}});
        });
        break;
      case attempt_verdict::failed:
        if (held) {
          metrics.failed.inc();
          log_for(m, [&] {
            obs::warn("relay message failed; moved to the DLQ", {{"message_id", m.message_id},
                                                                 {"dlq_id", *waiter.result->dlq_id},
                                                                 {"url", m.spec.destination},
                                                                 {"error", rec.error},
                                                                 {"retried", m.retried}});
          });
        }
        break;
    }
    if (!held) {
      obs::info("relay lease lost before the outcome was recorded (cancelled, or taken over)",
                {{"message_id", m.message_id}, {"outcome", to_string(decision.verdict)}});
    }
    if (!held) co_return stored_work{};
    co_return stored_work{
        .retry_due_ms =
            decision.verdict == attempt_verdict::retry ? std::optional(outcome_due) : std::nullopt,
        .callbacks = decision.verdict != attempt_verdict::retry &&
                     (m.spec.callback.has_value() ||
                      (decision.verdict == attempt_verdict::failed && m.spec.failure_callback.has_value()))};
  }

  // -- recording outcomes ------------------------------------------------------------------------

  // One recording transaction at a time: the outcomes that finish while it runs queue up and go
  // together into the next one, so the database's single write turn is taken once per batch
  // instead of once per message. Runs while outcomes are queued; finish() starts it.
  asio::awaitable<void> recorder(std::shared_ptr<impl> /*self*/) {
    while (!to_record.empty()) {
      const auto n = std::min(to_record.size(), max_record_batch);
      std::vector<attempt_outcome> outcomes;
      std::vector<record_waiter*> waiters;
      outcomes.reserve(n);
      waiters.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        outcomes.push_back(std::move(to_record.front().outcome));
        waiters.push_back(to_record.front().waiter);
        to_record.pop_front();
      }
      try {
        co_await record_batch(outcomes, waiters);
      } catch (const std::exception& e) {
        for (auto* w : waiters) w->error = e.what();
      }
      // The attempts resume after this coroutine next suspends; a waiter is not touched again.
      for (auto* w : waiters) {
        w->done = true;
        w->signal.cancel();
      }
    }
    recorder_running = false;
  }

  // Records the batch in one transaction, retried on transient errors with the back-off. A batch
  // that fails otherwise is recorded again one outcome at a time, so that one outcome the database
  // refuses does not lose the others'.
  asio::awaitable<void> record_batch(std::span<const attempt_outcome> outcomes,
                                     std::span<record_waiter* const> waiters) {
    for (int i = 1;; ++i) {
      std::string error;
      bool transient = false;
      try {
        auto results = co_await on_workers([&] { return store->record_outcomes(outcomes); });
        for (std::size_t k = 0; k < waiters.size(); ++k) waiters[k]->result = std::move(results[k]);
        co_return;
      } catch (const db::transient_error& e) {
        error = e.what();
        transient = true;
      } catch (const std::exception& e) {
        error = e.what();
      }
      if (!transient && outcomes.size() > 1) {
        obs::warn("relay could not record a batch of outcomes; recording them one at a time",
                  {{"count", outcomes.size()}, {"error", error}});
        for (std::size_t k = 0; k < outcomes.size(); ++k)
          co_await record_batch(outcomes.subspan(k, 1), waiters.subspan(k, 1));
        co_return;
      }
      const auto backoff = std::min(record_backoff * i, record_backoff_max);
      const bool lease_left = std::ranges::all_of(
          waiters,
          [until = now_ms() + backoff.count()](const record_waiter* w) { return until < w->retry_until_ms; });
      if (!transient || (i >= record_attempts && !lease_left) || stopping.load()) {
        for (auto* w : waiters) w->error = error;
        co_return;
      }
      if (i == record_attempts) {
        obs::warn("relay cannot record outcomes yet; retrying while their leases last",
                  {{"count", outcomes.size()}, {"error", error}});
      }
      asio::steady_timer pause(strand, backoff);
      boost::system::error_code ec;
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  // -- gauges and purging ------------------------------------------------------------------------

  asio::awaitable<void> maintain(std::shared_ptr<impl> /*self*/) {
    auto last_purge = steady::now() - opts.purge_interval;
    while (!stopping.load()) {
      try {
        const auto c = co_await on_workers([this] { return store->counts(); });
        metrics.queue_created.set(static_cast<double>(c.created));
        metrics.queue_active.set(static_cast<double>(c.active));
        metrics.queue_retry.set(static_cast<double>(c.retry));
        metrics.dlq_size.set(static_cast<double>(c.dlq));
        if (steady::now() - last_purge >= opts.purge_interval) {
          last_purge = steady::now();
          const auto purged =
              co_await on_workers([this] { return store->purge(now_ms(), opts.retention.count()); });
          if (purged.messages > 0 || purged.dedup_ids > 0) {
            obs::info("relay purged finished messages",
                      {{"count", purged.messages}, {"dedup_ids", purged.dedup_ids}});
          }
          // Cut short with more to go: on at the next round (metrics_interval) rather than in ten
          // minutes, each round a bounded piece of work that a shutdown waits for.
          if (purged.more) last_purge = steady::now() - opts.purge_interval;
        }
      } catch (const std::exception& e) {
        obs::warn("relay maintenance failed", {{"error", e.what()}});
      }
      if (stopping.load()) break;
      maintenance_timer.expires_after(opts.metrics_interval);
      boost::system::error_code ec;
      co_await maintenance_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    {
      std::lock_guard lock(mutex);
      maintenance_running = false;
    }
    changed.notify_all();
  }
};

engine::engine(engine_options opts, std::shared_ptr<relay_store> store, const http::client& client,
               asio::io_context& ioc, asio::thread_pool& workers, relay_metrics& metrics) {
  if (opts.signing_key.empty()) throw std::invalid_argument("the relay needs a signing key");
  impl_ = std::make_shared<impl>(std::move(opts), std::move(store), client, ioc, workers, metrics);
}

engine::~engine() {
  stop();
}

void engine::start() {
  if (impl_->started.exchange(true)) return;
  const auto released = impl_->store->release_leases(now_ms());
  if (released > 0) {
    obs::info("relay released leases of a previous run",
              {{"node", impl_->store->node_id()}, {"count", released}});
  }
  {
    std::lock_guard lock(impl_->mutex);
    impl_->scheduler_running = true;
    impl_->maintenance_running = true;
  }
  impl_->spawn(impl_->schedule(impl_), "relay scheduler stopped");
  impl_->spawn(impl_->maintain(impl_), "relay maintenance stopped");
}

void engine::notify() {
  {
    std::lock_guard lock(impl_->slots_mutex);
    impl_->stored_unnamed_locked();
  }
  impl_->post_wake();
}

void engine::stored(const message_spec& m, std::int64_t now_ms) {
  {
    std::lock_guard lock(impl_->slots_mutex);
    if (m.not_before_ms > now_ms) {
      impl_->scheduled_locked(m.not_before_ms);
    } else {
      impl_->stored_for_locked(origin_of(m.destination));
    }
  }
  impl_->post_wake();
}

engine::reservation::reservation(std::shared_ptr<impl> engine, std::string origin,
                                 std::int64_t lease_until_ms)
    : engine_(std::move(engine)), origin_(std::move(origin)), lease_until_ms_(lease_until_ms) {}

engine::reservation::reservation(reservation&& other) noexcept
    : engine_(std::move(other.engine_)),
      origin_(std::move(other.origin_)),
      lease_until_ms_(other.lease_until_ms_) {}

engine::reservation& engine::reservation::operator=(reservation&& other) noexcept {
  if (this != &other) {
    release();
    engine_ = std::move(other.engine_);
    origin_ = std::move(other.origin_);
    lease_until_ms_ = other.lease_until_ms_;
  }
  return *this;
}

engine::reservation::~reservation() {
  release();
}

void engine::reservation::release() noexcept {
  if (!engine_) return;
  const auto e = std::move(engine_);
  try {
    if (e->give_back(origin_)) e->post_wake();
  } catch (const std::exception& ex) {
    // Only posting can throw (out of memory); the next poll claims what waits.
    obs::warn("relay could not wake its scheduler", {{"error", ex.what()}});
  }
}

std::optional<engine::reservation> engine::reserve(const message_spec& m, std::int64_t now_ms) {
  auto& s = *impl_;
  if (m.not_before_ms > now_ms || !s.started.load() || s.stopping.load()) return std::nullopt;
  auto origin = origin_of(m.destination);
  {
    std::lock_guard lock(s.slots_mutex);
    if (!s.fast_open || now_ms >= s.fast_until_ms || s.waiting.contains(origin) || !s.slots.try_take(origin))
      return std::nullopt;
  }
  const auto timeout = m.timeout_ms > 0 ? m.timeout_ms : s.opts.default_timeout.count();
  return reservation(impl_, std::move(origin), now_ms + timeout + s.opts.lease_margin.count());
}

void engine::deliver(reservation r, stored_message m) {
  auto& s = *impl_;
  if (r.engine_ != impl_) throw std::invalid_argument("relay: a reservation delivered to another engine");
  bool running = false;
  {
    std::lock_guard lock(s.mutex);
    // stop() sets `stopping`, then waits under this mutex until in_flight_ids is empty: either it
    // sees this attempt, or this sees `stopping`.
    running = !s.stopping.load();
    if (running) s.in_flight_ids.insert(m.message_id);
  }
  if (!running) {
    try {
      s.store->release_leases(std::span(&m.message_id, 1), now_ms());
    } catch (const std::exception& e) {
      obs::warn("relay shutdown: could not release a lease; it expires by itself",
                {{"message_id", m.message_id}, {"error", e.what()}});
    }
    return;  // `r` gives its slot back
  }
  auto origin = std::move(r.origin_);
  r.engine_.reset();  // the slot is the attempt's now
  s.start_attempt(std::move(m), std::move(origin), s.metrics.started_by_publish);
}

void engine::stop() {
  auto& s = *impl_;
  if (s.stopping.exchange(true)) return;
  if (!s.started.load()) return;
  asio::post(s.strand, [self = impl_] {
    self->wake_timer.cancel();
    self->maintenance_timer.cancel();
  });
  if (s.ioc.get_executor().running_in_this_thread()) return;

  std::vector<std::string> unfinished;
  {
    std::unique_lock lock(s.mutex);
    s.changed.wait_for(lock, s.opts.shutdown_timeout, [&] {
      return !s.scheduler_running && !s.maintenance_running && s.in_flight_ids.empty();
    });
    unfinished.assign(s.in_flight_ids.begin(), s.in_flight_ids.end());
  }
  if (!unfinished.empty()) {
    try {
      const auto released = s.store->release_leases(unfinished, now_ms());
      obs::warn("relay shutdown: attempts still running were handed back",
                {{"in_flight", unfinished.size()}, {"released", released}});
    } catch (const std::exception& e) {
      obs::warn("relay shutdown: could not release leases; they expire by themselves", {{"error", e.what()}});
    }
  }
  s.client.close_idle();
}

std::size_t engine::in_flight() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->in_flight_ids.size();
}

}  // namespace shopd::relay
