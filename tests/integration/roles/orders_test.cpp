#include "shopd/roles/orders/orders_role.hpp"

#include "fresh_database.hpp"
#include "shopd/app/role.hpp"
#include "shopd/bus/dispatch.hpp"
#include "shopd/bus/envelope.hpp"
#include "shopd/bus/events.hpp"
#include "shopd/config/config.hpp"
#include "shopd/db/database.hpp"
#include "shopd/db/migrations.hpp"
#include "shopd/http/router.hpp"
#include "shopd/http/server.hpp"
#include "shopd/obs/metrics.hpp"

#include <doctest/doctest.h>
#include <boost/json.hpp>

#include <atomic>
#include <functional>
#include <latch>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace bus = shopd::bus;
namespace db = shopd::db;
namespace http = shopd::http;
namespace json = boost::json;
namespace test = shopd::test;

namespace {

constexpr const char* api_token = "orders-test-token";

shopd::config::settings test_settings() {
  shopd::config::settings s = shopd::config::load({});
  s.shopd_api_token = api_token;
  return s;
}

/// An outbox row, and its body parsed.
struct outbox_row {
  long long id = 0;
  std::string event_id;
  std::string event_type;
  std::string destination;
  std::string body;
};
struct sent_event {
  outbox_row row;
  bus::envelope ev;
};

/// The orders role on a real database, with the role_context serve() would build.
class orders_fixture {
 public:
  explicit orders_fixture(const db::database_url& url)
      : settings_(test_settings()),
        db_(url, db::database_options{.pool_size = 4}),
        server_(http::server_options{}, metrics_),
        destinations_(settings_) {
    db::migrate(db_);
    shopd::app::role_context ctx{
        "orders", settings_, db_, routes_, server_, metrics_, events_, destinations_, [this] { ++notified_; },
        nullptr};
    role_ = shopd::roles::orders::make_orders_role(ctx);
  }

  db::database& database() { return db_; }
  const bus::destinations& destinations() const { return destinations_; }
  int notified() const { return notified_; }

  void add_product(const std::string& sku, const std::string& name, long long price_cents,
                   const std::string& currency = "EUR", int active = 1) {
    db_.with_session([&](soci::session& s) {
      const long long now = 1'700'000'000'000;
      const long long stock = 0;  // orders never checks stock: inventory records shortfalls
      s << "INSERT INTO products (sku, name, price_cents, currency, stock, active, created_at_ms, "
           "updated_at_ms)"
           " VALUES (:sku, :name, :price, :currency, :stock, :active, :created, :updated)",
          soci::use(sku), soci::use(name), soci::use(price_cents), soci::use(currency), soci::use(stock),
          soci::use(active), soci::use(now), soci::use(now);
    });
  }

  /// What the webhook does after verifying the signature and parsing the envelope.
  /// Safe to call from several threads (no assertions inside).
  bus::outcome deliver(const bus::envelope& ev) {
    const auto* h = events_.find(ev.event_type);
    if (h == nullptr) throw std::logic_error("no handler for " + ev.event_type);
    bus::delivery d(ev, "orders", db_, destinations_, [this] { ++notified_; });
    return h->fn(d);
  }

  long long count(const std::string& sql) {
    return db_.with_session([&](soci::session& s) {
      long long n = 0;
      s << sql, soci::into(n);
      return n;
    });
  }

  /// Every outbox row of the role, in the order it was written.
  std::vector<sent_event> outbox() {
    auto rows = db_.with_session([](soci::session& s) {
      std::vector<outbox_row> out;
      outbox_row r;
      soci::statement st = (s.prepare << "SELECT id, event_id, event_type, destination, body FROM outbox"
                                         " WHERE producer = 'orders' ORDER BY id",
                            soci::into(r.id), soci::into(r.event_id), soci::into(r.event_type),
                            soci::into(r.destination), soci::into(r.body));
      st.execute();
      while (st.fetch()) out.push_back(r);
      return out;
    });
    std::vector<sent_event> out;
    for (auto& row : rows) {
      auto ev = bus::parse_envelope(row.body);
      REQUIRE(ev.has_value());
      out.push_back({std::move(row), std::move(*ev)});
    }
    return out;
  }

