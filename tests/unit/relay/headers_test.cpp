#include "shopd/relay/headers.hpp"

#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <string>
#include <vector>

using namespace shopd::relay;
namespace json = boost::json;

TEST_SUITE("relay.headers") {
  TEST_CASE("relay.headers: case-insensitive lookup") {
    std::vector<header_view> h{{"Content-Type", "a"}, {"retry-after", "5"}, {"Retry-After", "6"}};
    CHECK(find_header(h, "content-type") == "a");
    CHECK(find_header(h, "RETRY-AFTER") == "5");
    CHECK_FALSE(find_header(h, "X").has_value());
    CHECK(iequals("Upstash-Retries", "upstash-retries"));
    CHECK_FALSE(iequals("abc", "abd"));
    CHECK_FALSE(iequals("abc", "ab"));
  }

  TEST_CASE("relay.headers: Go's canonical header names") {
    CHECK(canonical_header_name("content-type") == "Content-Type");
    CHECK(canonical_header_name("x-h") == "X-H");
    CHECK(canonical_header_name("UPSTASH-MESSAGE-ID") == "Upstash-Message-Id");
    CHECK(canonical_header_name("test-header") == "Test-Header");
    CHECK(canonical_header_name("a--b") == "A--B");
    CHECK(canonical_header_name("x_y") == "X_y");
    CHECK(canonical_header_name("bad name") == "bad name");
    CHECK(canonical_header_name("") == "");
  }

  TEST_CASE("relay.headers: names and values that may be sent") {
    CHECK(is_header_name("X-Custom_1.2~"));
    CHECK_FALSE(is_header_name(""));
    CHECK_FALSE(is_header_name("a b"));
    CHECK_FALSE(is_header_name("a:b"));
    CHECK_FALSE(is_header_name("\xc3\xa9"));
    CHECK(is_header_value("anything, \"quoted\"\t\xc3\xa9"));
    CHECK_FALSE(is_header_value("a\r\nb: c"));
    CHECK_FALSE(is_header_value("a\nb"));
    CHECK_FALSE(is_header_value(std::string_view("a\0b", 3)));
  }

  TEST_CASE("relay.headers: the http.Header JSON shape") {
    header_list h{{"content-type", "text/plain"}, {"X-A", "1"}, {"x-a", "2"}, {"B", ""}};
    auto j = headers_to_json(h);
    CHECK(json::serialize(j) == R"({"Content-Type":["text/plain"],"X-A":["1","2"],"B":[""]})");
    auto back = headers_from_json(j).value();
    CHECK(back == header_list{{"Content-Type", "text/plain"}, {"X-A", "1"}, {"X-A", "2"}, {"B", ""}});
    CHECK(headers_from_json(json::parse(R"({"X":"v"})")).value() == header_list{{"X", "v"}});
    CHECK(headers_from_json(json::object{}).value().empty());
    for (std::string_view bad : {R"([])", R"({"X":1})", R"({"X":[1]})", R"({"X":null})", R"("s")"}) {
      INFO("json: ", std::string(bad));
      auto r = headers_from_json(json::parse(bad));
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error().code == errc::invalid_stored_value);
    }
  }
}
