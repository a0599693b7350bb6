#include "shopd/relay/delivery.hpp"

#include "shopd/bus/signature.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>

namespace relay = shopd::relay;
namespace bus = shopd::bus;

namespace {

std::string header_value(const relay::header_list& headers, std::string_view name) {
  std::string out;
  int found = 0;
  for (const auto& h : headers) {
    if (relay::iequals(h.name, name)) {
      out = h.value;
      ++found;
    }
  }
  REQUIRE_MESSAGE(found == 1, name << " appears " << found << " times");
  return out;
}

std::size_t header_count(const relay::header_list& headers, std::string_view name) {
  std::size_t n = 0;
  for (const auto& h : headers) n += relay::iequals(h.name, name) ? 1 : 0;
  return n;
}

relay::message_spec sample_message() {
  relay::message_spec m;
  m.destination = "http://127.0.0.1:3001/api/webhook?a=1";
  m.method = "PUT";
  m.body = R"({"hello":"world"})";
  m.headers = {{"Content-Type", "application/json"}, {"X-Trace", "t1"}};
  m.timeout_ms = 2500;
  m.max_retries = 3;
  m.caller_ip = "10.0.0.7";
  return m;
}

relay::attempt_response answer(int status, relay::header_list headers = {}) {
  relay::attempt_response r;
  r.status = status;
  r.headers = std::move(headers);
  return r;
}

}  // namespace