  /// Route `target` as the server would: lookup, then the handler, with http_error turned into
  /// its response as the HTTP boundary does.
  http::response call(http::verb method, const std::string& target, const std::string& body = {},
                      const char* token = api_token) {
    http::request req{method, target, 11};
    if (token != nullptr) req.set(http::field::authorization, std::string("Bearer ") + token);
    req.body() = body;
    req.prepare_payload();
    const std::string_view t = target;
    const auto q = t.find('?');
    const std::string_view path = t.substr(0, q);
    const std::string_view query = q == std::string_view::npos ? std::string_view{} : t.substr(q + 1);
    auto found = routes_.lookup(method, path);
    auto* f = std::get_if<http::router::found>(&found);
    REQUIRE(f != nullptr);
    // Database work never runs on an I/O thread: the route is blocking, or defers it.
    CHECK((f->r->exec == http::execution::blocking || f->r->deferring));
    http::request_context ctx{req, path, query, f->params, {}};
    try {
      return http::run_inline(*f->r, ctx);
    } catch (const http::http_error& e) {
      return e.to_response();
    }
  }

  double counter(const std::string& name, const std::vector<std::string>& labels = {},
                 const std::vector<std::string>& values = {}) {
    return metrics_.counter_family(name, "", labels).with(values).value();
  }

