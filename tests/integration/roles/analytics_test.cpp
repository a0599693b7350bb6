// The analytics role against real databases (SQLite in a temp dir, and a fresh PostgreSQL database
// on the CTest fixture's server): its event handlers driven through bus::delivery, its routes
// through the router (no sockets), and the DLQ replay against a real HTTP server on 127.0.0.1:0.
#include "shopd/roles/analytics/analytics_role.hpp"

#include "capture_server.hpp"
#include "fresh_database.hpp"
#include "shopd/bus/crypto.hpp"
#include "shopd/bus/dispatch.hpp"
#include "shopd/bus/events.hpp"
#include "shopd/bus/signature.hpp"
#include "shopd/config/config.hpp"
#include "shopd/db/database.hpp"
#include "shopd/db/migrations.hpp"
#include "shopd/http/router.hpp"
#include "shopd/http/server.hpp"
#include "shopd/obs/metrics.hpp"
#include "shopd/roles/analytics/analytics_repository.hpp"
#include "shopd/roles/analytics/failure_callback.hpp"
#include "shopd/roles/analytics/query.hpp"

#include <doctest/doctest.h>
#include <soci/soci.h>
#include <boost/json.hpp>

#include <atomic>
#include <string>
#include <vector>

namespace json = boost::json;
namespace bus = shopd::bus;
namespace db = shopd::db;
namespace http = shopd::http;
namespace analytics = shopd::roles::analytics;

