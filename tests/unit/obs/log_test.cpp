#include "shopd/obs/log.hpp"

#include "capture_stderr.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace {

using shopd::obs::format;
using shopd::obs::level;

/// True for `YYYY-MM-DDTHH:MM:SS.mmmZ`.
bool is_timestamp(std::string_view s) {
  constexpr std::string_view shape = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (s.size() != shape.size()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (shape[i] == 'd' ? !std::isdigit(static_cast<unsigned char>(s[i])) : s[i] != shape[i]) return false;
  }
  return true;
}

/// The text line after its timestamp and the space that follows it.
std::string text_body(const std::string& line) {
  REQUIRE(line.size() > 25);
  CHECK(is_timestamp(std::string_view(line).substr(0, 24)));
  CHECK(line[24] == ' ');
  return line.substr(25);
}

/// The JSON line with its timestamp value replaced by "T".
std::string json_without_ts(const std::string& line) {
  constexpr std::string_view prefix = R"({"ts":")";
  REQUIRE(line.starts_with(prefix));
  REQUIRE(line.size() > prefix.size() + 25);
  CHECK(is_timestamp(std::string_view(line).substr(prefix.size(), 24)));
  return std::string(prefix) + "T" + line.substr(prefix.size() + 24);
}

std::size_t count_lines(const std::string& s) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

}  // namespace

