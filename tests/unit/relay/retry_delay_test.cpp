#include "shopd/relay/retry_delay.hpp"

#include "shopd/relay/duration.hpp"

#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

using namespace shopd::relay;

namespace {

std::int64_t eval(std::string_view text, std::int64_t retried = 0) {
  INFO("expression: '", std::string(text), "', retried=", retried);
  auto e = retry_delay_expression::parse(text);
  if (!e) FAIL("parse failed: ", e.error().message);
  auto v = e->evaluate_ms(retried);
  if (!v) FAIL("evaluation failed: ", v.error().message);
  return *v;
}

error parse_error(std::string_view text) {
  INFO("expression: '", std::string(text), "'");
  auto e = retry_delay_expression::parse(text);
  REQUIRE_FALSE(e.has_value());
  CHECK(e.error().code == errc::invalid_expression);
  CHECK(e.error().field == "Upstash-Retry-Delay");
  return e.error();
}

error eval_error(std::string_view text, std::int64_t retried) {
  INFO("expression: '", std::string(text), "'");
  auto e = retry_delay_expression::parse(text);
  REQUIRE(e.has_value());
  auto v = e->evaluate_ms(retried);
  REQUIRE_FALSE(v.has_value());
  CHECK(v.error().code == errc::evaluation_failed);
  return v.error();
}

std::string repeat(std::string_view s, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += s;
  return out;
}

}  // namespace

