// An event handler's transaction storing the events it emits in the queue of the relay of its
// process (bus/local_relay.hpp): together with their outbox rows, written sent, or not at all.
#include "fresh_database.hpp"

#include "shopd/bus/dispatch.hpp"
#include "shopd/bus/envelope.hpp"
#include "shopd/bus/local_relay.hpp"
#include "shopd/config/config.hpp"
#include "shopd/http/router.hpp"
#include "shopd/obs/metrics.hpp"
#include "shopd/relay/api.hpp"
#include "shopd/relay/relay_metrics.hpp"
#include "shopd/relay/store.hpp"

#include <doctest/doctest.h>
#include <soci/soci.h>

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>

namespace {

using shopd::bus::unit_of_work;
using shopd::test::fresh_database;

// A relay role's local ways in (no engine: messages are stored for a claim) and one role's
// deliveries, on one SQLite database.
struct staged_platform {
  explicit staged_platform(const std::string& analytics_url = "http://127.0.0.1:3004") {
    auto s = shopd::config::load({});
    s.analytics_service_url = analytics_url;
    destinations = std::make_unique<shopd::bus::destinations>(s);
    auto ways =
        shopd::relay::add_api_routes(routes, store, {.token = "t", .keys = {}, .limits = {}}, {}, metrics);
    relay.offer(std::move(ways.batch));
    relay.offer_stage(std::move(ways.stage), fdb.db());
    relay.enable();
  }

  // Handles `ev` in the orders role, as the webhook does.
  bool handle(const std::function<void(unit_of_work&)>& f) {
    shopd::bus::delivery d(
        ev, "orders", fdb.db(), *destinations, [this] { ++dispatcher_woken; }, &relay,
        [this](std::size_t n) { stored += n; });
    return d.once(f);
  }

  long long scalar(const std::string& sql) {
    return fdb.db().with_session([&](soci::session& s) {
      long long n = 0;
      s << sql, soci::into(n);
      return n;
    });
  }

  fresh_database fdb{shopd::db::dialect::sqlite};
  const shopd::bus::envelope ev =
      shopd::bus::make_envelope("command.checkout", "cli", {{"checkoutId", "chk-1"}}, "chk-1");
  shopd::obs::registry registry;
  shopd::relay::relay_metrics metrics{registry};
  shopd::http::router routes;
  std::shared_ptr<shopd::relay::relay_store> store =
      std::make_shared<shopd::relay::relay_store>(fdb.db(), "node-a");
  shopd::bus::local_relay relay;
  std::unique_ptr<shopd::bus::destinations> destinations;
  int dispatcher_woken = 0;
  std::size_t stored = 0;
};

}  // namespace

TEST_SUITE("bus/relay stage") {
  TEST_CASE("a handler's events are stored in the relay's queue by its transaction, their outbox rows sent") {
    staged_platform p;
    CHECK(p.handle([](unit_of_work& uow) {
      uow.emit("inventory.stock.updated", {{"orderId", "ord-1"}});
      uow.audit("order.create", "order", "ord-1", true);
    }));
    CHECK(p.scalar("SELECT COUNT(*) FROM outbox") == 2);
    CHECK(p.scalar("SELECT COUNT(*) FROM outbox WHERE sent_at_ms IS NULL") == 0);
    CHECK(p.scalar("SELECT COUNT(*) FROM relay_messages WHERE state = 'CREATED'") == 2);
    // Each row names its message, which carries the event's id as its deduplication id.
    CHECK(p.scalar("SELECT COUNT(*) FROM outbox o JOIN relay_messages m ON m.message_id = o.message_id "
                   "AND m.dedup_id = o.event_id AND m.destination = o.destination") == 2);
    // An event is new when its producer's transaction stages it: no publish of it can come before
    // or after (its outbox row is written sent), so it takes no relay_dedup row.
    CHECK(p.scalar("SELECT COUNT(*) FROM relay_dedup") == 0);
    CHECK(p.scalar("SELECT COUNT(*) FROM relay_messages WHERE failure_callback = "
                   "'http://127.0.0.1:3004/api/dlq/callback' AND headers LIKE '%traceparent%'") == 2);
    CHECK(p.stored == 2);
    CHECK(p.dispatcher_woken == 0);  // nothing left for it
    CHECK(p.metrics.published.value() == 2);

    // Delivered again: handled before, nothing emitted twice.
    CHECK_FALSE(p.handle([](unit_of_work& uow) { uow.audit("never", "order", "ord-1", true); }));
    CHECK(p.scalar("SELECT COUNT(*) FROM relay_messages") == 2);
    CHECK(p.stored == 2);
  }

  TEST_CASE("a handler that throws leaves no outbox row and no relay message") {
    staged_platform p;
    CHECK_THROWS_AS(p.handle([](unit_of_work& uow) {
      uow.emit("inventory.stock.updated", {{"orderId", "ord-1"}});
      throw std::runtime_error("payment declined");
    }),
                    std::runtime_error);
    CHECK(p.scalar("SELECT COUNT(*) FROM outbox") == 0);
    CHECK(p.scalar("SELECT COUNT(*) FROM relay_messages") == 0);
    CHECK(p.scalar("SELECT COUNT(*) FROM inbox") == 0);
    CHECK(p.stored == 0);
    CHECK(p.metrics.published.value() == 0);
  }

  TEST_CASE("events the relay would refuse are left to the outbox dispatcher, which is woken") {
    // The relay calls back over HTTP(S) only, and every event's failure callback is analytics'.
    staged_platform p("ftp://analytics.invalid");
    CHECK(p.handle([](unit_of_work& uow) {
      uow.emit("inventory.stock.updated", {{"orderId", "ord-1"}});
      uow.audit("order.create", "order", "ord-1", true);
    }));
    CHECK(p.scalar("SELECT COUNT(*) FROM outbox WHERE sent_at_ms IS NULL AND message_id IS NULL") == 2);
    CHECK(p.scalar("SELECT COUNT(*) FROM relay_messages") == 0);
    CHECK(p.stored == 0);
    CHECK(p.dispatcher_woken == 1);
  }

  TEST_CASE("a relay keeping its queue in another database takes nothing: the dispatcher sends it all") {
    staged_platform p;
    fresh_database elsewhere(shopd::db::dialect::sqlite);
    shopd::http::router routes;
    auto ways =
        shopd::relay::add_api_routes(routes, std::make_shared<shopd::relay::relay_store>(elsewhere.db(), "b"),
                                     {.token = "t", .keys = {}, .limits = {}}, {}, p.metrics);
    p.relay.offer_stage(std::move(ways.stage), elsewhere.db());
    CHECK(p.handle([](unit_of_work& uow) { uow.emit("inventory.stock.updated", {{"orderId", "ord-1"}}); }));
    CHECK(p.scalar("SELECT COUNT(*) FROM outbox WHERE sent_at_ms IS NULL") == 1);
    CHECK(p.scalar("SELECT COUNT(*) FROM relay_messages") == 0);
    CHECK(p.stored == 0);
    CHECK(p.dispatcher_woken == 1);
  }
}
