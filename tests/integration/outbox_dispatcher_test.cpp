#include "shopd/bus/outbox_dispatcher.hpp"

#include "fresh_database.hpp"
#include "shopd/bus/dispatch.hpp"
#include "shopd/db/database.hpp"
#include "test_support.hpp"

#include <doctest/doctest.h>

#include <algorithm>
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

/// Every row accepted, with a message id made of its event id.
std::vector<shopd::bus::row_outcome> accept_all(std::span<const pending_event> events) {
  std::vector<shopd::bus::row_outcome> out;
  for (const auto& e : events) out.push_back({.message_id = "msg_" + e.event.event_id});
  return out;
}

/// Three rows, the middle one refused for good: it is set aside, the third goes on; requeued, it is
/// offered again. On `dialect`, for the outbox's SQL.
void set_aside_and_requeue(shopd::db::dialect dialect) {
  shopd::test::fresh_database fresh(dialect);
  shopd::obs::registry metrics;
  std::mutex mutex;
  std::vector<std::string> offered;  // event ids, in the order they were offered
  outbox_dispatcher dispatcher(
      fresh.db(), {.producer = "orders", .poll_interval = 20ms, .min_backoff = 10ms, .max_backoff = 20ms},
      [&](std::span<const pending_event> events, std::stop_token) {
        std::vector<shopd::bus::row_outcome> out;
        std::lock_guard lock(mutex);
        for (const auto& e : events) {
          offered.push_back(e.event.event_id);
          if (e.event.event_id == "ev-bad") {
            out.push_back({.error = "batch entry 1: destination is not a URL", .refused = true});
          } else {
            out.push_back({.message_id = "msg_" + e.event.event_id});
          }
        }
        return out;
      },
      metrics);
  const auto now = shopd::bus::now_ms() - 100;  // due already
  enqueue(fresh.db(), "orders", "ev-1", now);
  enqueue(fresh.db(), "orders", "ev-bad", now + 1);
  enqueue(fresh.db(), "orders", "ev-2", now + 2);
  dispatcher.start();
  CHECK(eventually([&] { return series(metrics, R"(shopd_outbox_published_total{role="orders"})") == 2; }));
  CHECK(eventually([&] { return series(metrics, R"(shopd_outbox_refused_events{role="orders"})") == 1; }));
  CHECK(series(metrics, R"(shopd_outbox_refused_total{role="orders"})") == 1);
  CHECK(series(metrics, R"(shopd_outbox_pending_events{role="orders"})") == 0);
  CHECK(series(metrics, R"(shopd_outbox_oldest_pending_age_seconds{role="orders"})") == 0);
  CHECK(series(metrics, R"(shopd_outbox_publish_failures_total{role="orders"})") == 0);

  // Kept with its error, and not offered again.
  auto refused = shopd::bus::outbox::list_refused(fresh.db(), "orders", 0, 10);
  REQUIRE(refused.size() == 1);
  CHECK(refused[0].event.event_id == "ev-bad");
  CHECK(refused[0].error == "batch entry 1: destination is not a URL");
  CHECK(refused[0].attempts == 1);
  CHECK(refused[0].refused_at_ms >= now);
  CHECK(shopd::bus::outbox::list_refused(fresh.db(), "email", 0, 10).empty());
  std::this_thread::sleep_for(100ms);  // five poll intervals
  {
    std::lock_guard lock(mutex);
    CHECK(offered == std::vector<std::string>{"ev-1", "ev-bad", "ev-2"});
  }

  // Requeued, it is offered again (and refused again: the relay has not changed its mind).
  CHECK(shopd::bus::outbox::requeue(fresh.db(), "email", {}, shopd::bus::now_ms()) == 0);
  CHECK(shopd::bus::outbox::requeue(fresh.db(), "orders", {refused[0].id + 1}, shopd::bus::now_ms()) == 0);
  CHECK(shopd::bus::outbox::requeue(fresh.db(), "orders", {refused[0].id}, shopd::bus::now_ms()) == 1);
  CHECK(eventually([&] { return series(metrics, R"(shopd_outbox_refused_total{role="orders"})") == 2; }));
  refused = shopd::bus::outbox::list_refused(fresh.db(), "", 0, 10);
  REQUIRE(refused.size() == 1);
  CHECK(refused[0].attempts == 2);
  dispatcher.stop();
  std::lock_guard lock(mutex);
  CHECK(offered == std::vector<std::string>{"ev-1", "ev-bad", "ev-2", "ev-bad"});
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
          accepted += static_cast<int>(events.size());
          return accept_all(events);
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
          std::lock_guard lock(mutex);
          batches.push_back(events.size());
          return accept_all(events);
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
          return accept_all(events);
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

  TEST_CASE("outbox dispatcher: a row refused for good is set aside, the rows after it go on") {
    for (const auto dialect : {shopd::db::dialect::sqlite, shopd::db::dialect::postgresql}) {
      CAPTURE(dialect);
      set_aside_and_requeue(dialect);
    }
  }

  TEST_CASE("outbox dispatcher: a batch refused whole is sent one row at a time; failures are retried") {
    shopd::test::fresh_database fresh(shopd::db::dialect::sqlite);
    shopd::obs::registry metrics;
    std::mutex mutex;
    std::vector<std::size_t> batches;
    std::atomic<int> unavailable = 2;  // the first two single-row offers of ev-3 meet a relay that is down
    outbox_dispatcher dispatcher(
        fresh.db(), {.producer = "orders", .poll_interval = 20ms, .min_backoff = 5ms, .max_backoff = 10ms},
        [&](std::span<const pending_event> events, std::stop_token) -> std::vector<shopd::bus::row_outcome> {
          {
            std::lock_guard lock(mutex);
            batches.push_back(events.size());
          }
          const bool holds_bad = std::any_of(events.begin(), events.end(),
                                             [](const auto& e) { return e.event.event_id == "ev-bad"; });
          if (events.size() > 1 && holds_bad) throw shopd::bus::batch_refused("400: invalid_batch");
          if (events.size() == 1 && events[0].event.event_id == "ev-3" && unavailable-- > 0)
            throw std::runtime_error("connection refused");
          if (holds_bad) return {{.error = "400: body too large", .refused = true}};
          return accept_all(events);
        },
        metrics);
    const auto now = shopd::bus::now_ms() - 100;  // due already
    enqueue(fresh.db(), "orders", "ev-1", now);
    enqueue(fresh.db(), "orders", "ev-bad", now + 1);
    enqueue(fresh.db(), "orders", "ev-3", now + 2);
    enqueue(fresh.db(), "orders", "ev-4", now + 3);
    dispatcher.start();
    CHECK(eventually([&] { return series(metrics, R"(shopd_outbox_published_total{role="orders"})") == 3; }));
    CHECK(series(metrics, R"(shopd_outbox_refused_total{role="orders"})") == 1);
    CHECK(series(metrics, R"(shopd_outbox_publish_failures_total{role="orders"})") == 2);
    const auto refused = shopd::bus::outbox::list_refused(fresh.db(), "orders", 0, 10);
    REQUIRE(refused.size() == 1);
    CHECK(refused[0].event.event_id == "ev-bad");
    CHECK(refused[0].error == "400: body too large");

    // After the refused batch of 4, rows go alone until 4 were answered (ev-3 twice not: a relay
    // that is down is not a refusal), then in batches again.
    enqueue(fresh.db(), "orders", "ev-5", now + 4);
    enqueue(fresh.db(), "orders", "ev-6", now + 5);
    dispatcher.notify();
    CHECK(eventually([&] { return series(metrics, R"(shopd_outbox_published_total{role="orders"})") == 5; }));
    dispatcher.stop();
    std::lock_guard lock(mutex);
    CHECK(batches == std::vector<std::size_t>{4, 1, 1, 1, 1, 1, 1, 2});
  }
}
