#include "shopd/relay/ids.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <tuple>

using namespace shopd::relay;

TEST_SUITE("relay.ids") {
  TEST_CASE("relay.ids: message ids") {
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
      auto id = new_message_id();
      CHECK(id.size() == 30);
      CHECK(id.starts_with("msg_"));
      CHECK(is_message_id(id));
      seen.insert(id);
    }
    CHECK(seen.size() == 1000);
    CHECK_FALSE(is_message_id("msg_"));
    CHECK_FALSE(is_message_id("msg_0123456789abcdefghijklmno"));    // 25
    CHECK_FALSE(is_message_id("msg_0123456789abcdefghijklmnop_"));  // 27
    CHECK_FALSE(is_message_id("msg_0123456789abcdefghijklm-o"));    // not base62
    CHECK_FALSE(is_message_id("scd_0123456789abcdefghijklmnop"));
    CHECK(is_message_id("msg_0123456789abcdefghijklmnop"));
  }

  TEST_CASE("relay.ids: message ids sort by creation time") {
    using std::chrono::milliseconds;
    const std::chrono::system_clock::time_point t0{milliseconds(1'795'558'017'493)};
    const auto a = new_message_id(t0);
    const auto b = new_message_id(t0 + milliseconds(1));
    const auto c = new_message_id(t0 + milliseconds(62 * 62 * 62));
    CHECK(is_message_id(a));
    CHECK(a < b);
    CHECK(b < c);
    CHECK(a.substr(0, 12) == new_message_id(t0).substr(0, 12));  // same millisecond: same time part
    CHECK(a != new_message_id(t0));                              // ... and a different random one
    CHECK(new_message_id(std::chrono::system_clock::time_point{}).starts_with("msg_00000000"));
    CHECK(new_message_id(t0 - std::chrono::hours(24 * 365 * 100)).starts_with("msg_00000000"));
    CHECK(new_message_id(std::chrono::system_clock::now() - std::chrono::seconds(1)) < new_message_id());
  }

  TEST_CASE("relay.ids: random base62") {
    CHECK(random_base62(0).empty());
    auto s = random_base62(5000);
    CHECK(s.size() == 5000);
    for (char c : s) CHECK(((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')));
  }

  TEST_CASE("relay.ids: DLQ id format") {
    CHECK(format_dlq_id({1'725'323'658'779, 0}) == "1725323658779-0");
    CHECK(parse_dlq_id("1725323658779-0") == dlq_id_parts{1'725'323'658'779, 0});
    CHECK(parse_dlq_id("0-18446744073709551615") == dlq_id_parts{0, 18'446'744'073'709'551'615ULL});
    for (std::string_view bad : {"", "-", "1-", "-1", "1--1", "a-1", "1-1 ", " 1-1", "01-0", "1-00", "+1-0",
                                 "9223372036854775808-0", "1-18446744073709551616", "1", "1-2-3"}) {
      INFO("id: '", std::string(bad), "'");
      CHECK_FALSE(parse_dlq_id(bad).has_value());
    }
  }

  TEST_CASE("relay.ids: DLQ ids increase strictly, even when the clock goes back") {
    dlq_id_generator gen;
    auto parts = [](const std::string& id) {
      auto p = parse_dlq_id(id);
      REQUIRE(p.has_value());
      return std::make_tuple(p->ms, p->seq);
    };
    auto a = parts(gen.next(1000));
    CHECK(std::get<0>(a) == 1000);
    CHECK(std::get<1>(a) < (1ULL << 31));
    auto b = parts(gen.next(1000));
    CHECK(b > a);
    CHECK(std::get<0>(b) == 1000);
    auto c = parts(gen.next(999));  // clock stepped back
    CHECK(c > b);
    auto d = parts(gen.next(2000));
    CHECK(d > c);
    CHECK(std::get<0>(d) == 2000);
  }
}
