#include "shopd/roles/inventory/inventory_role.hpp"

#include "fresh_database.hpp"
#include "shopd/app/role.hpp"
#include "shopd/bus/dispatch.hpp"
#include "shopd/bus/envelope.hpp"
#include "shopd/bus/events.hpp"
#include "shopd/config/config.hpp"
#include "shopd/db/database.hpp"
#include "shopd/db/migrations.hpp"
#include "shopd/http/message.hpp"
#include "shopd/http/router.hpp"
#include "shopd/http/server.hpp"
#include "shopd/obs/metrics.hpp"
#include "shopd/roles/inventory/inventory_repository.hpp"
#include "shopd/roles/inventory/seed.hpp"
#include "shopd/roles/inventory/stock_rules.hpp"

#include <doctest/doctest.h>
#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <exception>
#include <filesystem>
#include <fstream>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace json = boost::json;
namespace bus = shopd::bus;
namespace db = shopd::db;
namespace http = shopd::http;
namespace inv = shopd::inventory;
namespace test = shopd::test;

namespace {

constexpr std::string_view token = "inventory-test-token";

shopd::config::settings test_settings() {
  shopd::config::sources src;
  src.flags["SHOPD_API_TOKEN"] = std::string(token);
  return shopd::config::load(src);
}

struct reply {
  unsigned status = 0;
  http::response raw;
  json::value body;
};

// The inventory role on a real database, with the parts of a process a role is handed. The server
// is constructed (roles may keep it) but never started: routes are called through the router.
class harness {
 public:
  explicit harness(const db::database_url& url)
      : settings_(test_settings()),
        db_(url, {.pool_size = 8}),
        server_(http::server_options{}, metrics_),
        destinations_(settings_) {
    db::migrate(db_);
    shopd::app::role_context ctx{"inventory", settings_,     db_,
                                 routes_,     server_,       metrics_,
                                 events_,     destinations_, [this] { wakeups_.fetch_add(1); },
                                 nullptr};
    role_ = inv::make_inventory_role(ctx);
  }

  [[nodiscard]] db::database& database() { return db_; }
  [[nodiscard]] const bus::destinations& destinations() const { return destinations_; }
  [[nodiscard]] int wakeups() const { return wakeups_.load(); }

  bus::outcome deliver(const bus::envelope& ev) {
    const auto* handler = events_.find(ev.event_type);
    REQUIRE(handler != nullptr);
    bus::delivery d(ev, "inventory", db_, destinations_, [this] { wakeups_.fetch_add(1); });
    return handler->fn(d);
  }

  reply call(http::verb method, std::string target, std::string body = {},
             std::optional<std::string> bearer = std::string(token), std::string correlation = {}) {
    http::request req{method, target, 11};
    if (bearer) req.set(http::field::authorization, "Bearer " + *bearer);
    req.body() = std::move(body);
    req.prepare_payload();
    const auto q = target.find('?');
    const std::string path = target.substr(0, q);
    const std::string query = q == std::string::npos ? std::string() : target.substr(q + 1);
    auto found = routes_.lookup(method, path);
    auto* route = std::get_if<http::router::found>(&found);
    REQUIRE_MESSAGE(route != nullptr, "no route for " << target);
    http::request_context rc{req, path, query, route->params, correlation};
    reply out;
    try {
      out.raw = http::run_inline(*route->r, rc);
    } catch (const http::http_error& e) {  // what the HTTP boundary does
      out.raw = e.to_response();
    }
    out.status = out.raw.result_int();
    if (!out.raw.body().empty()) out.body = json::parse(out.raw.body());
    return out;
  }

  reply get(std::string target, std::optional<std::string> bearer = std::nullopt) {
    return call(http::verb::get, std::move(target), {}, std::move(bearer));
  }
  reply post(std::string target, const json::value& body,
             std::optional<std::string> bearer = std::string(token)) {
    return call(http::verb::post, std::move(target), json::serialize(body), std::move(bearer));
  }

  void add_product(const std::string& sku, std::int64_t stock, bool active = true) {
    db_.in_transaction([&](soci::session& s) {
      inv::product p{.sku = sku,
                     .name = "Product " + sku,
                     .price_cents = 1250,
                     .currency = "EUR",
                     .stock = stock,
                     .active = active,
                     .created_at_ms = 1'700'000'000'000,
                     .updated_at_ms = 1'700'000'000'000};
      REQUIRE(inv::inventory_repository(s).insert_product(p));
    });
  }