 private:
  shopd::config::settings settings_;
  db::database db_;
  shopd::obs::registry metrics_;
  http::router routes_;
  http::server server_;
  bus::event_router events_;
  bus::destinations destinations_;
  std::atomic<int> notified_ = 0;
  std::unique_ptr<shopd::app::role> role_;
};

json::object body_of(const http::response& res) {
  CHECK(res[http::field::content_type] == "application/json");
  auto v = json::parse(res.body());
  REQUIRE(v.is_object());
  return v.as_object();
}

/// A checkout payload for `checkout_id` with the given {sku, quantity} lines.
json::object checkout_data(const std::string& checkout_id,
                           const std::vector<std::pair<std::string, int>>& lines,
                           const std::string& email = "ada@example.com",
                           const std::string& currency = "EUR") {
  json::array items;
  for (const auto& [sku, quantity] : lines)
    items.push_back(json::object{{"sku", sku}, {"quantity", quantity}});
  return json::object{{"checkoutId", checkout_id},
                      {"customer", json::object{{"email", email}, {"name", "Ada Lovelace"}}},
                      {"items", std::move(items)},
                      {"currency", currency}};
}

bus::envelope command(const json::object& data, const std::string& correlation = "chk_1") {
  return bus::make_envelope(bus::event_types::checkout_command, "cli", data, correlation);
}

const bus::rejection& rejection_of(const bus::outcome& o) {
  const auto* r = std::get_if<bus::rejection>(&o);
  REQUIRE(r != nullptr);
  return *r;
}

/// The rejected checkout left exactly one outbox row, its audit failure.
void check_rejection_audit(orders_fixture& f, const bus::envelope& cmd, const std::string& entity_id,
                           const bus::rejection& r) {
  const auto out = f.outbox();
  REQUIRE(out.size() == 1);
  CHECK(out[0].row.event_type == "analytics.audit");
  CHECK(out[0].row.destination == f.destinations().url_for("analytics.audit"));
  CHECK(out[0].ev.correlation_id == cmd.correlation_id);
  CHECK(out[0].ev.causation_id == cmd.event_id);
  const auto audit = bus::payload_of<bus::audit_record>(out[0].ev);
  REQUIRE(audit.has_value());
  CHECK(audit->action == "checkout.rejected");
  CHECK(audit->actor == "orders");
  CHECK(audit->entity_type == "checkout");
  CHECK(audit->entity_id == entity_id);
  CHECK(audit->outcome == bus::audit_outcome::failure);
  CHECK(audit->detail.at("code").as_string() == r.code);
  CHECK(audit->detail.at("field").as_string() == r.field);
  CHECK(audit->detail.at("eventId").as_string() == cmd.event_id);
  CHECK(f.count("SELECT COUNT(*) FROM orders") == 0);
  CHECK(f.count("SELECT COUNT(*) FROM order_items") == 0);
}

void check_checkout_row(orders_fixture& f, const std::string& checkout_id, const std::string& status,
                        const std::string& reason_or_order) {
  f.database().with_session([&](soci::session& s) {
    std::string st;
    std::string order_id;
    std::string reason;
    soci::indicator order_ind = soci::i_null;
    soci::indicator reason_ind = soci::i_null;
    s << "SELECT status, order_id, reason FROM checkouts WHERE checkout_id = :id", soci::into(st),
        soci::into(order_id, order_ind), soci::into(reason, reason_ind), soci::use(checkout_id);
    REQUIRE(s.got_data());
    CHECK(st == status);
    if (status == "accepted") {
      CHECK(order_ind == soci::i_ok);
      CHECK(order_id == reason_or_order);
      CHECK(reason_ind == soci::i_null);
    } else {
      CHECK(order_ind == soci::i_null);
      CHECK(reason == reason_or_order);
    }
  });
}

/// The happy path, a redelivery and a client retry: what SQLite and PostgreSQL must both do.
void happy_path_and_duplicates(const db::database_url& url) {
  orders_fixture f(url);
  f.add_product("MUG-01", "Coffee mug", 1250);
  f.add_product("TEE-L", "T-shirt, large", 1999);

  // Prices in the command are bogus and must be ignored: only the catalogue prices.
  json::object data = checkout_data("chk_1", {{"MUG-01", 2}, {"TEE-L", 1}});
  data["items"].as_array()[0].as_object()["unitPriceCents"] = 1;
  data["items"].as_array()[1].as_object()["priceCents"] = 0;
  data["subtotalCents"] = 3;
  const bus::envelope cmd = command(data);

  REQUIRE(std::holds_alternative<bus::processed>(f.deliver(cmd)));
  CHECK(f.notified() >= 1);

  // The database.
  CHECK(f.count("SELECT COUNT(*) FROM orders") == 1);
  CHECK(f.count("SELECT subtotal_cents FROM orders") == 4499);
  CHECK(f.count("SELECT COUNT(*) FROM order_items") == 2);
  CHECK(f.count("SELECT SUM(line_total_cents) FROM order_items") == 4499);
  CHECK(f.count("SELECT unit_price_cents FROM order_items WHERE sku = 'MUG-01'") == 1250);
  CHECK(f.count("SELECT COUNT(*) FROM inbox WHERE consumer = 'orders'") == 1);
  const std::string order_id = f.database().with_session([](soci::session& s) {
    std::string id;
    s << "SELECT order_id FROM orders", soci::into(id);
    return id;
  });
  CHECK(order_id.starts_with("ord_"));
  CHECK(bus::is_ulid(std::string_view(order_id).substr(4)));
  check_checkout_row(f, "chk_1", "accepted", order_id);

  // The outbox: four events in this order, each to its consumer, each caused by the command.
  const auto out = f.outbox();
  REQUIRE(out.size() == 4);
  const std::vector<std::string> types{"order.created", "notification.email", "inventory.stock.updated",
                                       "analytics.audit"};
  for (std::size_t i = 0; i < out.size(); ++i) {
    CAPTURE(i);
    CHECK(out[i].row.event_type == types[i]);
    CHECK(out[i].ev.event_type == types[i]);
    CHECK(out[i].row.event_id == out[i].ev.event_id);
    CHECK(out[i].row.destination == f.destinations().url_for(types[i]));
    CHECK(out[i].ev.source == "orders");
    CHECK(out[i].ev.correlation_id == "chk_1");
    CHECK(out[i].ev.causation_id == cmd.event_id);
  }
  const auto created = bus::payload_of<bus::order_created>(out[0].ev);
  REQUIRE(created.has_value());
  CHECK(created->order_id == order_id);
  CHECK(created->checkout_id == "chk_1");
  CHECK(created->customer == bus::customer_info{"ada@example.com", "Ada Lovelace"});
  CHECK(created->items == std::vector<bus::order_line>{{"MUG-01", "Coffee mug", 2, 1250, 2500},
                                                       {"TEE-L", "T-shirt, large", 1, 1999, 1999}});
  CHECK(created->subtotal_cents == 4499);
  CHECK(created->currency == "EUR");

  const auto email = bus::payload_of<bus::email_notification>(out[1].ev);
  REQUIRE(email.has_value());
  CHECK(email->to == "ada@example.com");
  CHECK(email->template_name == "order_confirmation");
  CHECK(email->variables.at("orderId").as_string() == order_id);
  CHECK(email->variables.at("customerName") == "Ada Lovelace");
  CHECK(email->variables.at("subtotalCents") == 4499);
  CHECK(email->variables.at("currency") == "EUR");
  CHECK(email->variables.at("items").as_array().size() == 2);
  CHECK(email->variables.at("items").at(1).at("name") == "T-shirt, large");
  CHECK(email->variables.at("items").at(0).at("unitPriceCents") == 1250);
  CHECK(email->variables.at("items").at(0).at("lineTotalCents") == 2500);

  const auto stock = bus::payload_of<bus::stock_updated>(out[2].ev);
  REQUIRE(stock.has_value());
  CHECK(stock->order_id == order_id);
  CHECK(stock->reason == bus::stock_reason::order);
  CHECK(stock->movements == std::vector<bus::stock_movement>{{"MUG-01", -2}, {"TEE-L", -1}});

  const auto audit = bus::payload_of<bus::audit_record>(out[3].ev);
  REQUIRE(audit.has_value());
  CHECK(audit->action == "order.created");
  CHECK(audit->actor == "orders");
  CHECK(audit->entity_type == "order");
  CHECK(audit->entity_id == order_id);
  CHECK(audit->outcome == bus::audit_outcome::success);
  CHECK(audit->detail ==
        json::object{{"checkoutId", "chk_1"}, {"subtotalCents", 4499}, {"currency", "EUR"}, {"lines", 2}});

  CHECK(f.counter("shopd_orders_created_total") == 1);
  CHECK(f.counter("shopd_order_value_cents_total", {"currency"}, {"EUR"}) == 4499);

  // The same eventId again: a duplicate, with no new effects.
  CHECK(std::holds_alternative<bus::duplicate>(f.deliver(cmd)));
  CHECK(f.count("SELECT COUNT(*) FROM orders") == 1);
  CHECK(f.outbox().size() == 4);

  // The same checkoutId under another eventId (a client retry): processed, no second order or emit.
  const bus::envelope retry = command(data);
  REQUIRE(retry.event_id != cmd.event_id);
  CHECK(std::holds_alternative<bus::processed>(f.deliver(retry)));
  CHECK(f.count("SELECT COUNT(*) FROM orders") == 1);
  CHECK(f.count("SELECT COUNT(*) FROM order_items") == 2);
  CHECK(f.outbox().size() == 4);
  CHECK(f.count("SELECT COUNT(*) FROM inbox WHERE consumer = 'orders'") == 2);
  check_checkout_row(f, "chk_1", "accepted", order_id);
  CHECK(f.counter("shopd_orders_created_total") == 1);
  CHECK(f.counter("shopd_order_value_cents_total", {"currency"}, {"EUR"}) == 4499);
}

/// Deliveries of one checkout under different eventIds at the same time create one order.
void concurrent_retries(const db::database_url& url) {
  orders_fixture f(url);
  f.add_product("MUG-01", "Coffee mug", 1250);
  const json::object data = checkout_data("chk_race", {{"MUG-01", 1}});
  constexpr std::size_t deliveries = 4;
  std::vector<bus::envelope> events;
  for (std::size_t i = 0; i < deliveries; ++i) events.push_back(command(data, "chk_race"));
  std::vector<std::optional<bus::outcome>> outcomes(deliveries);
  std::vector<std::string> errors(deliveries);
  std::latch go(static_cast<std::ptrdiff_t>(deliveries));
  {
    std::vector<std::jthread> threads;
    for (std::size_t i = 0; i < deliveries; ++i) {
      threads.emplace_back([&, i] {
        go.arrive_and_wait();
        try {
          outcomes[i] = f.deliver(events[i]);
        } catch (const std::exception& e) {
          errors[i] = e.what();
        }
      });
    }
  }
  for (std::size_t i = 0; i < deliveries; ++i) {
    CAPTURE(i);
    CHECK(errors[i].empty());
    REQUIRE(outcomes[i].has_value());
    CHECK(std::holds_alternative<bus::processed>(*outcomes[i]));
  }
  CHECK(f.count("SELECT COUNT(*) FROM orders") == 1);
  CHECK(f.count("SELECT COUNT(*) FROM checkouts") == 1);
  CHECK(f.count("SELECT COUNT(*) FROM inbox WHERE consumer = 'orders'") == 4);
  CHECK(f.outbox().size() == 4);
  CHECK(f.counter("shopd_orders_created_total") == 1);
}

}  // namespace

