#include "shopd/bus/outbox_dispatcher.hpp"

#include "shopd/bus/dispatch.hpp"
#include "shopd/db/database.hpp"
#include "shopd/obs/log.hpp"
#include "shopd/obs/metrics.hpp"
#include "shopd/obs/thread_name.hpp"

#include <algorithm>

namespace shopd::bus {

outbox_dispatcher::outbox_dispatcher(db::database& db, options opts, publish_fn publish,
                                     obs::registry& metrics)
    : db_(db),
      opts_(std::move(opts)),
      publish_(std::move(publish)),
      metrics_(metrics),
      published_(metrics
                     .counter_family(
                         "shopd_outbox_published_total",
                         "Outbox rows accepted by the relay or QStash (stored by the relay of this process "
                         "in their own transaction included), by producing role",
                         {"role"})
                     .with({opts_.producer})),
      published_in_transaction_(
          metrics
              .counter_family("shopd_outbox_published_in_transaction_total",
                              "Outbox rows the relay of this process stored in the transaction that wrote "
                              "them (no dispatcher involved), by producing role",
                              {"role"})
              .with({opts_.producer})),
      publish_failures_(metrics
                            .counter_family("shopd_outbox_publish_failures_total",
                                            "Failed attempts to publish outbox rows (each is retried with "
                                            "back-off), by producing role",
                                            {"role"})
                            .with({opts_.producer})),
      refused_(metrics
                   .counter_family("shopd_outbox_refused_total",
                                   "Outbox rows the relay or QStash refused for good, set aside instead of "
                                   "offered again (shopd outbox list shows them), by producing role",
                                   {"role"})
                   .with({opts_.producer})),
      backlog_(metrics
                   .gauge_family("shopd_outbox_pending_events",
                                 "Outbox rows not yet accepted by the relay or QStash, by producing role",
                                 {"role"})
                   .with({opts_.producer})),
      refused_rows_(metrics
                        .gauge_family("shopd_outbox_refused_events",
                                      "Outbox rows set aside now, refused for good by the relay or QStash "
                                      "until requeued (shopd outbox requeue), by producing role",
                                      {"role"})
                        .with({opts_.producer})),
      oldest_age_(metrics
                      .gauge_family("shopd_outbox_oldest_pending_age_seconds",
                                    "Age of the oldest outbox row not yet published (0 when none), by "
                                    "producing role",
                                    {"role"})
                      .with({opts_.producer})) {}

outbox_dispatcher::~outbox_dispatcher() {
  stop();
}

void outbox_dispatcher::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  if (collector_ == 0) {
    collector_ = metrics_.add_collector([this] {
      const auto oldest = oldest_pending_ms_.load(std::memory_order_relaxed);
      oldest_age_.set(oldest < 0 ? 0.0
                                 : static_cast<double>(std::max<std::int64_t>(0, now_ms() - oldest)) / 1e3);
    });
  }
  stopping_ = false;
  finished_ = false;
  stop_deadline_.reset();
  abandon_ = std::stop_source();
  pending_ = true;  // rows may be waiting from before a restart
  thread_ = std::thread([this] {
    obs::name_this_thread("outbox-" + opts_.producer);
    run();
    {
      std::lock_guard done(mutex_);
      finished_ = true;
    }
    finished_cv_.notify_all();
  });
}

void outbox_dispatcher::notify() noexcept {
  {
    std::lock_guard lock(mutex_);
    pending_ = true;
  }
  wake_.notify_one();
}

void outbox_dispatcher::count_in_transaction(std::size_t rows) noexcept {
  published_.inc(static_cast<double>(rows));
  published_in_transaction_.inc(static_cast<double>(rows));
}

void outbox_dispatcher::request_stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    if (!stop_deadline_) stop_deadline_ = std::chrono::steady_clock::now() + opts_.stop_timeout;
  }
  wake_.notify_one();
}

void outbox_dispatcher::stop() {
  request_stop();
  if (thread_.joinable()) {
    {
      std::unique_lock lock(mutex_);
      if (!finished_cv_.wait_until(lock, *stop_deadline_, [this] { return finished_; })) {
        obs::warn("outbox dispatcher: the batch in flight is abandoned at shutdown; its rows stay unsent",
                  {{"role", opts_.producer}, {"stop_timeout_ms", opts_.stop_timeout.count()}});
        abandon_.request_stop();
      }
    }
    thread_.join();
  }
  std::lock_guard lock(mutex_);
  if (collector_ != 0) {
    metrics_.remove_collector(collector_);
    collector_ = 0;
  }
}

