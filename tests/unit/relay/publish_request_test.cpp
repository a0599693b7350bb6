#include "shopd/relay/publish_request.hpp"

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

using namespace shopd::relay;

namespace {

constexpr std::int64_t now = 1'700'000'000'000;
using header_pairs = std::vector<std::pair<std::string, std::string>>;

std::vector<header_view> views(const header_pairs& h) {
  std::vector<header_view> out;
  for (const auto& [n, v] : h) out.push_back({n, v});
  return out;
}

result<message_spec> publish(std::string_view target, const header_pairs& headers = {},
                             std::string_view body = "", const message_limits& limits = {}) {
  auto v = views(headers);
  return parse_publish({.target = target, .headers = v, .body = body, .caller_ip = "10.0.0.7", .now_ms = now},
                       limits);
}

message_spec publish_ok(std::string_view target, const header_pairs& headers = {}, std::string_view body = "",
                        const message_limits& limits = {}) {
  auto r = publish(target, headers, body, limits);
  if (!r) FAIL("publish failed: ", r.error().message);
  return std::move(*r);
}

error publish_error(std::string_view target, const header_pairs& headers = {},
                    const message_limits& limits = {}) {
  auto r = publish(target, headers, "", limits);
  REQUIRE_FALSE(r.has_value());
  return r.error();
}

error header_error(const header_pairs& headers, const message_limits& limits = {}) {
  auto e = publish_error("/v2/publish/http://h/p", headers, limits);
  CHECK(e.code == errc::invalid_header);
  return e;
}

constexpr std::string_view webhook = "http://127.0.0.1:3001/api/webhook";

}  // namespace

