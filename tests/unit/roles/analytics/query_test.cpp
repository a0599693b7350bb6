#include "shopd/roles/analytics/query.hpp"

#include <doctest/doctest.h>

#include <map>
#include <string>

namespace analytics = shopd::roles::analytics;
using analytics::cursor_kind;

namespace {

// A query string's parameters, as request_context::query_param would give them.
analytics::query_lookup params(std::map<std::string, std::string, std::less<>> values) {
  return [values = std::move(values)](std::string_view name) -> std::optional<std::string> {
    const auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

template <class T>
std::string field_of(const shopd::bus::result<T>& r) {
  REQUIRE_FALSE(r.has_value());
  CHECK_FALSE(r.error().message.empty());
  return r.error().field;
}

}  // namespace

TEST_SUITE("roles/analytics/query") {
  TEST_CASE("analytics.query: cursors round-trip and belong to one list") {
    for (const std::int64_t id :
         {std::int64_t{1}, std::int64_t{42}, std::int64_t{9'223'372'036'854'775'807}}) {
      const auto audit = analytics::encode_cursor(cursor_kind::audit, id);
      CHECK(analytics::decode_cursor(cursor_kind::audit, audit) == id);
      CHECK_FALSE(analytics::decode_cursor(cursor_kind::dead_letters, audit).has_value());
      const auto dlq = analytics::encode_cursor(cursor_kind::dead_letters, id);
      CHECK(analytics::decode_cursor(cursor_kind::dead_letters, dlq) == id);
      CHECK_FALSE(analytics::decode_cursor(cursor_kind::audit, dlq).has_value());
      for (const char c : audit) {
        CHECK(((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
               c == '_'));
      }
    }
    SUBCASE("anything else is refused") {
      CHECK_FALSE(analytics::decode_cursor(cursor_kind::audit, "").has_value());
      CHECK_FALSE(analytics::decode_cursor(cursor_kind::audit, "42").has_value());
      CHECK_FALSE(analytics::decode_cursor(cursor_kind::audit, "!!!").has_value());
      CHECK_FALSE(
          analytics::decode_cursor(cursor_kind::audit, analytics::encode_cursor(cursor_kind::audit, 0))
              .has_value());
      CHECK_FALSE(
          analytics::decode_cursor(cursor_kind::audit, analytics::encode_cursor(cursor_kind::audit, -5))
              .has_value());
    }
  }

  TEST_CASE("analytics.query: parse_since takes RFC 3339 or Unix milliseconds") {
    CHECK(analytics::parse_since("0") == 0);
    CHECK(analytics::parse_since("1700000000000") == 1'700'000'000'000);
    CHECK(analytics::parse_since("2026-11-23T10:00:00.000Z") == 1'795'428'000'000);
    CHECK(analytics::parse_since("2026-11-23T10:00:00Z") == 1'795'428'000'000);
    CHECK(analytics::parse_since("2026-11-23T11:00:00+01:00") == 1'795'428'000'000);
    CHECK(analytics::parse_since("253402300799999") == 253'402'300'799'999);
    CHECK_FALSE(analytics::parse_since("253402300800000").has_value());
    CHECK_FALSE(analytics::parse_since("99999999999999999999999").has_value());
    CHECK_FALSE(analytics::parse_since("-5").has_value());
    CHECK_FALSE(analytics::parse_since("yesterday").has_value());
    CHECK_FALSE(analytics::parse_since("2026-02-30T00:00:00Z").has_value());
    CHECK_FALSE(analytics::parse_since("").has_value());
  }

  TEST_CASE("analytics.query: parse_page") {
    SUBCASE("defaults") {
      const auto p = analytics::parse_page(params({}), cursor_kind::dead_letters);
      REQUIRE(p.has_value());
      CHECK(p->limit == 20);
      CHECK_FALSE(p->before_id.has_value());
    }
    SUBCASE("empty values are absent") {
      const auto p =
          analytics::parse_page(params({{"limit", ""}, {"cursor", ""}}), cursor_kind::dead_letters);
      REQUIRE(p.has_value());
      CHECK(*p == analytics::page_request{});
    }
    SUBCASE("limit bounds") {
      CHECK(analytics::parse_page(params({{"limit", "1"}}), cursor_kind::audit)->limit == 1);
      CHECK(analytics::parse_page(params({{"limit", "100"}}), cursor_kind::audit)->limit == 100);
      for (const char* bad : {"0", "101", "-1", "abc", "1.5", "01", "+5", "99999999999999999999", " 5"}) {
        CAPTURE(bad);
        CHECK(field_of(analytics::parse_page(params({{"limit", bad}}), cursor_kind::audit)) == "limit");
      }
    }
    SUBCASE("cursor") {
      const auto p =
          analytics::parse_page(params({{"cursor", analytics::encode_cursor(cursor_kind::dead_letters, 77)}}),
                                cursor_kind::dead_letters);
      REQUIRE(p.has_value());
      CHECK(p->before_id == 77);
      CHECK(field_of(
                analytics::parse_page(params({{"cursor", analytics::encode_cursor(cursor_kind::audit, 77)}}),
                                      cursor_kind::dead_letters)) == "cursor");
      CHECK(field_of(analytics::parse_page(params({{"cursor", "garbage"}}), cursor_kind::audit)) == "cursor");
    }
  }

  TEST_CASE("analytics.query: parse_audit_query") {
    SUBCASE("every filter") {
      const auto q =
          analytics::parse_audit_query(params({{"entityId", "ord_1"},
                                               {"action", "order.created"},
                                               {"correlationId", "chk_123"},
                                               {"since", "1700000000000"},
                                               {"limit", "5"},
                                               {"cursor", analytics::encode_cursor(cursor_kind::audit, 9)}}));
      REQUIRE(q.has_value());
      CHECK(q->entity_id == "ord_1");
      CHECK(q->action == "order.created");
      CHECK(q->correlation_id == "chk_123");
      CHECK(q->since_ms == 1'700'000'000'000);
      CHECK(q->page.limit == 5);
      CHECK(q->page.before_id == 9);
    }
    SUBCASE("none, or empty ones as the design's URL template sends them") {
      const auto q = analytics::parse_audit_query(params({{"entityId", ""}, {"action", ""}, {"since", ""}}));
      REQUIRE(q.has_value());
      CHECK(*q == analytics::audit_query{});
    }
    SUBCASE("bad values name their parameter") {
      CHECK(field_of(analytics::parse_audit_query(params({{"entityId", "a b"}}))) == "entityId");
      CHECK(field_of(analytics::parse_audit_query(params({{"entityId", std::string(257, 'x')}}))) ==
            "entityId");
      CHECK(field_of(analytics::parse_audit_query(params({{"action", "order\ncreated"}}))) == "action");
      CHECK(field_of(analytics::parse_audit_query(params({{"correlationId", "caf\xC3\xA9"}}))) ==
            "correlationId");
      CHECK(field_of(analytics::parse_audit_query(params({{"since", "last week"}}))) == "since");
      CHECK(field_of(analytics::parse_audit_query(params({{"limit", "1000"}}))) == "limit");
      CHECK(field_of(analytics::parse_audit_query(
                params({{"cursor", analytics::encode_cursor(cursor_kind::dead_letters, 3)}}))) == "cursor");
    }
    SUBCASE("an id of exactly 256 bytes is fine") {
      CHECK(analytics::parse_audit_query(params({{"entityId", std::string(256, 'x')}})).has_value());
    }
  }
}
