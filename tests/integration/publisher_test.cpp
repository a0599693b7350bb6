#include "shopd/bus/publisher.hpp"

#include "capture_server.hpp"

#include <doctest/doctest.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <string>
#include <vector>

namespace {

using namespace shopd::bus;
using shopd::test::capture_server;
using shopd::test::io_threads;
using shopd::test::scripted_reply;

publisher_config config_for(const capture_server& server) {
  publisher_config cfg;
  cfg.qstash_url = server.url("");
  cfg.qstash_token = "test-token";
  cfg.timeout = std::chrono::seconds(10);
  return cfg;
}

}  // namespace

TEST_SUITE("bus publisher (integration)") {
  TEST_CASE("publisher: publish sends what the SDK sends and reads the receipt") {
    capture_server server;
    io_threads io;
    const publisher pub(shopd::http::client(io.context()), config_for(server));

    SUBCASE("every option, to a URL with a query string") {
      publish_options o;
      o.method = "PUT";
      o.delay = std::chrono::seconds(10);
      o.not_before = std::chrono::sys_seconds(std::chrono::seconds(1'900'000'000));
      o.retries = 2;
      o.retry_delay = "1000 * (1 + retried)";
      o.timeout = std::chrono::seconds(30);
      o.callback = "http://127.0.0.1:3004/api/webhook";
      o.failure_callback = "http://127.0.0.1:3004/api/webhook?failure=1";
      o.deduplication_id = "evt-1";
      o.content_based_deduplication = true;
      o.forward_headers = {{"X-Correlation-Id", "chk_123"}};
      o.label = "orders";
      server.push(scripted_reply::json(
          200, R"({"messageId":"msg_abc","url":"http://127.0.0.1:3001/api/webhook?a=1"})"));
      const std::string body = R"({"eventId":"01J","eventType":"order.created","data":{"n":"é"}})";

      const auto r = io.run(pub.publish("http://127.0.0.1:3001/api/webhook?a=1", body, o));
      REQUIRE(r.has_value());
      CHECK(r->status == 200);
      CHECK(r->message_id() == "msg_abc");
      CHECK(r->messages.at(0).url == "http://127.0.0.1:3001/api/webhook?a=1");
      CHECK_FALSE(r->deduplicated());

      const auto seen = server.requests();
      REQUIRE(seen.size() == 1);
      const auto& req = seen[0];
      CHECK(req.method == "POST");
      CHECK(req.target == "/v2/publish/http://127.0.0.1:3001/api/webhook?a=1");
      CHECK(req.body == body);
      CHECK(req.header("Authorization") == "Bearer test-token");
      CHECK(req.header("Content-Type") == "application/json");
      CHECK(req.header("Upstash-Method") == "PUT");
      CHECK(req.header("Upstash-Delay") == "10s");
      CHECK(req.header("Upstash-Not-Before") == "1900000000");
      CHECK(req.header("Upstash-Retries") == "2");
      CHECK(req.header("Upstash-Retry-Delay") == "1000 * (1 + retried)");
      CHECK(req.header("Upstash-Timeout") == "30s");
      CHECK(req.header("Upstash-Callback") == "http://127.0.0.1:3004/api/webhook");
      CHECK(req.header("Upstash-Failure-Callback") == "http://127.0.0.1:3004/api/webhook?failure=1");
      CHECK(req.header("Upstash-Deduplication-Id") == "evt-1");
      CHECK(req.header("Upstash-Content-Based-Deduplication") == "true");
      CHECK(req.header("Upstash-Forward-X-Correlation-Id") == "chk_123");
      CHECK(req.header("Upstash-Label") == "orders");
      CHECK(req.header("Content-Length") == std::to_string(body.size()));
    }

    SUBCASE("a URL group answers an array") {
      server.push(scripted_reply::json(
          200, R"([{"messageId":"m1","url":"http://a/"},{"messageId":"m2","url":"http://b/"}])"));
      const auto r = io.run(pub.publish("grp", "plain", {}));
      REQUIRE(r.has_value());
      REQUIRE(r->messages.size() == 2);
      CHECK(r->messages[1].message_id == "m2");
      CHECK(server.requests().at(0).target == "/v2/publish/grp");
    }

    SUBCASE("a duplicate answers 202 with the existing id") {
      server.push(scripted_reply::json(202, R"({"messageId":"msg_old","deduplicated":true})"));
      publish_options o;
      o.deduplication_id = "evt-1";
      const auto r = io.run(pub.publish("http://127.0.0.1:3001/api/webhook", "{}", o));
      REQUIRE(r.has_value());
      CHECK(r->status == 202);
      CHECK(r->message_id() == "msg_old");
      CHECK(r->deduplicated());
    }

    SUBCASE("errors") {
      server.push(scripted_reply::json(401, R"({"error":"invalid token"})"));
      server.push(scripted_reply::json(500, R"({"error":"database down"})"));
      server.push(scripted_reply::respond(200, "<html>captive portal</html>"));

      const auto unauthorized = io.run(pub.publish("grp", "{}", {}));
      REQUIRE(unauthorized.has_error());
      CHECK(unauthorized.error().kind == publish_failure::rejected);
      CHECK(unauthorized.error().status == 401);
      CHECK_FALSE(unauthorized.error().retryable);
      CHECK(unauthorized.error().body == R"({"error":"invalid token"})");
      CHECK(unauthorized.error().message == R"(publish grp: 401: {"error":"invalid token"})");

      const auto down = io.run(pub.publish("grp", "{}", {}));
      REQUIRE(down.has_error());
      CHECK(down.error().status == 500);
      CHECK(down.error().retryable);

      const auto garbage = io.run(pub.publish("grp", "{}", {}));
      REQUIRE(garbage.has_error());
      CHECK(garbage.error().kind == publish_failure::bad_response);
      CHECK(garbage.error().retryable);
    }

    SUBCASE("a bad forwarded header is refused before anything is sent") {
      publish_options o;
      o.forward_headers = {{"X-Bad", "a\r\nInjected: 1"}};
      const auto r = io.run(pub.publish("grp", "{}", o));
      REQUIRE(r.has_error());
      CHECK(r.error().kind == publish_failure::invalid);
      CHECK_FALSE(r.error().retryable);
      CHECK(server.connections() == 0);
    }
  }

  TEST_CASE("publisher: a relay that cannot be reached is a retryable transport error") {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor probe(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
    const auto port = probe.local_endpoint().port();
    probe.close();
    publisher_config cfg;
    cfg.qstash_url = "http://127.0.0.1:" + std::to_string(port);
    const auto r = publish_blocking(cfg, "grp", "{}");
    REQUIRE(r.has_error());
    CHECK(r.error().kind == publish_failure::transport);
    CHECK(r.error().retryable);
    CHECK(r.error().transport_error == boost::asio::error::connection_refused);
    CHECK(r.error().message ==
          "publish grp: connect 127.0.0.1:" + std::to_string(port) + ": Connection refused");
  }

  TEST_CASE("publisher: batch") {
    capture_server server;
    io_threads io;
    const publisher pub(shopd::http::client(io.context()), config_for(server));
    std::vector<batch_entry> entries(2);
    entries[0].destination = "http://127.0.0.1:3002/api/webhook";
    entries[0].body = R"({"n":1})";
    entries[0].options.retries = 3;
    entries[1].destination = "grp";
    entries[1].body = "two";
    entries[1].options.content_type = "text/plain";
    entries[1].options.forward_headers = {{"X-H", "1"}};
    entries[1].queue = "q1";

    server.push(scripted_reply::json(200, R"([{"messageId":"m1"},[{"messageId":"m2"},{"messageId":"m3"}]])"));
    const auto r = io.run(pub.batch(entries));
    REQUIRE(r.has_value());
    REQUIRE(r->size() == 2);
    CHECK((*r)[0]->message_id() == "m1");
    CHECK((*r)[1]->messages.size() == 2);

    const auto seen = server.requests();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].method == "POST");
    CHECK(seen[0].target == "/v2/batch");
    CHECK(seen[0].header("Authorization") == "Bearer test-token");
    CHECK(seen[0].header("Content-Type") == "application/json");
    CHECK(boost::json::parse(seen[0].body) == boost::json::parse(R"([
      {"destination":"http://127.0.0.1:3002/api/webhook",
       "headers":{"content-type":"application/json","upstash-method":"POST","upstash-retries":"3"},
       "body":"{\"n\":1}"},
      {"destination":"grp",
       "headers":{"content-type":"text/plain","upstash-method":"POST","upstash-forward-x-h":"1"},
       "body":"two","queue":"q1"}
    ])"));

    SUBCASE("blocking form, with a failing entry") {
      server.push(scripted_reply::json(200, R"([{"messageId":"m4"},{"error":"invalid destination url"}])"));
      const auto b = batch_blocking(config_for(server), entries);
      REQUIRE(b.has_value());
      CHECK((*b)[0]->message_id() == "m4");
      REQUIRE((*b)[1].has_error());
      CHECK((*b)[1].error().message == "batch entry 1: invalid destination url");
    }
  }

  TEST_CASE("publisher: publish_blocking") {
    capture_server server;
    server.push(scripted_reply::json(201, R"({"messageId":"msg_cli"})"));
    const auto r = publish_blocking(config_for(server), "http://127.0.0.1:3001/api/webhook", R"({"x":1})");
    REQUIRE(r.has_value());
    CHECK(r->message_id() == "msg_cli");
    CHECK(server.requests().at(0).target == "/v2/publish/http://127.0.0.1:3001/api/webhook");
    CHECK(server.requests().at(0).body == R"({"x":1})");
  }
}
