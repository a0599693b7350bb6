#include "shopd/bus/outbox_dispatcher.hpp"

#include "fresh_database.hpp"
#include "shopd/bus/dispatch.hpp"
#include "shopd/db/database.hpp"
#include "test_support.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using shopd::bus::outbox_dispatcher;
using shopd::bus::pending_event;
using shopd::test::eventually;

namespace {

/// The value of one rendered series (`name{labels}` exactly as rendered), or -1 when absent.
double series(const shopd::obs::registry& r, const std::string& name) {
  return shopd::test::sample(r, name).value_or(-1);
}

void enqueue(shopd::db::database& db, const std::string& producer, const std::string& id,
             std::int64_t created_ms, std::string body = "{}") {
  db.in_transaction([&](soci::session& tx) {
    shopd::bus::outbox::enqueue(tx, producer,
                                {.event_id = id,
                                 .event_type = "analytics.audit",
                                 .destination = "http://127.0.0.1:9/api/webhook",
                                 .body = std::move(body)},
                                created_ms);
  });
}

}  // namespace

TEST_SUITE("bus.outbox_dispatcher") {
  TEST_CASE("outbox dispatcher: backlog gauges follow a relay that is down, then back") {
    shopd::test::fresh_database fresh(shopd::db::dialect::sqlite);
    shopd::obs::registry metrics;
    std::atomic<bool> relay_up = false;
    std::atomic<int> accepted = 0;
    outbox_dispatcher dispatcher(
        fresh.db(), {.producer = "orders", .poll_interval = 50ms, .min_backoff = 10ms, .max_backoff = 20ms},
        [&](std::span<const pending_event> events, std::stop_token) {
          if (!relay_up) throw std::runtime_error("connection refused");
          std::vector<std::string> ids;
          for (const auto& e : events) ids.push_back("msg_" + e.event.event_id);
          accepted += static_cast<int>(events.size());
          return ids;
        },
        metrics);

    CHECK(series(metrics, R"(shopd_outbox_pending_events{role="orders"})") == 0);
    CHECK(series(metrics, R"(shopd_outbox_oldest_pending_age_seconds{role="orders"})") == 0);
    CHECK(series(metrics, R"(shopd_outbox_published_total{role="orders"})") == 0);

    // Rows written a minute ago (as after a crash), and one of another producer that is not ours.
    const auto minute_ago = shopd::bus::now_ms() - 60'000;
    enqueue(fresh.db(), "orders", "ev-1", minute_ago);
    enqueue(fresh.db(), "orders", "ev-2", minute_ago + 1'000);
    enqueue(fresh.db(), "email", "ev-3", minute_ago - 1'000);
    dispatcher.start();

    CHECK(eventually(
        [&] { return series(metrics, R"(shopd_outbox_publish_failures_total{role="orders"})") >= 1; }));
    CHECK(eventually([&] { return series(metrics, R"(shopd_outbox_pending_events{role="orders"})") == 2; }));
    // Read when scraped, from the oldest row of this producer: at least the minute it has waited.
    CHECK(series(metrics, R"(shopd_outbox_oldest_pending_age_seconds{role="orders"})") >= 60);
    CHECK(series(metrics, R"(shopd_outbox_published_total{role="orders"})") == 0);

    relay_up = true;
    dispatcher.notify();
    CHECK(eventually([&] { return series(metrics, R"(shopd_outbox_pending_events{role="orders"})") == 0; }));
    CHECK(series(metrics, R"(shopd_outbox_oldest_pending_age_seconds{role="orders"})") == 0);
    CHECK(series(metrics, R"(shopd_outbox_published_total{role="orders"})") == 2);
    CHECK(accepted == 2);

    dispatcher.stop();
    // Once stopped, the dispatcher's collector is gone: rendering touches nothing of it.
    CHECK(series(metrics, R"(shopd_outbox_pending_events{role="orders"})") == 0);
  }

  TEST_CASE("outbox dispatcher: a batch ends at max_batch_bytes, and holds one row at least") {
    shopd::test::fresh_database fresh(shopd::db::dialect::sqlite);
    shopd::obs::registry metrics;
    std::mutex mutex;
    std::vector<std::size_t> batches;
    outbox_dispatcher dispatcher(
        fresh.db(), {.producer = "orders", .max_batch_bytes = 2'500, .poll_interval = 20ms},
        [&](std::span<const pending_event> events, std::stop_token) {
          std::vector<std::string> ids;
          for (const auto& e : events) ids.push_back("msg_" + e.event.event_id);
          std::lock_guard lock(mutex);
          batches.push_back(events.size());
          return ids;
        },
        metrics);
    // Bodies of 1,000 bytes (headers "{}"): two fit in 2,500 bytes, a third does not. The last row's
    // body is larger than the budget alone: it goes as a batch of its own.
    const auto now = shopd::bus::now_ms();
    for (int i = 0; i < 5; ++i)
      enqueue(fresh.db(), "orders", "ev-" + std::to_string(i), now + i,
              std::string(i == 4 ? 3'000 : 1'000, 'x'));
    dispatcher.start();
    CHECK(eventually([&] { return series(metrics, R"(shopd_outbox_published_total{role="orders"})") == 5; }));
    dispatcher.stop();
    std::lock_guard lock(mutex);
    CHECK(batches == std::vector<std::size_t>{2, 2, 1});
  }

  TEST_CASE("outbox dispatcher: a backlog drained in full batches is counted while it drains") {
    shopd::test::fresh_database fresh(shopd::db::dialect::sqlite);
    shopd::obs::registry metrics;
    std::atomic<int> calls = 0;
    std::atomic<bool> gate_open = false;
    outbox_dispatcher dispatcher(
        fresh.db(), {.producer = "orders", .batch_size = 1, .poll_interval = 20ms},
        [&](std::span<const pending_event> events, std::stop_token stop) {
          // Each batch outlasts poll_interval; the third waits at the gate, the drain unfinished.
          std::this_thread::sleep_for(30ms);
          if (++calls == 3) {
            while (!gate_open && !stop.stop_requested()) std::this_thread::sleep_for(5ms);
          }
          std::vector<std::string> ids;
          for (const auto& e : events) ids.push_back("msg_" + e.event.event_id);
          return ids;
        },
        metrics);
    const auto now = shopd::bus::now_ms();
    for (int i = 0; i < 5; ++i) enqueue(fresh.db(), "orders", "ev-" + std::to_string(i), now + i);
    dispatcher.start();

    // While the third batch waits, the backlog was counted after the second: 3 rows left.
    REQUIRE(eventually([&] { return calls == 3; }));
    CHECK(series(metrics, R"(shopd_outbox_pending_events{role="orders"})") == 3);
    gate_open = true;
    CHECK(eventually([&] { return series(metrics, R"(shopd_outbox_pending_events{role="orders"})") == 0; }));
    CHECK(series(metrics, R"(shopd_outbox_published_total{role="orders"})") == 5);
    dispatcher.stop();
  }
}
