#include "shopd/bus/publisher.hpp"

#include "shopd/config/config.hpp"

#include <doctest/doctest.h>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <string>
#include <vector>

namespace {

using namespace shopd::bus;
using shopd::http::client_response;
using shopd::http::header_list;

client_response answer(unsigned status, std::string body) {
  client_response res;
  res.status = status;
  res.body = std::move(body);
  return res;
}

publish_options every_option() {
  publish_options o;
  o.content_type = "text/plain;charset=UTF-8";
  o.method = "PUT";
  o.delay = std::chrono::seconds(10);
  o.not_before = std::chrono::sys_seconds(std::chrono::seconds(1'900'000'000));
  o.retries = 2;
  o.retry_delay = "1000 * (1 + retried)";
  o.timeout = std::chrono::seconds(30);
  o.callback = "http://127.0.0.1:3004/api/webhook?cb=1";
  o.failure_callback = "http://127.0.0.1:3004/api/webhook?dlq=1";
  o.deduplication_id = "evt-42";
  o.content_based_deduplication = true;
  o.forward_headers = {{"X-Correlation-Id", "chk_1"}, {"Authorization", "Bearer downstream"}};
  o.label = "a,b";
  return o;
}

}  // namespace

TEST_SUITE("bus publisher") {
  TEST_CASE("publish_url appends the destination unencoded") {
    CHECK(publish_url("http://127.0.0.1:8080", "http://127.0.0.1:3001/api/webhook?a=1") ==
          "http://127.0.0.1:8080/v2/publish/http://127.0.0.1:3001/api/webhook?a=1");
    SUBCASE("trailing slashes of the base are dropped") {
      CHECK(publish_url("https://qstash.upstash.io/", "grp") == "https://qstash.upstash.io/v2/publish/grp");
    }
    SUBCASE("a base with a path keeps it") {
      CHECK(publish_url("http://gw/qstash", "grp") == "http://gw/qstash/v2/publish/grp");
    }
    SUBCASE("'//' and existing escapes stay; the fragment goes") {
      CHECK(publish_url("http://r", "https://x.test//a/%2F?q=%41#frag") ==
            "http://r/v2/publish/https://x.test//a/%2F?q=%41");
    }
    SUBCASE("bytes no URL may hold are percent-encoded") {
      CHECK(publish_url("http://r", "http://x.test/a b/{c}|\"é\"?q=<1>^`\\%zz") ==
            "http://r/v2/publish/http://x.test/a%20b/%7Bc%7D%7C%22%C3%A9%22?q=%3C1%3E%5E%60%5C%25zz");
    }
  }

  TEST_CASE("publish_headers") {
    SUBCASE("defaults: content type and method only") {
      CHECK(publish_headers({}) ==
            header_list{{"Content-Type", "application/json"}, {"Upstash-Method", "POST"}});
    }
    SUBCASE("an empty content type sends none, an empty method sends POST") {
      publish_options o;
      o.content_type.clear();
      o.method.clear();
      CHECK(publish_headers(o) == header_list{{"Upstash-Method", "POST"}});
    }
    SUBCASE("every option") {
      CHECK(publish_headers(every_option()) ==
            header_list{
                {"Content-Type", "text/plain;charset=UTF-8"},
                {"Upstash-Method", "PUT"},
                {"Upstash-Delay", "10s"},
                {"Upstash-Not-Before", "1900000000"},
                {"Upstash-Retries", "2"},
                {"Upstash-Retry-Delay", "1000 * (1 + retried)"},
                {"Upstash-Callback", "http://127.0.0.1:3004/api/webhook?cb=1"},
                {"Upstash-Failure-Callback", "http://127.0.0.1:3004/api/webhook?dlq=1"},
                {"Upstash-Deduplication-Id", "evt-42"},
                {"Upstash-Content-Based-Deduplication", "true"},
                {"Upstash-Timeout", "30s"},
                {"Upstash-Label", "a,b"},
                {"Upstash-Forward-X-Correlation-Id", "chk_1"},
                {"Upstash-Forward-Authorization", "Bearer downstream"},
            });
    }
    SUBCASE("zero retries and zero delay are sent") {
      publish_options o;
      o.retries = 0;
      o.delay = std::chrono::seconds(0);
      const auto h = publish_headers(o);
      CHECK(h.at(2) == std::pair<std::string, std::string>{"Upstash-Delay", "0s"});
      CHECK(h.at(3) == std::pair<std::string, std::string>{"Upstash-Retries", "0"});
    }
  }

  TEST_CASE("build_publish_request") {
    publisher_config cfg;
    cfg.qstash_url = "http://127.0.0.1:8080";
    cfg.qstash_token = "tok";
    cfg.timeout = std::chrono::milliseconds(1234);
    const auto req = build_publish_request(cfg, "http://127.0.0.1:3001/api/webhook", R"({"n":1})", {});
    CHECK(req.method == boost::beast::http::verb::post);
    CHECK(req.url == "http://127.0.0.1:8080/v2/publish/http://127.0.0.1:3001/api/webhook");
    CHECK(req.headers == header_list{{"Authorization", "Bearer tok"},
                                     {"Content-Type", "application/json"},
                                     {"Upstash-Method", "POST"}});
    CHECK(req.body == R"({"n":1})");
    CHECK(req.timeout == std::chrono::milliseconds(1234));
  }

  TEST_CASE("publisher_config::from_settings") {
    shopd::config::settings s;
    s.qstash_url = "https://qstash.upstash.io/";
    s.qstash_token = "secret";
    const auto cfg = publisher_config::from_settings(s);
    CHECK(cfg.qstash_url == "https://qstash.upstash.io");
    CHECK(cfg.qstash_token == "secret");
  }

  TEST_CASE("batch_body and build_batch_request") {
    std::vector<batch_entry> entries(2);
    entries[0].destination = "http://127.0.0.1:3002/api/webhook";
    entries[0].body = R"({"n":1})";
    entries[1].destination = "grp";
    entries[1].options.content_type = "text/plain";
    entries[1].options.forward_headers = {{"X-H", "1"}};
    entries[1].options.delay = std::chrono::seconds(5);
    entries[1].queue = "q1";

    SUBCASE("body: lowercase header keys, body as a JSON string, absent when none") {
      const auto doc = boost::json::parse(batch_body(entries));
      const auto expected = boost::json::parse(R"([
        {"destination":"http://127.0.0.1:3002/api/webhook",
         "headers":{"content-type":"application/json","upstash-method":"POST"},
         "body":"{\"n\":1}"},
        {"destination":"grp",
         "headers":{"content-type":"text/plain","upstash-method":"POST","upstash-delay":"5s","upstash-forward-x-h":"1"},
         "queue":"q1"}
      ])");
      CHECK(doc == expected);
    }

    SUBCASE("request") {
      publisher_config cfg;
      cfg.qstash_url = "http://127.0.0.1:8080/";
      cfg.qstash_token = "tok";
      const auto req = build_batch_request(cfg, entries);
      CHECK(req.method == boost::beast::http::verb::post);
      CHECK(req.url == "http://127.0.0.1:8080/v2/batch");
      CHECK(req.headers ==
            header_list{{"Authorization", "Bearer tok"}, {"Content-Type", "application/json"}});
      CHECK(req.body == batch_body(entries));
    }

    SUBCASE("an empty batch is an empty array") {
      CHECK(batch_body({}) == "[]");
    }
  }

  TEST_CASE("parse_publish_response") {
    SUBCASE("URL destination") {
      const auto r =
          parse_publish_response(answer(200, R"({"messageId":"msg_1","url":"http://x/"})"), "publish x");
      REQUIRE(r.has_value());
      CHECK(r->status == 200);
      CHECK(r->message_id() == "msg_1");
      CHECK(r->messages.at(0).url == "http://x/");
      CHECK_FALSE(r->deduplicated());
    }
    SUBCASE("URL group: an array") {
      const auto r = parse_publish_response(
          answer(201, R"([{"messageId":"msg_1","url":"http://a/"},{"messageId":"msg_2","url":"http://b/"}])"),
          "p");
      REQUIRE(r.has_value());
      REQUIRE(r->messages.size() == 2);
      CHECK(r->messages[1].message_id == "msg_2");
      CHECK(r->messages[1].url == "http://b/");
    }
    SUBCASE("deduplicated: 202") {
      const auto r = parse_publish_response(answer(202, R"({"messageId":"msg_1","deduplicated":true})"), "p");
      REQUIRE(r.has_value());
      CHECK(r->status == 202);
      CHECK(r->deduplicated());
    }
    SUBCASE("rejections: 4xx final, 5xx/408/429 retryable") {
      for (const auto& [status, retryable] : std::vector<std::pair<unsigned, bool>>{{400, false},
                                                                                    {401, false},
                                                                                    {404, false},
                                                                                    {408, true},
                                                                                    {412, false},
                                                                                    {429, true},
                                                                                    {500, true},
                                                                                    {502, true},
                                                                                    {503, true}}) {
        CAPTURE(status);
        const auto r = parse_publish_response(answer(status, R"({"error":"nope"})"), "publish grp");
        REQUIRE(r.has_error());
        CHECK(r.error().kind == publish_failure::rejected);
        CHECK(r.error().status == status);
        CHECK(r.error().retryable == retryable);
        CHECK(r.error().body == R"({"error":"nope"})");
        CHECK(r.error().message == "publish grp: " + std::to_string(status) + R"(: {"error":"nope"})");
      }
    }
    SUBCASE("error messages stay on one bounded line") {
      const auto r = parse_publish_response(answer(502, "<html>\r\n" + std::string(400, 'x')), "p");
      REQUIRE(r.has_error());
      CHECK(r.error().message.find('\n') == std::string::npos);
      CHECK(r.error().message.size() < 330);
      CHECK(r.error().body.size() == 408);  // the body itself is kept whole
    }
    SUBCASE("2xx that is not what QStash answers") {
      for (const std::string body :
           {"<html>ok</html>", "{}", "[]", R"({"messageId":7})", R"([{"messageId":"a"},1])"}) {
        CAPTURE(body);
        const auto r = parse_publish_response(answer(200, body), "p");
        REQUIRE(r.has_error());
        CHECK(r.error().kind == publish_failure::bad_response);
        CHECK(r.error().retryable);
      }
    }
    SUBCASE("value() throws the message") {
      const auto r = parse_publish_response(answer(401, "bad token"), "publish x");
      CHECK_THROWS_WITH_AS((void)r.value(), "publish x: 401: bad token", std::runtime_error);
    }
  }

  TEST_CASE("parse_batch_response") {
    SUBCASE("one result per entry, URL groups as arrays") {
      const auto r = parse_batch_response(
          answer(200,
                 R"([{"messageId":"m1"},[{"messageId":"m2","url":"u2"},{"messageId":"m3","url":"u3"}]])"),
          2);
      REQUIRE(r.has_value());
      REQUIRE(r->size() == 2);
      REQUIRE((*r)[0].has_value());
      CHECK((*r)[0]->message_id() == "m1");
      REQUIRE((*r)[1].has_value());
      CHECK((*r)[1]->messages.size() == 2);
      CHECK((*r)[1]->messages[1].url == "u3");
    }
    SUBCASE("a failing element") {
      const auto r =
          parse_batch_response(answer(200, R"([{"messageId":"m1"},{"error":"invalid destination"}])"), 2);
      REQUIRE(r.has_value());
      CHECK((*r)[0].has_value());
      REQUIRE((*r)[1].has_error());
      CHECK((*r)[1].error().kind == publish_failure::entry_failed);
      CHECK((*r)[1].error().message == "batch entry 1: invalid destination");
      CHECK_FALSE((*r)[1].error().retryable);
    }
    SUBCASE("a single object answers a one-entry batch") {
      const auto r = parse_batch_response(answer(200, R"({"messageId":"m1"})"), 1);
      REQUIRE(r.has_value());
      CHECK(r->at(0)->message_id() == "m1");
    }
    SUBCASE("a count mismatch is a bad response") {
      const auto r = parse_batch_response(answer(200, R"([{"messageId":"m1"}])"), 2);
      REQUIRE(r.has_error());
      CHECK(r.error().kind == publish_failure::bad_response);
      CHECK(r.error().message ==
            R"(batch: unexpected 200 answer (1 results for 2 messages): [{"messageId":"m1"}])");
    }
    SUBCASE("a rejection of the whole batch") {
      const auto r = parse_batch_response(answer(503, "busy"), 2);
      REQUIRE(r.has_error());
      CHECK(r.error().kind == publish_failure::rejected);
      CHECK(r.error().retryable);
    }
  }

  TEST_CASE("transport_failure") {
    shopd::http::client_error refused{make_error_code(boost::system::errc::connection_refused),
                                      shopd::http::client_stage::connect,
                                      "connect 127.0.0.1:9: Connection refused"};
    const auto e = transport_failure(refused, "publish grp");
    CHECK(e.kind == publish_failure::transport);
    CHECK(e.retryable);
    CHECK(e.status == 0);
    CHECK(e.transport_error == refused.code);
    CHECK(e.message == "publish grp: connect 127.0.0.1:9: Connection refused");

    shopd::http::client_error invalid{make_error_code(boost::system::errc::invalid_argument),
                                      shopd::http::client_stage::request,
                                      "request: invalid header name \"a b\""};
    const auto i = transport_failure(invalid, "publish grp");
    CHECK(i.kind == publish_failure::invalid);
    CHECK_FALSE(i.retryable);
  }
}
