#include "shopd/bus/webhook.hpp"

#include "fresh_database.hpp"
#include "shopd/bus/dispatch.hpp"
#include "shopd/bus/envelope.hpp"
#include "shopd/bus/events.hpp"
#include "shopd/bus/signature.hpp"
#include "shopd/config/config.hpp"
#include "shopd/http/router.hpp"
#include "shopd/http/server.hpp"
#include "test_support.hpp"

#include <doctest/doctest.h>
#include <soci/soci.h>

#include <boost/asio/thread_pool.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

namespace {

namespace bus = shopd::bus;
namespace http = shopd::http;
namespace json = boost::json;
using shopd::test::fresh_database;
using shopd::test::http_client;
using shopd::test::test_server;

constexpr std::string_view current_key = "sig_webhook_test_current";
constexpr std::string_view next_key = "sig_webhook_test_next";
constexpr std::string_view webhook_url = "http://127.0.0.1:3001/api/webhook";

shopd::config::settings test_settings() {
  auto s = shopd::config::load({});
  s.qstash_current_signing_key = std::string(current_key);
  s.qstash_next_signing_key = std::string(next_key);
  return s;
}

/// A role's webhook on a real server with ONE worker thread, and a blocking route that holds that
/// worker until released: what arrives meanwhile shows whether it needed a worker.
struct webhook_fixture {
  webhook_fixture()
      : settings(test_settings()), database(shopd::db::dialect::sqlite), destinations(settings), srv([] {
          auto o = shopd::test::test_options();
          o.worker_threads = 1;
          return o;
        }()) {
    auto& server = srv.server();
    events.on("test.blocking", [&server, this](bus::delivery&) -> bus::outcome {
      blocking_ran_on_worker = server.workers().get_executor().running_in_this_thread();
      return bus::processed{};
    });
    events.on(
        "test.inline",
        [&server, this](bus::delivery&) -> bus::outcome {
          inline_ran_on_io = server.on_io_thread();
          return bus::processed{};
        },
        http::execution::io);
    hook = std::make_unique<bus::webhook>(
        bus::webhook_config{.role = "orders",
                            .keys = {settings.qstash_current_signing_key, settings.qstash_next_signing_key},
                            .expected_url = std::nullopt},
        database.db(), destinations, events, srv.metrics(), [] {});
    auto routes = std::make_shared<http::router>();
    hook->add_route(*routes);
    routes->add(
        http::verb::post, "/hold",
        [this](http::request_context&) {
          held.set_value();  // the only worker is taken
          release_future.wait();
          return http::json_response(http::status::ok, json::object{{"held", true}});
        },
        http::execution::blocking);
    srv.listen("orders", routes);
    srv.start();
    client = std::make_unique<http_client>(srv.port());
  }

  ~webhook_fixture() { release(); }

  void release() {
    if (!released) {
      released = true;
      release_promise.set_value();
    }
  }

  http::response deliver(const std::string& type, bool forged = false) {
    const auto body =
        bus::serialize(bus::make_envelope(type, "test", json::object{{"n", 1}}, "corr-webhook"));
    auto token = bus::sign(current_key, webhook_url, body, std::chrono::system_clock::now());
    if (forged) token.back() = token.back() == 'A' ? 'B' : 'A';
    return client->request(http::verb::post, "/api/webhook", body, {{"Upstash-Signature", token}});
  }

  shopd::config::settings settings;
  fresh_database database;
  bus::destinations destinations;
  bus::event_router events;
  test_server srv;
  std::unique_ptr<bus::webhook> hook;
  std::unique_ptr<http_client> client;

  std::promise<void> held;
  std::promise<void> release_promise;
  std::shared_future<void> release_future = release_promise.get_future().share();
  bool released = false;
  std::atomic<bool> blocking_ran_on_worker{false};
  std::atomic<bool> inline_ran_on_io{false};
};

}  // namespace

TEST_SUITE("integration/webhook") {
  TEST_CASE("webhook: forged deliveries are refused on the I/O thread while every worker is busy") {
    webhook_fixture f;
    // Occupy the only worker.
    auto holder = std::async(std::launch::async, [&] {
      http_client other(f.srv.port());
      return other.request(http::verb::post, "/hold").result();
    });
    REQUIRE(f.held.get_future().wait_for(std::chrono::seconds(10)) == std::future_status::ready);

    // Refused without a worker: answered now, not after the release.
    for (int i = 0; i < 3; ++i) {
      const auto res = f.deliver("test.blocking", true);
      CHECK(res.result() == http::status::unauthorized);
    }
    // A handler registered to run on the I/O thread needs no worker either.
    CHECK(f.deliver("test.inline").result() == http::status::ok);
    CHECK(f.inline_ran_on_io.load());

    f.release();
    CHECK(holder.get() == http::status::ok);
    // A blocking (database) handler runs on the worker pool.
    CHECK(f.deliver("test.blocking").result() == http::status::ok);
    CHECK(f.blocking_ran_on_worker.load());
  }

  TEST_CASE("webhook: a refused envelope is audited from the worker pool") {
    webhook_fixture f;
    const auto res = f.deliver("test.unknown");
    CHECK(res.result_int() == 489);
    CHECK(res["Upstash-NonRetryable-Error"] == "true");
    int audits = 0;
    f.database.db().with_session([&](soci::session& s) {
      s << "SELECT COUNT(*) FROM outbox WHERE event_type = 'analytics.audit'", soci::into(audits);
    });
    CHECK(audits == 1);
  }
}