TEST_SUITE("relay.retry_delay") {
  TEST_CASE("relay.retry_delay: expression values") {
    SUBCASE("numbers and the documented example") {
      CHECK(eval("1000") == 1000);
      CHECK(eval("1.5 * 2") == 3);
      CHECK(eval(".5 * 4") == 2);
      CHECK(eval("5.") == 5);
      CHECK(eval("1000 * (1 + retried)", 0) == 1000);
      CHECK(eval("1000 * (1 + retried)", 2) == 3000);
      CHECK(eval(" \t1000\t*retried ", 7) == 7000);
    }
    SUBCASE("precedence and associativity") {
      CHECK(eval("2 + 3 * 4") == 14);
      CHECK(eval("(2 + 3) * 4") == 20);
      CHECK(eval("10 - 4 - 3") == 3);
      CHECK(eval("100 / 10 / 2") == 5);
      CHECK(eval("7 % 4") == 3);
      CHECK(eval("2 * 7 % 4") == 2);
      CHECK(eval("1 + 7 % 4 * 2") == 7);
      CHECK(eval("10 - -2") == 12);
      CHECK(eval("--5") == 5);
      CHECK(eval("+5") == 5);
      CHECK(eval("-2 * -3") == 6);
      CHECK(eval("-(2 - 10)") == 8);
      CHECK(eval("7.5 % 2") == 2);  // 1.5 rounds to 2
    }
    SUBCASE("functions") {
      CHECK(eval("pow(2, retried) * 1000", 3) == 8000);
      CHECK(eval("exp(0)") == 1);
      CHECK(eval("sqrt(16)") == 4);
      CHECK(eval("abs(-7)") == 7);
      CHECK(eval("floor(2.7)") == 2);
      CHECK(eval("ceil(2.1)") == 3);
      CHECK(eval("round(2.5)") == 3);
      CHECK(eval("round(2.4)") == 2);
      CHECK(eval("min(5, 3, 9)") == 3);
      CHECK(eval("max(5, 3, 9)") == 9);
      CHECK(eval("max(1000, min(pow(2, retried) * 100, 60000))", 10) == 60000);
      CHECK(eval("floor(exp(2.5 * (retried + 1))) * 1000", 0) == 12000);
      CHECK(eval("min(exp(1000), 5)") == 5);  // an infinite operand is fine when it is not the value
    }
    SUBCASE("results are rounded and clamped to [0, one day]") {
      CHECK(eval("2.5") == 3);
      CHECK(eval("2.4999") == 2);
      CHECK(eval("-5") == 0);
      CHECK(eval("pow(10, 12)") == one_day_ms);
      CHECK(eval("86400000") == one_day_ms);
      CHECK(eval("86400001") == one_day_ms);
    }
    SUBCASE("copies share the parsed tree") {
      auto e = retry_delay_expression::parse("100 * retried").value();
      auto copy = e;
      CHECK(copy.text() == "100 * retried");
      CHECK(copy.evaluate_ms(4).value() == 400);
      CHECK(e.evaluate_ms(5).value() == 500);
    }
  }

  TEST_CASE("relay.retry_delay: expressions that do not parse") {
    SUBCASE("unknown identifiers, positions counted from 1") {
      CHECK(parse_error("foo").message == "unknown identifier 'foo' at position 1");
      CHECK(parse_error("1000 * retries").message == "unknown identifier 'retries' at position 8");
      CHECK(parse_error("Retried").message == "unknown identifier 'Retried' at position 1");
      CHECK(parse_error("process.exit(1)").message == "unknown identifier 'process' at position 1");
    }
    SUBCASE("junk") {
      CHECK(parse_error("").message == "empty expression");
      CHECK(parse_error("   ").message == "empty expression");
      CHECK(parse_error("1 +").message == "unexpected end of expression at position 4");
      CHECK(parse_error("(1 + 2").message == "expected ')' before the end of the expression at position 7");
      CHECK(parse_error("(1 + 2]").message == "expected ')', found ']' at position 7");
      CHECK(parse_error("1 2").message == "unexpected character '2' at position 3");
      CHECK(parse_error("1e3").message == "unexpected character 'e' at position 2");
      CHECK(parse_error("1..2").message == "unexpected character '.' at position 3");
      CHECK(parse_error(".").message == "malformed number at position 1");
      CHECK(parse_error("2 ^ 3").message == "'^' is not an operator (use pow(x, y)) at position 3");
      CHECK(parse_error("2 ** 3").message == "'**' is not an operator (use pow(x, y)) at position 3");
      CHECK(parse_error("1000;").message == "unexpected character ';' at position 5");
      CHECK(parse_error("retried()").message == "unexpected character '(' at position 8");
      CHECK(parse_error("\"1000\"").message == "unexpected character '\"' at position 1");
      CHECK(parse_error("1\x01").message == "unexpected byte 0x01 at position 2");
      CHECK(parse_error("1 < 2").message == "unexpected character '<' at position 3");
      CHECK(parse_error("()").message == "unexpected character ')' at position 2");
    }
    SUBCASE("functions: call syntax and arity") {
      CHECK(parse_error("exp").message == "expected '(' after function exp at position 4");
      CHECK(parse_error("pow(2)").message == "function pow takes 2 arguments, got 1 at position 1");
      CHECK(parse_error("sqrt(1, 2)").message == "function sqrt takes 1 argument, got 2 at position 1");
      CHECK(parse_error("min(1)").message == "function min takes at least 2 arguments, got 1 at position 1");
      CHECK(parse_error("max()").message == "unexpected character ')' at position 5");
      CHECK(parse_error("pow(2,)").message == "unexpected character ')' at position 7");
    }
    SUBCASE("size and depth bounds") {
      CHECK(eval(repeat("(", 31) + "7" + repeat(")", 31)) == 7);
      CHECK(parse_error(repeat("(", 32) + "7" + repeat(")", 32)).message ==
            "expression nested too deeply (more than 32 levels)");
      CHECK(parse_error(repeat("-", 40) + "1").message ==
            "expression nested too deeply (more than 32 levels)");
      CHECK(parse_error(repeat("abs(", 40) + "1" + repeat(")", 40)).message ==
            "expression nested too deeply (more than 32 levels)");
      CHECK(eval(std::string("1") + repeat("+1", 127)) == 128);  // 255 nodes
      CHECK(parse_error(std::string("1") + repeat("+1", 128)).message ==
            "expression too large (more than 256 numbers, operators and calls)");
      CHECK(parse_error(std::string(1025, '1')).message == "expression too long (more than 1024 characters)");
      CHECK(parse_error(std::string(400, '9')).message == "number out of range at position 1");
    }
  }

  TEST_CASE("relay.retry_delay: expressions without a finite value") {
    CHECK(eval_error("1000 / retried", 0).message ==
          "division by zero evaluating '1000 / retried' with retried=0");
    CHECK(eval("1000 / retried", 2) == 500);
    CHECK(eval_error("5 % 0", 3).message == "division by zero evaluating '5 % 0' with retried=3");
    CHECK(eval_error("min(1 / 0, 5)", 0).code == errc::evaluation_failed);
    CHECK(eval_error("sqrt(-1)", 1).message == "'sqrt(-1)' with retried=1 is not a finite number");
    CHECK(eval_error("exp(1000)", 0).message == "'exp(1000)' with retried=0 is not a finite number");
    CHECK(eval_error("exp(1000) - exp(1000)", 0).code == errc::evaluation_failed);
    CHECK(eval_error("max(sqrt(-1), 5)", 0).code == errc::evaluation_failed);
    CHECK(eval_error("min(5, sqrt(-1))", 0).code == errc::evaluation_failed);
  }

  TEST_CASE("relay.retry_delay: default back-off: min(86400 s, e^(2.5 n)) times the scale") {
    const std::array<std::int64_t, 6> full{12'182, 148'413, 1'808'042, 22'026'466, 86'400'000, 86'400'000};
    const std::array<std::int64_t, 6> fast{12, 148, 1'808, 22'026, 86'400, 86'400};
    for (std::int64_t n = 1; n <= 6; ++n) {
      INFO("retry ", n);
      CHECK(default_backoff_ms(n) == full[static_cast<std::size_t>(n - 1)]);
      CHECK(default_backoff_ms(n, 1.0) == full[static_cast<std::size_t>(n - 1)]);
      CHECK(default_backoff_ms(n, 0.001) == fast[static_cast<std::size_t>(n - 1)]);
    }
    CHECK(default_backoff_ms(1000) == one_day_ms);
    CHECK(default_backoff_ms(0) == 12'182);
    CHECK(default_backoff_ms(-3) == 12'182);
    CHECK(default_backoff_ms(1, 0.0) == 0);
    CHECK(default_backoff_ms(1, -1.0) == 0);
    CHECK(default_backoff_ms(1, std::numeric_limits<double>::quiet_NaN()) == 0);
    CHECK(default_backoff_ms(6, std::numeric_limits<double>::infinity()) == 1000 * one_day_ms);
  }

  TEST_CASE("relay.retry_delay: next_retry_delay picks response, then expression, then back-off") {
    auto expr = retry_delay_expression::parse("1000 * (1 + retried)").value();
    auto failing = retry_delay_expression::parse("1000 / retried").value();
    const std::int64_t now = 784'111'777'000;

    SUBCASE("no response headers, no expression: default back-off, scaled") {
      auto d = next_retry_delay({.retried = 1, .backoff_scale = 0.001, .now_ms = now});
      CHECK(d.delay_ms == 148);
      CHECK(d.source == retry_delay_source::backoff);
      CHECK_FALSE(d.expression_error.has_value());
    }
    SUBCASE("the expression beats the back-off and is not scaled") {
      auto d = next_retry_delay({.retried = 2, .expression = &expr, .backoff_scale = 0.001, .now_ms = now});
      CHECK(d.delay_ms == 3000);
      CHECK(d.source == retry_delay_source::expression);
    }
    SUBCASE("an expression that fails for this retry falls back, and says why") {
      auto d = next_retry_delay({.retried = 0, .expression = &failing, .backoff_scale = 1, .now_ms = now});
      CHECK(d.delay_ms == 12'182);
      CHECK(d.source == retry_delay_source::backoff);
      REQUIRE(d.expression_error.has_value());
      CHECK(d.expression_error->code == errc::evaluation_failed);
    }
    SUBCASE("Retry-After beats everything, names compared case-insensitively") {
      std::vector<header_view> h{{"content-type", "text/plain"}, {"retry-after", "5"}};
      auto d = next_retry_delay({.retried = 2, .response_headers = h, .expression = &expr, .now_ms = now});
      CHECK(d.delay_ms == 5000);
      CHECK(d.source == retry_delay_source::response);
    }
    SUBCASE("Retry-After: 0 means now") {
      std::vector<header_view> h{{"Retry-After", "0"}};
      auto d = next_retry_delay({.retried = 0, .response_headers = h, .now_ms = now});
      CHECK(d.delay_ms == 0);
      CHECK(d.source == retry_delay_source::response);
    }
    SUBCASE("several rate-limit headers: the longest wait") {
      std::vector<header_view> h{{"X-RateLimit-Reset-Requests", "2s"},
                                 {"x-ratelimit-reset-tokens", "6m5s"},
                                 {"X-RateLimit-Reset", "30"}};
      auto d = next_retry_delay({.retried = 0, .response_headers = h, .now_ms = now});
      CHECK(d.delay_ms == 365'000);
      CHECK(d.source == retry_delay_source::response);
    }
    SUBCASE("an HTTP date relative to now") {
      std::vector<header_view> h{{"Retry-After", "Sun, 06 Nov 1994 08:50:37 GMT"}};
      CHECK(next_retry_delay({.response_headers = h, .now_ms = now}).delay_ms == 60'000);
    }
    SUBCASE("unusable response values are ignored") {
      std::vector<header_view> h{{"Retry-After", "172800"}, {"X-RateLimit-Reset", "junk"}, {"X-Other", "1"}};
      auto d = next_retry_delay({.retried = 2, .response_headers = h, .expression = &expr, .now_ms = now});
      CHECK(d.delay_ms == 3000);
      CHECK(d.source == retry_delay_source::expression);
    }
  }
}
