#include "shopd/http/client.hpp"

#include "capture_server.hpp"

#include <doctest/doctest.h>
#include <boost/asio/ip/tcp.hpp>

#include <future>
#include <set>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using shopd::http::client;
using shopd::http::client_options;
using shopd::http::client_request;
using shopd::http::client_result;
using shopd::http::client_stage;
using shopd::test::capture_server;
using shopd::test::io_threads;
using shopd::test::scripted_reply;
using verb = boost::beast::http::verb;

client_request get(std::string url, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  client_request req;
  req.method = verb::get;
  req.url = std::move(url);
  req.timeout = timeout;
  return req;
}

client_request post(std::string url, std::string body) {
  client_request req = get(std::move(url));
  req.method = verb::post;
  req.body = std::move(body);
  return req;
}

/// A port nobody listens on: bound, then released.
std::uint16_t closed_port() {
  asio::io_context ioc;
  asio::ip::tcp::acceptor acceptor(ioc, {asio::ip::make_address("127.0.0.1"), 0});
  return acceptor.local_endpoint().port();
}

std::string peer(const capture_server& server) {
  return "127.0.0.1:" + std::to_string(server.port());
}

}  // namespace

TEST_SUITE("http client") {
  TEST_CASE("http client: a request and its response travel byte for byte") {
    capture_server server;
    io_threads io;
    const client c(io.context());

    SUBCASE("GET with headers, response headers and body") {
      server.push(scripted_reply::respond(
          200, R"({"ok":true})", {{"Content-Type", "application/json"}, {"X-Multi", "a"}, {"X-Multi", "b"}}));
      auto req = get(server.url("/api/webhook?a=1&b=%20x"));
      req.headers = {{"X-Mixed-Case", "value with  spaces, and: colons"}, {"Accept", "application/json"}};
      const client_result res = io.run(c.send(req));
      REQUIRE(res.has_value());
      CHECK(res->status == 200);
      CHECK(res->body == R"({"ok":true})");
      CHECK(res->header("content-type") == "application/json");
      CHECK(res->header("x-multi") == "a");
      CHECK(res->header("x-absent") == std::nullopt);

      const auto seen = server.requests();
      REQUIRE(seen.size() == 1);
      CHECK(seen[0].method == "GET");
      CHECK(seen[0].target == "/api/webhook?a=1&b=%20x");
      CHECK(seen[0].header("Host") == peer(server));
      CHECK(seen[0].header("User-Agent") == std::string("shopd/") + SHOPD_VERSION);
      CHECK(seen[0].header("X-Mixed-Case") == "value with  spaces, and: colons");
      CHECK(seen[0].headers[2].first == "X-Mixed-Case");
      CHECK(seen[0].header("Accept") == "application/json");
      CHECK(seen[0].header("Content-Length") == std::nullopt);
      CHECK(seen[0].body.empty());
    }

    SUBCASE("POST with a binary body") {
      const std::string body("{\"n\":1}\0\x01\xff\r\n\r\nend", 17);
      auto req = post(server.url("/in"), body);
      req.headers = {{"Content-Type", "application/octet-stream"}, {"User-Agent", "Upstash-QStash"}};
      const auto res = io.run(c.send(req));
      REQUIRE(res.has_value());
      CHECK(res->status == 200);
      const auto seen = server.requests();
      REQUIRE(seen.size() == 1);
      CHECK(seen[0].method == "POST");
      CHECK(seen[0].body == body);
      CHECK(seen[0].header("Content-Length") == "17");
      CHECK(seen[0].header("User-Agent") == "Upstash-QStash");
      CHECK(seen[0].header_count("User-Agent") == 1);
    }

    SUBCASE("statuses other than 2xx are responses, not errors") {
      server.push(scripted_reply::respond(489, "no", {{"Upstash-NonRetryable-Error", "true"}}));
      const auto res = io.run(c.send(post(server.url("/x"), "{}")));
      REQUIRE(res.has_value());
      CHECK(res->status == 489);
      CHECK(res->header("Upstash-NonRetryable-Error") == "true");
      CHECK(res->body == "no");
    }

    SUBCASE("a URL without a path asks for /") {
      REQUIRE(io.run(c.send(get(server.url("")))).has_value());
      CHECK(server.requests().at(0).target == "/");
    }
  }

  TEST_CASE("http client: connections are kept alive and reused") {
    capture_server server;
    io_threads io;

    SUBCASE("sequential requests share one connection") {
      const client c(io.context());
      for (int i = 0; i < 5; ++i)
        REQUIRE(io.run(c.send(post(server.url("/n"), std::to_string(i)))).has_value());
      CHECK(server.connections() == 1);
      CHECK(c.idle_connections() == 1);
      const auto seen = server.requests();
      REQUIRE(seen.size() == 5);
      for (const auto& r : seen) CHECK(r.connection == 1);
    }

    SUBCASE("copies of a client share the pool") {
      const client c(io.context());
      const client copy = c;  // NOLINT(performance-unnecessary-copy-initialization): the copy is the point
      REQUIRE(io.run(c.send(get(server.url()))).has_value());
      REQUIRE(io.run(copy.send(get(server.url()))).has_value());
      CHECK(server.connections() == 1);
    }

    SUBCASE("Connection: close from the server is honoured") {
      const client c(io.context());
      server.push(scripted_reply::respond(200, "bye", {{"Connection", "close"}}));
      REQUIRE(io.run(c.send(get(server.url()))).has_value());
      CHECK(c.idle_connections() == 0);
      REQUIRE(io.run(c.send(get(server.url()))).has_value());
      CHECK(server.connections() == 2);
    }

    SUBCASE("Connection: close from the caller is honoured") {
      const client c(io.context());
      auto req = get(server.url());
      req.headers = {{"Connection", "close"}};
      REQUIRE(io.run(c.send(req)).has_value());
      CHECK(c.idle_connections() == 0);
    }

    SUBCASE("a short Keep-Alive timeout from the server keeps the connection out of the pool") {
      const client c(io.context());
      server.push(scripted_reply::respond(200, {}, {{"Keep-Alive", "timeout=1"}}));
      REQUIRE(io.run(c.send(get(server.url()))).has_value());
      CHECK(c.idle_connections() == 0);
    }

    SUBCASE("max_idle_per_origin = 0 disables reuse") {
      client_options opts;
      opts.max_idle_per_origin = 0;
      const client c(io.context(), opts);
      for (int i = 0; i < 3; ++i) REQUIRE(io.run(c.send(get(server.url()))).has_value());
      CHECK(server.connections() == 3);
    }

    SUBCASE("idle_expiry = 0 disables reuse") {
      client_options opts;
      opts.idle_expiry = std::chrono::milliseconds(0);
      const client c(io.context(), opts);
      for (int i = 0; i < 3; ++i) REQUIRE(io.run(c.send(get(server.url()))).has_value());
      CHECK(server.connections() == 3);
    }

    SUBCASE("close_idle() empties the pool") {
      const client c(io.context());
      REQUIRE(io.run(c.send(get(server.url()))).has_value());
      CHECK(c.idle_connections() == 1);
      c.close_idle();
      CHECK(c.idle_connections() == 0);
      REQUIRE(io.run(c.send(get(server.url()))).has_value());
      CHECK(server.connections() == 2);
    }

    SUBCASE("each origin has its own pool") {
      capture_server other;
      const client c(io.context());
      REQUIRE(io.run(c.send(get(server.url()))).has_value());
      REQUIRE(io.run(c.send(get(other.url()))).has_value());
      REQUIRE(io.run(c.send(get(server.url()))).has_value());
      CHECK(c.idle_connections() == 2);
      CHECK(server.connections() == 1);
      CHECK(other.connections() == 1);
    }
  }

  TEST_CASE("http client: a stale pooled connection is retried once on a fresh one") {
    capture_server server;
    io_threads io;
    const client c(io.context());

    SUBCASE("the server closed the idle connection") {
      server.push(scripted_reply::respond_then_close(200, "first"));
      REQUIRE(io.run(c.send(post(server.url("/a"), "1"))).has_value());
      const auto res = io.run(c.send(post(server.url("/b"), "2")));
      REQUIRE(res.has_value());
      CHECK(res->status == 200);
      CHECK(server.connections() == 2);
      const auto seen = server.requests();
      REQUIRE(seen.size() == 2);
      CHECK(seen[1].target == "/b");
      CHECK(seen[1].connection == 2);
    }

    SUBCASE("the server closed the connection on receiving the request") {
      server.push(scripted_reply::respond(200));
      server.push(scripted_reply::drop());
      REQUIRE(io.run(c.send(post(server.url("/a"), "1"))).has_value());
      const auto res = io.run(c.send(post(server.url("/b"), "2")));
      REQUIRE(res.has_value());
      CHECK(res->status == 200);
      const auto seen = server.requests();
      REQUIRE(seen.size() == 3);  // the dropped request and its retry
      CHECK(seen[1].connection == 1);
      CHECK(seen[2].connection == 2);
      CHECK(seen[2].target == "/b");
      CHECK(seen[2].body == "2");
    }

    SUBCASE("only once") {
      server.push(scripted_reply::respond(200));
      server.push(scripted_reply::drop());
      server.push(scripted_reply::drop());
      REQUIRE(io.run(c.send(get(server.url()))).has_value());
      const auto res = io.run(c.send(get(server.url())));
      REQUIRE(res.has_error());
      CHECK(res.error().stage == client_stage::read);
      CHECK(server.requests().size() == 3);
      CHECK(server.connections() == 2);
    }

    SUBCASE("never on a fresh connection") {
      server.push(scripted_reply::drop());
      const auto res = io.run(c.send(get(server.url())));
      REQUIRE(res.has_error());
      CHECK(res.error().stage == client_stage::read);
      CHECK(res.error().message == "read " + peer(server) + ": end of stream");
      CHECK(server.requests().size() == 1);
      CHECK(server.connections() == 1);
    }

    SUBCASE("never once part of the response arrived") {
      server.push(scripted_reply::respond(200));
      server.push(scripted_reply::raw("HTTP/1.1 200 OK\r\nContent-Le"));
      REQUIRE(io.run(c.send(get(server.url()))).has_value());
      const auto res = io.run(c.send(get(server.url())));
      REQUIRE(res.has_error());
      CHECK(res.error().stage == client_stage::read);
      CHECK(server.requests().size() == 2);
      CHECK(server.connections() == 1);
    }
  }

  TEST_CASE("http client: errors are reported with their stage and one line") {
    io_threads io;

    SUBCASE("timeout on a server that never answers") {
      capture_server server;
      server.push(scripted_reply::hang());
      client_options opts;
      const client c(io.context(), opts);
      const auto res = io.run(c.send(get(server.url("/slow"), std::chrono::milliseconds(200))));
      REQUIRE(res.has_error());
      CHECK(res.error().timed_out());
      CHECK(res.error().stage == client_stage::read);
      CHECK(res.error().message == "read " + peer(server) + ": timed out after 200 ms");
      CHECK(c.idle_connections() == 0);
    }

    SUBCASE("connection refused") {
      const auto port = closed_port();
      const client c(io.context());
      const auto res = io.run(c.send(get("http://127.0.0.1:" + std::to_string(port) + "/")));
      REQUIRE(res.has_error());
      CHECK_FALSE(res.error().timed_out());
      CHECK(res.error().stage == client_stage::connect);
      CHECK(res.error().code == asio::error::connection_refused);
      CHECK(res.error().message == "connect 127.0.0.1:" + std::to_string(port) + ": Connection refused");
    }

    SUBCASE("response body over the limit") {
      capture_server server;
      client_options opts;
      opts.body_limit = 1024;
      const client c(io.context(), opts);
      server.push(scripted_reply::respond(200, std::string(1024, 'a')));
      server.push(scripted_reply::respond(200, std::string(1025, 'b')));
      const auto at_limit = io.run(c.send(get(server.url())));
      REQUIRE(at_limit.has_value());
      CHECK(at_limit->body.size() == 1024);
      const auto over = io.run(c.send(get(server.url())));
      REQUIRE(over.has_error());
      CHECK(over.error().stage == client_stage::read);
      CHECK(over.error().message == "read " + peer(server) + ": body limit exceeded");
      CHECK(c.idle_connections() == 0);
    }

    SUBCASE("requests that cannot be sent") {
      capture_server server;
      const client c(io.context());
      auto bad_header = get(server.url());
      bad_header.headers = {{"X-Evil", "a\r\nX-Injected: 1"}};
      auto bad_name = get(server.url());
      bad_name.headers = {{"Bad Name", "x"}};
      auto framing = post(server.url(), "x");
      framing.headers = {{"Content-Length", "5"}};
      for (const auto& [req, message] : std::vector<std::pair<client_request, std::string>>{
               {get("ftp://127.0.0.1/x"), "request: unsupported URL scheme \"ftp\" (http or https)"},
               {get("not a url"), ""},
               {bad_header, "request: invalid value for header \"X-Evil\""},
               {bad_name, "request: invalid header name \"Bad Name\""},
               {framing, "request: header \"Content-Length\" is set by the client"},
           }) {
        CAPTURE(req.url);
        const auto res = io.run(c.send(req));
        REQUIRE(res.has_error());
        CHECK(res.error().stage == client_stage::request);
        if (!message.empty()) CHECK(res.error().message == message);
      }
      CHECK(server.connections() == 0);
    }

    SUBCASE("value() throws the error as std::system_error") {
      const auto port = closed_port();
      const client c(io.context());
      const auto res = io.run(c.send(get("http://127.0.0.1:" + std::to_string(port) + "/")));
      CHECK_THROWS_AS((void)res.value(), std::system_error);
    }
  }

  TEST_CASE("http client: many coroutines share one client") {
    capture_server server;
    server.set_handler(
        [](const shopd::test::captured_request& r) { return scripted_reply::respond(200, r.body); });
    io_threads io(2);
    const client c(io.context());
    constexpr int workers = 48;
    constexpr int per_worker = 5;

    auto worker = [](client cl, std::string url, int id) -> asio::awaitable<int> {
      int matched = 0;
      for (int i = 0; i < per_worker; ++i) {
        const std::string body = "worker " + std::to_string(id) + " request " + std::to_string(i);
        const auto res = co_await cl.send(post(url, body));
        if (res && res->status == 200 && res->body == body) ++matched;
      }
      co_return matched;
    };
    std::vector<std::future<int>> done;
    for (int id = 0; id < workers; ++id) {
      done.push_back(asio::co_spawn(io.context(), worker(c, server.url("/echo"), id), asio::use_future));
    }
    int matched = 0;
    for (auto& f : done) matched += f.get();
    CHECK(matched == workers * per_worker);
    CHECK(server.requests().size() == static_cast<std::size_t>(workers * per_worker));
    CHECK(server.connections() <= static_cast<std::size_t>(workers));
    CHECK(c.idle_connections() <= c.options().max_idle_per_origin);
    CHECK(c.idle_connections() >= 1);
  }

  TEST_CASE("http client: TLS") {
    const shopd::test::temp_dir dir;
    const auto ip_cert = shopd::test::make_self_signed({"IP:127.0.0.1", "DNS:localhost"});
    io_threads io;

    SUBCASE("verifies against the CA file, sends SNI for names only, reuses connections") {
      capture_server server(ip_cert);
      client_options opts;
      opts.ca_file = dir.write("ca.pem", ip_cert.certificate_pem).string();
      const client c(io.context(), opts);
      const auto res = io.run(c.send(post(server.url("/secure"), "secret")));
      REQUIRE(res.has_value());
      CHECK(res->status == 200);
      REQUIRE(io.run(c.send(get(server.url("/again")))).has_value());
      CHECK(server.connections() == 1);
      const auto named = io.run(c.send(get("https://localhost:" + std::to_string(server.port()) + "/named")));
      REQUIRE(named.has_value());
      const auto seen = server.requests();
      REQUIRE(seen.size() == 3);
      CHECK(seen[0].body == "secret");
      CHECK(seen[0].sni.empty());  // no SNI for IP addresses
      CHECK(seen[2].sni == "localhost");
      CHECK(seen[2].header("Host") == "localhost:" + std::to_string(server.port()));
    }

    SUBCASE("fails without the CA file") {
      capture_server server(ip_cert);
      const client c(io.context());
      const auto res = io.run(c.send(get(server.url())));
      REQUIRE(res.has_error());
      CHECK(res.error().stage == client_stage::tls_handshake);
      CHECK(res.error().message ==
            "tls handshake " + peer(server) + ": certificate verify failed: self-signed certificate");
      CHECK(server.requests().empty());
    }

    SUBCASE("fails when the certificate names another host") {
      const auto other = shopd::test::make_self_signed({"DNS:shopd.test"});
      capture_server server(other);
      client_options opts;
      opts.ca_file = dir.write("other.pem", other.certificate_pem).string();
      const client c(io.context(), opts);
      const auto by_ip = io.run(c.send(get(server.url())));
      REQUIRE(by_ip.has_error());
      CHECK(by_ip.error().message ==
            "tls handshake " + peer(server) + ": certificate verify failed: IP address mismatch");
      const auto by_name = io.run(c.send(get("https://localhost:" + std::to_string(server.port()) + "/")));
      REQUIRE(by_name.has_error());
      CHECK(by_name.error().message == "tls handshake localhost:" + std::to_string(server.port()) +
                                           ": certificate verify failed: hostname mismatch");
      CHECK(server.requests().empty());
    }

    SUBCASE("a stale TLS connection is retried") {
      capture_server server(ip_cert);
      client_options opts;
      opts.ca_file = dir.write("ca.pem", ip_cert.certificate_pem).string();
      const client c(io.context(), opts);
      server.push(scripted_reply::respond(200));
      server.push(scripted_reply::drop());
      REQUIRE(io.run(c.send(get(server.url()))).has_value());
      REQUIRE(io.run(c.send(get(server.url()))).has_value());
      CHECK(server.requests().size() == 3);
      CHECK(server.connections() == 2);
    }

    SUBCASE("an unreadable CA file fails construction") {
      client_options opts;
      opts.ca_file = (dir.path() / "missing.pem").string();
      CHECK_THROWS_AS(client(io.context(), opts), std::system_error);
    }
  }

  TEST_CASE("http client: send_blocking runs one request on its own io_context") {
    capture_server server;
    server.push(scripted_reply::json(201, R"({"id":1})"));
    const auto res = shopd::http::send_blocking(post(server.url("/blocking"), "x"));
    REQUIRE(res.has_value());
    CHECK(res->status == 201);
    CHECK(res->body == R"({"id":1})");
    CHECK(server.requests().at(0).body == "x");

    const auto refused =
        shopd::http::send_blocking(get("http://127.0.0.1:" + std::to_string(closed_port()) + "/"));
    REQUIRE(refused.has_error());
    CHECK(refused.error().stage == client_stage::connect);
  }
}