TEST_SUITE("obs/log") {
  TEST_CASE("log: batching keeps info lines until flushed, writes warnings at once and in order") {
    shopd::obs::configure(level::info, format::text);
    int scheduled = 0;
    const auto out = shopd::test::capture_stderr([&](const auto& so_far) {
      shopd::obs::begin_batching([&] { ++scheduled; });
      shopd::obs::info("first");
      shopd::obs::info("second");
      CHECK(scheduled == 1);  // once per batch, when it stops being empty
      CHECK(so_far().empty());
      shopd::obs::flush_batch();
      CHECK(count_lines(so_far()) == 2);

      shopd::obs::info("third");
      CHECK(scheduled == 2);
      shopd::obs::warn("trouble");  // written now, after what was buffered
      const auto now = so_far();
      CHECK(count_lines(now) == 4);
      CHECK(now.find("third") < now.find("trouble"));

      shopd::obs::info("last");
      shopd::obs::end_batching();  // flushes
      CHECK(count_lines(so_far()) == 5);
      shopd::obs::info("unbatched");  // batching is off: written at once
      CHECK(count_lines(so_far()) == 6);
    });
    CHECK(out.find("first") < out.find("second"));
    CHECK(out.find("trouble") < out.find("last"));
  }

  TEST_CASE("log: a batch over 64 KiB is written without waiting for the flush") {
    shopd::obs::configure(level::info, format::text);
    shopd::test::capture_stderr([&](const auto& so_far) {
      shopd::obs::begin_batching([] {});
      const std::string big(1024, 'x');
      for (int i = 0; i < 70; ++i) shopd::obs::info("big", {{"payload", big}});
      CHECK(!so_far().empty());
      shopd::obs::end_batching();
      CHECK(count_lines(so_far()) == 70);
    });
  }

  TEST_CASE("log: text format") {
    SUBCASE("message and fields of every type") {
      const auto line = shopd::obs::format_line(format::text, level::info, "order created",
                                                {{"order_id", "ord_1"},
                                                 {"items", 3},
                                                 {"total", 12.5},
                                                 {"paid", true},
                                                 {"customer", "Ada Lovelace"}});
      CHECK(text_body(line) ==
            R"(INFO  order created order_id=ord_1 items=3 total=12.5 paid=true customer="Ada Lovelace")");
    }
    SUBCASE("levels are padded to one width") {
      CHECK(text_body(shopd::obs::format_line(format::text, level::debug, "m", {})) == "DEBUG m");
      CHECK(text_body(shopd::obs::format_line(format::text, level::info, "m", {})) == "INFO  m");
      CHECK(text_body(shopd::obs::format_line(format::text, level::warn, "m", {})) == "WARN  m");
      CHECK(text_body(shopd::obs::format_line(format::text, level::error, "m", {})) == "ERROR m");
    }
    SUBCASE("values that would not read back as one token are quoted and escaped") {
      const auto line = shopd::obs::format_line(format::text, level::warn, "m",
                                                {{"empty", ""},
                                                 {"eq", "a=b"},
                                                 {"quote", R"(say "hi")"},
                                                 {"nl", "two\nlines"},
                                                 {"bs", R"(C:\dir)"}});
      CHECK(text_body(line) ==
            R"(WARN  m empty="" eq="a=b" quote="say \"hi\"" nl="two\nlines" bs="C:\\dir")");
    }
    SUBCASE("a message cannot break the line") {
      const auto line = shopd::obs::format_line(format::text, level::error, "first\nsecond\r\tthird", {});
      CHECK(text_body(line) == R"(ERROR first\nsecond\r\tthird)");
      CHECK(line.find('\n') == std::string::npos);
    }
    SUBCASE("integers of every width and doubles") {
      const auto line = shopd::obs::format_line(
          format::text, level::info, "m",
          {{"u8", std::uint8_t{7}}, {"neg", -42}, {"big", std::int64_t{9'000'000'000}}, {"ms", 0.25}});
      CHECK(text_body(line) == "INFO  m u8=7 neg=-42 big=9000000000 ms=0.25");
    }
    SUBCASE("non-finite doubles") {
      const auto line = shopd::obs::format_line(format::text, level::info, "m",
                                                {{"nan", std::numeric_limits<double>::quiet_NaN()},
                                                 {"inf", std::numeric_limits<double>::infinity()}});
      CHECK(text_body(line) == "INFO  m nan=NaN inf=+Inf");
    }
  }

  TEST_CASE("log: json format") {
    SUBCASE("shape and types") {
      const auto line =
          shopd::obs::format_line(format::json, level::info, "request",
                                  {{"method", "GET"}, {"status", 200}, {"duration_ms", 1.5}, {"ok", false}});
      CHECK(
          json_without_ts(line) ==
          R"({"ts":"T","level":"info","msg":"request","method":"GET","status":200,"duration_ms":1.5,"ok":false})");
    }
    SUBCASE("levels are lower case") {
      CHECK(json_without_ts(shopd::obs::format_line(format::json, level::debug, "m", {})) ==
            R"({"ts":"T","level":"debug","msg":"m"})");
      CHECK(json_without_ts(shopd::obs::format_line(format::json, level::error, "m", {})) ==
            R"({"ts":"T","level":"error","msg":"m"})");
    }
    SUBCASE("string escaping: quotes, backslash, control characters") {
      const auto line = shopd::obs::format_line(format::json, level::warn, "a \"quoted\" \\ path",
                                                {{"ctl", std::string_view("\x01\b\f\n\r\t\x1f\x7f", 8)}});
      CHECK(json_without_ts(line) ==
            R"({"ts":"T","level":"warn","msg":"a \"quoted\" \\ path","ctl":"\u0001\b\f\n\r\t\u001f\u007f"})");
    }
    SUBCASE("valid UTF-8 passes, invalid UTF-8 becomes U+FFFD") {
      const auto line =
          shopd::obs::format_line(format::json, level::info, "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
                                  {{"bad", "a\xFFz"},
                                   {"overlong", "\xC0\xAF"},
                                   {"surrogate", "\xED\xA0\x80"},
                                   {"truncated", "x\xE2\x82"}});
      CHECK(json_without_ts(line) ==
            "{\"ts\":\"T\",\"level\":\"info\",\"msg\":\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\","
            "\"bad\":\"a\xEF\xBF\xBDz\","
            "\"overlong\":\"\xEF\xBF\xBD\xEF\xBF\xBD\","
            "\"surrogate\":\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\","
            "\"truncated\":\"x\xEF\xBF\xBD\xEF\xBF\xBD\"}");
    }
    SUBCASE("keys are escaped too") {
      const auto line = shopd::obs::format_line(format::json, level::info, "m", {{"we\"ird", 1}});
      CHECK(json_without_ts(line) == R"({"ts":"T","level":"info","msg":"m","we\"ird":1})");
    }
    SUBCASE("non-finite doubles become null") {
      const auto line = shopd::obs::format_line(format::json, level::info, "m",
                                                {{"nan", std::numeric_limits<double>::quiet_NaN()},
                                                 {"inf", -std::numeric_limits<double>::infinity()}});
      CHECK(json_without_ts(line) == R"({"ts":"T","level":"info","msg":"m","nan":null,"inf":null})");
    }
  }

  TEST_CASE("log: levels and formats") {
    SUBCASE("parsing") {
      CHECK(shopd::obs::parse_level("debug") == level::debug);
      CHECK(shopd::obs::parse_level("info") == level::info);
      CHECK(shopd::obs::parse_level("warn") == level::warn);
      CHECK(shopd::obs::parse_level("error") == level::error);
      CHECK_THROWS_AS((void)shopd::obs::parse_level("verbose"), std::invalid_argument);
      CHECK_THROWS_AS((void)shopd::obs::parse_level("INFO"), std::invalid_argument);
      CHECK(shopd::obs::parse_format("text") == format::text);
      CHECK(shopd::obs::parse_format("json") == format::json);
      CHECK_THROWS_AS((void)shopd::obs::parse_format("xml"), std::invalid_argument);
      CHECK(shopd::obs::to_string(level::warn) == "warn");
    }
    SUBCASE("the minimum level filters") {
      shopd::obs::configure(level::warn, format::json);
      CHECK_FALSE(shopd::obs::enabled(level::debug));
      CHECK_FALSE(shopd::obs::enabled(level::info));
      CHECK(shopd::obs::enabled(level::warn));
      CHECK(shopd::obs::enabled(level::error));
      shopd::obs::configure(level::debug, format::text);
      CHECK(shopd::obs::enabled(level::debug));
      shopd::obs::configure(level::info, format::text);  // the process default, for the other tests
      CHECK_FALSE(shopd::obs::enabled(level::debug));
      CHECK(shopd::obs::enabled(level::info));
    }
  }
}