void outbox_dispatcher::refresh_backlog() noexcept {
  try {
    const auto st = outbox::pending_stats(db_, opts_.producer);
    backlog_.set(static_cast<double>(st.pending));
    refused_rows_.set(static_cast<double>(st.refused));
    oldest_pending_ms_.store(st.oldest_created_at_ms.value_or(-1), std::memory_order_relaxed);
  } catch (const std::exception& e) {
    // The gauges keep their last values (the age keeps growing); the next pass tries again.
    obs::debug("outbox backlog not counted", {{"role", opts_.producer}, {"error", e.what()}});
  }
}

void outbox_dispatcher::run() {
  auto backoff = opts_.min_backoff;
  auto counted_at = std::chrono::steady_clock::now();
  const auto count_backlog = [&] {
    refresh_backlog();
    counted_at = std::chrono::steady_clock::now();
  };
  while (true) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, opts_.poll_interval, [this] { return pending_ || stopping_; });
      if (stopping_) return;
      pending_ = false;
    }
    try {
      while (publish_once()) {
        {
          std::lock_guard lock(mutex_);
          if (stopping_) return;
        }
        // A backlog drained in full batches is still counted every poll_interval, so the gauges
        // follow the drain instead of holding the count from before it.
        if (std::chrono::steady_clock::now() - counted_at >= opts_.poll_interval) count_backlog();
      }
      backoff = opts_.min_backoff;
      count_backlog();
    } catch (const publish_abandoned&) {
      return;  // stop() gave up on the batch; its rows were not marked
    } catch (const std::exception& e) {
      obs::warn("outbox publish failed",
                {{"role", opts_.producer}, {"error", e.what()}, {"retry_in_ms", backoff.count()}});
      publish_failures_.inc();
      count_backlog();
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, backoff, [this] { return stopping_; });
      if (stopping_) return;
      backoff = std::min(backoff * 2, opts_.max_backoff);
      pending_ = true;
    }
  }
}

bool outbox_dispatcher::publish_once() {
  const auto now = now_ms();
  const int limit = one_by_one_ > 0 ? 1 : opts_.batch_size;
  auto batch = outbox::next_batch(db_, opts_.producer, limit, now);
  if (batch.empty()) {
    one_by_one_ = 0;
    return false;
  }
  // A full batch, or one cut at max_batch_bytes: more rows wait, and the next batch goes at once.
  bool more = static_cast<int>(batch.size()) == limit;
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    bytes += batch[i].event.body.size() + batch[i].event.headers.size();
    if (i > 0 && bytes > opts_.max_batch_bytes) {
      batch.resize(i);
      more = true;
      break;
    }
  }
  std::vector<row_outcome> outcomes;
  try {
    outcomes = publish_(batch, abandon_.get_token());
  } catch (const batch_refused& e) {
    if (batch.size() == 1) throw;  // the publisher answers a one-row refusal as an outcome; retry
    obs::warn("outbox batch refused as a whole; sending its rows one at a time to find the one at fault",
              {{"role", opts_.producer}, {"rows", batch.size()}, {"error", e.what()}});
    one_by_one_ = batch.size();
    return true;
  }
  if (one_by_one_ > 0) --one_by_one_;
  std::vector<outbox::sent_row> sent;
  std::vector<outbox::refused_row> refused;
  std::vector<std::size_t> refused_at;  // their places in the batch, for the log
  const row_outcome* stopped_at = nullptr;
  for (std::size_t i = 0; i < std::min(outcomes.size(), batch.size()); ++i) {
    auto& o = outcomes[i];
    if (!o.message_id.empty()) {
      sent.push_back({.id = batch[i].id, .message_id = std::move(o.message_id)});
    } else if (o.refused) {
      refused.push_back({.id = batch[i].id, .error = o.error});
      refused_at.push_back(i);
    } else {
      stopped_at = &o;
      break;
    }
  }
  outbox::mark_sent(db_, sent, now_ms());
  outbox::mark_refused(db_, refused, now_ms());
  published_.inc(static_cast<double>(sent.size()));
  refused_.inc(static_cast<double>(refused.size()));
  for (std::size_t r = 0; r < refused.size(); ++r) {
    const auto& p = batch[refused_at[r]];
    obs::error("outbox event refused for good and set aside; shopd outbox requeue offers it again",
               {{"role", opts_.producer},
                {"outbox_id", p.id},
                {"event_id", p.event.event_id},
                {"event_type", p.event.event_type},
                {"destination", p.event.destination},
                {"error", refused[r].error}});
  }
  const auto answered = sent.size() + refused.size();
  if (answered < batch.size()) {
    throw std::runtime_error(
        "publisher accepted " + std::to_string(sent.size()) + " of " + std::to_string(batch.size()) +
        " events" + (refused.empty() ? "" : " and refused " + std::to_string(refused.size())) +
        (stopped_at != nullptr && !stopped_at->error.empty() ? ": " + stopped_at->error : std::string()));
  }
  return more || one_by_one_ > 0;
}

}  // namespace shopd::bus