  std::optional<inv::product> product(const std::string& sku) {
    return db_.with_session([&](soci::session& s) { return inv::inventory_repository(s).find_product(sku); });
  }
  std::int64_t stock(const std::string& sku) {
    auto p = product(sku);
    REQUIRE(p.has_value());
    return p->stock;
  }
  // The ledger of `sku`, oldest first.
  std::vector<inv::ledger_row> ledger(const std::string& sku) {
    auto rows = db_.with_session([&](soci::session& s) {
      return inv::inventory_repository(s).list_movements(sku, std::nullopt, 100'000);
    });
    std::reverse(rows.begin(), rows.end());
    return rows;
  }
  long long count(const std::string& sql) {
    return db_.with_session([&](soci::session& s) {
      long long n = 0;
      s << sql, soci::into(n);
      return n;
    });
  }

  // Every event the role queued, in order, checked for the outbox invariants on the way.
  std::vector<bus::envelope> outbox() {
    return db_.with_session([&](soci::session& s) {
      std::vector<bus::envelope> out;
      soci::rowset<soci::row> rows =
          (s.prepare << "SELECT event_id, event_type, destination, body FROM outbox "
                        "WHERE producer = 'inventory' ORDER BY id");
      for (const auto& r : rows) {
        auto ev = bus::parse_envelope(r.get<std::string>(3));
        REQUIRE(ev.has_value());
        CHECK(ev->event_id == r.get<std::string>(0));
        CHECK(ev->event_type == r.get<std::string>(1));
        CHECK(r.get<std::string>(2) == destinations_.url_for(ev->event_type));
        CHECK(ev->source == "inventory");
        out.push_back(std::move(*ev));
      }
      return out;
    });
  }

  // Prometheus sample value of `series` (`name{label="v",...}` as rendered), 0 when absent.
  double sample(const std::string& series) const {
    std::istringstream text(metrics_.render());
    for (std::string line; std::getline(text, line);) {
      if (line.starts_with(series + " ")) return std::stod(line.substr(series.size() + 1));
    }
    return 0;
  }

 private:
  shopd::config::settings settings_;
  db::database db_;
  shopd::obs::registry metrics_;
  http::router routes_;
  http::server server_;
  bus::event_router events_;
  bus::destinations destinations_;
  std::atomic<int> wakeups_{0};
  std::unique_ptr<shopd::app::role> role_;
};

bus::envelope stock_event(std::optional<std::string> order_id, bus::stock_reason reason,
                          std::vector<bus::stock_movement> movements, std::string correlation = "chk_test") {
  bus::stock_updated payload;
  payload.order_id = std::move(order_id);
  payload.reason = reason;
  payload.movements = std::move(movements);
  return bus::make_event(payload, "orders", correlation, std::string_view("01JCAUSE0000000000000000AA"));
}

std::vector<bus::audit_record> audits(const std::vector<bus::envelope>& events, std::string_view action) {
  std::vector<bus::audit_record> out;
  for (const auto& ev : events) {
    if (ev.event_type != bus::event_types::audit_record) continue;
    auto rec = bus::audit_record::from_json(ev.data);
    REQUIRE(rec.has_value());
    if (rec->action == action) out.push_back(std::move(*rec));
  }
  return out;
}

std::vector<bus::metric_point> metrics_named(const std::vector<bus::envelope>& events,
                                             std::string_view name) {
  std::vector<bus::metric_point> out;
  for (const auto& ev : events) {
    if (ev.event_type != bus::event_types::metric_point) continue;
    auto m = bus::metric_point::from_json(ev.data);
    REQUIRE(m.has_value());
    if (m->name == name) out.push_back(std::move(*m));
  }
  return out;
}

bool is_processed(const bus::outcome& o) {
  return std::holds_alternative<bus::processed>(o);
}
bool is_duplicate(const bus::outcome& o) {
  return std::holds_alternative<bus::duplicate>(o);
}

std::string error_code(const reply& r) {
  return std::string(r.body.at("code").as_string());
}

// Runs `body` once on SQLite and once on a fresh PostgreSQL database.
template <typename F>
void on_each_backend(F&& body) {
  SUBCASE("sqlite") {
    const test::scratch_database dir(db::dialect::sqlite, "inventory");
    harness h(dir.url());
    body(h);
  }
  SUBCASE("postgresql") {
    const test::scratch_database pg(db::dialect::postgresql, "inventory");
    harness h(pg.url());
    body(h);
  }
}

struct concurrency_report {
  int processed = 0;
  int transient = 0;
  std::vector<std::string> errors;
};

// `threads` threads deliver `per_thread` events each, all at once; make(thread, i) builds each one.
// A transient error is retried, as the relay would after a 503, and counted.
template <typename Make>
concurrency_report deliver_concurrently(harness& h, int threads, int per_thread, Make make) {
  concurrency_report report;
  std::mutex mutex;
  std::latch start(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < per_thread; ++i) {
        const bus::envelope ev = make(t, i);
        for (int attempt = 0; attempt < 50; ++attempt) {
          try {
            const auto o = h.deliver(ev);
            std::lock_guard lock(mutex);
            if (is_processed(o))
              ++report.processed;
            else
              report.errors.push_back("not processed: " + ev.event_id);
            break;
          } catch (const db::transient_error&) {
            std::lock_guard lock(mutex);
            ++report.transient;
          } catch (const std::exception& e) {
            std::lock_guard lock(mutex);
            report.errors.push_back(e.what());
            break;
          }
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  return report;
}

}  // namespace

TEST_SUITE("integration/inventory") {
  TEST_CASE("inventory.stock.updated applies every movement with its ledger row and reports it") {
    on_each_backend([](harness& h) {
      h.add_product("MUG-LOGO", 10);
      h.add_product("CAP-NAVY", 5);
      const auto ev = stock_event("ord_1", bus::stock_reason::order, {{"MUG-LOGO", -3}, {"CAP-NAVY", -2}});
      REQUIRE(is_processed(h.deliver(ev)));

      CHECK(h.stock("MUG-LOGO") == 7);
      CHECK(h.stock("CAP-NAVY") == 3);
      const auto mug = h.ledger("MUG-LOGO");
      REQUIRE(mug.size() == 1);
      CHECK(mug[0].requested_delta == -3);
      CHECK(mug[0].applied_delta == -3);
      CHECK(mug[0].stock_after == 7);
      CHECK(mug[0].reason == "order");
      CHECK(mug[0].status == "applied");
      CHECK(mug[0].order_id == "ord_1");
      CHECK(mug[0].event_id == ev.event_id);
      CHECK(mug[0].correlation_id == "chk_test");
      CHECK(mug[0].created_at_ms > 1'700'000'000'000);
      CHECK(h.ledger("CAP-NAVY").size() == 1);

      const auto out = h.outbox();
      for (const auto& e : out) {
        CHECK(e.correlation_id == "chk_test");
        CHECK(e.causation_id == ev.event_id);
      }
      const auto updated = audits(out, "stock.updated");
      REQUIRE(updated.size() == 1);
      CHECK(updated[0].actor == "inventory");
      CHECK(updated[0].entity_type == "order");
      CHECK(updated[0].entity_id == "ord_1");
      CHECK(updated[0].outcome == bus::audit_outcome::success);
      const auto& moves = updated[0].detail.at("movements").as_array();
      REQUIRE(moves.size() == 2);
      CHECK(moves[0].at("sku") == "MUG-LOGO");
      CHECK(moves[0].at("applied") == -3);
      CHECK(moves[0].at("stockAfter") == 7);
      CHECK(moves[0].at("status") == "applied");
      CHECK(updated[0].detail.at("reason") == "order");
      const auto levels = metrics_named(out, "stock.level");
      REQUIRE(levels.size() == 2);
      CHECK(levels[0].tags == std::map<std::string, std::string>{{"sku", "MUG-LOGO"}});
      CHECK(levels[0].value == 7);
      CHECK(levels[0].unit == "units");
      CHECK(levels[1].value == 3);
      CHECK(out.size() == 3);
      CHECK(audits(out, "stock.shortfall").empty());
      CHECK(h.wakeups() == 1);
      CHECK(h.sample(R"(shopd_stock_movements_total{reason="order",status="applied"})") == 2);
    });
  }

  TEST_CASE("a redelivered event changes nothing") {
    on_each_backend([](harness& h) {
      h.add_product("MUG-LOGO", 10);
      const auto ev = stock_event("ord_1", bus::stock_reason::order, {{"MUG-LOGO", -4}});
      REQUIRE(is_processed(h.deliver(ev)));
      const auto outbox_before = h.outbox().size();
      CHECK(is_duplicate(h.deliver(ev)));
      CHECK(is_duplicate(h.deliver(ev)));
      CHECK(h.stock("MUG-LOGO") == 6);
      CHECK(h.ledger("MUG-LOGO").size() == 1);
      CHECK(h.outbox().size() == outbox_before);
      CHECK(h.sample(R"(shopd_stock_movements_total{reason="order",status="applied"})") == 1);
    });
  }

  TEST_CASE("a shortfall is recorded, audited and measured; the other movements still apply") {
    on_each_backend([](harness& h) {
      h.add_product("MUG-LOGO", 2);
      h.add_product("CAP-NAVY", 5);
      const auto ev = stock_event("ord_7", bus::stock_reason::order, {{"MUG-LOGO", -5}, {"CAP-NAVY", -1}});
      REQUIRE(is_processed(h.deliver(ev)));

      CHECK(h.stock("MUG-LOGO") == 2);  // all or nothing: no partial fill
      CHECK(h.stock("CAP-NAVY") == 4);
      const auto mug = h.ledger("MUG-LOGO");
      REQUIRE(mug.size() == 1);
      CHECK(mug[0].status == "shortfall");
      CHECK(mug[0].requested_delta == -5);
      CHECK(mug[0].applied_delta == 0);
      CHECK(mug[0].stock_after == 2);
      CHECK(mug[0].order_id == "ord_7");
      CHECK(h.ledger("CAP-NAVY").at(0).status == "applied");

      const auto out = h.outbox();
      const auto shortfalls = audits(out, "stock.shortfall");
      REQUIRE(shortfalls.size() == 1);
      CHECK(shortfalls[0].outcome == bus::audit_outcome::failure);
      CHECK(shortfalls[0].entity_type == "product");
      CHECK(shortfalls[0].entity_id == "MUG-LOGO");
      CHECK(shortfalls[0].detail.at("orderId") == "ord_7");
      CHECK(shortfalls[0].detail.at("requested") == 5);
      CHECK(shortfalls[0].detail.at("available") == 2);
      const auto metric = metrics_named(out, "stock.shortfall");
      REQUIRE(metric.size() == 1);
      CHECK(metric[0].value == 3);
      CHECK(metric[0].unit == "units");
      CHECK(metric[0].tags == std::map<std::string, std::string>{{"reason", "order"}, {"sku", "MUG-LOGO"}});
      const auto updated = audits(out, "stock.updated");
      REQUIRE(updated.size() == 1);
      const auto& moves = updated[0].detail.at("movements").as_array();
      CHECK(moves[0].at("status") == "shortfall");
      CHECK(moves[0].at("applied") == 0);
      CHECK(moves[1].at("status") == "applied");
      CHECK(metrics_named(out, "stock.level").size() == 2);  // both skus have a ledger row
      for (const auto& e : out) CHECK(e.causation_id == ev.event_id);

      CHECK(h.sample("shopd_stock_shortfalls_total") == 1);
      CHECK(h.sample(R"(shopd_stock_movements_total{reason="order",status="shortfall"})") == 1);
      CHECK(h.sample(R"(shopd_stock_movements_total{reason="order",status="applied"})") == 1);
    });
  }

  TEST_CASE("an event whose every movement falls short still answers processed and only reports failures") {
    const test::scratch_database dir(db::dialect::sqlite, "inventory");
    harness h(dir.url());
    h.add_product("MUG-LOGO", 0);
    REQUIRE(is_processed(h.deliver(stock_event("ord_8", bus::stock_reason::order, {{"MUG-LOGO", -1}}))));
    const auto out = h.outbox();
    CHECK(audits(out, "stock.updated").empty());
    CHECK(audits(out, "stock.shortfall").size() == 1);
    CHECK(metrics_named(out, "stock.level").size() == 1);
    CHECK(h.ledger("MUG-LOGO").at(0).status == "shortfall");
  }

  TEST_CASE("an unknown sku is reported without a ledger row; the other movements still apply") {
    on_each_backend([](harness& h) {
      h.add_product("MUG-LOGO", 10);
      REQUIRE(is_processed(
          h.deliver(stock_event("ord_2", bus::stock_reason::order, {{"GHOST", -2}, {"MUG-LOGO", -1}}))));
      CHECK(h.stock("MUG-LOGO") == 9);
      CHECK(h.count("SELECT COUNT(*) FROM stock_movements WHERE sku = 'GHOST'") == 0);
      CHECK_FALSE(h.product("GHOST").has_value());
      const auto out = h.outbox();
      const auto unknown = audits(out, "stock.unknown_sku");
      REQUIRE(unknown.size() == 1);
      CHECK(unknown[0].outcome == bus::audit_outcome::failure);
      CHECK(unknown[0].entity_type == "product");
      CHECK(unknown[0].entity_id == "GHOST");
      CHECK(unknown[0].detail.at("delta") == -2);
      CHECK(unknown[0].detail.at("orderId") == "ord_2");
      const auto metric = metrics_named(out, "stock.unknown_sku");
      REQUIRE(metric.size() == 1);
      CHECK(metric[0].value == 2);
      CHECK(metric[0].tags.at("sku") == "GHOST");
      const auto updated = audits(out, "stock.updated");
      REQUIRE(updated.size() == 1);
      CHECK(updated[0].detail.at("movements").as_array()[0].at("status") == "unknown_sku");
      CHECK(h.sample(R"(shopd_stock_movements_total{reason="order",status="unknown_sku"})") == 1);
    });
  }

  TEST_CASE("an invalid payload is rejected naming the field, audited, and not retried") {
    const test::scratch_database dir(db::dialect::sqlite, "inventory");
    harness h(dir.url());
    h.add_product("MUG-LOGO", 10);
    SUBCASE("a positive delta for an order") {
      json::object data{{"orderId", "ord_1"},
                        {"reason", "order"},
                        {"movements", json::array{json::object{{"sku", "MUG-LOGO"}, {"delta", 3}}}}};
      const auto ev = bus::make_envelope(bus::event_types::stock_updated, "orders", data, "chk_bad");
      const auto o = h.deliver(ev);
      const auto* r = std::get_if<bus::rejection>(&o);
      REQUIRE(r != nullptr);
      CHECK(r->code == "invalid_payload");
      CHECK(r->field == "data.movements[0].delta");
      CHECK(h.stock("MUG-LOGO") == 10);
      CHECK(h.ledger("MUG-LOGO").empty());
      const auto out = h.outbox();
      REQUIRE(out.size() == 1);
      CHECK(out[0].correlation_id == "chk_bad");
      CHECK(out[0].causation_id == ev.event_id);
      const auto rejected = audits(out, "stock.rejected");
      REQUIRE(rejected.size() == 1);
      CHECK(rejected[0].outcome == bus::audit_outcome::failure);
      CHECK(rejected[0].entity_type == "event");
      CHECK(rejected[0].entity_id == ev.event_id);
      CHECK(rejected[0].detail.at("field") == "data.movements[0].delta");
      CHECK(rejected[0].detail.at("code") == "invalid_payload");
      // The rejection is remembered: a redelivery is acknowledged without a second audit.
      CHECK(is_duplicate(h.deliver(ev)));
      CHECK(h.outbox().size() == 1);
    }
    SUBCASE("movements missing") {
      const auto ev = bus::make_envelope(bus::event_types::stock_updated, "orders",
                                         json::object{{"orderId", "o"}, {"reason", "order"}}, "chk_bad");
      const auto o = h.deliver(ev);
      REQUIRE(std::holds_alternative<bus::rejection>(o));
      CHECK(std::get<bus::rejection>(o).field == "data.movements");
    }
  }

  TEST_CASE("restocks without an order are audited per product") {
    const test::scratch_database dir(db::dialect::sqlite, "inventory");
    harness h(dir.url());
    h.add_product("MUG-LOGO", 1);
    h.add_product("CAP-NAVY", 1);
    REQUIRE(is_processed(h.deliver(
        stock_event(std::nullopt, bus::stock_reason::restock, {{"MUG-LOGO", 10}, {"CAP-NAVY", 20}}))));
    CHECK(h.stock("MUG-LOGO") == 11);
    CHECK(h.stock("CAP-NAVY") == 21);
    CHECK_FALSE(h.ledger("MUG-LOGO").at(0).order_id.has_value());
    const auto updated = audits(h.outbox(), "stock.updated");
    REQUIRE(updated.size() == 2);
    CHECK(updated[0].entity_type == "product");
    CHECK(updated[0].entity_id == "MUG-LOGO");
    CHECK(updated[1].entity_id == "CAP-NAVY");
    CHECK(updated[1].detail.at("movements").as_array().size() == 1);
  }

  TEST_CASE("a restock past the stock ceiling is refused and reported without a ledger row") {
    const test::scratch_database dir(db::dialect::sqlite, "inventory");
    harness h(dir.url());
    h.add_product("MUG-LOGO", inv::max_stock - 1);
    REQUIRE(
        is_processed(h.deliver(stock_event(std::nullopt, bus::stock_reason::restock, {{"MUG-LOGO", 2}}))));
    CHECK(h.stock("MUG-LOGO") == inv::max_stock - 1);
    CHECK(h.ledger("MUG-LOGO").empty());
    const auto over = audits(h.outbox(), "stock.over_limit");
    REQUIRE(over.size() == 1);
    CHECK(over[0].detail.at("available") == inv::max_stock - 1);
    CHECK(h.sample(R"(shopd_stock_movements_total{reason="restock",status="over_limit"})") == 1);
  }

  TEST_CASE("concurrent decrements on one sku never oversell") {
    constexpr int threads = 8;
    constexpr int per_thread = 50;
    auto decrement = [](int, int) {
      return stock_event(std::nullopt, bus::stock_reason::adjustment, {{"MUG-LOGO", -1}});
    };

    SUBCASE("300 units for 400 decrements: exactly 300 applied, 100 shortfalls, never negative") {
      on_each_backend([&](harness& h) {
        h.add_product("MUG-LOGO", 300);
        const auto report = deliver_concurrently(h, threads, per_thread, decrement);
        CHECK(report.errors.empty());
        CHECK(report.processed == threads * per_thread);
        CHECK(h.stock("MUG-LOGO") == 0);
        const auto rows = h.ledger("MUG-LOGO");
        REQUIRE(rows.size() == threads * per_thread);
        std::vector<std::int64_t> applied_after;
        int shortfalls = 0;
        for (const auto& r : rows) {
          CHECK(r.stock_after >= 0);
          if (r.status == "applied")
            applied_after.push_back(r.stock_after);
          else
            ++shortfalls;
        }
        CHECK(shortfalls == 100);
        // Serialised on the row: in ledger order the applied rows count down 299, 298, ..., 0.
        REQUIRE(applied_after.size() == 300);
        for (std::size_t i = 0; i < applied_after.size(); ++i)
          CHECK(applied_after[i] == 299 - static_cast<std::int64_t>(i));
        CHECK(h.sample("shopd_stock_shortfalls_total") == 100);
        CHECK(h.sample(R"(shopd_stock_movements_total{reason="adjustment",status="applied"})") == 300);
      });
    }
    SUBCASE("100 units for 400 decrements: exactly 100 applied and 300 shortfalls") {
      on_each_backend([&](harness& h) {
        h.add_product("MUG-LOGO", 100);
        const auto report = deliver_concurrently(h, threads, per_thread, decrement);
        CHECK(report.errors.empty());
        CHECK(report.processed == threads * per_thread);
        CHECK(h.stock("MUG-LOGO") == 0);
        CHECK(h.count("SELECT COUNT(*) FROM stock_movements WHERE status = 'applied'") == 100);
        CHECK(h.count("SELECT COUNT(*) FROM stock_movements WHERE status = 'shortfall'") == 300);
        CHECK(h.count("SELECT MIN(stock_after) FROM stock_movements") == 0);
        CHECK(h.count("SELECT COALESCE(SUM(applied_delta), 0) FROM stock_movements") == -100);
        CHECK(audits(h.outbox(), "stock.shortfall").size() == 300);
        CHECK(h.sample("shopd_stock_shortfalls_total") == 300);
      });
    }
  }

  TEST_CASE("events locking the same skus in opposite orders do not deadlock") {
    on_each_backend([](harness& h) {
      h.add_product("AAA", 1000);
      h.add_product("BBB", 1000);
      const auto report = deliver_concurrently(h, 6, 30, [](int t, int i) {
        std::vector<bus::stock_movement> m{{"AAA", -1}, {"BBB", -1}};
        if ((t + i) % 2 == 1) std::swap(m[0], m[1]);
        return stock_event("ord_" + std::to_string(t) + "_" + std::to_string(i), bus::stock_reason::order, m);
      });
      CHECK(report.errors.empty());
      CHECK(report.processed == 180);
      // Rows are locked in sku order whatever the payload order, so PostgreSQL never has to
      // break a deadlock (which would surface here as a transient error).
      CHECK(report.transient == 0);
      CHECK(h.stock("AAA") == 820);
      CHECK(h.stock("BBB") == 820);
    });
  }

  TEST_CASE("GET /api/products pages the catalogue by sku") {
    const test::scratch_database dir(db::dialect::sqlite, "inventory");
    harness h(dir.url());
    for (const char* sku : {"E-5", "A-1", "C-3", "B-2", "D-4"})
      h.add_product(sku, 3, std::string(sku) != "C-3");

    SUBCASE("public, in pages, with a null cursor at the end") {
      std::vector<std::string> seen;
      std::string target = "/api/products?limit=2";
      int pages = 0;
      for (;;) {
        const auto r = h.get(target);
        REQUIRE(r.status == 200);
        ++pages;
        for (const auto& p : r.body.at("products").as_array()) seen.emplace_back(p.at("sku").as_string());
        const auto& next = r.body.at("nextCursor");
        if (next.is_null()) break;
        target = "/api/products?limit=2&cursor=" + std::string(next.as_string());
      }
      CHECK(pages == 3);
      CHECK(seen == std::vector<std::string>{"A-1", "B-2", "C-3", "D-4", "E-5"});
    }
    SUBCASE("the product shape") {
      const auto r = h.get("/api/products?limit=1");
      const auto& p = r.body.at("products").as_array().at(0).as_object();
      CHECK(p.at("sku") == "A-1");
      CHECK(p.at("name") == "Product A-1");
      CHECK(p.at("priceCents") == 1250);
      CHECK(p.at("currency") == "EUR");
      CHECK(p.at("stock") == 3);
      CHECK(p.at("active") == true);
      CHECK(p.at("updatedAt") == "2023-11-14T22:13:20.000Z");
      CHECK(p.size() == 7);
    }
    SUBCASE("the active filter") {
      const auto active = h.get("/api/products?active=true");
      CHECK(active.body.at("products").as_array().size() == 4);
      const auto inactive = h.get("/api/products?active=false");
      REQUIRE(inactive.body.at("products").as_array().size() == 1);
      CHECK(inactive.body.at("products").as_array()[0].at("sku") == "C-3");
      CHECK(h.get("/api/products").body.at("products").as_array().size() == 5);
      CHECK(h.get("/api/products?limit=5").body.at("nextCursor").is_null());
      CHECK(h.get("/api/products?cursor=").status == 200);
    }
    SUBCASE("bad parameters are 400 naming them") {
      for (const char* target :
           {"/api/products?limit=0", "/api/products?limit=101", "/api/products?limit=x"}) {
        CAPTURE(target);
        const auto r = h.get(target);
        CHECK(r.status == 400);
        CHECK(r.body.at("field") == "limit");
      }
      CHECK(h.get("/api/products?active=yes").body.at("field") == "active");
      const auto cursor = h.get("/api/products?cursor=garbage!");
      CHECK(cursor.status == 400);
      CHECK(cursor.body.at("field") == "cursor");
      CHECK(error_code(cursor) == "invalid_parameter");
      CHECK(h.get("/api/products?cursor=" + inv::movement_cursor(3)).status == 400);
    }
    SUBCASE("one product, or 404") {
      const auto r = h.get("/api/products/D-4");
      CHECK(r.status == 200);
      CHECK(r.body.at("sku") == "D-4");
      CHECK(h.get("/api/products/NOPE").status == 404);
      CHECK(error_code(h.get("/api/products/NOPE")) == "not_found");
      CHECK(h.get("/api/products/not%20a%20sku").status == 404);
    }
  }

  TEST_CASE("POST /api/products upserts the catalogue") {
    on_each_backend([](harness& h) {
      const json::object mug{
          {"sku", "MUG-LOGO"}, {"name", "Mug"}, {"priceCents", 1290}, {"currency", "EUR"}, {"stock", 40}};
      SUBCASE("bearer token required") {
        CHECK(h.post("/api/products", mug, std::nullopt).status == 401);
        CHECK(h.post("/api/products", mug, std::string("wrong")).status == 401);
        CHECK_FALSE(h.product("MUG-LOGO").has_value());
      }
      SUBCASE("validation") {
        const auto not_json = h.call(http::verb::post, "/api/products", "{\"sku\":");
        CHECK(not_json.status == 400);
        CHECK(error_code(not_json) == "invalid_body");
        json::object no_name = mug;
        no_name.erase("name");
        const auto r = h.post("/api/products", no_name);
        CHECK(r.status == 400);
        CHECK(r.body.at("field") == "name");
        CHECK(h.post("/api/products", json::array{}).status == 400);
        CHECK(h.outbox().empty());
      }
      SUBCASE("create, with its initial stock in the ledger, then update") {
        const auto created = h.call(http::verb::post, "/api/products", json::serialize(mug),
                                    std::string(token), "corr-create-1");
        REQUIRE(created.status == 201);
        CHECK(created.body.at("stock") == 40);
        CHECK(created.body.at("active") == true);
        const auto rows = h.ledger("MUG-LOGO");
        REQUIRE(rows.size() == 1);
        CHECK(rows[0].reason == "restock");
        CHECK(rows[0].status == "applied");
        CHECK(rows[0].requested_delta == 40);
        CHECK(rows[0].stock_after == 40);
        CHECK(rows[0].correlation_id == "corr-create-1");
        CHECK_FALSE(rows[0].event_id.has_value());
        auto out = h.outbox();
        auto upserted = audits(out, "product.upserted");
        REQUIRE(upserted.size() == 1);
        CHECK(upserted[0].entity_id == "MUG-LOGO");
        CHECK(upserted[0].detail.at("created") == true);
        CHECK(upserted[0].detail.at("stock") == 40);
        for (const auto& e : out) {
          CHECK(e.correlation_id == "corr-create-1");
          CHECK_FALSE(e.causation_id.has_value());
        }
        CHECK(h.wakeups() == 1);

        h.deliver(stock_event("ord_1", bus::stock_reason::order, {{"MUG-LOGO", -5}}));
        const auto updated = h.post("/api/products", json::object{{"sku", "MUG-LOGO"},
                                                                  {"name", "Logo mug"},
                                                                  {"priceCents", 1490},
                                                                  {"currency", "EUR"},
                                                                  {"active", false}});
        REQUIRE(updated.status == 200);
        CHECK(updated.body.at("name") == "Logo mug");
        CHECK(updated.body.at("priceCents") == 1490);
        CHECK(updated.body.at("active") == false);
        CHECK(updated.body.at("stock") == 35);  // untouched by an update
        CHECK(h.stock("MUG-LOGO") == 35);
        upserted = audits(h.outbox(), "product.upserted");
        REQUIRE(upserted.size() == 2);
        CHECK(upserted[1].detail.at("created") == false);
        CHECK(upserted[1].detail.at("previous").at("priceCents") == 1290);

        // `active` left out keeps the current value.
        const auto again =
            h.post("/api/products",
                   json::object{
                       {"sku", "MUG-LOGO"}, {"name", "Logo mug"}, {"priceCents", 1490}, {"currency", "EUR"}});
        CHECK(again.status == 200);
        CHECK(again.body.at("active") == false);
      }
      SUBCASE("stock of an existing product goes through adjust: 409 use_adjust, nothing changes") {
        REQUIRE(h.post("/api/products", mug).status == 201);
        const auto before = h.outbox().size();
        json::object change = mug;
        change["stock"] = 500;
        change["name"] = "Renamed";
        const auto r = h.post("/api/products", change);
        CHECK(r.status == 409);
        CHECK(error_code(r) == "use_adjust");
        CHECK(r.body.at("field") == "stock");
        CHECK(h.stock("MUG-LOGO") == 40);
        CHECK(h.product("MUG-LOGO")->name == "Mug");
        CHECK(h.outbox().size() == before);
      }
      SUBCASE("a product created without stock has an empty ledger") {
        json::object bare = mug;
        bare.erase("stock");
        REQUIRE(h.post("/api/products", bare).status == 201);
        CHECK(h.stock("MUG-LOGO") == 0);
        CHECK(h.ledger("MUG-LOGO").empty());
      }
    });
  }

  TEST_CASE("POST /api/stock/{sku}/adjust takes the movement path of events") {
    on_each_backend([](harness& h) {
      h.add_product("MUG-LOGO", 10);
      SUBCASE("bearer token required") {
        CHECK(h.post("/api/stock/MUG-LOGO/adjust", json::object{{"delta", 5}, {"reason", "restock"}},
                     std::nullopt)
                  .status == 401);
        CHECK(h.stock("MUG-LOGO") == 10);
      }
      SUBCASE("applied: 200 with the ledger row") {
        const auto r = h.post("/api/stock/MUG-LOGO/adjust",
                              json::object{{"delta", -4}, {"reason", "adjustment"}, {"note", "two broke"}});
        REQUIRE(r.status == 200);
        CHECK(r.body.at("sku") == "MUG-LOGO");
        CHECK(r.body.at("requestedDelta") == -4);
        CHECK(r.body.at("appliedDelta") == -4);
        CHECK(r.body.at("stockAfter") == 6);
        CHECK(r.body.at("status") == "applied");
        CHECK(r.body.at("reason") == "adjustment");
        CHECK(r.body.at("eventId").is_null());
        CHECK(r.body.at("orderId").is_null());
        CHECK(r.body.at("correlationId").as_string().starts_with("api_"));
        CHECK(r.body.at("id").as_int64() == h.ledger("MUG-LOGO").at(0).id);
        CHECK(h.stock("MUG-LOGO") == 6);
        const auto out = h.outbox();
        const auto updated = audits(out, "stock.updated");
        REQUIRE(updated.size() == 1);
        CHECK(updated[0].entity_type == "product");
        CHECK(updated[0].detail.at("note") == "two broke");
        CHECK(updated[0].detail.at("source") == "api");
        CHECK(metrics_named(out, "stock.level").at(0).value == 6);
        CHECK(h.wakeups() == 1);
      }
      SUBCASE("a cancel returns an order's units and is audited on the order") {
        const auto r = h.post("/api/stock/MUG-LOGO/adjust",
                              json::object{{"delta", 2}, {"reason", "cancel"}, {"orderId", "ord_9"}});
        REQUIRE(r.status == 200);
        CHECK(r.body.at("orderId") == "ord_9");
        CHECK(h.stock("MUG-LOGO") == 12);
        const auto updated = audits(h.outbox(), "stock.updated");
        REQUIRE(updated.size() == 1);
        CHECK(updated[0].entity_type == "order");
        CHECK(updated[0].entity_id == "ord_9");
      }
      SUBCASE("oversell: 409 insufficient_stock, and the shortfall is still recorded, audited and measured") {
        const auto r =
            h.post("/api/stock/MUG-LOGO/adjust", json::object{{"delta", -11}, {"reason", "adjustment"}});
        REQUIRE(r.status == 409);
        CHECK(error_code(r) == "insufficient_stock");
        CHECK(r.body.at("available") == 10);
        CHECK(r.body.at("requested") == 11);
        CHECK(r.body.at("movement").at("status") == "shortfall");
        CHECK(h.stock("MUG-LOGO") == 10);
        const auto rows = h.ledger("MUG-LOGO");
        REQUIRE(rows.size() == 1);
        CHECK(rows[0].status == "shortfall");
        CHECK(rows[0].applied_delta == 0);
        const auto out = h.outbox();
        REQUIRE(audits(out, "stock.shortfall").size() == 1);
        CHECK(audits(out, "stock.shortfall")[0].detail.at("available") == 10);
        REQUIRE(metrics_named(out, "stock.shortfall").size() == 1);
        CHECK(metrics_named(out, "stock.shortfall")[0].value == 1);
        CHECK(audits(out, "stock.updated").empty());
        CHECK(h.sample("shopd_stock_shortfalls_total") == 1);
      }
      SUBCASE("past the stock ceiling: 409 stock_limit") {
        h.add_product("BIG", inv::max_stock);
        const auto r = h.post("/api/stock/BIG/adjust", json::object{{"delta", 1}, {"reason", "restock"}});
        CHECK(r.status == 409);
        CHECK(error_code(r) == "stock_limit");
        CHECK(h.stock("BIG") == inv::max_stock);
      }
      SUBCASE("unknown sku: 404 and no trace") {
        const auto r = h.post("/api/stock/GHOST/adjust", json::object{{"delta", 1}, {"reason", "restock"}});
        CHECK(r.status == 404);
        CHECK(h.outbox().empty());
      }
      SUBCASE("validation names the field") {
        const auto order =
            h.post("/api/stock/MUG-LOGO/adjust", json::object{{"delta", -1}, {"reason", "order"}});
        CHECK(order.status == 400);
        CHECK(order.body.at("field") == "reason");
        CHECK(h.post("/api/stock/MUG-LOGO/adjust", json::object{{"delta", 0}, {"reason", "adjustment"}})
                  .body.at("field") == "delta");
        CHECK(h.post("/api/stock/MUG-LOGO/adjust", json::object{{"delta", 1}, {"reason", "cancel"}})
                  .body.at("field") == "orderId");
        CHECK(h.ledger("MUG-LOGO").empty());
      }
    });
  }

  TEST_CASE("GET /api/stock/{sku}/movements lists the ledger newest first") {
    const test::scratch_database dir(db::dialect::sqlite, "inventory");
    harness h(dir.url());
    h.add_product("MUG-LOGO", 0);
    h.add_product("CAP-NAVY", 0);
    for (int i = 1; i <= 5; ++i) {
      REQUIRE(
          h.post("/api/stock/MUG-LOGO/adjust", json::object{{"delta", i}, {"reason", "restock"}}).status ==
          200);
    }
    REQUIRE(h.post("/api/stock/CAP-NAVY/adjust", json::object{{"delta", 1}, {"reason", "restock"}}).status ==
            200);

    CHECK(h.get("/api/stock/MUG-LOGO/movements").status == 401);
    CHECK(h.get("/api/stock/MUG-LOGO/movements", std::string("wrong")).status == 401);
    CHECK(h.get("/api/stock/GHOST/movements", std::string(token)).status == 404);

    std::vector<std::int64_t> deltas;
    std::string target = "/api/stock/MUG-LOGO/movements?limit=2";
    for (;;) {
      const auto r = h.get(target, std::string(token));
      REQUIRE(r.status == 200);
      for (const auto& m : r.body.at("movements").as_array()) {
        CHECK(m.at("sku") == "MUG-LOGO");
        deltas.push_back(m.at("requestedDelta").as_int64());
      }
      if (r.body.at("nextCursor").is_null()) break;
      target =
          "/api/stock/MUG-LOGO/movements?limit=2&cursor=" + std::string(r.body.at("nextCursor").as_string());
    }
    CHECK(deltas == std::vector<std::int64_t>{5, 4, 3, 2, 1});
    const auto bad =
        h.get("/api/stock/MUG-LOGO/movements?cursor=" + inv::product_cursor("MUG-LOGO"), std::string(token));
    CHECK(bad.status == 400);
    CHECK(bad.body.at("field") == "cursor");
    CHECK(h.get("/api/stock/MUG-LOGO/movements?limit=1000", std::string(token)).status == 400);
  }

  TEST_CASE("seeding the catalogue adds what is missing and never resets stock") {
    const auto catalogue = std::filesystem::path(SHOPD_TEST_SOURCE_DIR) / "config" / "catalogue.json";
    on_each_backend([&](harness& h) {
      const int added = inv::seed_catalogue(h.database(), catalogue);
      CHECK(added == 8);
      CHECK(h.stock("MUG-LOGO") == 100);
      CHECK(h.product("TSHIRT-BLK-M")->currency == "EUR");
      CHECK(h.count("SELECT COUNT(*) FROM stock_movements WHERE reason = 'restock' AND stock_after = 100") ==
            added);

      REQUIRE(is_processed(h.deliver(stock_event("ord_1", bus::stock_reason::order, {{"MUG-LOGO", -30}}))));
      CHECK(inv::seed_catalogue(h.database(), catalogue) == 0);
      CHECK(h.stock("MUG-LOGO") == 70);
      CHECK(h.count("SELECT COUNT(*) FROM products") == added);
      CHECK(h.count("SELECT COUNT(*) FROM stock_movements") == added + 1);
    });
  }

  TEST_CASE("a bad catalogue file is refused by name and writes nothing") {
    test::temp_dir dir;
    harness h(db::database_url::parse("sqlite:" + (dir.path() / "shopd.db").string()));
    const auto file = dir.path() / "bad.json";
    {
      std::ofstream out(file);
      out << R"({"products":[{"sku":"GOOD","name":"Good","priceCents":100,"currency":"EUR","stock":5},)"
          << R"({"sku":"MUG-LOGO","name":"Mug","priceCents":100,"currency":"euro"}]})";
    }
    CHECK_THROWS_WITH_AS(inv::seed_catalogue(h.database(), file),
                         doctest::Contains("bad.json: products[1] (sku \"MUG-LOGO\"): currency"),
                         std::runtime_error);
    CHECK(h.count("SELECT COUNT(*) FROM products") == 0);
    CHECK_THROWS_WITH_AS(inv::seed_catalogue(h.database(), dir.path() / "missing.json"),
                         doctest::Contains("missing.json: cannot open the catalogue"), std::runtime_error);
    {
      std::ofstream out(file, std::ios::trunc);
      out << "{\"products\": [";
    }
    CHECK_THROWS_WITH_AS(inv::seed_catalogue(h.database(), file),
                         doctest::Contains("bad.json: not valid JSON"), std::runtime_error);
  }
}