TEST_SUITE("roles.orders") {
  TEST_CASE("orders sqlite: happy path, redelivery and client retry") {
    const test::scratch_database dir(db::dialect::sqlite, "orders");
    happy_path_and_duplicates(dir.url());
  }

  TEST_CASE("orders postgresql: happy path, redelivery and client retry") {
    const test::scratch_database pg(db::dialect::postgresql, "orders");
    happy_path_and_duplicates(pg.url());
  }

  TEST_CASE("orders sqlite: concurrent deliveries of one checkout create one order") {
    const test::scratch_database dir(db::dialect::sqlite, "orders");
    concurrent_retries(dir.url());
  }

  TEST_CASE("orders postgresql: concurrent deliveries of one checkout create one order") {
    const test::scratch_database pg(db::dialect::postgresql, "orders");
    concurrent_retries(pg.url());
  }

  TEST_CASE("orders sqlite: rejected checkouts are recorded, audited and final") {
    const test::scratch_database dir(db::dialect::sqlite, "orders");
    orders_fixture f(dir.url());
    f.add_product("MUG-01", "Coffee mug", 1250);
    f.add_product("OLD-1", "Discontinued", 500, "EUR", 0);
    f.add_product("USD-1", "Imported", 700, "USD");

    SUBCASE("unknown sku") {
      const auto cmd = command(checkout_data("chk_1", {{"MUG-01", 1}, {"NOPE", 1}}));
      const auto r = rejection_of(f.deliver(cmd));
      CHECK(r.code == "unknown_sku");
      CHECK(r.field == "data.items[1].sku");
      check_checkout_row(f, "chk_1", "rejected", "unknown_sku");
      check_rejection_audit(f, cmd, "chk_1", r);
      CHECK(f.counter("shopd_checkouts_rejected_total", {"reason"}, {"unknown_sku"}) == 1);
      CHECK(f.counter("shopd_orders_created_total") == 0);

      // Redelivered: a duplicate. Retried under another eventId, even once the product exists:
      // the checkout was decided, acknowledged without effects.
      CHECK(std::holds_alternative<bus::duplicate>(f.deliver(cmd)));
      f.add_product("NOPE", "Now known", 100);
      CHECK(std::holds_alternative<bus::processed>(
          f.deliver(command(checkout_data("chk_1", {{"MUG-01", 1}, {"NOPE", 1}})))));
      CHECK(f.outbox().size() == 1);
      CHECK(f.count("SELECT COUNT(*) FROM orders") == 0);
      CHECK(f.counter("shopd_checkouts_rejected_total", {"reason"}, {"unknown_sku"}) == 1);
    }
    SUBCASE("inactive product") {
      const auto cmd = command(checkout_data("chk_1", {{"OLD-1", 1}}));
      const auto r = rejection_of(f.deliver(cmd));
      CHECK(r.code == "product_unavailable");
      CHECK(r.field == "data.items[0].sku");
      check_checkout_row(f, "chk_1", "rejected", "product_unavailable");
      check_rejection_audit(f, cmd, "chk_1", r);
    }
    SUBCASE("a product in another currency") {
      const auto cmd = command(checkout_data("chk_1", {{"MUG-01", 1}, {"USD-1", 2}}));
      const auto r = rejection_of(f.deliver(cmd));
      CHECK(r.code == "currency_mismatch");
      CHECK(r.field == "data.currency");
      check_checkout_row(f, "chk_1", "rejected", "currency_mismatch");
      check_rejection_audit(f, cmd, "chk_1", r);
      CHECK(f.counter("shopd_checkouts_rejected_total", {"reason"}, {"currency_mismatch"}) == 1);
    }
    SUBCASE("a checkout in another currency than the catalogue's") {
      const auto cmd = command(checkout_data("chk_1", {{"MUG-01", 1}}, "ada@example.com", "GBP"));
      const auto r = rejection_of(f.deliver(cmd));
      CHECK(r.code == "currency_mismatch");
      CHECK(r.field == "data.currency");
      check_rejection_audit(f, cmd, "chk_1", r);
    }
    SUBCASE("an amount beyond the maximum") {
      f.add_product("GOLD", "Gold bar", bus::max_money_cents);
      const auto cmd = command(checkout_data("chk_1", {{"GOLD", 2}}));
      const auto r = rejection_of(f.deliver(cmd));
      CHECK(r.code == "amount_out_of_range");
      CHECK(r.field == "data.items[0].quantity");
      check_rejection_audit(f, cmd, "chk_1", r);
    }
    SUBCASE("an invalid payload with a readable checkoutId") {
      const auto cmd = command(checkout_data("chk_1", {{"MUG-01", 0}}));
      const auto r = rejection_of(f.deliver(cmd));
      CHECK(r.code == "invalid_payload");
      CHECK(r.field == "data.items[0].quantity");
      check_checkout_row(f, "chk_1", "rejected", "invalid_payload");
      check_rejection_audit(f, cmd, "chk_1", r);
      CHECK(f.counter("shopd_checkouts_rejected_total", {"reason"}, {"invalid_payload"}) == 1);
    }
    SUBCASE("an invalid payload without a readable checkoutId is audited under its eventId") {
      json::object data = checkout_data("chk_1", {{"MUG-01", 1}});
      data["checkoutId"] = 17;
      const auto cmd = command(data);
      const auto r = rejection_of(f.deliver(cmd));
      CHECK(r.code == "invalid_payload");
      CHECK(r.field == "data.checkoutId");
      CHECK(f.count("SELECT COUNT(*) FROM checkouts") == 0);
      check_rejection_audit(f, cmd, cmd.event_id, r);
    }
    SUBCASE("an invalid payload does not overturn an earlier decision") {
      REQUIRE(std::holds_alternative<bus::processed>(
          f.deliver(command(checkout_data("chk_1", {{"MUG-01", 1}})))));
      const auto r = rejection_of(f.deliver(command(checkout_data("chk_1", {{"MUG-01", -1}}))));
      CHECK(r.code == "invalid_payload");
      CHECK(f.count("SELECT COUNT(*) FROM checkouts WHERE status = 'accepted'") == 1);
      CHECK(f.count("SELECT COUNT(*) FROM orders") == 1);
    }
    CHECK(f.count("SELECT COUNT(*) FROM inbox WHERE consumer = 'orders'") >= 1);
  }

  TEST_CASE("orders sqlite: reading orders") {
    const test::scratch_database dir(db::dialect::sqlite, "orders");
    orders_fixture f(dir.url());
    f.add_product("MUG-01", "Coffee mug", 1250);
    f.add_product("TEE-L", "T-shirt, large", 1999);

    // Five orders for Alice, one for Bob, created in this order.
    std::vector<std::string> alice;
    for (int i = 0; i < 5; ++i) {
      json::object data =
          checkout_data("chk_a" + std::to_string(i), {{"MUG-01", i + 1}}, "alice@example.com");
      if (i == 0) {
        data["shippingAddress"] = json::object{{"line1", "1 Main St"}, {"city", "Berlin"}, {"country", "DE"}};
        data["note"] = "ring twice";
      }
      REQUIRE(std::holds_alternative<bus::processed>(f.deliver(command(data))));
      alice.push_back(f.database().with_session([&](soci::session& s) {
        std::string id;
        const std::string chk = "chk_a" + std::to_string(i);
        s << "SELECT order_id FROM checkouts WHERE checkout_id = :c", soci::into(id), soci::use(chk);
        return id;
      }));
    }
    REQUIRE(std::holds_alternative<bus::processed>(
        f.deliver(command(checkout_data("chk_b", {{"TEE-L", 1}}, "bob@example.com")))));

    SUBCASE("one order with its lines") {
      const auto res = f.call(http::verb::get, "/api/orders/" + alice[0]);
      REQUIRE(res.result() == http::status::ok);
      const auto body = body_of(res);
      CHECK(body.at("orderId").as_string() == alice[0]);
      CHECK(body.at("checkoutId") == "chk_a0");
      CHECK(body.at("customer").at("email") == "alice@example.com");
      CHECK(body.at("items") == json::array{json::object{{"sku", "MUG-01"},
                                                         {"name", "Coffee mug"},
                                                         {"quantity", 1},
                                                         {"unitPriceCents", 1250},
                                                         {"lineTotalCents", 1250}}});
      CHECK(body.at("subtotalCents") == 1250);
      CHECK(body.at("currency") == "EUR");
      CHECK(body.at("status") == "created");
      CHECK(body.at("shippingAddress") ==
            json::object{{"line1", "1 Main St"}, {"city", "Berlin"}, {"country", "DE"}});
      CHECK(body.at("note") == "ring twice");
      CHECK(bus::parse_timestamp(body.at("createdAt").as_string()).has_value());
    }
    SUBCASE("an unknown order is 404") {
      const auto res = f.call(http::verb::get, "/api/orders/ord_nope");
      CHECK(res.result() == http::status::not_found);
      CHECK(body_of(res).at("code") == "not_found");
      CHECK(f.call(http::verb::get, "/api/orders/%20").result() == http::status::not_found);
    }
    SUBCASE("the bearer token guards the reads") {
      for (const std::string& target :
           {"/api/orders/" + alice[0], std::string("/api/orders?email=alice%40example.com"),
            std::string("/api/checkouts/chk_a0")}) {
        CAPTURE(target);
        const auto none = f.call(http::verb::get, target, {}, nullptr);
        CHECK(none.result() == http::status::unauthorized);
        CHECK(none[http::field::www_authenticate] == "Bearer");
        CHECK(body_of(none).at("code") == "unauthorized");
        CHECK(f.call(http::verb::get, target, {}, "wrong-token").result() == http::status::unauthorized);
        CHECK(f.call(http::verb::get, target).result() == http::status::ok);
      }
    }
    SUBCASE("a customer's orders, newest first, over three pages") {
      std::vector<std::string> seen;
      std::string target = "/api/orders?email=alice%40example.com&limit=2";
      std::vector<std::size_t> sizes;
      for (int page = 0; page < 10; ++page) {
        const auto res = f.call(http::verb::get, target);
        REQUIRE(res.result() == http::status::ok);
        const auto body = body_of(res);
        const auto& orders = body.at("orders").as_array();
        sizes.push_back(orders.size());
        for (const auto& o : orders) {
          CHECK(o.at("customer").at("email") == "alice@example.com");
          CHECK(o.at("items").as_array().size() == 1);
          seen.push_back(std::string(o.at("orderId").as_string()));
        }
        if (body.at("nextCursor").is_null()) break;
        target = "/api/orders?email=alice%40example.com&limit=2&cursor=" +
                 std::string(body.at("nextCursor").as_string());
      }
      CHECK(sizes == std::vector<std::size_t>{2, 2, 1});
      CHECK(seen == std::vector<std::string>(alice.rbegin(), alice.rend()));
    }
    SUBCASE("an exact page ends with a null cursor, the default limit takes everything here") {
      const auto five = body_of(f.call(http::verb::get, "/api/orders?email=alice%40example.com&limit=5"));
      CHECK(five.at("orders").as_array().size() == 5);
      CHECK(five.at("nextCursor").is_null());
      const auto all = body_of(f.call(http::verb::get, "/api/orders?email=alice%40example.com"));
      CHECK(all.at("orders").as_array().size() == 5);
      const auto bob = body_of(f.call(http::verb::get, "/api/orders?email=bob%40example.com"));
      CHECK(bob.at("orders").as_array().size() == 1);
      const auto nobody = body_of(f.call(http::verb::get, "/api/orders?email=carol%40example.com"));
      CHECK(nobody.at("orders").as_array().empty());
      CHECK(nobody.at("nextCursor").is_null());
    }
    SUBCASE("bad query values are 400 naming the parameter") {
      const std::vector<std::pair<std::string, std::string>> cases{
          {"/api/orders", "email"},
          {"/api/orders?email=", "email"},
          {"/api/orders?email=not-an-address", "email"},
          {"/api/orders?email=alice%40example.com&limit=0", "limit"},
          {"/api/orders?email=alice%40example.com&limit=101", "limit"},
          {"/api/orders?email=alice%40example.com&limit=two", "limit"},
          {"/api/orders?email=alice%40example.com&cursor=%%%", "cursor"},
          {"/api/orders?email=alice%40example.com&cursor=bm90IGEgY3Vyc29y", "cursor"},
      };
      for (const auto& [target, field] : cases) {
        CAPTURE(target);
        const auto res = f.call(http::verb::get, target);
        CHECK(res.result() == http::status::bad_request);
        const auto body = body_of(res);
        CHECK(body.at("code") == "invalid_parameter");
        CHECK(body.at("field").as_string() == field);
      }
    }
  }

  TEST_CASE("orders sqlite: POST /api/checkout queues the command that later becomes the order") {
    const test::scratch_database dir(db::dialect::sqlite, "orders");
    orders_fixture f(dir.url());
    f.add_product("MUG-01", "Coffee mug", 1250);
    f.add_product("TEE-L", "T-shirt, large", 1999);
    f.add_product("OLD-1", "Discontinued", 500, "EUR", 0);
    const std::string cart = R"({"customer": {"email": "ada@example.com", "name": "Ada Lovelace"},
      "items": [{"sku": "MUG-01", "quantity": 2, "unitPriceCents": 1}, {"sku": "TEE-L", "quantity": 1}],
      "currency": "EUR", "note": "gift wrap"})";

    SUBCASE("accepted: one outbox row to the orders webhook, handled later") {
      // Public: no bearer token needed.
      const auto res = f.call(http::verb::post, "/api/checkout", cart, nullptr);
      REQUIRE(res.result() == http::status::accepted);
      const auto body = body_of(res);
      CHECK(body.at("status") == "accepted");
      const std::string checkout_id(body.at("checkoutId").as_string());
      CHECK(checkout_id.starts_with("chk_"));
      CHECK(bus::is_ulid(std::string_view(checkout_id).substr(4)));
      CHECK(res[http::field::location] == "/api/checkouts/" + checkout_id);
      CHECK(f.notified() == 1);

      const auto out = f.outbox();
      REQUIRE(out.size() == 1);
      CHECK(out[0].row.event_type == "command.checkout");
      CHECK(out[0].row.destination == f.destinations().webhook_url("orders"));
      CHECK(out[0].ev.source == "orders");
      CHECK(out[0].ev.correlation_id == checkout_id);
      CHECK_FALSE(out[0].ev.causation_id.has_value());
      const auto cmd = bus::payload_of<bus::checkout_command>(out[0].ev);
      REQUIRE(cmd.has_value());
      CHECK(cmd->checkout_id == checkout_id);
      CHECK(cmd->items == std::vector<bus::checkout_item>{{"MUG-01", 2}, {"TEE-L", 1}});
      CHECK(cmd->note == "gift wrap");
      CHECK_FALSE(out[0].ev.data.at("items").at(0).as_object().contains("unitPriceCents"));

      const auto pending = body_of(f.call(http::verb::get, "/api/checkouts/" + checkout_id));
      CHECK(pending == json::object{{"checkoutId", checkout_id}, {"status", "pending"}});
      CHECK(f.count("SELECT COUNT(*) FROM orders") == 0);

      // The relay delivers the row's body to the orders webhook.
      REQUIRE(std::holds_alternative<bus::processed>(f.deliver(out[0].ev)));
      CHECK(f.count("SELECT COUNT(*) FROM orders") == 1);
      CHECK(f.count("SELECT subtotal_cents FROM orders") == 4499);
      const auto accepted = body_of(f.call(http::verb::get, "/api/checkouts/" + checkout_id));
      CHECK(accepted.at("status") == "accepted");
      const std::string order_id(accepted.at("orderId").as_string());
      const auto order = body_of(f.call(http::verb::get, "/api/orders/" + order_id));
      CHECK(order.at("checkoutId").as_string() == checkout_id);
      CHECK(order.at("note") == "gift wrap");
      const auto after = f.outbox();
      REQUIRE(after.size() == 5);
      CHECK(after[1].ev.causation_id == out[0].ev.event_id);
      CHECK(after[1].ev.correlation_id == checkout_id);
    }
    SUBCASE("a client-given checkoutId is kept; posting it again does not make a second order") {
      auto data = json::parse(cart).as_object();
      data["checkoutId"] = "cart-42";
      const auto first = f.call(http::verb::post, "/api/checkout", json::serialize(data), nullptr);
      REQUIRE(first.result() == http::status::accepted);
      CHECK(body_of(first).at("checkoutId") == "cart-42");
      const auto second = f.call(http::verb::post, "/api/checkout", json::serialize(data), nullptr);
      REQUIRE(second.result() == http::status::accepted);
      const auto out = f.outbox();
      REQUIRE(out.size() == 2);
      CHECK(std::holds_alternative<bus::processed>(f.deliver(out[0].ev)));
      CHECK(std::holds_alternative<bus::processed>(f.deliver(out[1].ev)));
      CHECK(f.count("SELECT COUNT(*) FROM orders") == 1);
    }
    SUBCASE("a rejected checkout can be polled") {
      auto data = json::parse(cart).as_object();
      data["checkoutId"] = "cart-9";
      REQUIRE(f.call(http::verb::post, "/api/checkout", json::serialize(data), nullptr).result() ==
              http::status::accepted);
      // The product goes away between the request and the handling of the command.
      f.database().with_session(
          [](soci::session& s) { s << "UPDATE products SET active = 0 WHERE sku = 'TEE-L'"; });
      const auto out = f.outbox();
      REQUIRE(out.size() == 1);
      CHECK(rejection_of(f.deliver(out[0].ev)).code == "product_unavailable");
      CHECK(
          body_of(f.call(http::verb::get, "/api/checkouts/cart-9")) ==
          json::object{{"checkoutId", "cart-9"}, {"status", "rejected"}, {"reason", "product_unavailable"}});
    }
    SUBCASE("refused carts: 400 naming the field, nothing queued") {
      auto with = [&](const std::function<void(json::object&)>& change) {
        auto data = json::parse(cart).as_object();
        change(data);
        return json::serialize(data);
      };
      const std::vector<std::tuple<std::string, std::string, std::string>> cases{
          {"not json", "invalid_payload", ""},
          {"[1, 2]", "invalid_payload", ""},
          {"", "invalid_payload", ""},
          {with([](json::object& d) { d["items"].as_array()[0].as_object()["quantity"] = 0; }),
           "invalid_payload", "items[0].quantity"},
          {with([](json::object& d) { d["customer"].as_object()["email"] = "nope"; }), "invalid_payload",
           "customer.email"},
          {with([](json::object& d) { d["checkoutId"] = "has space"; }), "invalid_payload", "checkoutId"},
          {with([](json::object& d) { d.erase("currency"); }), "invalid_payload", "currency"},
          {with([](json::object& d) { d["items"].as_array()[1].as_object()["sku"] = "NOPE"; }), "unknown_sku",
           "items[1].sku"},
          {with([](json::object& d) { d["items"].as_array()[0].as_object()["sku"] = "OLD-1"; }),
           "product_unavailable", "items[0].sku"},
          {with([](json::object& d) { d["currency"] = "USD"; }), "currency_mismatch", "currency"},
      };
      for (const auto& [body, code, field] : cases) {
        CAPTURE(body);
        const auto res = f.call(http::verb::post, "/api/checkout", body, nullptr);
        CHECK(res.result() == http::status::bad_request);
        const auto err = body_of(res);
        CHECK(err.at("code").as_string() == code);
        CHECK(err.contains("error"));
        if (field.empty()) {
          CHECK_FALSE(err.contains("field"));
        } else {
          CHECK(err.at("field").as_string() == field);
        }
      }
      CHECK(f.outbox().empty());
      CHECK(f.notified() == 0);
    }
    SUBCASE("checkout status: bad ids are 400") {
      const auto res = f.call(http::verb::get, "/api/checkouts/a%20b");
      CHECK(res.result() == http::status::bad_request);
      CHECK(body_of(res).at("field") == "checkoutId");
    }
  }
}
