#include "shopd/relay/duration.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace shopd::relay;

namespace {

constexpr std::int64_t imf_date_ms = 784'111'777'000;  // Sun, 06 Nov 1994 08:49:37 GMT

std::int64_t duration_ok(std::string_view text) {
  auto r = parse_duration_ms(text);
  INFO("text: '", std::string(text), "'");
  REQUIRE(r.has_value());
  return *r;
}

}  // namespace

TEST_SUITE("relay.duration") {
  TEST_CASE("relay.duration: QStash header durations") {
    SUBCASE("single units") {
      CHECK(duration_ok("10s") == 10'000);
      CHECK(duration_ok("50s") == 50'000);
      CHECK(duration_ok("2m") == 120'000);
      CHECK(duration_ok("1h") == 3'600'000);
      CHECK(duration_ok("7d") == 7 * one_day_ms);
      CHECK(duration_ok("0s") == 0);
    }
    SUBCASE("concatenated groups, any order") {
      CHECK(duration_ok("1d10h30m") == one_day_ms + 10 * 3'600'000 + 30 * 60'000);
      CHECK(duration_ok("2m30s") == 150'000);
      CHECK(duration_ok("30s1m") == 90'000);
    }
    SUBCASE("a bare integer is seconds") {
      CHECK(duration_ok("30") == 30'000);
      CHECK(duration_ok("0") == 0);
    }
    SUBCASE("the upper bound") {
      CHECK(duration_ok("36500d") == max_duration_ms);
      CHECK_FALSE(parse_duration_ms("36500d1s").has_value());
      CHECK_FALSE(parse_duration_ms("36501d").has_value());
      CHECK_FALSE(parse_duration_ms("9223372036854775807").has_value());
      CHECK_FALSE(parse_duration_ms("99999999999999999999s").has_value());
    }
    SUBCASE("every bad form is refused") {
      for (std::string_view bad : {"", "s", "10x", "-5s", "+5s", "1.5s", " 10s", "10s ", "10 s", "10S",
                                   "10ms", "1d2", "abc", "10s!", "1d-2h", "1_000s", "0x10s", "10s\n"}) {
        INFO("text: '", std::string(bad), "'");
        auto r = parse_duration_ms(bad);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == errc::invalid_duration);
      }
    }
    SUBCASE("messages say what is wrong") {
      CHECK(parse_duration_ms("").error().message == "invalid duration '': empty");
      CHECK(parse_duration_ms("10x").error().message ==
            "invalid duration '10x': unknown unit 'x' (use d, h, m or s)");
      CHECK(parse_duration_ms("10ms").error().message ==
            "invalid duration '10ms': unknown unit 'ms' (use d, h, m or s)");
      CHECK(parse_duration_ms("1d2").error().message ==
            "invalid duration '1d2': missing unit after the last number (d, h, m or s)");
      CHECK(parse_duration_ms("s").error().message ==
            "invalid duration 's': expected a number at position 0 (use <n><unit> groups with unit d, h, m "
            "or s, "
            "e.g. 10s or 1d10h30m)");
      CHECK(parse_duration_ms("36501d").error().message == "invalid duration '36501d': too long");
    }
  }

  TEST_CASE("relay.duration: HTTP dates") {
    SUBCASE("the three forms of RFC 9110") {
      CHECK(parse_http_date_ms("Sun, 06 Nov 1994 08:49:37 GMT") == imf_date_ms);
      CHECK(parse_http_date_ms("Sunday, 06-Nov-94 08:49:37 GMT") == imf_date_ms);
      CHECK(parse_http_date_ms("Sun Nov  6 08:49:37 1994") == imf_date_ms);
      CHECK(parse_http_date_ms("Thu, 01 Jan 1970 00:00:00 GMT") == 0);
      CHECK(parse_http_date_ms("Tuesday, 01-Jan-30 00:00:00 GMT") == 1'893'456'000'000);  // 2030
      CHECK(parse_http_date_ms("Thu, 29 Feb 2024 12:00:00 GMT") == 1'709'208'000'000);
    }
    SUBCASE("invalid dates and near misses") {
      for (std::string_view bad :
           {"", "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 1994 08:60:37 GMT", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT", "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT ", "Sun Nov 6 08:49:37 1994", "Sun, 29 Feb 2023 12:00:00 GMT"}) {
        INFO("text: '", std::string(bad), "'");
        CHECK_FALSE(parse_http_date_ms(bad).has_value());
      }
    }
  }

  TEST_CASE("relay.duration: Retry-After and X-RateLimit-Reset values") {
    const std::int64_t now = imf_date_ms;
    SUBCASE("integer seconds") {
      CHECK(parse_retry_after_ms("120", now) == 120'000);
      CHECK(parse_retry_after_ms("0", now) == 0);
      CHECK(parse_retry_after_ms(" 5\t", now) == 5'000);
      CHECK(parse_retry_after_ms("86400", now) == one_day_ms);
      CHECK_FALSE(parse_retry_after_ms("86401", now).has_value());
      CHECK_FALSE(parse_retry_after_ms("1700000000", now).has_value());  // a Unix time: above one day
      CHECK_FALSE(parse_retry_after_ms("99999999999999999999999", now).has_value());
    }
    SUBCASE("HTTP dates are relative to now") {
      CHECK(parse_retry_after_ms("Sun, 06 Nov 1994 08:50:37 GMT", now) == 60'000);
      CHECK(parse_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", now) == 0);
      CHECK(parse_retry_after_ms("Sat, 05 Nov 1994 08:49:37 GMT", now) == 0);  // in the past: now
      CHECK(parse_retry_after_ms("Mon, 07 Nov 1994 08:49:37 GMT", now) == one_day_ms);
      CHECK_FALSE(parse_retry_after_ms("Mon, 07 Nov 1994 08:49:38 GMT", now).has_value());
      CHECK_FALSE(parse_retry_after_ms("Fri, 31 Dec 9999 23:59:59 GMT", now).has_value());
    }
    SUBCASE("Go durations") {
      CHECK(parse_retry_after_ms("6m5s", now) == 365'000);
      CHECK(parse_retry_after_ms("1.5s", now) == 1'500);
      CHECK(parse_retry_after_ms(".5s", now) == 500);
      CHECK(parse_retry_after_ms("300ms", now) == 300);
      CHECK(parse_retry_after_ms("1h", now) == 3'600'000);
      CHECK(parse_retry_after_ms("24h", now) == one_day_ms);
      CHECK(parse_retry_after_ms("0s", now) == 0);
      CHECK(parse_retry_after_ms("+2s", now) == 2'000);
      CHECK(parse_retry_after_ms("1m0.5s", now) == 60'500);
      // Sub-millisecond waits round up, never down.
      CHECK(parse_retry_after_ms("10us", now) == 1);
      CHECK(parse_retry_after_ms("10\xC2\xB5s", now) == 1);  // micro sign
      CHECK(parse_retry_after_ms("10\xCE\xBCs", now) == 1);  // Greek mu
      CHECK(parse_retry_after_ms("100ns", now) == 1);
      CHECK(parse_retry_after_ms("1.0000001s", now) == 1'001);
      CHECK(parse_retry_after_ms("2000000ns", now) == 2);
    }
    SUBCASE("unusable values fall back (nullopt)") {
      for (std::string_view bad : {"", "   ", "-1s", "-1", "24h1ns", "25h", "1.5", "1x", "1e3s", ".s", ".",
                                   "s", "1hh", "soon", "1 s", "99999999999999999999h"}) {
        INFO("value: '", std::string(bad), "'");
        CHECK_FALSE(parse_retry_after_ms(bad, now).has_value());
      }
    }
  }
}
