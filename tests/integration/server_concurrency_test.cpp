#include "shopd/http/server.hpp"

#include "test_support.hpp"

#include <doctest/doctest.h>

#include <array>
#include <memory>
#include <string>
#include <thread>
#include <variant>
#include <vector>

// The server's shared state used from every thread at once: connections on each I/O thread,
// handlers on the worker pool, deferring routes crossing from one to the other, the metrics
// registry rendered while requests are counted into it, connections admitted and unregistered
// throughout, and a stop while clients are connected to every I/O thread. In every build this
// checks that each request got its own answer and was counted once; under `make tsan` it is also
// where a data race or a lock-order inversion in the server shows.

using shopd::http::execution;
using shopd::http::field;
using shopd::http::request_context;
using shopd::http::response;
using shopd::http::router;
using shopd::http::status;
using shopd::http::verb;
using shopd::test::http_client;
using shopd::test::test_server;
using shopd::test::text_response;

namespace {

std::shared_ptr<router> load_routes(shopd::obs::registry& metrics) {
  auto r = std::make_shared<router>();
  r->add(
      verb::get, "/io/{n}", [](request_context& ctx) { return text_response(std::string(ctx.param("n"))); },
      execution::io);
  r->add(
      verb::get, "/blocking/{n}",
      [](request_context& ctx) { return text_response(std::string(ctx.param("n"))); }, execution::blocking);
  // The first stage reads the request on the I/O thread, the second on a worker.
  r->add_deferring(
      verb::get, "/deferred/{n}", [](request_context& ctx) -> std::variant<response, shopd::http::deferred> {
        std::string first(ctx.param("n"));
        return shopd::http::deferred(
            [&ctx, first]() -> response { return text_response(first + "/" + std::string(ctx.param("n"))); });
      });
  r->add(
      verb::get, "/metrics", [&metrics](request_context&) { return text_response(metrics.render()); },
      execution::blocking);
  return r;
}

}  // namespace

TEST_SUITE("integration/http_server") {
  TEST_CASE("server: concurrent clients on every I/O thread and the worker pool, then a stop") {
    auto opts = shopd::test::test_options();
    opts.io_threads = 3;
    opts.worker_threads = 3;
    test_server srv(opts);
    const auto port = srv.listen("api", load_routes(srv.metrics()));
    srv.start();

    constexpr int clients = 6;
    constexpr int per_client = 30;  // a multiple of the three kinds of route
    constexpr std::array<std::string_view, 3> kinds{"/io/", "/blocking/", "/deferred/"};
    // One list of failures per thread, checked once they are joined.
    std::vector<std::vector<std::string>> failures(clients + 1);
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        auto& failed = failures[static_cast<std::size_t>(c)];
        try {
          http_client client(port);  // one kept-alive connection, pinned to one I/O thread
          for (int i = 0; i < per_client; ++i) {
            const auto n = std::to_string(c * 1000 + i);
            const auto kind = kinds[static_cast<std::size_t>(i) % kinds.size()];
            const auto target = std::string(kind) + n;
            const auto expected = kind == "/deferred/" ? n + "/" + n : n;
            const auto res = client.request(verb::get, target);
            if (res.result() != status::ok || res.body() != expected) {
              failed.push_back(target + " answered " + std::to_string(res.result_int()) + " " + res.body());
            }
          }
        } catch (const std::exception& e) {
          failed.push_back(e.what());
        }
      });
    }
    // Meanwhile a new connection per request (accepts and unregistrations between the sessions),
    // each rendering the registry the other requests are counted into.
    threads.emplace_back([&] {
      auto& failed = failures[clients];
      try {
        for (int i = 0; i < per_client; ++i) {
          http_client once(port);
          const auto res = once.request(verb::get, "/metrics");
          if (res.result() != status::ok ||
              res.body().find("shopd_http_requests_total") == std::string::npos) {
            failed.push_back("/metrics answered " + std::to_string(res.result_int()));
          }
        }
      } catch (const std::exception& e) {
        failed.push_back(e.what());
      }
    });
    for (auto& t : threads) t.join();
    for (const auto& failed : failures) {
      for (const auto& what : failed) FAIL_CHECK(what);
    }

    // Counted once each: a request is recorded before its response is written.
    auto& requests = srv.metrics().counter_family("shopd_http_requests_total", "",
                                                  {"listener", "method", "route", "status"});
    for (const auto route : {"/io/{n}", "/blocking/{n}", "/deferred/{n}"}) {
      CAPTURE(route);
      CHECK(requests.with({"api", "GET", route, "200"}).value() == clients * per_client / 3);
    }
    CHECK(requests.with({"api", "GET", "/metrics", "200"}).value() == per_client);

    // Idle connections on every I/O thread when the stop comes: each is closed, none outlives it.
    std::vector<std::unique_ptr<http_client>> open;
    for (int i = 0; i < 2 * static_cast<int>(opts.io_threads); ++i) {
      open.push_back(std::make_unique<http_client>(port));
      CHECK(open.back()->request(verb::get, "/io/" + std::to_string(i)).result() == status::ok);
    }
    std::thread stopper([&] { srv.server().stop(); });
    for (auto& c : open) CHECK(c->closed_by_server());
    stopper.join();
    auto& connections = srv.metrics().gauge_family("shopd_http_connections_open", "", {"listener"});
    CHECK(connections.with({"api"}).value() == 0);
    auto& in_flight = srv.metrics().gauge_family("shopd_http_requests_in_flight", "", {"listener"});
    CHECK(in_flight.with({"api"}).value() == 0);
  }
}