TEST_SUITE("relay/delivery") {
  TEST_CASE("origin_of: the lower-cased scheme://authority prefix") {
    CHECK(relay::origin_of("http://127.0.0.1:3001/api/webhook?a=1") == "http://127.0.0.1:3001");
    CHECK(relay::origin_of("HTTPS://Shop.Example.COM") == "https://shop.example.com");
    CHECK(relay::origin_of("https://h?x=1") == "https://h");
    CHECK(relay::origin_of("https://h#frag") == "https://h");
    CHECK(relay::origin_of("http://user:pw@h:8080/p") == "http://user:pw@h:8080");
    CHECK(relay::origin_of("http://h") != relay::origin_of("http://h:80"));  // spellings count apart
    CHECK(relay::origin_of("no-scheme/x") == "no-scheme/x");
  }

  TEST_CASE("delivery_slots: global and per-origin limits") {
    relay::delivery_slots slots(3, 2);
    CHECK(slots.free() == 3);
    CHECK(slots.try_take("http://a"));
    CHECK(slots.try_take("http://a"));
    SUBCASE("an origin at its limit is refused, others are not") {
      CHECK_FALSE(slots.can_take("http://a"));
      CHECK_FALSE(slots.try_take("http://a"));
      CHECK(slots.in_flight("http://a") == 2);
      CHECK(slots.saturated_origins() == std::vector<std::string>{"http://a"});
      CHECK(slots.try_take("http://b"));
      CHECK(slots.free() == 0);
      CHECK_FALSE(slots.try_take("http://c"));  // the global limit
      CHECK(slots.in_flight() == 3);
    }
    SUBCASE("giving back frees both counts") {
      slots.give_back("http://a");
      CHECK(slots.in_flight("http://a") == 1);
      CHECK(slots.saturated_origins().empty());
      CHECK(slots.try_take("http://a"));
      slots.give_back("http://a");
      slots.give_back("http://a");
      CHECK(slots.in_flight() == 0);
      slots.give_back("http://never-taken");
      CHECK(slots.free() == 3);
    }
    SUBCASE("a copy is independent (claims work on one)") {
      auto copy = slots;
      CHECK(copy.try_take("http://b"));
      CHECK(slots.in_flight("http://b") == 0);
      CHECK(copy.in_flight() == 3);
    }
    SUBCASE("limits below one are raised to one") {
      relay::delivery_slots tiny(0, 0);
      CHECK(tiny.free() == 1);
      CHECK(tiny.try_take("x"));
      CHECK_FALSE(tiny.try_take("y"));
    }
  }

  TEST_CASE("make_delivery_request: what one attempt sends") {
    const auto m = sample_message();
    const auto now = std::chrono::system_clock::now();
    const auto req = relay::make_delivery_request("msg_abc", m, 2, "sig_test_current", now, 30'000);
    CHECK(req.method == "PUT");
    CHECK(req.url == m.destination);
    CHECK(req.body == m.body);
    CHECK(req.timeout_ms == 2500);
    CHECK(header_value(req.headers, "Content-Type") == "application/json");
    CHECK(header_value(req.headers, "X-Trace") == "t1");
    CHECK(header_value(req.headers, "Upstash-Message-Id") == "msg_abc");
    CHECK(header_value(req.headers, "Upstash-Retried") == "2");
    CHECK(header_value(req.headers, "User-Agent") == "Upstash-QStash");
    CHECK(header_value(req.headers, "Upstash-Caller-Ip") == "10.0.0.7");

    SUBCASE("the signature verifies for this URL and body, with the current key") {
      const bus::signing_keys keys{"sig_test_current", "sig_test_next"};
      bus::verify_options opts;
      opts.expected_url = m.destination;
      const auto claims =
          bus::verify(header_value(req.headers, "Upstash-Signature"), keys, m.body, now, opts);
      REQUIRE(claims.has_value());
      CHECK(claims->subject == m.destination);
      CHECK(claims->key == bus::signing_key_slot::current);
      CHECK_FALSE(bus::verify(header_value(req.headers, "Upstash-Signature"), keys, "other body", now, opts)
                      .has_value());
    }
    SUBCASE("each attempt gets a fresh token") {
      const auto again = relay::make_delivery_request("msg_abc", m, 2, "sig_test_current", now, 30'000);
      CHECK(header_value(again.headers, "Upstash-Signature") !=
            header_value(req.headers, "Upstash-Signature"));
    }
  }

  TEST_CASE("make_delivery_request: stored headers cannot impersonate the relay's own") {
    auto m = sample_message();
    m.headers.push_back({"upstash-message-id", "msg_forged"});
    m.headers.push_back({"User-Agent", "curl"});
    m.headers.push_back({"Upstash-Signature", "forged"});
    m.caller_ip.clear();
    m.timeout_ms = 0;
    const auto req =
        relay::make_delivery_request("msg_real", m, 0, "key", std::chrono::system_clock::now(), 30'000);
    CHECK(header_value(req.headers, "Upstash-Message-Id") == "msg_real");
    CHECK(header_value(req.headers, "User-Agent") == "Upstash-QStash");
    CHECK(header_value(req.headers, "Upstash-Signature") != "forged");
    CHECK(header_count(req.headers, "Upstash-Caller-Ip") == 0);  // unknown publisher address
    CHECK(req.timeout_ms == 30'000);                             // the default
    CHECK_THROWS_AS(relay::make_delivery_request("m", m, 0, "", std::chrono::system_clock::now(), 1),
                    std::invalid_argument);
  }

  TEST_CASE("decide: delivered, retried, failed") {
    constexpr std::int64_t now = 1'700'000'000'000;
    SUBCASE("any 2xx is delivered") {
      for (int status : {200, 201, 204, 299}) {
        const auto r = answer(status);
        CHECK(relay::decide({.response = r, .retried = 5, .max_retries = 0, .now_ms = now}).verdict ==
              relay::attempt_verdict::delivered);
      }
    }
    SUBCASE("failures are retried with the default back-off while retries remain") {
      for (int status : {0, 300, 404, 429, 500, 503}) {
        CAPTURE(status);
        const auto r = answer(status);
        const auto d = relay::decide(
            {.response = r, .retried = 0, .max_retries = 3, .backoff_scale = 1.0, .now_ms = now});
        CHECK(d.verdict == relay::attempt_verdict::retry);
        CHECK(d.delay_source == relay::retry_delay_source::backoff);
        CHECK(d.retry_delay_ms == 12182);  // e^2.5 s
      }
      const auto r = answer(500);
      const auto second = relay::decide(
          {.response = r, .retried = 1, .max_retries = 3, .backoff_scale = 0.001, .now_ms = now});
      CHECK(second.retry_delay_ms == 148);  // e^5 s, scaled
    }
    SUBCASE("the last retry used up fails") {
      const auto r = answer(500);
      const auto d = relay::decide({.response = r, .retried = 3, .max_retries = 3, .now_ms = now});
      CHECK(d.verdict == relay::attempt_verdict::failed);
      CHECK_FALSE(d.non_retryable);
      CHECK(relay::decide({.response = r, .retried = 0, .max_retries = 0, .now_ms = now}).verdict ==
            relay::attempt_verdict::failed);
    }
    SUBCASE("489 with Upstash-NonRetryable-Error: true fails at once") {
      const auto r = answer(489, {{"upstash-nonretryable-error", "TRUE"}});
      const auto d = relay::decide({.response = r, .retried = 0, .max_retries = 10, .now_ms = now});
      CHECK(d.verdict == relay::attempt_verdict::failed);
      CHECK(d.non_retryable);
    }
    SUBCASE("489 without the header is an ordinary failure") {
      const auto r = answer(489, {{"Upstash-NonRetryable-Error", "false"}});
      CHECK(relay::decide({.response = r, .retried = 0, .max_retries = 1, .now_ms = now}).verdict ==
            relay::attempt_verdict::retry);
      const auto bare = answer(489);
      CHECK(relay::decide({.response = bare, .retried = 0, .max_retries = 1, .now_ms = now}).verdict ==
            relay::attempt_verdict::retry);
    }
    SUBCASE("the publisher's expression, evaluated with retried") {
      const auto r = answer(500);
      const auto d = relay::decide({.response = r,
                                    .retried = 2,
                                    .max_retries = 5,
                                    .retry_delay_expr = "1000 * (1 + retried)",
                                    .backoff_scale = 0.001,
                                    .now_ms = now});
      CHECK(d.delay_source == relay::retry_delay_source::expression);
      CHECK(d.retry_delay_ms == 3000);  // not scaled: the publisher asked for it
    }
    SUBCASE("Retry-After of the failed response wins") {
      const auto r = answer(429, {{"Retry-After", "7"}});
      const auto d = relay::decide({.response = r,
                                    .retried = 0,
                                    .max_retries = 5,
                                    .retry_delay_expr = "1000",
                                    .backoff_scale = 0.001,
                                    .now_ms = now});
      CHECK(d.delay_source == relay::retry_delay_source::response);
      CHECK(d.retry_delay_ms == 7000);
    }
    SUBCASE("an expression that does not evaluate falls back to the back-off, and says so") {
      const auto r = answer(500);
      const auto d = relay::decide({.response = r,
                                    .retried = 0,
                                    .max_retries = 5,
                                    .retry_delay_expr = "1 / (retried - retried)",
                                    .backoff_scale = 1.0,
                                    .now_ms = now});
      CHECK(d.delay_source == relay::retry_delay_source::backoff);
      CHECK(d.retry_delay_ms == 12182);
      CHECK(d.expression_error.has_value());
      const auto bad = relay::decide({.response = r,
                                      .retried = 0,
                                      .max_retries = 5,
                                      .retry_delay_expr = "nope(",
                                      .backoff_scale = 1.0,
                                      .now_ms = now});
      CHECK(bad.expression_error.has_value());
      CHECK(bad.verdict == relay::attempt_verdict::retry);
    }
  }

  TEST_CASE("recorded_body cuts long bodies") {
    CHECK(relay::recorded_body("short") == "short");
    const std::string big(relay::max_recorded_response_bytes + 10, 'x');
    CHECK(relay::recorded_body(big).size() == relay::max_recorded_response_bytes);
  }
}
