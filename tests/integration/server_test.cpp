// Ahead of http/message.hpp: GCC 12's -Wshadow takes the enumerator client_stage::request for a
// shadow of the type alias http::request when the alias is declared first.
#include "shopd/http/client.hpp"

#include "shopd/http/server.hpp"

#include "shopd/config/config.hpp"
#include "test_support.hpp"

#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>

#include <pthread.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <variant>

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

/// Where the handler ran, as seen from inside it.
std::string where(shopd::http::server& srv) {
  if (srv.workers().get_executor().running_in_this_thread()) return "worker";
  if (srv.on_io_thread()) return "io";
  return "elsewhere";
}

/// The routes most tests use. `srv` is the server they will run on (for where()).
std::shared_ptr<router> api_routes(shopd::http::server& srv) {
  auto r = std::make_shared<router>();
  r->add(
      verb::get, "/hello", [](request_context&) { return text_response("hello world"); }, execution::io);
  r->add(
      verb::get, "/orders/{id}",
      [](request_context& ctx) {
        return shopd::http::json_response(status::ok, R"({"id":")" + std::string(ctx.param("id")) + R"("})");
      },
      execution::blocking);
  r->add(
      verb::post, "/echo", [](request_context& ctx) { return text_response(ctx.req.body()); }, execution::io);
  r->add(
      verb::get, "/bye",
      [](request_context&) {
        auto res = text_response("bye");
        res.set(field::connection, "close");
        return res;
      },
      execution::io);
  r->add(
      verb::get, "/where/io", [&srv](request_context&) { return text_response(where(srv)); }, execution::io);
  r->add(
      verb::get, "/where/blocking", [&srv](request_context&) { return text_response(where(srv)); },
      execution::blocking);
  r->add(
      verb::get, "/http-error",
      [](request_context&) -> response {
        throw shopd::http::http_error(status::conflict, "already_exists", "order already exists",
                                      "checkoutId")
            .with_header("X-Reason", "duplicate");
      },
      execution::blocking);
  r->add(
      verb::get, "/boom",
      [](request_context&) -> response { throw std::runtime_error("secret database password in a message"); },
      execution::blocking);
  r->add(
      verb::get, "/correlate",
      [](request_context& ctx) {
        if (ctx.correlation_id.empty()) ctx.correlation_id = "chk_from_handler";
        return text_response(ctx.correlation_id);
      },
      execution::io);
  return r;
}

/// A server with api_routes() listening as "api" and started.
struct api_fixture {
  explicit api_fixture(shopd::http::server_options opts = shopd::test::test_options(),
                       shopd::http::cors_policy cors = {})
      : srv(std::move(opts)) {
    srv.listen("api", api_routes(srv.server()), std::move(cors));
    srv.start();
  }
  test_server srv;
};

std::string error_code_of(const response& res) {
  return std::string(boost::json::parse(res.body()).at("code").as_string());
}

}  // namespace