TEST_SUITE("relay.publish_request") {
  TEST_CASE("relay.publish_request: destination from the raw request target") {
    SUBCASE("a plain URL, with defaults for everything") {
      auto m = publish_ok("/v2/publish/http://127.0.0.1:3001/api/webhook", {}, "{\"hello\":\"world\"}");
      CHECK(m.kind == message_kind::message);
      CHECK(m.destination == webhook);
      CHECK(m.method == "POST");
      CHECK(m.body == "{\"hello\":\"world\"}");
      CHECK(m.headers.empty());
      CHECK(m.max_retries == 3);
      CHECK(m.timeout_ms == 900'000);
      CHECK_FALSE(m.retry_delay_expr.has_value());
      CHECK_FALSE(m.callback.has_value());
      CHECK_FALSE(m.failure_callback.has_value());
      CHECK_FALSE(m.dedup_id.has_value());
      CHECK(m.options == message_options{});
      CHECK(m.caller_ip == "10.0.0.7");
      CHECK(m.not_before_ms == now);
      CHECK(m.created_at_ms == now);
      CHECK(m.ignored_headers.empty());
    }
    SUBCASE("the destination's own query survives, QStash's parameters do not") {
      auto m = publish_ok(
          "/v2/publish/http://127.0.0.1:3001/api/webhook?a=1&upstash-retries=2&b=x%20y&qstash_token=tok&c");
      CHECK(m.destination == "http://127.0.0.1:3001/api/webhook?a=1&b=x%20y&c");
      CHECK(m.max_retries == 2);
    }
    SUBCASE("only QStash parameters: no '?' is left") {
      auto m = publish_ok("/v2/publish/http://h/p?QSTASH_TOKEN=t&Upstash-Delay=10s");
      CHECK(m.destination == "http://h/p");
      CHECK(m.not_before_ms == now + 10'000);
    }
    SUBCASE("a query left untouched is kept byte for byte") {
      CHECK(publish_ok("/v2/publish/https://h/p?x=%2F&&y").destination == "https://h/p?x=%2F&&y");
      CHECK(publish_ok("/v2/publish/https://h/p?").destination == "https://h/p?");
    }
    SUBCASE("double slashes, ports, IPv6 and upper-case schemes are kept") {
      CHECK(publish_ok("/v2/publish/http://h/a//b").destination == "http://h/a//b");
      CHECK(publish_ok("/v2/publish/HTTPS://Example.com:8443/x").destination == "HTTPS://Example.com:8443/x");
      CHECK(publish_ok("/v2/publish/http://[::1]:3001/api").destination == "http://[::1]:3001/api");
    }
    SUBCASE("a percent-encoded destination is decoded") {
      CHECK(publish_ok("/v2/publish/https%3A%2F%2Fexample.com%2Fhook%3Fx%3D1").destination ==
            "https://example.com/hook?x=1");
      CHECK(publish_ok("/v2/publish/http%3a%2f%2fh%2fp").destination == "http://h/p");
      auto m = publish_ok("/v2/publish/https%3A%2F%2Fexample.com%2Fhook%3Fx%3D1?y=2&upstash-retries=1");
      CHECK(m.destination == "https://example.com/hook?x=1&y=2");
      CHECK(m.max_retries == 1);
      CHECK(publish_ok("/v2/publish/https%3A%2F%2Fexample.com%2Fhook?y=2").destination ==
            "https://example.com/hook?y=2");
      auto bad = publish_error("/v2/publish/http%3A%2F%2Fh%2");
      CHECK(bad.code == errc::invalid_destination);
      CHECK(bad.message == "invalid destination url: invalid percent-encoding");
    }
    SUBCASE("no http(s) scheme: QStash's exact error") {
      for (std::string_view target :
           {"/v2/publish/127.0.0.1:3001/api/webhook", "/v2/publish/ftp://h/x", "/v2/publish/",
            "/v2/publish/httpx://h", "/v2/publish/http:/h/p", "/v2/publish//http://h"}) {
        INFO("target: ", std::string(target));
        auto e = publish_error(target);
        CHECK(e.code == errc::invalid_destination);
        CHECK(e.message == "invalid destination url: endpoint has invalid scheme, add http:// or https://");
        CHECK(e.field == "destination");
      }
    }
    SUBCASE("no host") {
      for (std::string_view target :
           {"/v2/publish/http://", "/v2/publish/http:///path", "/v2/publish/https://?a=1"}) {
        INFO("target: ", std::string(target));
        auto e = publish_error(target);
        CHECK(e.code == errc::invalid_destination);
        CHECK(e.message == "invalid destination url: endpoint has no host");
      }
    }
    SUBCASE("not a URL at all") {
      auto e = publish_error("/v2/publish/http://h/p q");
      CHECK(e.code == errc::invalid_destination);
      CHECK(e.message.starts_with("invalid destination url: "));
    }
    SUBCASE("URL groups are refused clearly") {
      auto e = publish_error("/v2/publish/my-group.v1");
      CHECK(e.code == errc::url_groups_unsupported);
      CHECK(e.message ==
            "url groups are not supported by this relay: publish to an http:// or https:// url, not "
            "'my-group.v1'");
      CHECK(e.field == "destination");
    }
    SUBCASE("enqueue: the queue name, then the destination") {
      auto m = publish_ok("/v2/enqueue/q1/http://h/p?upstash-retries=0");
      CHECK(m.options.queue == "q1");
      CHECK(m.destination == "http://h/p");
      CHECK(m.max_retries == 0);
      for (std::string_view target : {"/v2/enqueue/q1", "/v2/enqueue//http://h/p",
                                      "/v2/enqueue/q%20x/http://h/p", "/v2/enqueue/q:x/http://h/p"}) {
        INFO("target: ", std::string(target));
        auto e = publish_error(target);
        CHECK(e.code == errc::invalid_target);
        CHECK(e.field == "queue");
      }
    }
    SUBCASE("other targets") {
      auto e = publish_error("/v2/messages/http://h/p");
      CHECK(e.code == errc::invalid_target);
      CHECK(e.message == "expected /v2/publish/{destination} or /v2/enqueue/{queue}/{destination}");
    }
    SUBCASE("parse_publish_target reports the removed options") {
      auto t =
          parse_publish_target("/v2/publish/http://h/p?upstash-retry-delay=1000%20*%20retried&k=v").value();
      CHECK(t.destination == "http://h/p?k=v");
      REQUIRE(t.options.size() == 1);
      CHECK(t.options[0] == header{"upstash-retry-delay", "1000 * retried"});
      auto bad = parse_publish_target("/v2/publish/http://h/p?upstash-delay=%zz");
      REQUIRE_FALSE(bad.has_value());
      CHECK(bad.error().code == errc::invalid_header);
      CHECK(bad.error().field == "Upstash-Delay");
    }
  }

  TEST_CASE("relay.publish_request: every header, as the JS SDK sends them (lower case)") {
    const header_pairs h{
        {"host", "127.0.0.1:8080"},
        {"authorization", "Bearer secret"},
        {"content-type", "application/json"},
        {"user-agent", "node"},
        {"upstash-method", "PUT"},
        {"upstash-delay", "10s"},
        {"upstash-retries", "2"},
        {"upstash-retry-delay", "1000 * (1 + retried)"},
        {"upstash-callback", "http://127.0.0.1:3004/cb"},
        {"upstash-failure-callback", "https://example.com/failed"},
        {"upstash-deduplication-id", "dedup-1"},
        {"upstash-timeout", "30s"},
        {"upstash-label", "a,b"},
        {"upstash-flow-control-key", "k"},
        {"upstash-flow-control-value", "parallelism=2, rate=5, period=1m"},
        {"upstash-forward-x-h", "1"},
        {"upstash-forward-authorization", "Bearer downstream"},
        {"upstash-telemetry-sdk", "upstash-qstash-js@2.12.0"},
        {"upstash-telemetry-runtime", "node@v20"},
        {"upstash-callback-method", "patch"},
        {"upstash-callback-timeout", "5s"},
        {"upstash-callback-retries", "1"},
        {"upstash-callback-retry-delay", "500"},
        {"upstash-callback-delay", "2s"},
        {"upstash-callback-forward-x-cb", "yes"},
        {"upstash-failure-callback-method", "PUT"},
        {"upstash-failure-callback-timeout", "1m"},
        {"upstash-failure-callback-retries", "0"},
        {"upstash-failure-callback-retry-delay", "max(100, retried)"},
        {"upstash-failure-callback-delay", "1h"},
        {"upstash-failure-callback-forward-x-fail", "1"},
        {"upstash-failure-callback-forward-x-fail", "2"},
    };
    auto m = publish_ok("/v2/publish/http://127.0.0.1:3001/api/webhook?a=1", h, "{\"n\":1}");
    CHECK(m.destination == "http://127.0.0.1:3001/api/webhook?a=1");
    CHECK(m.method == "PUT");
    CHECK(m.not_before_ms == now + 10'000);
    CHECK(m.max_retries == 2);
    CHECK(m.retry_delay_expr == "1000 * (1 + retried)");
    CHECK(m.timeout_ms == 30'000);
    CHECK(m.callback == "http://127.0.0.1:3004/cb");
    CHECK(m.failure_callback == "https://example.com/failed");
    CHECK(m.dedup_id == "dedup-1");
    CHECK(m.body == "{\"n\":1}");
    // Content-Type plus the forwarded headers, canonical; never Authorization itself, Host, telemetry...
    CHECK(m.headers == header_list{{"Content-Type", "application/json"},
                                   {"X-H", "1"},
                                   {"Authorization", "Bearer downstream"}});
    CHECK(m.options.labels == std::vector<std::string>{"a", "b"});
    CHECK(m.options.callback == callback_config{.method = "PATCH",
                                                .timeout_ms = 5'000,
                                                .retries = 1,
                                                .retry_delay_expr = "500",
                                                .delay_ms = 2'000,
                                                .forward_headers = {{"X-Cb", "yes"}}});
    CHECK(m.options.failure_callback ==
          callback_config{.method = "PUT",
                          .timeout_ms = 60'000,
                          .retries = 0,
                          .retry_delay_expr = "max(100, retried)",
                          .delay_ms = 3'600'000,
                          .forward_headers = {{"X-Fail", "1"}, {"X-Fail", "2"}}});
    CHECK(m.ignored_headers ==
          std::vector<std::string>{"upstash-flow-control-key", "upstash-flow-control-value"});
  }

  TEST_CASE("relay.publish_request: header names and method values in any case") {
    auto m = publish_ok("/v2/publish/http://h/p", {{"Upstash-Method", "delete"},
                                                   {"UPSTASH-RETRIES", "1"},
                                                   {"Content-Type", "text/plain"},
                                                   {"Upstash-Forward-test-header", "v"}});
    CHECK(m.method == "DELETE");
    CHECK(m.max_retries == 1);
    CHECK(m.headers == header_list{{"Content-Type", "text/plain"}, {"Test-Header", "v"}});
  }

  TEST_CASE("relay.publish_request: delay and not-before") {
    SUBCASE("Upstash-Not-Before (seconds) wins over Upstash-Delay") {
      auto m =
          publish_ok("/v2/publish/http://h/p",
                     {{"upstash-delay", "10s"}, {"upstash-not-before", std::to_string(now / 1000 + 100)}});
      CHECK(m.not_before_ms == now + 100'000);
    }
    SUBCASE("a not-before in the past is simply due") {
      CHECK(publish_ok("/v2/publish/http://h/p", {{"upstash-not-before", "1"}}).not_before_ms == 1000);
    }
    SUBCASE("the maximum delay") {
      CHECK(publish_ok("/v2/publish/http://h/p", {{"upstash-delay", "7d"}}).not_before_ms ==
            now + 7 * one_day_ms);
      auto e = header_error({{"upstash-delay", "8d"}});
      CHECK(e.message == "Upstash-Delay: '8d' is longer than the maximum delay of 604800s");
      CHECK(e.field == "Upstash-Delay");
      auto nb = header_error({{"upstash-not-before", std::to_string(now / 1000 + 8 * 86'400)}});
      CHECK(nb.field == "Upstash-Not-Before");
      CHECK(nb.message.ends_with("is further ahead than the maximum delay of 604800s"));
      message_limits year{.max_delay_ms = 365 * one_day_ms};
      CHECK(publish_ok("/v2/publish/http://h/p", {{"upstash-delay", "8d"}}, "", year).not_before_ms ==
            now + 8 * one_day_ms);
    }
    SUBCASE("a bad delay is an error even when not-before wins") {
      auto e = header_error({{"upstash-delay", "soon"}, {"upstash-not-before", "1"}});
      CHECK(e.field == "Upstash-Delay");
    }
  }

  TEST_CASE("relay.publish_request: retries and timeouts against the limits") {
    message_limits limits{
        .default_retries = 5, .max_retries = 10, .default_timeout_ms = 60'000, .max_timeout_ms = 120'000};
    CHECK(publish_ok("/v2/publish/http://h/p", {}, "", limits).max_retries == 5);
    CHECK(publish_ok("/v2/publish/http://h/p", {{"upstash-retries", "100"}}, "", limits).max_retries == 10);
    CHECK(publish_ok("/v2/publish/http://h/p", {{"upstash-retries", "99999999999999999999999"}}, "", limits)
              .max_retries == 10);
    CHECK(publish_ok("/v2/publish/http://h/p", {{"upstash-retries", "0"}}, "", limits).max_retries == 0);
    CHECK(publish_ok("/v2/publish/http://h/p", {}, "", limits).timeout_ms == 60'000);
    CHECK(publish_ok("/v2/publish/http://h/p", {{"upstash-timeout", "1h"}}, "", limits).timeout_ms ==
          120'000);
    CHECK(publish_ok("/v2/publish/http://h/p", {{"upstash-timeout", "30"}}, "", limits).timeout_ms == 30'000);
    CHECK(publish_ok("/v2/publish/http://h/p", {{"upstash-callback-retries", "50"}}, "", limits)
              .options.callback.retries == 10);
    message_limits odd{.default_retries = 9, .max_retries = 2};
    CHECK(publish_ok("/v2/publish/http://h/p", {}, "", odd).max_retries == 2);
  }

  TEST_CASE("relay.publish_request: every bad value names its header") {
    struct bad_case {
      header_pairs headers;
      std::string field;
      std::string message;
    };
    const std::vector<bad_case> cases{
        {{{"upstash-method", "FOO"}},
         "Upstash-Method",
         "Upstash-Method: unsupported method 'FOO' (use GET, POST, PUT, PATCH or DELETE)"},
        {{{"upstash-method", "HEAD"}}, "Upstash-Method", ""},
        {{{"upstash-retries", "-1"}},
         "Upstash-Retries",
         "Upstash-Retries: must be a non-negative integer, got '-1'"},
        {{{"upstash-retries", "x"}}, "Upstash-Retries", ""},
        {{{"upstash-retries", "1.5"}}, "Upstash-Retries", ""},
        {{{"upstash-retries", ""}}, "Upstash-Retries", ""},
        {{{"upstash-retry-delay", "foo"}},
         "Upstash-Retry-Delay",
         "Upstash-Retry-Delay: unknown identifier 'foo' at position 1"},
        {{{"upstash-timeout", "10x"}},
         "Upstash-Timeout",
         "Upstash-Timeout: invalid duration '10x': unknown unit 'x' (use d, h, m or s)"},
        {{{"upstash-timeout", "0s"}}, "Upstash-Timeout", "Upstash-Timeout: must be greater than zero"},
        {{{"upstash-delay", "abc"}}, "Upstash-Delay", ""},
        {{{"upstash-not-before", "-5"}},
         "Upstash-Not-Before",
         "Upstash-Not-Before: must be a Unix time in seconds, got '-5'"},
        {{{"upstash-not-before", "soon"}}, "Upstash-Not-Before", ""},
        {{{"upstash-callback", "ftp://x/y"}},
         "Upstash-Callback",
         "Upstash-Callback: invalid url: endpoint has invalid scheme, add http:// or https://"},
        {{{"upstash-callback", "http://"}},
         "Upstash-Callback",
         "Upstash-Callback: invalid url: endpoint has no host"},
        {{{"upstash-failure-callback", "grp"}},
         "Upstash-Failure-Callback",
         "Upstash-Failure-Callback: invalid url: endpoint has invalid scheme, add http:// or https://"},
        {{{"upstash-callback-method", "TRACE"}}, "Upstash-Callback-Method", ""},
        {{{"upstash-callback-timeout", "x"}}, "Upstash-Callback-Timeout", ""},
        {{{"upstash-callback-retries", "x"}}, "Upstash-Callback-Retries", ""},
        {{{"upstash-callback-retry-delay", "1 +"}}, "Upstash-Callback-Retry-Delay", ""},
        {{{"upstash-callback-delay", "8d"}}, "Upstash-Callback-Delay", ""},
        {{{"upstash-failure-callback-method", "x"}}, "Upstash-Failure-Callback-Method", ""},
        {{{"upstash-failure-callback-timeout", "0"}}, "Upstash-Failure-Callback-Timeout", ""},
        {{{"upstash-failure-callback-retries", "-1"}}, "Upstash-Failure-Callback-Retries", ""},
        {{{"upstash-failure-callback-retry-delay", "x"}}, "Upstash-Failure-Callback-Retry-Delay", ""},
        {{{"upstash-failure-callback-delay", "1y"}}, "Upstash-Failure-Callback-Delay", ""},
        {{{"upstash-deduplication-id", "a:b"}},
         "Upstash-Deduplication-Id",
         "Upstash-Deduplication-Id: must not contain ':' or whitespace, got 'a:b'"},
        {{{"upstash-deduplication-id", "a b"}}, "Upstash-Deduplication-Id", ""},
        {{{"upstash-deduplication-id", "a\tb"}}, "Upstash-Deduplication-Id", ""},
        {{{"upstash-deduplication-id", ""}},
         "Upstash-Deduplication-Id",
         "Upstash-Deduplication-Id: must not be empty"},
        {{{"upstash-deduplication-id", std::string(257, 'x')}},
         "Upstash-Deduplication-Id",
         "Upstash-Deduplication-Id: longer than 256 characters"},
        {{{"upstash-content-based-deduplication", "yes"}},
         "Upstash-Content-Based-Deduplication",
         "Upstash-Content-Based-Deduplication: must be true or false, got 'yes'"},
        {{{"upstash-forward-", "x"}},
         "Upstash-Forward-",
         "Upstash-Forward-: missing or invalid header name after the prefix"},
        {{{"upstash-forward-bad name", "x"}}, "Upstash-Forward-bad name", ""},
        {{{"upstash-forward-host", "evil"}},
         "Upstash-Forward-Host",
         "Upstash-Forward-Host: 'Host' is set by the relay and cannot be forwarded"},
        {{{"upstash-forward-content-length", "1"}}, "Upstash-Forward-Content-Length", ""},
        {{{"upstash-forward-content-type", "text/plain"}}, "Upstash-Forward-Content-Type", ""},
        {{{"upstash-forward-upstash-signature", "x.y.z"}}, "Upstash-Forward-Upstash-Signature", ""},
        {{{"upstash-forward-x", "a\r\nInjected: 1"}},
         "Upstash-Forward-X",
         "Upstash-Forward-X: value contains a control character"},
        {{{"upstash-callback-forward-transfer-encoding", "chunked"}},
         "Upstash-Callback-Forward-Transfer-Encoding",
         ""},
        {{{"upstash-failure-callback-forward-x", std::string("a\0b", 3)}},
         "Upstash-Failure-Callback-Forward-X",
         ""},
        {{{"upstash-label", "a\x01"}}, "Upstash-Label", "Upstash-Label: contains a control character"},
        {{{"content-type", "text/plain\r\nX: 1"}}, "Content-Type", ""},
        {{{"upstash-retries", "1"}, {"Upstash-Retries", "2"}},
         "Upstash-Retries",
         "Upstash-Retries: given more than once"},
    };
    for (const auto& c : cases) {
      INFO("headers: ", c.headers.front().first, ": ", c.headers.front().second);
      auto e = header_error(c.headers);
      CHECK(e.field == c.field);
      CHECK(e.message.starts_with(c.field + ": "));
      if (!c.message.empty()) CHECK(e.message == c.message);
    }
  }

  TEST_CASE("relay.publish_request: query-parameter forms") {
    SUBCASE("options from the query string, percent-decoded") {
      auto m = publish_ok(
          "/v2/publish/http://h/p?upstash-retries=3&upstash-delay=100s&upstash-forward-x-token=abc"
          "&upstash-retry-delay=1000%20*%20retried&upstash-method=PUT&upstash-label=x,y");
      CHECK(m.destination == "http://h/p");
      CHECK(m.max_retries == 3);
      CHECK(m.not_before_ms == now + 100'000);
      CHECK(m.headers == header_list{{"X-Token", "abc"}});
      CHECK(m.retry_delay_expr == "1000 * retried");
      CHECK(m.method == "PUT");
      CHECK(m.options.labels == std::vector<std::string>{"x", "y"});
    }
    SUBCASE("a header beats the same query parameter") {
      auto m = publish_ok("/v2/publish/http://h/p?upstash-retries=4&upstash-forward-x=q",
                          {{"Upstash-Retries", "1"}, {"Upstash-Forward-X", "h"}});
      CHECK(m.max_retries == 1);
      CHECK(m.headers == header_list{{"X", "h"}});
    }
    SUBCASE("bad query values are reported under the header's name") {
      auto e = publish_error("/v2/publish/http://h/p?upstash-retries=many");
      CHECK(e.code == errc::invalid_header);
      CHECK(e.field == "Upstash-Retries");
      auto twice = publish_error("/v2/publish/http://h/p?upstash-retries=1&upstash-retries=2");
      CHECK(twice.message == "Upstash-Retries: given more than once");
    }
  }

  TEST_CASE("relay.publish_request: deduplication") {
    SUBCASE("content-based ids: a fixed encoding, hex SHA-256") {
      // sha256 of '24:https://example.com/hook7:{"a":1}16:application/json1:23:x-a1:13:x-b1:2'
      CHECK(content_dedup_id("https://example.com/hook", "{\"a\":1}", "application/json",
                             header_list{{"X-B", "2"}, {"x-a", "1"}}) ==
            "0cd44b949b9e6b996c8a0e59ec4df9c482b98348e5b518dc4c11b268c13d1ca4");
    }
    SUBCASE("from the headers") {
      const header_pairs base{{"content-type", "application/json"},
                              {"upstash-content-based-deduplication", "true"},
                              {"upstash-forward-x-b", "2"},
                              {"upstash-forward-x-a", "1"}};
      auto m = publish_ok("/v2/publish/https://example.com/hook", base, "{\"a\":1}");
      CHECK(m.dedup_id == "0cd44b949b9e6b996c8a0e59ec4df9c482b98348e5b518dc4c11b268c13d1ca4");

      auto id_of = [](const header_pairs& h, std::string_view body, std::string_view target) {
        return publish_ok(target, h, body).dedup_id.value_or("");
      };
      const std::string_view target = "/v2/publish/https://example.com/hook";
      header_pairs reordered{base[3], base[2], base[1], base[0]};
      CHECK(id_of(reordered, "{\"a\":1}", target) == *m.dedup_id);
      CHECK(id_of(base, "{\"a\":2}", target) != *m.dedup_id);
      CHECK(id_of(base, "{\"a\":1}", "/v2/publish/https://example.com/hook2") != *m.dedup_id);
      header_pairs other_type = base;
      other_type[0].second = "text/plain";
      CHECK(id_of(other_type, "{\"a\":1}", target) != *m.dedup_id);
      header_pairs other_value = base;
      other_value[2].second = "3";
      CHECK(id_of(other_value, "{\"a\":1}", target) != *m.dedup_id);
      header_pairs upper = base;
      upper[1].second = "TRUE";
      CHECK(id_of(upper, "{\"a\":1}", target) == *m.dedup_id);
    }
    SUBCASE("an explicit id wins; false means none") {
      CHECK(publish_ok("/v2/publish/http://h/p", {{"upstash-deduplication-id", "order-42"},
                                                  {"upstash-content-based-deduplication", "true"}})
                .dedup_id == "order-42");
      CHECK_FALSE(publish_ok("/v2/publish/http://h/p", {{"upstash-content-based-deduplication", "false"}})
                      .dedup_id.has_value());
    }
  }

  TEST_CASE("relay.publish_request: labels") {
    auto m = publish_ok("/v2/publish/http://h/p", {{"upstash-label", " a, b,,c "}, {"Upstash-Label", "d"}});
    CHECK(m.options.labels == std::vector<std::string>{"a", "b", "c", "d"});
  }

  TEST_CASE("relay.publish_request: /v2/batch") {
    SUBCASE("elements succeed or fail on their own, in input order") {
      const std::string body = R"([
        {"destination":"http://h/1","headers":{"content-type":"application/json","upstash-method":"POST",
          "upstash-forward-x-h":"1","upstash-telemetry-sdk":"js"},"body":"{\"n\":1}"},
        {"destination":"http://h/2?upstash-retries=9","queue":"q1","body":"plain"},
        {"destination":"grp","body":"x"},
        {"destination":"http://h/3","headers":{"upstash-retries":"x"}},
        {"destination":5},
        "not an object",
        {"destination":"http://h/4","headers":{"a":1}},
        {"destination":"http://h/5","body":7},
        {"destination":"http://h/6","queue":"bad queue"},
        {"destination":"http://h/7","headers":[]},
        {"destination":"http://h/8","headers":null,"body":null,"queue":null,"extra":true}
      ])";
      auto r = parse_batch(body, "10.0.0.7", now, {});
      REQUIRE(r.has_value());
      const auto& items = *r;
      REQUIRE(items.size() == 11);

      REQUIRE(items[0].has_value());
      CHECK(items[0]->destination == "http://h/1");
      CHECK(items[0]->body == "{\"n\":1}");
      CHECK(items[0]->headers == header_list{{"Content-Type", "application/json"}, {"X-H", "1"}});
      CHECK(items[0]->caller_ip == "10.0.0.7");
      CHECK(items[0]->created_at_ms == now);

      REQUIRE(items[1].has_value());
      CHECK(items[1]->destination == "http://h/2?upstash-retries=9");  // verbatim in batch
      CHECK(items[1]->max_retries == 3);
      CHECK(items[1]->options.queue == "q1");
      CHECK(items[1]->body == "plain");

      REQUIRE_FALSE(items[2].has_value());
      CHECK(items[2].error().code == errc::url_groups_unsupported);

      REQUIRE_FALSE(items[3].has_value());
      CHECK(items[3].error().field == "Upstash-Retries");

      REQUIRE_FALSE(items[4].has_value());
      CHECK(items[4].error().message == "'destination' must be a string");
      REQUIRE_FALSE(items[5].has_value());
      CHECK(items[5].error().message == "each batch element must be a JSON object");
      REQUIRE_FALSE(items[6].has_value());
      CHECK(items[6].error().message == "headers: 'a' must be a string");
      REQUIRE_FALSE(items[7].has_value());
      CHECK(items[7].error().message == "'body' must be a string");
      REQUIRE_FALSE(items[8].has_value());
      CHECK(items[8].error().field == "queue");
      REQUIRE_FALSE(items[9].has_value());
      CHECK(items[9].error().field == "headers");
      REQUIRE(items[10].has_value());
      CHECK(items[10]->body.empty());
      CHECK_FALSE(items[10]->options.queue.has_value());
    }
    SUBCASE("an empty array is an empty batch") {
      CHECK(parse_batch("[]", "", now, {}).value().empty());
    }
    SUBCASE("whole-body errors") {
      auto not_json = parse_batch("[{", "", now, {});
      REQUIRE_FALSE(not_json.has_value());
      CHECK(not_json.error().code == errc::invalid_batch);
      CHECK(not_json.error().message.starts_with("batch body is not valid JSON: "));
      auto object = parse_batch(R"({"destination":"http://h/p"})", "", now, {});
      REQUIRE_FALSE(object.has_value());
      CHECK(object.error().message == "batch body must be a JSON array of messages");
      message_limits two{.max_batch_messages = 2};
      auto many = parse_batch(
          R"([{"destination":"http://h/1"},{"destination":"http://h/2"},{"destination":"http://h/3"}])", "",
          now, two);
      REQUIRE_FALSE(many.has_value());
      CHECK(many.error().message == "a batch holds at most 2 messages, got 3");
    }
  }
}