namespace {

constexpr std::string_view api_token = "analytics-test-token";
constexpr std::string_view current_key = "sig_test_current";
constexpr std::string_view next_key = "sig_test_next";
constexpr std::string_view qstash_token = "qstash-test-token";
const std::string callback_url = "http://127.0.0.1:3004/api/dlq/callback";

shopd::config::settings test_settings() {
  auto s = shopd::config::load({});
  s.shopd_api_token = std::string(api_token);
  s.qstash_current_signing_key = std::string(current_key);
  s.qstash_next_signing_key = std::string(next_key);
  s.qstash_token = std::string(qstash_token);
  s.qstash_url = "http://127.0.0.1:9";  // replaced by the tests that replay
  return s;
}

struct http_result {
  unsigned status = 0;
  json::value body;
  http::response raw;
};

struct outbox_row {
  std::string event_id;
  std::string event_type;
  std::string destination;
  bus::envelope event;
};

// The analytics role, built as `shopd serve` builds it, on a migrated database.
class analytics_env {
 public:
  explicit analytics_env(db::dialect kind, shopd::config::settings s = test_settings())
      : where_(kind, "analytics"),
        settings_(std::move(s)),
        db_(where_.url(), {.pool_size = 4, .busy_timeout = std::chrono::milliseconds(5'000)}),
        destinations_(settings_),
        server_(http::server_options::from_config(settings_), metrics_) {
    db::migrate(db_);
    shopd::app::role_context ctx{"analytics", settings_,     db_,
                                 routes_,     server_,       metrics_,
                                 events_,     destinations_, [this] { ++notified_; },
                                 nullptr};
    role_ = analytics::make_analytics_role(ctx);
  }

  db::database& database() { return db_; }
  http::router& routes() { return routes_; }
  const bus::event_router& events() const { return events_; }
  int notified() const { return notified_.load(); }

  bus::outcome deliver(const bus::envelope& ev) {
    const auto* handler = events_.find(ev.event_type);
    REQUIRE(handler != nullptr);
    bus::delivery d(ev, "analytics", db_, destinations_, [this] { ++notified_; });
    return handler->fn(d);
  }

  http_result call(http::verb method, std::string target, std::string body = {},
                   std::optional<std::string> bearer = std::string(api_token),
                   http::request* custom = nullptr) {
    http::request req{method, target, 11};
    if (custom != nullptr) req = *custom;
    if (bearer) req.set(http::field::authorization, "Bearer " + *bearer);
    if (!body.empty()) {
      req.body() = std::move(body);
      req.prepare_payload();
    }
    const auto q = target.find('?');
    const std::string path = target.substr(0, q);
    const std::string query = q == std::string::npos ? std::string() : target.substr(q + 1);
    auto found = routes_.lookup(method, path);
    auto* f = std::get_if<http::router::found>(&found);
    REQUIRE_MESSAGE(f != nullptr, "no route for " << target);
    http::request_context rc{req, path, query, f->params, {}};
    http_result out;
    try {
      out.raw = http::run_inline(*f->r, rc);
    } catch (const http::http_error& e) {
      out.raw = e.to_response();
    }
    out.status = out.raw.result_int();
    if (!out.raw.body().empty()) out.body = json::parse(out.raw.body());
    return out;
  }

  // A failure callback as the relay posts it: signed for `url` with `key`.
  http_result post_callback(const std::string& body, std::string_view key) {
    http::request req{http::verb::post, "/api/dlq/callback", 11};
    req.set("Upstash-Signature", bus::sign(key, callback_url, body, std::chrono::system_clock::now()));
    return call(http::verb::post, "/api/dlq/callback", body, std::nullopt, &req);
  }

  std::vector<outbox_row> outbox() {
    return db_.with_session([](soci::session& s) {
      std::vector<outbox_row> rows;
      soci::rowset<soci::row> rs = (s.prepare << "SELECT event_id, event_type, destination, body FROM outbox"
                                                 " WHERE producer = 'analytics' ORDER BY id");
      for (const auto& r : rs) {
        auto ev = bus::parse_envelope(r.get<std::string>(3));
        REQUIRE(ev.has_value());
        rows.push_back({r.get<std::string>(0), r.get<std::string>(1), r.get<std::string>(2), *ev});
      }
      return rows;
    });
  }

  long long count(const std::string& table) {
    return db_.with_session([&](soci::session& s) {
      long long n = 0;
      s << "SELECT COUNT(*) FROM " + table, soci::into(n);
      return n;
    });
  }

  double records(const std::string& kind) {
    return metrics_
        .counter_family("shopd_analytics_records_total", "Rows stored by the analytics role, by kind",
                        {"kind"})
        .with({kind})
        .value();
  }

 private:
  shopd::test::scratch_database where_;
  shopd::config::settings settings_;
  db::database db_;
  bus::destinations destinations_;
  shopd::obs::registry metrics_;
  http::server server_;
  http::router routes_;
  bus::event_router events_;
  std::atomic<int> notified_{0};
  std::unique_ptr<shopd::app::role> role_;
};

bus::timestamp at(std::string_view text) {
  const auto t = bus::parse_timestamp(text);
  REQUIRE(t.has_value());
  return *t;
}

bus::timestamp minutes_after_base(int m) {
  return at("2026-11-23T10:00:00.000Z") + std::chrono::minutes(m);
}

bus::envelope audit_event(std::string entity_id, std::string action, std::string_view correlation,
                          bus::timestamp time, bus::audit_outcome outcome = bus::audit_outcome::success) {
  const bus::audit_record rec{.action = std::move(action),
                              .actor = "orders",
                              .entity_type = "order",
                              .entity_id = std::move(entity_id),
                              .outcome = outcome,
                              .detail = json::object{{"note", "seed"}}};
  auto ev = bus::make_event(rec, "orders", correlation, std::string_view("01JD5M5ZQ8W9X7Y6V5T4S3R2Q0"));
  ev.time = time;
  return ev;
}

bus::envelope metric_event(std::string name, double value) {
  const bus::metric_point m{
      .name = std::move(name), .value = value, .unit = "items", .tags = {{"sku", "SKU-1"}}};
  return bus::make_event(m, "inventory", "chk_metric");
}

bus::envelope dead_letter_event(std::optional<std::string> dlq_id, std::string_view correlation = "chk_dlq") {
  const bus::dead_letter d{.source_message_id = "msg_" + bus::new_event_id(),
                           .destination = "http://127.0.0.1:3002/api/webhook",
                           .last_status = 503,
                           .last_response = "busy",
                           .attempts = 4,
                           .body = R"({"eventId":"x"})",
                           .dlq_id = std::move(dlq_id)};
  return bus::make_event(d, "relay", correlation);
}

bus::envelope order_event(std::string order_id, std::int64_t subtotal, std::string currency) {
  bus::order_created o;
  o.order_id = std::move(order_id);
  o.checkout_id = "chk_" + o.order_id;
  o.customer = {.email = "ada@example.com", .name = "Ada"};
  o.items = {{.sku = "SKU-1",
              .name = "Widget",
              .quantity = 2,
              .unit_price_cents = subtotal / 2,
              .line_total_cents = subtotal}};
  o.subtotal_cents = subtotal;
  o.currency = std::move(currency);
  o.created_at = at("2026-11-23T09:59:00.000Z");
  return bus::make_event(o, "orders", o.checkout_id);
}

bool is_processed(const bus::outcome& o) {
  return std::holds_alternative<bus::processed>(o);
}
bool is_duplicate(const bus::outcome& o) {
  return std::holds_alternative<bus::duplicate>(o);
}

const bus::rejection& rejection_of(const bus::outcome& o) {
  const auto* r = std::get_if<bus::rejection>(&o);
  REQUIRE(r != nullptr);
  return *r;
}

std::string status_line(const http_result& r) {
  return std::to_string(r.status) + " " + r.raw.body();
}

// -------------------------------------------------------------------------------------------------

void handlers_record_each_event_once(db::dialect kind) {
  analytics_env env(kind);
  CHECK(env.events().types() ==
        std::vector<std::string>{"analytics.audit", "analytics.dlq", "analytics.metric", "order.created"});

  {  // analytics.audit -> audit_log
    const auto ev = audit_event("ord_1", "order.created", "chk_1", at("2026-11-23T10:00:00.250Z"));
    CHECK(is_processed(env.deliver(ev)));
    CHECK(is_duplicate(env.deliver(ev)));
    CHECK(env.count("audit_log") == 1);
    const auto rows = env.database().with_session(
        [](soci::session& s) { return analytics::repository::find_audit(s, analytics::audit_query{}); });
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].event_id == ev.event_id);
    CHECK(rows[0].correlation_id == "chk_1");
    CHECK(rows[0].causation_id == "01JD5M5ZQ8W9X7Y6V5T4S3R2Q0");
    CHECK(rows[0].action == "order.created");
    CHECK(rows[0].actor == "orders");
    CHECK(rows[0].entity_type == "order");
    CHECK(rows[0].entity_id == "ord_1");
    CHECK(rows[0].outcome == "success");
    CHECK(json::parse(rows[0].detail) == json::object{{"note", "seed"}});
    CHECK(rows[0].occurred_at_ms == 1'795'428'000'250);
    CHECK(rows[0].recorded_at_ms > 0);
    CHECK(env.records("audit") == 1);
  }
  {  // analytics.metric -> metric_points
    const auto ev = metric_event("stock.shortfall", 3);
    CHECK(is_processed(env.deliver(ev)));
    CHECK(is_duplicate(env.deliver(ev)));
    CHECK(env.count("metric_points") == 1);
    env.database().with_session([&](soci::session& s) {
      std::string event_id, name, unit, tags;
      double value = 0;
      long long occurred = 0;
      s << "SELECT event_id, name, value, unit, tags, occurred_at_ms FROM metric_points",
          soci::into(event_id), soci::into(name), soci::into(value), soci::into(unit), soci::into(tags),
          soci::into(occurred);
      CHECK(event_id == ev.event_id);
      CHECK(name == "stock.shortfall");
      CHECK(value == 3);
      CHECK(unit == "items");
      CHECK(json::parse(tags) == json::object{{"sku", "SKU-1"}});
      CHECK(occurred == ev.time.time_since_epoch().count());
    });
    CHECK(env.records("metric") == 1);
  }
  {  // analytics.dlq -> dead_letters
    const auto ev = dead_letter_event("1725323658779-0");
    CHECK(is_processed(env.deliver(ev)));
    CHECK(is_duplicate(env.deliver(ev)));
    const auto rows = env.database().with_session([](soci::session& s) {
      return analytics::repository::list_dead_letters(s, analytics::page_request{});
    });
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].event_id == ev.event_id);
    CHECK(rows[0].dlq_id == "1725323658779-0");
    CHECK(rows[0].destination == "http://127.0.0.1:3002/api/webhook");
    CHECK(rows[0].last_status == 503);
    CHECK(rows[0].last_response == "busy");
    CHECK(rows[0].attempts == 4);
    CHECK(rows[0].body == R"({"eventId":"x"})");
    CHECK(rows[0].correlation_id == "chk_dlq");
    CHECK_FALSE(rows[0].replayed_at_ms.has_value());
    CHECK(env.records("dlq") == 1);
  }
  {  // order.created -> sales, once per order
    const auto ev = order_event("ord_9", 1'000, "EUR");
    CHECK(is_processed(env.deliver(ev)));
    CHECK(is_duplicate(env.deliver(ev)));
    // The same order under another event id is the same sale.
    CHECK(is_duplicate(env.deliver(order_event("ord_9", 1'000, "EUR"))));
    CHECK(env.count("sales") == 1);
    env.database().with_session([&](soci::session& s) {
      std::string order_id, event_id, currency;
      long long subtotal = 0, items = 0, created = 0;
      s << "SELECT order_id, event_id, subtotal_cents, currency, item_count, created_at_ms FROM sales",
          soci::into(order_id), soci::into(event_id), soci::into(subtotal), soci::into(currency),
          soci::into(items), soci::into(created);
      CHECK(order_id == "ord_9");
      CHECK(event_id == ev.event_id);
      CHECK(subtotal == 1'000);
      CHECK(currency == "EUR");
      CHECK(items == 2);
      CHECK(created == 1'795'427'940'000);
    });
    CHECK(env.records("sale") == 1);
  }
  {  // the UNIQUE event_id guards even an event the inbox does not know
    const auto ev = audit_event("ord_1", "order.created", "chk_1", at("2026-11-23T10:00:00Z"));
    CHECK(is_processed(env.deliver(ev)));
    env.database().with_session([](soci::session& s) { s << "DELETE FROM inbox"; });
    CHECK(is_duplicate(env.deliver(ev)));
    CHECK(is_duplicate(env.deliver(order_event("ord_9", 1'000, "EUR"))));
    CHECK(env.count("audit_log") == 2);
    CHECK(env.count("sales") == 1);
    CHECK(env.records("audit") == 2);
    CHECK(env.records("sale") == 1);
  }
  // Successful recordings are never audited: that would loop.
  CHECK(env.outbox().empty());
  CHECK(env.notified() == 0);
}

void invalid_payloads_are_rejected_and_audited(db::dialect kind) {
  analytics_env env(kind);
  struct bad_case {
    std::string type;
    json::object data;
    std::string field;
  };
  const std::vector<bad_case> cases{
      {"analytics.audit",
       json::object{{"actor", "orders"}, {"entityType", "order"}, {"entityId", "o1"}, {"outcome", "success"}},
       "data.action"},
      {"analytics.metric", json::object{{"name", "x"}, {"value", "three"}}, "data.value"},
      {"analytics.dlq", json::object{{"destination", "http://x/"}, {"attempts", 1}, {"body", ""}},
       "data.sourceMessageId"},
      {"order.created", json::object{{"orderId", "o1"}}, "data.checkoutId"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.type);
    const auto before = env.outbox().size();
    const auto ev = bus::make_envelope(c.type, "orders", c.data, "chk_bad",
                                       std::string_view("01JD5M5ZQ8W9X7Y6V5T4S3R2Q9"));
    const auto outcome = env.deliver(ev);
    const auto& r = rejection_of(outcome);
    CHECK(r.code == "invalid_payload");
    CHECK(r.field == c.field);
    CHECK_FALSE(r.message.empty());

    const auto rows = env.outbox();
    REQUIRE(rows.size() == before + 1);
    const auto& audit = rows.back();
    CHECK(audit.event_type == "analytics.audit");
    CHECK(audit.destination == "http://127.0.0.1:3004/api/webhook");
    CHECK(audit.event.correlation_id == "chk_bad");
    CHECK(audit.event.causation_id == ev.event_id);
    CHECK(audit.event.source == "analytics");
    const auto rec = bus::payload_of<bus::audit_record>(audit.event);
    REQUIRE(rec.has_value());
    CHECK(rec->action == "event.rejected");
    CHECK(rec->actor == "analytics");
    CHECK(rec->entity_type == "event");
    CHECK(rec->entity_id == ev.event_id);
    CHECK(rec->outcome == bus::audit_outcome::failure);
    CHECK(rec->detail.at("code") == "invalid_payload");
    CHECK(rec->detail.at("field") == json::value(c.field));
    CHECK(rec->detail.at("eventType") == json::value(c.type));

    // Redelivered: acknowledged without a second audit.
    CHECK(is_duplicate(env.deliver(ev)));
    CHECK(env.outbox().size() == before + 1);

    // What analytics emits, analytics accepts: the audit of a refusal is recorded, not refused.
    CHECK(is_processed(env.deliver(audit.event)));
  }
  CHECK(env.count("audit_log") == 4);
  CHECK(env.count("metric_points") + env.count("dead_letters") + env.count("sales") == 0);
  CHECK(env.outbox().size() == 4);  // recording the four audits emitted nothing more
  CHECK(env.notified() == 4);
}

// -------------------------------------------------------------------------------------------------

struct seeded_audit {
  std::string event_id;
  std::string entity_id;
  std::string action;
  std::string correlation_id;
  std::int64_t occurred_at_ms = 0;
};

std::vector<seeded_audit> seed_audits(analytics_env& env, int n) {
  std::vector<seeded_audit> seeds;
  static const char* actions[] = {"order.created", "email.sent", "stock.updated"};
  for (int i = 0; i < n; ++i) {
    const auto ev = audit_event("ord_" + std::to_string(i % 5), actions[i % 3],
                                "chk_" + std::to_string(i % 4), minutes_after_base(i));
    REQUIRE(is_processed(env.deliver(ev)));
    seeds.push_back({ev.event_id, "ord_" + std::to_string(i % 5), actions[i % 3],
                     "chk_" + std::to_string(i % 4), ev.time.time_since_epoch().count()});
  }
  return seeds;
}

// Every page of `target` (which ends in '?' or '&'), following nextCursor: the event ids in order.
std::vector<std::string> all_pages(analytics_env& env, const std::string& target, std::size_t limit,
                                   int* pages = nullptr) {
  std::vector<std::string> ids;
  std::string cursor;
  for (int page = 0;; ++page) {
    REQUIRE(page < 100);
    const auto r = env.call(http::verb::get, target + "limit=" + std::to_string(limit) +
                                                 (cursor.empty() ? "" : "&cursor=" + cursor));
    REQUIRE_MESSAGE(r.status == 200, status_line(r));
    const auto& records = r.body.at("records").as_array();
    CHECK(records.size() <= limit);
    for (const auto& rec : records) ids.emplace_back(rec.at("eventId").as_string());
    if (pages != nullptr) *pages = page + 1;
    if (r.body.at("nextCursor").is_null()) break;
    CHECK(records.size() == limit);
    cursor = std::string(r.body.at("nextCursor").as_string());
  }
  return ids;
}

template <class Pred>
std::vector<std::string> expected_ids(const std::vector<seeded_audit>& seeds, Pred keep) {
  std::vector<std::string> ids;
  for (auto it = seeds.rbegin(); it != seeds.rend(); ++it) {
    if (keep(*it)) ids.push_back(it->event_id);
  }
  return ids;
}

void audit_query_filters_and_pages(db::dialect kind) {
  analytics_env env(kind);
  const auto seeds = seed_audits(env, 25);
  const auto all = [](const seeded_audit&) { return true; };

  {  // newest first, 20 by default, then the rest
    const auto first = env.call(http::verb::get, "/api/audit");
    REQUIRE_MESSAGE(first.status == 200, status_line(first));
    const auto& records = first.body.at("records").as_array();
    REQUIRE(records.size() == 20);
    CHECK(records[0].at("eventId") == json::value(seeds.back().event_id));
    const auto& top = records[0].as_object();
    for (const char* key : {"id", "eventId", "correlationId", "causationId", "action", "actor", "entityType",
                            "entityId", "outcome", "detail", "occurredAt", "recordedAt"}) {
      CAPTURE(key);
      CHECK(top.contains(key));
    }
    CHECK(top.at("occurredAt") == "2026-11-23T10:24:00.000Z");
    CHECK(top.at("causationId") == "01JD5M5ZQ8W9X7Y6V5T4S3R2Q0");
    CHECK(top.at("detail") == json::object{{"note", "seed"}});
    CHECK(first.body.at("nextCursor").is_string());

    const auto second = env.call(http::verb::get,
                                 "/api/audit?cursor=" + std::string(first.body.at("nextCursor").as_string()));
    REQUIRE_MESSAGE(second.status == 200, status_line(second));
    CHECK(second.body.at("records").as_array().size() == 5);
    CHECK(second.body.at("nextCursor").is_null());
    CHECK(second.body.at("records").as_array().back().at("eventId") == json::value(seeds.front().event_id));
  }
  {  // paging visits every record once, whatever the page size
    for (std::size_t limit : {1, 3, 7, 25, 100}) {
      CAPTURE(limit);
      CHECK(all_pages(env, "/api/audit?", limit) == expected_ids(seeds, all));
    }
    int pages = 0;
    CHECK(all_pages(env, "/api/audit?", 5, &pages).size() == 25);
    CHECK(pages == 5);
  }
  {  // filters
    CHECK(all_pages(env, "/api/audit?entityId=ord_2&", 2) ==
          expected_ids(seeds, [](const auto& s) { return s.entity_id == "ord_2"; }));
    CHECK(all_pages(env, "/api/audit?action=email.sent&", 3) ==
          expected_ids(seeds, [](const auto& s) { return s.action == "email.sent"; }));
    CHECK(all_pages(env, "/api/audit?correlationId=chk_3&", 4) ==
          expected_ids(seeds, [](const auto& s) { return s.correlation_id == "chk_3"; }));
    const auto since = seeds[10].occurred_at_ms;
    const auto after_tenth = [&](const auto& s) { return s.occurred_at_ms >= since; };
    CHECK(all_pages(env, "/api/audit?since=" + std::to_string(since) + "&", 4) ==
          expected_ids(seeds, after_tenth));
    CHECK(all_pages(env, "/api/audit?since=2026-11-23T10:10:00.000Z&", 4) ==
          expected_ids(seeds, after_tenth));
    CHECK(all_pages(env, "/api/audit?since=2026-11-23T11%3A10%3A00%2B01%3A00&", 4) ==
          expected_ids(seeds, after_tenth));
    const auto combined = expected_ids(seeds, [&](const auto& s) {
      return s.action == "order.created" && s.entity_id == "ord_0" && s.occurred_at_ms >= since;
    });
    CHECK_FALSE(combined.empty());
    CHECK(all_pages(env,
                    "/api/audit?action=order.created&entityId=ord_0&since=" + std::to_string(since) + "&",
                    1) == combined);
    CHECK(all_pages(env, "/api/audit?entityId=nobody&", 20).empty());
    CHECK(all_pages(env, "/api/audit?entityId=&action=&since=&", 20).size() == 20 + 5);
  }
  {  // bad parameters are 400 naming them
    for (const auto& [target, param] : std::vector<std::pair<std::string, std::string>>{
             {"/api/audit?limit=0", "limit"},
             {"/api/audit?limit=101", "limit"},
             {"/api/audit?limit=ten", "limit"},
             {"/api/audit?cursor=nonsense", "cursor"},
             {"/api/audit?since=tomorrow", "since"},
             {"/api/audit?entityId=a%20b", "entityId"},
             {"/api/audit?action=" + std::string(300, 'a'), "action"},
             {"/api/audit?correlationId=%0A", "correlationId"},
         }) {
      CAPTURE(target);
      const auto r = env.call(http::verb::get, target);
      CHECK(r.status == 400);
      CHECK(r.body.at("code") == "invalid_query");
      CHECK(r.body.at("field") == json::value(param));
    }
    const auto dlq_cursor = analytics::encode_cursor(analytics::cursor_kind::dead_letters, 5);
    CHECK(env.call(http::verb::get, "/api/audit?cursor=" + dlq_cursor).status == 400);
  }
  {  // the audit is private
    CHECK(env.call(http::verb::get, "/api/audit", {}, std::nullopt).status == 401);
    CHECK(env.call(http::verb::get, "/api/audit", {}, std::string("wrong-token")).status == 401);
    const auto r = env.call(http::verb::get, "/api/audit", {}, std::nullopt);
    CHECK(r.raw[http::field::www_authenticate] == "Bearer");
  }
}

void summary_from_known_data(db::dialect kind) {
  analytics_env env(kind);
  {  // empty
    const auto r = env.call(http::verb::get, "/api/metrics/summary");
    REQUIRE_MESSAGE(r.status == 200, status_line(r));
    CHECK(r.body ==
          json::parse(
              R"({"orders":0,"revenue":[],"events":[],"dlq":{"count":0,"unreplayed":0},"shortfalls":0})"));
  }
  {  // a known data set
    REQUIRE(is_processed(env.deliver(order_event("o1", 1'000, "EUR"))));
    REQUIRE(is_processed(env.deliver(order_event("o2", 2'000, "EUR"))));
    REQUIRE(is_processed(env.deliver(order_event("o3", 500, "EUR"))));
    REQUIRE(is_processed(env.deliver(order_event("o4", 998, "USD"))));
    REQUIRE(is_processed(env.deliver(order_event("o5", 2, "CHF"))));
    REQUIRE(is_duplicate(env.deliver(order_event("o1", 1'000, "EUR"))));
    const auto t = minutes_after_base(0);
    REQUIRE(is_processed(env.deliver(audit_event("o1", "order.created", "c1", t))));
    REQUIRE(is_processed(env.deliver(audit_event("o2", "order.created", "c2", t))));
    REQUIRE(is_processed(env.deliver(audit_event("o2", "email.sent", "c2", t, bus::audit_outcome::failure))));
    REQUIRE(is_processed(env.deliver(audit_event("o3", "email.sent", "c3", t))));
    REQUIRE(is_processed(
        env.deliver(audit_event("o3", "checkout.rejected", "c3", t, bus::audit_outcome::failure))));
    REQUIRE(is_processed(env.deliver(metric_event("stock.shortfall", 2))));
    REQUIRE(is_processed(env.deliver(metric_event("stock.shortfall", 1))));
    REQUIRE(is_processed(env.deliver(metric_event("orders.latency", 0.25))));
    REQUIRE(is_processed(env.deliver(dead_letter_event("d-1"))));
    REQUIRE(is_processed(env.deliver(dead_letter_event("d-2"))));
    REQUIRE(is_processed(env.deliver(dead_letter_event(std::nullopt))));
    env.database().in_transaction([](soci::session& tx) {
      std::int64_t id = 0;
      tx << "SELECT MIN(id) FROM dead_letters", soci::into(id);
      REQUIRE(analytics::repository::mark_replayed(tx, id, 1'795'428'000'000));
      CHECK_FALSE(analytics::repository::mark_replayed(tx, id, 1'795'428'999'999));
    });

    const auto r = env.call(http::verb::get, "/api/metrics/summary");
    REQUIRE_MESSAGE(r.status == 200, status_line(r));
    CHECK(r.body == json::parse(R"({
      "orders": 5,
      "revenue": [{"currency":"CHF","totalCents":2},{"currency":"EUR","totalCents":3500},
                  {"currency":"USD","totalCents":998}],
      "events": [{"action":"checkout.rejected","outcome":"failure","count":1},
                 {"action":"email.sent","outcome":"failure","count":1},
                 {"action":"email.sent","outcome":"success","count":1},
                 {"action":"order.created","outcome":"success","count":2}],
      "dlq": {"count":3,"unreplayed":2},
      "shortfalls": 2})"));
  }
  // private
  CHECK(env.call(http::verb::get, "/api/metrics/summary", {}, std::nullopt).status == 401);
}

void dead_letters_page_newest_first(db::dialect kind) {
  analytics_env env(kind);
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) {
    const auto ev = dead_letter_event("d-" + std::to_string(i));
    REQUIRE(is_processed(env.deliver(ev)));
    ids.insert(ids.begin(), ev.event_id);
  }
  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  for (;; ++pages) {
    REQUIRE(pages < 10);
    const auto r =
        env.call(http::verb::get, "/api/dlq?limit=3" + (cursor.empty() ? "" : "&cursor=" + cursor));
    REQUIRE_MESSAGE(r.status == 200, status_line(r));
    for (const auto& d : r.body.at("deadLetters").as_array()) {
      seen.emplace_back(d.at("eventId").as_string());
      CHECK(d.at("lastStatus") == 503);
      CHECK(d.at("replayedAt").is_null());
    }
    if (r.body.at("nextCursor").is_null()) break;
    cursor = std::string(r.body.at("nextCursor").as_string());
  }
  CHECK(pages == 2);
  CHECK(seen == ids);
  CHECK(env.call(http::verb::get, "/api/dlq?limit=500").status == 400);
  CHECK(env.call(http::verb::get,
                 "/api/dlq?cursor=" + analytics::encode_cursor(analytics::cursor_kind::audit, 2))
            .status == 400);
  CHECK(env.call(http::verb::get, "/api/dlq", {}, std::nullopt).status == 401);
}

// -------------------------------------------------------------------------------------------------

const std::string original_envelope =
    R"({"eventId":"01JD5M5ZQ8W9X7Y6V5T4S3R2Q1","eventType":"notification.email","version":1,)"
    R"("timestamp":"2026-11-23T10:00:00.000Z","source":"orders","correlationId":"chk_123",)"
    R"("causationId":"01JD5M5ZQ8W9X7Y6V5T4S3R2Q0","data":{"to":"ada@example.com","template":"order_confirmation"}})";

std::string failure_callback_body(std::string_view dlq_id) {
  return json::serialize(json::object{
      {"status", 503},
      {"header", json::object{{"Retry-After", json::array{"30"}}}},
      {"body", bus::crypto::base64_encode(R"({"error":"unavailable"})")},
      {"retried", 3},
      {"maxRetries", 3},
      {"dlqId", dlq_id},
      {"sourceMessageId", "msg_source_1"},
      {"url", "http://127.0.0.1:3002/api/webhook"},
      {"method", "POST"},
      {"sourceHeader", json::object{{"Content-Type", json::array{"application/json"}}}},
      {"sourceBody", bus::crypto::base64_encode(original_envelope)},
      {"notBefore", 1795428000000},
      {"createdAt", 1795428000000},
      {"callerIP", "127.0.0.1"},
  });
}

void failure_callback_records_a_dead_letter(db::dialect kind) {
  analytics_env env(kind);
  const auto body = failure_callback_body("1725323658779-0");

  SUBCASE("signed with the current key: recorded; re-posted: a duplicate") {
    const auto r = env.post_callback(body, current_key);
    REQUIRE_MESSAGE(r.status == 200, status_line(r));
    CHECK(r.body == json::object{{"status", "processed"}, {"eventId", "dlq_1725323658779-0"}});
    const auto rows = env.database().with_session([](soci::session& s) {
      return analytics::repository::list_dead_letters(s, analytics::page_request{});
    });
    REQUIRE(rows.size() == 1);
    const auto& d = rows[0];
    CHECK(d.event_id == "dlq_1725323658779-0");
    CHECK(d.dlq_id == "1725323658779-0");
    CHECK(d.source_message_id == "msg_source_1");
    CHECK(d.destination == "http://127.0.0.1:3002/api/webhook");
    CHECK(d.last_status == 503);
    CHECK(d.last_response == R"({"error":"unavailable"})");
    CHECK(d.attempts == 4);
    CHECK(d.body == original_envelope);
    CHECK(d.correlation_id == "chk_123");
    CHECK(env.records("dlq") == 1);

    const auto again = env.post_callback(body, current_key);
    REQUIRE_MESSAGE(again.status == 200, status_line(again));
    CHECK(again.body.at("status") == "duplicate");
    CHECK(env.count("dead_letters") == 1);
    CHECK(env.records("dlq") == 1);

    // The same report arriving as an analytics.dlq event (shopd publish) is the same event.
    const auto parsed = analytics::parse_failure_callback(body);
    REQUIRE(parsed.has_value());
    CHECK(is_duplicate(env.deliver(analytics::to_envelope(*parsed, minutes_after_base(1)))));
    CHECK(env.outbox().empty());
  }
  SUBCASE("signed with the next key: accepted (a key roll)") {
    CHECK(env.post_callback(body, next_key).status == 200);
    CHECK(env.count("dead_letters") == 1);
  }
  SUBCASE("a wrong key, no signature, or a signature of other bytes: 401 and nothing recorded") {
    const auto wrong = env.post_callback(body, "sig_not_ours");
    CHECK(wrong.status == 401);
    CHECK(wrong.body.at("code") == "unauthorized");
    CHECK(env.call(http::verb::post, "/api/dlq/callback", body, std::nullopt).status == 401);
    http::request req{http::verb::post, "/api/dlq/callback", 11};
    req.set("Upstash-Signature",
            bus::sign(current_key, callback_url, body + " ", std::chrono::system_clock::now()));
    CHECK(env.call(http::verb::post, "/api/dlq/callback", body, std::nullopt, &req).status == 401);
    req.set("Upstash-Signature", bus::sign(current_key, callback_url, body,
                                           std::chrono::system_clock::now() - std::chrono::hours(1)));
    CHECK(env.call(http::verb::post, "/api/dlq/callback", body, std::nullopt, &req).status == 401);
    // Signed for another URL (`sub`): a delivery meant for someone else is not a failure callback.
    req.set("Upstash-Signature", bus::sign(current_key, "http://127.0.0.1:3001/api/webhook", body,
                                           std::chrono::system_clock::now()));
    CHECK(env.call(http::verb::post, "/api/dlq/callback", body, std::nullopt, &req).status == 401);
    CHECK(env.count("dead_letters") == 0);
    CHECK(env.count("inbox") == 0);
  }
  SUBCASE("a signed body that is not a failure callback: 400 naming the field") {
    const auto not_json = env.post_callback("{nope", current_key);
    CHECK(not_json.status == 400);
    CHECK(not_json.body.at("code") == "invalid_callback");
    auto missing = json::parse(body).as_object();
    missing.erase("sourceMessageId");
    const auto r = env.post_callback(json::serialize(missing), current_key);
    CHECK(r.status == 400);
    CHECK(r.body.at("field") == "sourceMessageId");
    auto bad_base64 = json::parse(body).as_object();
    bad_base64["sourceBody"] = "***";
    CHECK(env.post_callback(json::serialize(bad_base64), current_key).body.at("field") == "sourceBody");
    CHECK(env.count("dead_letters") == 0);
  }
  SUBCASE("a callback without dlqId is recorded, keyed on its source message") {
    auto no_dlq = json::parse(body).as_object();
    no_dlq.erase("dlqId");
    no_dlq["sourceBody"] = bus::crypto::base64_encode("\x01\x02 binary \xff");
    const auto r = env.post_callback(json::serialize(no_dlq), current_key);
    REQUIRE_MESSAGE(r.status == 200, status_line(r));
    CHECK(r.body.at("eventId") == "dlqmsg_msg_source_1");
    const auto rows = env.database().with_session([](soci::session& s) {
      return analytics::repository::list_dead_letters(s, analytics::page_request{});
    });
    REQUIRE(rows.size() == 1);
    CHECK_FALSE(rows[0].dlq_id.has_value());
    CHECK(rows[0].correlation_id == "uncorrelated");
    CHECK(rows[0].body == "\x01\x02 binary \xEF\xBF\xBD");
  }
}

// -------------------------------------------------------------------------------------------------

std::int64_t only_dead_letter_id(analytics_env& env) {
  const auto rows = env.database().with_session([](soci::session& s) {
    return analytics::repository::list_dead_letters(s, analytics::page_request{});
  });
  REQUIRE(rows.size() == 1);
  return rows[0].id;
}

void replay_asks_the_relay(db::dialect kind) {
  shopd::test::capture_server relay;
  auto settings = test_settings();
  settings.qstash_url = relay.url("/");
  analytics_env env(kind, settings);
  REQUIRE(is_processed(env.deliver(dead_letter_event("1725323658779-0", "chk_replay"))));
  const auto id = only_dead_letter_id(env);
  const std::string target = "/api/dlq/" + std::to_string(id) + "/replay";

  SUBCASE("the relay accepts: replayed and audited") {
    relay.push(shopd::test::scripted_reply::json(201, R"({"messageId":"msg_replayed"})"));
    const auto r = env.call(http::verb::post, target);
    REQUIRE_MESSAGE(r.status == 200, status_line(r));
    CHECK(r.body.at("messageId") == "msg_replayed");
    CHECK(r.body.at("deadLetter").at("id") == id);
    CHECK(r.body.at("deadLetter").at("replayedAt").is_string());

    const auto requests = relay.requests();
    REQUIRE(requests.size() == 1);
    CHECK(requests[0].method == "POST");
    CHECK(requests[0].target == "/v2/dlq/retry/1725323658779-0");
    CHECK(requests[0].header("Authorization") == "Bearer " + std::string(qstash_token));

    const auto row = env.database().with_session(
        [&](soci::session& s) { return analytics::repository::find_dead_letter(s, id); });
    REQUIRE(row.has_value());
    CHECK(row->replayed_at_ms.has_value());

    const auto outbox = env.outbox();
    REQUIRE(outbox.size() == 1);
    CHECK(outbox[0].event_type == "analytics.audit");
    CHECK(outbox[0].destination == "http://127.0.0.1:3004/api/webhook");
    CHECK(outbox[0].event.correlation_id == "chk_replay");
    const auto rec = bus::payload_of<bus::audit_record>(outbox[0].event);
    REQUIRE(rec.has_value());
    CHECK(rec->action == "dlq.replayed");
    CHECK(rec->actor == "analytics");
    CHECK(rec->entity_type == "dead_letter");
    CHECK(rec->entity_id == std::to_string(id));
    CHECK(rec->outcome == bus::audit_outcome::success);
    CHECK(rec->detail.at("dlqId") == "1725323658779-0");
    CHECK(rec->detail.at("messageId") == "msg_replayed");
    CHECK(env.notified() == 1);
    // Analytics records its own audit when it comes back.
    CHECK(is_processed(env.deliver(outbox[0].event)));

    const auto summary = env.call(http::verb::get, "/api/metrics/summary");
    CHECK(summary.body.at("dlq") == json::object{{"count", 1}, {"unreplayed", 0}});

    SUBCASE("a second replay is refused without asking the relay") {
      const auto twice = env.call(http::verb::post, target);
      CHECK(twice.status == 409);
      CHECK(twice.body.at("code") == "already_replayed");
      CHECK(relay.requests().size() == 1);
    }
  }
  SUBCASE("the relay refuses: 502 with its error, nothing changes") {
    relay.push(shopd::test::scripted_reply::json(404, R"({"error":"dlq message not found"})"));
    const auto r = env.call(http::verb::post, target);
    CHECK(r.status == 502);
    CHECK(r.body.at("code") == "upstream_error");
    CHECK(r.body.at("error") == "QStash answered 404: dlq message not found");
    CHECK(relay.requests().size() == 1);
    const auto row = env.database().with_session(
        [&](soci::session& s) { return analytics::repository::find_dead_letter(s, id); });
    REQUIRE(row.has_value());
    CHECK_FALSE(row->replayed_at_ms.has_value());
    CHECK(env.outbox().empty());
    CHECK(env.notified() == 0);
  }
  SUBCASE("unknown, malformed or DLQ-less ids are 404 and ask nothing") {
    CHECK(env.call(http::verb::post, "/api/dlq/999999/replay").status == 404);
    CHECK(env.call(http::verb::post, "/api/dlq/abc/replay").status == 404);
    CHECK(env.call(http::verb::post, "/api/dlq/-1/replay").status == 404);
    CHECK(env.call(http::verb::post, "/api/dlq/0/replay").status == 404);
    REQUIRE(is_processed(env.deliver(dead_letter_event(std::nullopt))));
    const auto rows = env.database().with_session([](soci::session& s) {
      return analytics::repository::list_dead_letters(s, analytics::page_request{});
    });
    REQUIRE(rows.size() == 2);
    const auto no_dlq = env.call(http::verb::post, "/api/dlq/" + std::to_string(rows[0].id) + "/replay");
    CHECK(no_dlq.status == 404);
    CHECK(relay.requests().empty());
  }
  SUBCASE("replay is a private write") {
    CHECK(env.call(http::verb::post, target, {}, std::nullopt).status == 401);
    CHECK(env.call(http::verb::post, target, {}, std::string("nope")).status == 401);
    CHECK(relay.requests().empty());
  }
}

}  // namespace

TEST_SUITE("integration/roles/analytics") {
  TEST_CASE("analytics: each handler records its event once (SQLite)") {
    handlers_record_each_event_once(db::dialect::sqlite);
  }
  TEST_CASE("analytics: each handler records its event once (PostgreSQL)") {
    handlers_record_each_event_once(db::dialect::postgresql);
  }
  TEST_CASE("analytics: invalid payloads are rejected, named and audited (SQLite)") {
    invalid_payloads_are_rejected_and_audited(db::dialect::sqlite);
  }
  TEST_CASE("analytics: invalid payloads are rejected, named and audited (PostgreSQL)") {
    invalid_payloads_are_rejected_and_audited(db::dialect::postgresql);
  }
  TEST_CASE("analytics: GET /api/audit filters and pages (SQLite)") {
    audit_query_filters_and_pages(db::dialect::sqlite);
  }
  TEST_CASE("analytics: GET /api/audit filters and pages (PostgreSQL)") {
    audit_query_filters_and_pages(db::dialect::postgresql);
  }
  TEST_CASE("analytics: GET /api/metrics/summary from a known data set (SQLite)") {
    summary_from_known_data(db::dialect::sqlite);
  }
  TEST_CASE("analytics: GET /api/metrics/summary from a known data set (PostgreSQL)") {
    summary_from_known_data(db::dialect::postgresql);
  }
  TEST_CASE("analytics: GET /api/dlq pages newest first (SQLite)") {
    dead_letters_page_newest_first(db::dialect::sqlite);
  }
  TEST_CASE("analytics: GET /api/dlq pages newest first (PostgreSQL)") {
    dead_letters_page_newest_first(db::dialect::postgresql);
  }
  TEST_CASE("analytics: POST /api/dlq/callback records a dead letter (SQLite)") {
    failure_callback_records_a_dead_letter(db::dialect::sqlite);
  }
  TEST_CASE("analytics: POST /api/dlq/callback records a dead letter (PostgreSQL)") {
    failure_callback_records_a_dead_letter(db::dialect::postgresql);
  }
  TEST_CASE("analytics: POST /api/dlq/{id}/replay asks the relay (SQLite)") {
    replay_asks_the_relay(db::dialect::sqlite);
  }
  TEST_CASE("analytics: POST /api/dlq/{id}/replay asks the relay (PostgreSQL)") {
    replay_asks_the_relay(db::dialect::postgresql);
  }
}
