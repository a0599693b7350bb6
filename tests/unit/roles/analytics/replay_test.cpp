#include "shopd/roles/analytics/replay.hpp"

#include <doctest/doctest.h>

#include <string>

namespace analytics = shopd::roles::analytics;

TEST_SUITE("roles/analytics/replay") {
  TEST_CASE("analytics.replay: replay_url addresses the DLQ retry endpoint with the id as one path segment") {
    CHECK(analytics::replay_url("http://127.0.0.1:8080", "1725323658779-0") ==
          "http://127.0.0.1:8080/v2/dlq/retry/1725323658779-0");
    CHECK(analytics::replay_url("https://qstash.upstash.io//", "d1") ==
          "https://qstash.upstash.io/v2/dlq/retry/d1");
    CHECK(analytics::replay_url("http://h", "a/b c%?#~._") == "http://h/v2/dlq/retry/a%2Fb%20c%25%3F%23~._");
    CHECK(analytics::replay_url("http://h", "..") == "http://h/v2/dlq/retry/..");
  }

  TEST_CASE("analytics.replay: replayed_message_id reads QStash's 201 answer") {
    CHECK(analytics::replayed_message_id(R"({"messageId":"msg_2"})") == "msg_2");
    CHECK_FALSE(analytics::replayed_message_id(R"({"messageId":""})").has_value());
    CHECK_FALSE(analytics::replayed_message_id(R"({"messageId":7})").has_value());
    CHECK_FALSE(analytics::replayed_message_id(R"({})").has_value());
    CHECK_FALSE(analytics::replayed_message_id("").has_value());
    CHECK_FALSE(analytics::replayed_message_id("[]").has_value());
    CHECK_FALSE(analytics::replayed_message_id("created").has_value());
  }

  TEST_CASE("analytics.replay: upstream_error is one bounded line") {
    CHECK(analytics::upstream_error(404, R"({"error":"dlq message not found"})") ==
          "QStash answered 404: dlq message not found");
    CHECK(analytics::upstream_error(500, "oops\r\nX-Injected: 1") ==
          "QStash answered 500: oops  X-Injected: 1");
    CHECK(analytics::upstream_error(401, R"({"error":7})") == R"(QStash answered 401: {"error":7})");
    CHECK(analytics::upstream_error(502, "") == "QStash answered 502: (empty body)");
    const auto long_one = analytics::upstream_error(500, std::string(10'000, 'x'));
    CHECK(long_one == "QStash answered 500: " + std::string(512, 'x'));
    CHECK(analytics::upstream_error(500, "\xff") == "QStash answered 500: \xEF\xBF\xBD");
  }
}
