#include "shopd/roles/analytics/records.hpp"

#include <doctest/doctest.h>
#include <boost/json.hpp>

namespace json = boost::json;
namespace analytics = shopd::roles::analytics;
namespace bus = shopd::bus;

namespace {

bus::timestamp at(std::string_view text) {
  const auto t = bus::parse_timestamp(text);
  REQUIRE(t.has_value());
  return *t;
}

bus::envelope envelope_of(std::string_view type, json::object data,
                          std::optional<std::string_view> causation) {
  auto ev = bus::make_envelope(type, "orders", std::move(data), "chk_123", causation);
  ev.time = at("2026-11-23T10:00:00.250Z");
  return ev;
}

}  // namespace

TEST_SUITE("roles/analytics/records") {
  TEST_CASE("analytics.records: an audit record keeps its envelope's ids and time") {
    const bus::audit_record rec{.action = "order.created",
                                .actor = "orders",
                                .entity_type = "order",
                                .entity_id = "ord_1",
                                .outcome = bus::audit_outcome::failure,
                                .detail = json::object{{"total", 1200}}};
    const auto ev = envelope_of("analytics.audit", bus::to_json(rec), "01JD5M5ZQ8W9X7Y6V5T4S3R2Q0");
    const auto row = analytics::to_row(ev, rec, 1'795'428'000'999);
    CHECK(row.event_id == ev.event_id);
    CHECK(row.correlation_id == "chk_123");
    CHECK(row.causation_id == "01JD5M5ZQ8W9X7Y6V5T4S3R2Q0");
    CHECK(row.action == "order.created");
    CHECK(row.actor == "orders");
    CHECK(row.entity_type == "order");
    CHECK(row.entity_id == "ord_1");
    CHECK(row.outcome == "failure");
    CHECK(json::parse(row.detail) == json::object{{"total", 1200}});
    CHECK(row.occurred_at_ms == 1'795'428'000'250);
    CHECK(row.recorded_at_ms == 1'795'428'000'999);

    SUBCASE("and reads back as the API's record") {
      auto stored = row;
      stored.id = 7;
      stored.causation_id.reset();
      const auto j = analytics::to_json(stored);
      CHECK(j == json::object{{"id", 7},
                              {"eventId", ev.event_id},
                              {"correlationId", "chk_123"},
                              {"causationId", nullptr},
                              {"action", "order.created"},
                              {"actor", "orders"},
                              {"entityType", "order"},
                              {"entityId", "ord_1"},
                              {"outcome", "failure"},
                              {"detail", json::object{{"total", 1200}}},
                              {"occurredAt", "2026-11-23T10:00:00.250Z"},
                              {"recordedAt", "2026-11-23T10:00:00.999Z"}});
    }
    SUBCASE("a stored detail that is not an object shows as text") {
      auto stored = row;
      stored.detail = "not json";
      CHECK(analytics::to_json(stored).at("detail") == "not json");
      stored.detail = "[1]";
      CHECK(analytics::to_json(stored).at("detail") == "[1]");
    }
  }

  TEST_CASE("analytics.records: a metric point") {
    const bus::metric_point m{
        .name = "stock.shortfall", .value = 2.5, .unit = "items", .tags = {{"sku", "SKU-1"}}};
    const auto ev = envelope_of("analytics.metric", bus::to_json(m), std::nullopt);
    const auto row = analytics::to_row(ev, m, 5);
    CHECK(row.event_id == ev.event_id);
    CHECK(row.name == "stock.shortfall");
    CHECK(row.value == 2.5);
    CHECK(row.unit == "items");
    CHECK(json::parse(row.tags) == json::object{{"sku", "SKU-1"}});
    CHECK(row.occurred_at_ms == 1'795'428'000'250);
    CHECK(row.recorded_at_ms == 5);
    SUBCASE("without unit or tags") {
      const bus::metric_point bare{.name = "x", .value = 1, .unit = std::nullopt, .tags = {}};
      const auto r = analytics::to_row(ev, bare, 5);
      CHECK_FALSE(r.unit.has_value());
      CHECK(r.tags == "{}");
    }
  }

  TEST_CASE("analytics.records: a sale counts units and takes the order's time") {
    bus::order_created o;
    o.order_id = "ord_1";
    o.checkout_id = "chk_123";
    o.customer = {.email = "ada@example.com", .name = "Ada"};
    o.items = {{.sku = "A", .name = "Apple", .quantity = 3, .unit_price_cents = 100, .line_total_cents = 300},
               {.sku = "B", .name = "Pear", .quantity = 2, .unit_price_cents = 250, .line_total_cents = 500}};
    o.subtotal_cents = 800;
    o.currency = "EUR";
    o.created_at = at("2026-11-23T09:59:00Z");
    const auto ev = envelope_of("order.created", bus::to_json(o), std::nullopt);
    const auto row = analytics::to_row(ev, o);
    CHECK(row == analytics::sale_row{.order_id = "ord_1",
                                     .event_id = ev.event_id,
                                     .subtotal_cents = 800,
                                     .currency = "EUR",
                                     .item_count = 5,
                                     .created_at_ms = 1'795'427'940'000});
  }

  TEST_CASE("analytics.records: a dead letter") {
    const bus::dead_letter d{.source_message_id = "msg_1",
                             .destination = "http://127.0.0.1:3002/api/webhook",
                             .last_status = 503,
                             .last_response = "busy",
                             .attempts = 4,
                             .body = "{}",
                             .dlq_id = "1725323658779-0"};
    const auto ev = envelope_of("analytics.dlq", bus::to_json(d), std::nullopt);
    auto row = analytics::to_row(ev, d, 1'795'428'001'000);
    CHECK(row.event_id == ev.event_id);
    CHECK(row.dlq_id == "1725323658779-0");
    CHECK(row.source_message_id == "msg_1");
    CHECK(row.destination == "http://127.0.0.1:3002/api/webhook");
    CHECK(row.last_status == 503);
    CHECK(row.last_response == "busy");
    CHECK(row.attempts == 4);
    CHECK(row.body == "{}");
    CHECK(row.correlation_id == "chk_123");
    CHECK(row.occurred_at_ms == 1'795'428'000'250);
    CHECK_FALSE(row.replayed_at_ms.has_value());

    row.id = 3;
    CHECK(analytics::to_json(row) == json::object{{"id", 3},
                                                  {"eventId", ev.event_id},
                                                  {"dlqId", "1725323658779-0"},
                                                  {"sourceMessageId", "msg_1"},
                                                  {"destination", "http://127.0.0.1:3002/api/webhook"},
                                                  {"lastStatus", 503},
                                                  {"lastResponse", "busy"},
                                                  {"attempts", 4},
                                                  {"body", "{}"},
                                                  {"correlationId", "chk_123"},
                                                  {"occurredAt", "2026-11-23T10:00:00.250Z"},
                                                  {"recordedAt", "2026-11-23T10:00:01.000Z"},
                                                  {"replayedAt", nullptr}});
    SUBCASE("absent values are null; a replay shows its time") {
      analytics::dead_letter_row bare;
      bare.id = 1;
      bare.event_id = "e";
      bare.replayed_at_ms = 1'795'428'002'000;
      const auto j = analytics::to_json(bare);
      for (const char* key : {"dlqId", "sourceMessageId", "destination", "lastStatus", "lastResponse",
                              "attempts", "body", "correlationId"}) {
        CAPTURE(key);
        CHECK(j.at(key).is_null());
      }
      CHECK(j.at("replayedAt") == "2026-11-23T10:00:02.000Z");
    }
  }

  TEST_CASE("analytics.records: the summary's JSON") {
    const analytics::summary s{
        .orders = 3,
        .revenues = {{.currency = "EUR", .total_cents = 1500}, {.currency = "USD", .total_cents = 99}},
        .events = {{.action = "order.created", .outcome = "success", .count = 3}},
        .dead_letters = 2,
        .unreplayed_dead_letters = 1,
        .shortfalls = 4};
    CHECK(analytics::to_json(s) ==
          json::object{{"orders", 3},
                       {"revenue", json::array{json::object{{"currency", "EUR"}, {"totalCents", 1500}},
                                               json::object{{"currency", "USD"}, {"totalCents", 99}}}},
                       {"events", json::array{json::object{
                                      {"action", "order.created"}, {"outcome", "success"}, {"count", 3}}}},
                       {"dlq", json::object{{"count", 2}, {"unreplayed", 1}}},
                       {"shortfalls", 4}});
  }
}