TEST_SUITE("integration/http_server") {
  TEST_CASE("server: its I/O threads and workers carry names (top -H, perf, gdb)") {
    const auto names = [] {
      std::multiset<std::string> out;
      for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
        std::ifstream comm(task.path() / "comm");
        std::string name;
        if (std::getline(comm, name)) out.insert(name);
      }
      return out;
    };
    auto opts = shopd::test::test_options();
    opts.io_threads = 2;
    opts.worker_threads = 3;
    const auto before = names();
    test_server srv(std::make_shared<router>(), opts);
    const auto during = names();
    for (const auto* name : {"shopd-io-0", "shopd-io-1", "shopd-work-0", "shopd-work-1", "shopd-work-2"}) {
      CAPTURE(name);
      CHECK(during.count(name) == before.count(name) + 1);  // one each
    }
    CHECK(during.count("shopd-work-3") == before.count("shopd-work-3"));
  }

  TEST_CASE("server: keep-alive: several requests on one connection") {
    api_fixture f;
    http_client client(f.srv.port());
    for (int i = 0; i < 3; ++i) {
      const auto res = client.request(verb::get, "/hello");
      CHECK(res.result() == status::ok);
      CHECK(res.body() == "hello world");
      CHECK(res.keep_alive());
      CHECK(res[field::server] == "shopd");
      CHECK(res[field::content_length] == "11");
    }
    const auto blocking = client.request(verb::get, "/orders/ord%201");
    CHECK(blocking.result() == status::ok);
    CHECK(blocking[field::content_type] == "application/json");
    CHECK(blocking.body() == R"({"id":"ord 1"})");
  }

  TEST_CASE("server: a handler can ask for the connection to be closed") {
    api_fixture f;
    http_client client(f.srv.port());
    const auto res = client.request(verb::get, "/bye");
    CHECK(res.body() == "bye");
    CHECK_FALSE(res.keep_alive());
    CHECK(client.closed_by_server());
  }

  TEST_CASE("server: HTTP/1.0 without keep-alive is answered and closed") {
    api_fixture f;
    http_client client(f.srv.port());
    client.send_raw("GET /hello HTTP/1.0\r\n\r\n");
    const auto res = client.read();
    CHECK(res.result() == status::ok);
    CHECK(res.version() == 10);
    CHECK_FALSE(res.keep_alive());
    CHECK(client.closed_by_server());
  }

  TEST_CASE("server: pipelined requests are answered in order") {
    api_fixture f;
    http_client client(f.srv.port());
    // A blocking handler first: its answer must still come before the quicker ones behind it.
    client.send_raw(
        "GET /orders/1 HTTP/1.1\r\nHost: t\r\n\r\n"
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\ntwo"
        "GET /orders/3 HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(client.read().body() == R"({"id":"1"})");
    CHECK(client.read().body() == "two");
    CHECK(client.read().body() == R"({"id":"3"})");
    CHECK(client.request(verb::get, "/hello").body() == "hello world");
  }

  TEST_CASE("server: 404 and 405 in the JSON error shape, the connection stays usable") {
    api_fixture f;
    http_client client(f.srv.port());
    const auto missing = client.request(verb::get, "/missing?x=1");
    CHECK(missing.result() == status::not_found);
    CHECK(missing[field::content_type] == "application/json");
    CHECK(missing.body() == R"({"error":"no such resource","code":"not_found"})");
    CHECK(missing.keep_alive());

    const auto wrong = client.request(verb::delete_, "/hello");
    CHECK(wrong.result() == status::method_not_allowed);
    CHECK(wrong[field::allow] == "GET, HEAD");
    CHECK(wrong.body() == R"({"error":"method not allowed for this resource","code":"method_not_allowed"})");

    const auto post_only = client.request(verb::get, "/echo");
    CHECK(post_only.result() == status::method_not_allowed);
    CHECK(post_only[field::allow] == "POST");

    CHECK(client.request(verb::get, "/hello").result() == status::ok);
  }

  TEST_CASE("server: 413 over the body limit, then close") {
    auto opts = shopd::test::test_options();
    opts.body_limit = 1024;
    api_fixture f(opts);

    SUBCASE("declared by Content-Length") {
      http_client client(f.srv.port());
      const auto res = client.request(verb::post, "/echo", std::string(2048, 'x'));
      CHECK(res.result() == status::payload_too_large);
      CHECK(error_code_of(res) == "payload_too_large");
      CHECK_FALSE(res.keep_alive());
      CHECK(client.closed_by_server());
    }
    SUBCASE("discovered while reading a chunked body") {
      http_client client(f.srv.port());
      client.send_raw("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
      for (int i = 0; i < 3; ++i) client.send_raw("200\r\n" + std::string(512, 'y') + "\r\n");
      const auto res = client.read();
      CHECK(res.result() == status::payload_too_large);
      CHECK(client.closed_by_server());
    }
    SUBCASE("exactly at the limit is fine") {
      http_client client(f.srv.port());
      const auto res = client.request(verb::post, "/echo", std::string(1024, 'x'));
      CHECK(res.result() == status::ok);
      CHECK(res.body().size() == 1024);
    }
    SUBCASE("Expect: 100-continue gets 100 before the body is sent") {
      http_client client(f.srv.port());
      client.send_raw("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
      CHECK(client.read().result() == status::continue_);
      client.send_raw("hello");
      const auto res = client.read();
      CHECK(res.result() == status::ok);
      CHECK(res.body() == "hello");
    }
  }

  TEST_CASE("server: a route with a body limit of its own") {
    auto opts = shopd::test::test_options();
    opts.body_limit = 1024;
    auto routes = std::make_shared<router>();
    const auto echo = [](request_context& ctx) { return text_response(ctx.req.body()); };
    routes->add(verb::post, "/echo", echo, execution::io);
    routes->add(verb::post, "/upload/{id}", echo, execution::io);
    routes->add(verb::post, "/tiny", echo, execution::io);
    routes->limit_body(verb::post, "/upload/{id}", 4096);
    routes->limit_body(verb::post, "/tiny", 16);
    test_server f(routes, opts);

    SUBCASE("it accepts bodies up to its limit, past the server's") {
      http_client client(f.port());
      const auto res = client.request(verb::post, "/upload/1?x=y", std::string(4096, 'x'));
      CHECK(res.result() == status::ok);
      CHECK(res.body().size() == 4096);
      // Chunked too, on the same connection.
      client.send_raw("POST /upload/2 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
      for (int i = 0; i < 3; ++i) client.send_raw("400\r\n" + std::string(1024, 'y') + "\r\n");
      client.send_raw("0\r\n\r\n");
      const auto chunked = client.read();
      CHECK(chunked.result() == status::ok);
      CHECK(chunked.body().size() == 3072);
    }
    SUBCASE("and refuses larger ones, declared or discovered") {
      http_client declared(f.port());
      CHECK(declared.request(verb::post, "/upload/1", std::string(4097, 'x')).result() ==
            status::payload_too_large);
      CHECK(declared.closed_by_server());
      http_client chunked(f.port());
      chunked.send_raw("POST /upload/2 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
      for (int i = 0; i < 5; ++i) chunked.send_raw("400\r\n" + std::string(1024, 'y') + "\r\n");
      CHECK(chunked.read().result() == status::payload_too_large);
      CHECK(chunked.closed_by_server());
    }
    SUBCASE("a limit below the server's applies too") {
      http_client client(f.port());
      CHECK(client.request(verb::post, "/tiny", std::string(16, 'x')).result() == status::ok);
      CHECK(client.request(verb::post, "/tiny", std::string(17, 'x')).result() == status::payload_too_large);
    }
    SUBCASE("every other route keeps the server's limit") {
      http_client client(f.port());
      CHECK(client.request(verb::post, "/echo", std::string(1024, 'x')).result() == status::ok);
      CHECK(client.request(verb::post, "/echo", std::string(1025, 'x')).result() ==
            status::payload_too_large);
      http_client unknown(f.port());
      CHECK(unknown.request(verb::post, "/nowhere", std::string(2048, 'x')).result() ==
            status::payload_too_large);
      http_client chunked(f.port());
      chunked.send_raw("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
      for (int i = 0; i < 3; ++i) chunked.send_raw("200\r\n" + std::string(512, 'y') + "\r\n");
      CHECK(chunked.read().result() == status::payload_too_large);
    }
  }

  TEST_CASE("server: 431 for a header over 8 KiB, then close") {
    api_fixture f;
    http_client client(f.srv.port());
    const auto res = client.request(verb::get, "/hello", {}, {{"X-Big", std::string(10'000, 'a')}});
    CHECK(res.result() == status::request_header_fields_too_large);
    CHECK(error_code_of(res) == "request_header_fields_too_large");
    CHECK(client.closed_by_server());
  }

  TEST_CASE("server: 408 when the header or the body does not arrive in time, then close") {
    auto opts = shopd::test::test_options();
    opts.header_timeout = std::chrono::milliseconds{200};
    opts.read_timeout = std::chrono::milliseconds{200};
    api_fixture f(opts);

    SUBCASE("half a request line") {
      http_client client(f.srv.port());
      client.send_raw("GET /hel");
      const auto res = client.read();
      CHECK(res.result() == status::request_timeout);
      CHECK(error_code_of(res) == "request_timeout");
      CHECK_FALSE(res.keep_alive());
      CHECK(client.closed_by_server());
    }
    SUBCASE("a header that never ends") {
      http_client client(f.srv.port());
      client.send_raw("GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ");
      CHECK(client.read().result() == status::request_timeout);
      CHECK(client.closed_by_server());
    }
    SUBCASE("a stalled body") {
      http_client client(f.srv.port());
      client.send_raw("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly part of it");
      const auto res = client.read();
      CHECK(res.result() == status::request_timeout);
      CHECK(client.closed_by_server());
    }
  }

  TEST_CASE("server: a new connection's header timeout runs from the accept, not from its first byte") {
    auto opts = shopd::test::test_options();
    opts.header_timeout = std::chrono::milliseconds{1000};
    api_fixture f(opts);
    http_client client(f.srv.port());
    // The first byte late in the timeout, the last one past it: a second timeout from the first
    // byte would let this slowloris through.
    std::this_thread::sleep_for(std::chrono::milliseconds{600});
    client.send_raw("GET /hello HTTP/1.1\r\n");
    std::this_thread::sleep_for(std::chrono::milliseconds{900});
    try {
      client.send_raw("Host: t\r\n\r\n");
    } catch (const std::system_error&) {
      // Already cut: what it answered is still to be read.
    }
    const auto res = client.try_read();
    REQUIRE(res);
    CHECK(res->result() == status::request_timeout);
  }

  TEST_CASE("server: idle connections are closed without a response") {
    auto opts = shopd::test::test_options();
    opts.idle_timeout = std::chrono::milliseconds{200};
    opts.header_timeout = std::chrono::milliseconds{200};
    api_fixture f(opts);

    SUBCASE("after a request") {
      http_client client(f.srv.port());
      CHECK(client.request(verb::get, "/hello").result() == status::ok);
      CHECK(client.closed_by_server());
    }
    SUBCASE("a connection that never sends anything") {
      http_client client(f.srv.port());
      CHECK(client.closed_by_server());
    }
  }

  TEST_CASE("server: 400 for a malformed request, then close") {
    api_fixture f;
    SUBCASE("garbage") {
      http_client client(f.srv.port());
      client.send_raw("THIS IS NOT HTTP\r\n\r\n");
      const auto res = client.read();
      CHECK(res.result() == status::bad_request);
      CHECK(error_code_of(res) == "bad_request");
      CHECK(client.closed_by_server());
    }
    SUBCASE("a bad header line") {
      http_client client(f.srv.port());
      client.send_raw("GET /hello HTTP/1.1\r\nno colon here\r\n\r\n");
      CHECK(client.read().result() == status::bad_request);
      CHECK(client.closed_by_server());
    }
  }

  TEST_CASE("server: handler errors") {
    api_fixture f;
    http_client client(f.srv.port());
    SUBCASE("http_error becomes its response, headers included") {
      const auto res = client.request(verb::get, "/http-error");
      CHECK(res.result() == status::conflict);
      CHECK(res[field::content_type] == "application/json");
      CHECK(res["X-Reason"] == "duplicate");
      CHECK(res.body() == R"({"error":"order already exists","code":"already_exists","field":"checkoutId"})");
      CHECK(res.keep_alive());
    }
    SUBCASE("any other exception is a 500 that does not leak its text") {
      const auto res = client.request(verb::get, "/boom");
      CHECK(res.result() == status::internal_server_error);
      CHECK(res.body() == R"({"error":"internal server error","code":"internal_error"})");
      CHECK(res.body().find("secret") == std::string::npos);
      CHECK(client.request(verb::get, "/hello").result() == status::ok);
    }
  }

  TEST_CASE("server: blocking handlers run on the worker pool, io handlers on an I/O thread") {
    api_fixture f;
    http_client client(f.srv.port());
    CHECK(client.request(verb::get, "/where/blocking").body() == "worker");
    CHECK(client.request(verb::get, "/where/io").body() == "io");
  }

  TEST_CASE("server: a deferring route starts on an I/O thread and finishes where it says") {
    test_server srv;
    auto routes = std::make_shared<router>();
    auto& server = srv.server();
    routes->add_deferring(verb::get, "/stage/{mode}",
                          [&server](request_context& ctx) -> std::variant<response, shopd::http::deferred> {
                            const std::string first = where(server);
                            const auto mode = ctx.param("mode");
                            if (mode == "now") return text_response(first);
                            if (mode == "throw-now") throw std::runtime_error("first stage failed");
                            return shopd::http::deferred([&server, &ctx, first]() -> response {
                              if (ctx.param("mode") == "throw-later") {
                                throw shopd::http::http_error(status::conflict, "conflict", "second stage");
                              }
                              return text_response(first + "," + where(server));
                            });
                          });
    srv.listen("api", routes);
    srv.start();
    http_client client(srv.port());
    CHECK(client.request(verb::get, "/stage/now").body() == "io");
    CHECK(client.request(verb::get, "/stage/later").body() == "io,worker");
    const auto failed_first = client.request(verb::get, "/stage/throw-now");
    CHECK(failed_first.result() == status::internal_server_error);
    CHECK(error_code_of(failed_first) == "internal_error");
    const auto failed_later = client.request(verb::get, "/stage/throw-later");
    CHECK(failed_later.result() == status::conflict);
    CHECK(error_code_of(failed_later) == "conflict");
    CHECK(client.request(verb::get, "/stage/later").body() == "io,worker");

    // run_inline (for tests and tools) does both stages on the calling thread.
    shopd::http::request req{verb::get, "/stage/later", 11};
    const auto found = routes->lookup(verb::get, "/stage/later");
    const auto& match = std::get<router::found>(found);
    request_context ctx{req, "/stage/later", {}, match.params, {}};
    CHECK(shopd::http::run_inline(*match.r, ctx).body() == "elsewhere,elsewhere");
  }

  TEST_CASE("server: a connection stays on one I/O thread; connections are spread over them") {
    test_server srv;  // two I/O threads
    auto routes = std::make_shared<router>();
    routes->add(
        verb::get, "/thread",
        [](request_context&) {
          std::ostringstream id;
          id << std::this_thread::get_id();
          return text_response(id.str());
        },
        execution::io);
    srv.listen("api", routes);
    srv.start();
    http_client first(srv.port());
    http_client second(srv.port());
    const auto a = first.request(verb::get, "/thread").body();
    const auto b = second.request(verb::get, "/thread").body();
    CHECK(a != b);
    for (int i = 0; i < 5; ++i) {
      CHECK(first.request(verb::get, "/thread").body() == a);
      CHECK(second.request(verb::get, "/thread").body() == b);
    }
  }

  TEST_CASE("server: HEAD is answered by the GET route without a body") {
    api_fixture f;
    http_client client(f.srv.port());
    const auto head = client.request(verb::head, "/hello");
    CHECK(head.result() == status::ok);
    CHECK(head[field::content_length] == "11");
    CHECK(head.body().empty());
    const auto blocking = client.request(verb::head, "/orders/42");
    CHECK(blocking.result() == status::ok);
    CHECK(blocking[field::content_length] == "11");
    // Had a body been sent, it would now be read as the next response.
    const auto next = client.request(verb::get, "/hello");
    CHECK(next.result() == status::ok);
    CHECK(next.body() == "hello world");
  }

  TEST_CASE("server: CORS: preflight and actual responses") {
    api_fixture f(shopd::test::test_options(),
                  shopd::http::cors_policy::from_config("https://shop.example", "Content-Type", false, 600));
    http_client client(f.srv.port());

    const auto ok =
        client.request(verb::options, "/echo", {},
                       {{"Origin", "https://shop.example"}, {"Access-Control-Request-Method", "POST"}});
    CHECK(ok.result() == status::no_content);
    CHECK(ok[field::access_control_allow_origin] == "https://shop.example");
    CHECK(ok[field::access_control_allow_methods] == "POST");
    CHECK(ok[field::access_control_allow_headers] == "Content-Type");
    CHECK(ok[field::access_control_max_age] == "600");

    const auto foreign =
        client.request(verb::options, "/echo", {},
                       {{"Origin", "https://evil.example"}, {"Access-Control-Request-Method", "POST"}});
    CHECK(foreign.result() == status::forbidden);
    CHECK(foreign.find(field::access_control_allow_origin) == foreign.end());

    const auto wrong_method =
        client.request(verb::options, "/echo", {},
                       {{"Origin", "https://shop.example"}, {"Access-Control-Request-Method", "PUT"}});
    CHECK(wrong_method.result() == status::forbidden);

    const auto actual = client.request(verb::post, "/echo", "hi", {{"Origin", "https://shop.example"}});
    CHECK(actual.result() == status::ok);
    CHECK(actual[field::access_control_allow_origin] == "https://shop.example");
    CHECK(actual[field::vary] == "Origin");

    const auto error = client.request(verb::get, "/missing", {}, {{"Origin", "https://shop.example"}});
    CHECK(error.result() == status::not_found);
    CHECK(error[field::access_control_allow_origin] == "https://shop.example");

    const auto no_origin = client.request(verb::post, "/echo", "hi");
    CHECK(no_origin.find(field::access_control_allow_origin) == no_origin.end());
  }

  TEST_CASE("server: X-Correlation-Id seeds the context and is echoed") {
    api_fixture f;
    http_client client(f.srv.port());
    const auto echoed = client.request(verb::get, "/hello", {}, {{"X-Correlation-Id", "chk_123"}});
    CHECK(echoed["X-Correlation-Id"] == "chk_123");
    const auto seen = client.request(verb::get, "/correlate", {}, {{"X-Correlation-Id", "chk_456"}});
    CHECK(seen.body() == "chk_456");
    CHECK(seen["X-Correlation-Id"] == "chk_456");
    const auto refined = client.request(verb::get, "/correlate");
    CHECK(refined["X-Correlation-Id"] == "chk_from_handler");
    const auto none = client.request(verb::get, "/hello");
    CHECK(none.find("X-Correlation-Id") == none.end());
    // Too long to be an id: ignored rather than echoed into every log line and response.
    const auto too_long =
        client.request(verb::get, "/correlate", {}, {{"X-Correlation-Id", std::string(200, 'c')}});
    CHECK(too_long.body() == "chk_from_handler");
  }

  TEST_CASE("server: max_connections: excess connections are accepted and closed at once") {
    auto opts = shopd::test::test_options();
    opts.max_connections = 1;
    api_fixture f(opts);
    auto& open = f.srv.metrics().gauge_family("shopd_http_connections_open", "", {"listener"}).with({"api"});
    {
      http_client first(f.srv.port());
      CHECK(first.request(verb::get, "/hello").result() == status::ok);
      http_client second(f.srv.port());
      CHECK(second.closed_by_server());
      CHECK(first.request(verb::get, "/hello").result() == status::ok);
    }
    REQUIRE(shopd::test::eventually([&] { return open.value() == 0; }));
    http_client third(f.srv.port());
    CHECK(third.request(verb::get, "/hello").result() == status::ok);
  }

  TEST_CASE("server: max_connections counts per listener: a full listener does not lock out another") {
    auto opts = shopd::test::test_options();
    opts.max_connections = 1;
    test_server srv(opts);
    const auto first_port = srv.listen("first", api_routes(srv.server()));
    const auto second_port = srv.listen("second", api_routes(srv.server()));
    srv.start();
    http_client held(first_port);
    CHECK(held.request(verb::get, "/hello").result() == status::ok);
    http_client refused(first_port);
    CHECK(refused.closed_by_server());
    http_client other(second_port);
    CHECK(other.request(verb::get, "/hello").result() == status::ok);
    CHECK(held.request(verb::get, "/hello").result() == status::ok);
  }

  TEST_CASE("server: request metrics in the server's registry") {
    api_fixture f;
    {
      http_client client(f.srv.port());
      CHECK(client.request(verb::get, "/hello").result() == status::ok);
      CHECK(client.request(verb::get, "/hello").result() == status::ok);
      CHECK(client.request(verb::get, "/orders/7").result() == status::ok);
      CHECK(client.request(verb::get, "/missing").result() == status::not_found);
      CHECK(client.request(verb::post, "/hello").result() == status::method_not_allowed);
      const auto text = f.srv.metrics().render();
      CAPTURE(text);
      CHECK(text.find("# TYPE shopd_http_requests_total counter\n") != std::string::npos);
      CHECK(text.find(
                R"(shopd_http_requests_total{listener="api",method="GET",route="/hello",status="200"} 2)") !=
            std::string::npos);
      CHECK(
          text.find(
              R"(shopd_http_requests_total{listener="api",method="GET",route="/orders/{id}",status="200"} 1)") !=
          std::string::npos);
      CHECK(
          text.find(
              R"(shopd_http_requests_total{listener="api",method="GET",route="unmatched",status="404"} 1)") !=
          std::string::npos);
      CHECK(
          text.find(
              R"(shopd_http_requests_total{listener="api",method="POST",route="unmatched",status="405"} 1)") !=
          std::string::npos);
      CHECK(text.find("# TYPE shopd_http_request_duration_seconds histogram\n") != std::string::npos);
      CHECK(text.find(R"(shopd_http_request_duration_seconds_count{listener="api",route="/hello"} 2)") !=
            std::string::npos);
      CHECK(text.find(
                R"(shopd_http_request_duration_seconds_bucket{listener="api",route="/hello",le="+Inf"} 2)") !=
            std::string::npos);
      CHECK(text.find(R"(shopd_http_requests_in_flight{listener="api"} 0)") != std::string::npos);
      CHECK(text.find(R"(shopd_http_connections_open{listener="api"} 1)") != std::string::npos);
    }
    auto& open = f.srv.metrics().gauge_family("shopd_http_connections_open", "", {"listener"}).with({"api"});
    CHECK(shopd::test::eventually([&] { return open.value() == 0; }));
  }

  TEST_CASE("server: graceful shutdown lets the request in flight finish") {
    test_server srv;
    std::promise<void> started;
    auto r = std::make_shared<router>();
    r->add(
        verb::get, "/slow",
        [&started](request_context&) {
          started.set_value();
          std::this_thread::sleep_for(std::chrono::milliseconds{300});
          return text_response("done");
        },
        execution::blocking);
    r->add(
        verb::get, "/hello", [](request_context&) { return text_response("hello world"); }, execution::io);
    const auto port = srv.listen("api", r);
    bool on_stop_ran = false;
    srv.server().on_stop([&] { on_stop_ran = srv.server().stopping(); });
    srv.start();

    http_client idle(port);
    CHECK(idle.request(verb::get, "/hello").result() == status::ok);
    http_client busy(port);
    busy.send(shopd::http::request{verb::get, "/slow", 11});
    REQUIRE(started.get_future().wait_for(std::chrono::seconds{5}) == std::future_status::ready);

    std::thread stopper([&] { srv.server().stop(); });
    const auto res = busy.read();
    CHECK(res.result() == status::ok);
    CHECK(res.body() == "done");
    CHECK_FALSE(res.keep_alive());  // answered during the drain
    CHECK(busy.closed_by_server());
    CHECK(idle.closed_by_server());
    stopper.join();

    CHECK(on_stop_ran);
    CHECK(srv.server().stopping());
    CHECK_FALSE(shopd::test::can_connect(port));
    srv.server().stop();  // idempotent
  }

  TEST_CASE("server: shutdown cuts requests that outlive shutdown_timeout") {
    auto opts = shopd::test::test_options();
    opts.shutdown_timeout = std::chrono::milliseconds{200};
    test_server srv(opts);
    std::promise<void> started;
    std::promise<void> release;
    auto released = release.get_future().share();
    auto r = std::make_shared<router>();
    r->add(
        verb::get, "/stuck",
        [&started, released](request_context&) {
          started.set_value();
          released.wait_for(std::chrono::seconds{10});
          return text_response("too late");
        },
        execution::blocking);
    const auto port = srv.listen("api", r);
    srv.start();

    http_client client(port);
    client.send(shopd::http::request{verb::get, "/stuck", 11});
    REQUIRE(started.get_future().wait_for(std::chrono::seconds{5}) == std::future_status::ready);
    std::thread stopper([&] { srv.server().stop(); });
    // The connection is cut after the drain timeout, while the handler still runs.
    CHECK_FALSE(client.try_read().has_value());
    release.set_value();
    stopper.join();
  }

  TEST_CASE("server: stop() from a handler does not wait for itself, wait() sees the end") {
    test_server srv;
    auto r = std::make_shared<router>();
    r->add(
        verb::post, "/shutdown",
        [&srv](request_context&) {
          srv.server().stop();
          return text_response("stopping");
        },
        execution::io);
    const auto port = srv.listen("admin", r);
    srv.start();

    http_client client(port);
    const auto res = client.request(verb::post, "/shutdown");
    CHECK(res.result() == status::ok);
    CHECK_FALSE(res.keep_alive());
    srv.server().wait();
    CHECK(srv.server().stopping());
    CHECK_FALSE(shopd::test::can_connect(port));
  }

  TEST_CASE("server: two listeners with different routers") {
    test_server srv;
    auto orders = std::make_shared<router>();
    orders->add(
        verb::get, "/api/orders", [](request_context&) { return text_response("orders"); }, execution::io);
    auto email = std::make_shared<router>();
    email->add(
        verb::get, "/api/emails", [](request_context&) { return text_response("emails"); }, execution::io);
    const auto orders_port = srv.listen("orders", orders);
    const auto email_port = srv.listen("email", email);
    srv.start();
    REQUIRE(orders_port != email_port);

    http_client a(orders_port);
    http_client b(email_port);
    CHECK(a.request(verb::get, "/api/orders").body() == "orders");
    CHECK(a.request(verb::get, "/api/emails").result() == status::not_found);
    CHECK(b.request(verb::get, "/api/emails").body() == "emails");
    CHECK(b.request(verb::get, "/api/orders").result() == status::not_found);

    const auto text = srv.metrics().render();
    CHECK(
        text.find(
            R"(shopd_http_requests_total{listener="orders",method="GET",route="/api/orders",status="200"} 1)") !=
        std::string::npos);
    CHECK(
        text.find(
            R"(shopd_http_requests_total{listener="email",method="GET",route="/api/emails",status="200"} 1)") !=
        std::string::npos);
  }

  TEST_CASE("server: a listener with workers of its own: its blocked handlers leave the shared pool free") {
    auto opts = shopd::test::test_options();
    opts.worker_threads = 1;
    test_server srv(opts);
    const auto thread_name = [] {
      std::array<char, 16> name{};
      pthread_getname_np(pthread_self(), name.data(), name.size());
      return std::string(name.data());
    };
    std::mutex mutex;
    std::condition_variable changed;
    int stuck = 0;
    // Declared after the server: destroyed first, it unblocks the handlers should a check fail.
    std::promise<void> release;
    auto released = release.get_future().share();
    auto mail = std::make_shared<router>();
    mail->add(
        verb::get, "/stuck",
        [&, released](request_context&) {
          const auto name = thread_name();
          {
            std::lock_guard lock(mutex);
            ++stuck;
          }
          changed.notify_all();
          released.wait();
          return text_response(name);
        },
        execution::blocking);
    // The webhook's path: screened on the I/O thread, handled on the listener's pool.
    mail->add_deferring(verb::get, "/deferred",
                        [&](request_context&) -> std::variant<response, shopd::http::deferred> {
                          return shopd::http::deferred([&] { return text_response(thread_name()); });
                        });
    auto api = std::make_shared<router>();
    api->add(
        verb::get, "/work", [&](request_context&) { return text_response(thread_name()); },
        execution::blocking);
    shopd::http::listener_spec mail_spec;
    mail_spec.name = "mail";
    mail_spec.routes = mail;
    mail_spec.own_workers = 2;
    const auto mail_port = srv.server().listen(mail_spec);
    const auto api_port = srv.listen("api", api);
    srv.start();

    http_client first(mail_port);
    http_client second(mail_port);
    first.send(shopd::http::request{verb::get, "/stuck", 11});
    second.send(shopd::http::request{verb::get, "/stuck", 11});
    {
      std::unique_lock lock(mutex);
      REQUIRE(changed.wait_for(lock, std::chrono::seconds{5}, [&] { return stuck == 2; }));
    }
    // Both of the mail listener's workers are blocked; the shared pool's one worker still serves
    // (on one pool this request would wait for them, and the client time out).
    http_client other(api_port);
    CHECK(other.request(verb::get, "/work").body() == "shopd-work-0");
    release.set_value();
    const std::set<std::string> names{first.read().body(), second.read().body()};
    CHECK(names == std::set<std::string>{"mail-work-0", "mail-work-1"});
    http_client third(mail_port);
    CHECK(third.request(verb::get, "/deferred").body().starts_with("mail-work-"));
  }

  TEST_CASE("server: a request from this process to its own listener is answered in-process") {
    auto opts = shopd::test::test_options();
    opts.body_limit = 1024;
    api_fixture f(opts);
    auto& srv = f.srv.server();
    // A second listener the client does not answer in-process: its requests take a socket.
    const auto other_port = f.srv.listen("other", api_routes(srv));
    const auto port = f.srv.port();
    std::atomic<int> slow_done{0};
    auto slow_routes = std::make_shared<router>();
    slow_routes->add(
        verb::get, "/slow",
        [&slow_done](request_context&) {
          std::this_thread::sleep_for(std::chrono::milliseconds{400});
          ++slow_done;
          return text_response("late");
        },
        execution::blocking);
    slow_routes->add(
        verb::get, "/big", [](request_context&) { return text_response(std::string(4096, 'b')); },
        execution::io);
    const auto slow_port = f.srv.listen("slow", slow_routes);

    auto local = std::make_shared<shopd::http::in_process_listeners>();
    for (const auto p : {port, slow_port}) {
      local->add("127.0.0.1", p,
                 [&srv, p](shopd::http::request req) { return srv.serve_in_process(p, std::move(req)); });
    }
    shopd::http::client_options copts;
    copts.in_process = local;
    copts.body_limit = 2048;
    const shopd::http::client client(srv.io_context(), copts);
    const auto send = [&](verb method, const std::string& url, std::string body = {},
                          shopd::http::header_list headers = {},
                          std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
      shopd::http::client_request req;
      req.method = method;
      req.url = url;
      req.body = std::move(body);
      req.headers = std::move(headers);
      req.timeout = timeout;
      return boost::asio::co_spawn(srv.io_context(), client.send(std::move(req)), boost::asio::use_future)
          .get();
    };
    const std::string base = "http://127.0.0.1:" + std::to_string(port);
    const auto text = [&] { return f.srv.metrics().render(); };

    const auto hello = send(verb::get, base + "/hello");
    REQUIRE(hello.has_value());
    CHECK(hello->status == 200);
    CHECK(hello->body == "hello world");
    CHECK(hello->header("Server") == "shopd");
    CHECK(hello->header("Content-Length") == "11");
    // The same listener named as localhost; a blocking route runs on the worker pool.
    const auto order = send(verb::get, "http://localhost:" + std::to_string(port) + "/orders/42");
    REQUIRE(order.has_value());
    CHECK(order->body == R"({"id":"42"})");
    const auto echo = send(verb::post, base + "/echo", "ping", {{"X-Correlation-Id", "chk_local"}});
    REQUIRE(echo.has_value());
    CHECK(echo->body == "ping");
    CHECK(echo->header("X-Correlation-Id") == "chk_local");
    const auto missing = send(verb::get, base + "/missing");
    REQUIRE(missing.has_value());
    CHECK(missing->status == 404);
    // No socket was used: nothing pooled, no connection opened, every request counted as usual.
    CHECK(client.idle_connections() == 0);
    CAPTURE(text());
    CHECK(text().find(R"(shopd_http_connections_open{listener="api"} 0)") != std::string::npos);
    CHECK(text().find(
              R"(shopd_http_requests_total{listener="api",method="GET",route="/hello",status="200"} 1)") !=
          std::string::npos);
    CHECK(text().find(
              R"(shopd_http_requests_total{listener="api",method="GET",route="unmatched",status="404"} 1)") !=
          std::string::npos);

    SUBCASE("the limits a connection applies while reading") {
      const auto too_big = send(verb::post, base + "/echo", std::string(2048, 'x'));
      REQUIRE(too_big.has_value());
      CHECK(too_big->status == 413);
      CHECK(boost::json::parse(too_big->body).at("code") == "payload_too_large");
      const auto at_limit = send(verb::post, base + "/echo", std::string(1024, 'x'));
      REQUIRE(at_limit.has_value());
      CHECK(at_limit->status == 200);
      const auto big_header = send(verb::get, base + "/hello", {}, {{"X-Big", std::string(9000, 'h')}});
      REQUIRE(big_header.has_value());
      CHECK(big_header->status == 431);
    }
    SUBCASE("the request's timeout bounds the wait; a late answer is dropped") {
      // The handler sleeps 400 ms: a timeout here means the client did not wait for its answer.
      const auto late = send(verb::get, "http://127.0.0.1:" + std::to_string(slow_port) + "/slow", {}, {},
                             std::chrono::milliseconds{100});
      REQUIRE_FALSE(late.has_value());
      CHECK(late.error().timed_out());
      CHECK(late.error().stage == shopd::http::client_stage::read);
      CHECK(late.error().message ==
            "read 127.0.0.1:" + std::to_string(slow_port) + ": timed out after 100 ms");
      CHECK(shopd::test::eventually([&] { return slow_done.load() == 1; }));
    }
    SUBCASE("the client's response body limit") {
      const auto big = send(verb::get, "http://127.0.0.1:" + std::to_string(slow_port) + "/big");
      REQUIRE_FALSE(big.has_value());
      CHECK(big.error().stage == shopd::http::client_stage::read);
    }
    SUBCASE("a failure of the answering function is a read error") {
      auto broken = std::make_shared<shopd::http::in_process_listeners>();
      broken->add("127.0.0.1", 9,
                  [&srv](shopd::http::request req) { return srv.serve_in_process(9, std::move(req)); });
      shopd::http::client_options bopts;
      bopts.in_process = broken;
      const shopd::http::client broken_client(srv.io_context(), bopts);
      shopd::http::client_request req;
      req.url = "http://localhost:9/hello";
      const auto res =
          boost::asio::co_spawn(srv.io_context(), broken_client.send(std::move(req)), boost::asio::use_future)
              .get();
      REQUIRE_FALSE(res.has_value());
      CHECK(res.error().stage == shopd::http::client_stage::read);
      CHECK(res.error().message ==
            "read localhost:9: the in-process handler failed: serve_in_process: no listener on port 9");
    }
    SUBCASE("a listener not registered, and https, go over a socket") {
      const auto other = send(verb::get, "http://127.0.0.1:" + std::to_string(other_port) + "/hello");
      REQUIRE(other.has_value());
      CHECK(other->body == "hello world");
      CHECK(client.idle_connections() == 1);
      const auto tls = send(verb::get, "https://127.0.0.1:" + std::to_string(port) + "/hello", {}, {},
                            std::chrono::milliseconds{2'000});
      REQUIRE_FALSE(tls.has_value());
      CHECK(tls.error().stage == shopd::http::client_stage::tls_handshake);
    }
  }

  TEST_CASE("server: listen() names the address it could not bind") {
    test_server first;
    const auto port = first.listen("api", std::make_shared<router>());
    test_server second;
    shopd::http::listener_spec spec;
    spec.name = "api";
    spec.port = port;
    try {
      second.server().listen(spec);
      FAIL("listen on a port in use succeeded");
    } catch (const std::system_error& e) {
      CHECK(std::string(e.what()) == "listen 127.0.0.1:" + std::to_string(port) + ": Address already in use");
      CHECK(e.code() == std::errc::address_in_use);
    }
    spec.address = "not-an-address";
    CHECK_THROWS_AS(second.server().listen(spec), std::system_error);
  }

  TEST_CASE("server: server_options::from_config") {
    shopd::config::settings s;
    s.http_body_limit = 2048;
    s.http_header_timeout_ms = 1000;
    s.http_read_timeout_ms = 2000;
    s.http_write_timeout_ms = 3000;
    s.http_idle_timeout_ms = 4000;
    s.http_max_connections = 50;
    s.shutdown_timeout_ms = 5000;
    s.io_threads = 3;
    s.worker_threads = 7;
    const auto o = shopd::http::server_options::from_config(s);
    CHECK(o.body_limit == 2048);
    CHECK(o.header_timeout == std::chrono::milliseconds{1000});
    CHECK(o.read_timeout == std::chrono::milliseconds{2000});
    CHECK(o.write_timeout == std::chrono::milliseconds{3000});
    CHECK(o.idle_timeout == std::chrono::milliseconds{4000});
    CHECK(o.max_connections == 50);
    CHECK(o.shutdown_timeout == std::chrono::milliseconds{5000});
    CHECK(o.io_threads == 3);
    CHECK(o.worker_threads == 7);
  }
}
