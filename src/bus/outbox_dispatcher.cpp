#include "shopd/bus/outbox_dispatcher.hpp"

#include "shopd/bus/dispatch.hpp"
#include "shopd/db/database.hpp"
#include "shopd/obs/log.hpp"
#include "shopd/obs/metrics.hpp"

#include <algorithm>

namespace shopd::bus {

outbox_dispatcher::outbox_dispatcher(db::database& db, options opts, publish_fn publish,
                                     obs::registry& metrics)
    : db_(db), opts_(std::move(opts)), publish_(std::move(publish)), metrics_(metrics) {}

outbox_dispatcher::~outbox_dispatcher() {
  stop();
}

void outbox_dispatcher::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  pending_ = true;  // rows may be waiting from before a restart
  thread_ = std::thread([this] { run(); });
}

void outbox_dispatcher::notify() noexcept {
  {
    std::lock_guard lock(mutex_);
    pending_ = true;
  }
  wake_.notify_one();
}

void outbox_dispatcher::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void outbox_dispatcher::run() {
  auto backoff = opts_.min_backoff;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, opts_.poll_interval, [this] { return pending_ || stopping_; });
      if (stopping_) return;
      pending_ = false;
    }
    try {
      while (publish_once()) {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
      }
      backoff = opts_.min_backoff;
    } catch (const std::exception& e) {
      obs::warn("outbox publish failed",
                {{"role", opts_.producer}, {"error", e.what()}, {"retry_in_ms", backoff.count()}});
      metrics_
          .counter_family("shopd_outbox_publish_failures_total", "Failed attempts to publish outbox rows",
                          {"role"})
          .with({opts_.producer})
          .inc();
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
  const auto batch = outbox::next_batch(db_, opts_.producer, opts_.batch_size, now);
  if (batch.empty()) return false;
  const auto ids = publish_(batch);
  const auto accepted = std::min(ids.size(), batch.size());
  std::vector<outbox::sent_row> sent;
  sent.reserve(accepted);
  for (std::size_t i = 0; i < accepted; ++i) sent.push_back({.id = batch[i].id, .message_id = ids[i]});
  outbox::mark_sent(db_, sent, now_ms());
  metrics_
      .counter_family("shopd_outbox_published_total", "Outbox rows accepted by the relay or QStash", {"role"})
      .with({opts_.producer})
      .inc(static_cast<double>(accepted));
  if (accepted < batch.size()) {
    throw std::runtime_error("publisher accepted " + std::to_string(accepted) + " of " +
                             std::to_string(batch.size()) + " events");
  }
  return static_cast<int>(batch.size()) == opts_.batch_size;
}

}  // namespace shopd::bus
