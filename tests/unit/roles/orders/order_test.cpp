#include "shopd/roles/orders/order.hpp"

#include <doctest/doctest.h>
#include <boost/json.hpp>

#include <chrono>
#include <string>

using namespace shopd::roles::orders;
namespace bus = shopd::bus;
namespace json = boost::json;

namespace {

// 2026-11-23T10:00:00.000Z
const bus::timestamp nov23{std::chrono::milliseconds{1'795'428'000'000}};

bus::checkout_command command() {
  bus::checkout_command c;
  c.checkout_id = "chk_42";
  c.customer = {"ada@example.com", "Ada Lovelace"};
  c.items = {{"MUG-01", 2}, {"TEE-L", 1}};
  c.currency = "EUR";
  return c;
}

priced_order priced() {
  return priced_order{{{"MUG-01", "Coffee mug", 2, 1250, 2500}, {"TEE-L", "T-shirt", 1, 1999, 1999}}, 4499};
}

}  // namespace

TEST_SUITE("roles/orders/order") {
  TEST_CASE("order: make_order takes the customer from the command and the lines from pricing") {
    bus::checkout_command cmd = command();
    SUBCASE("without address or note") {
      const stored_order o = make_order(cmd, priced(), "ord_1", nov23, "chk_42");
      CHECK(o.order.order_id == "ord_1");
      CHECK(o.order.checkout_id == "chk_42");
      CHECK(o.order.customer == cmd.customer);
      CHECK(o.order.items == priced().lines);
      CHECK(o.order.subtotal_cents == 4499);
      CHECK(o.order.currency == "EUR");
      CHECK(o.order.created_at == nov23);
      CHECK(o.status == "created");
      CHECK_FALSE(o.shipping_address);
      CHECK_FALSE(o.note);
      CHECK(o.correlation_id == "chk_42");
      // What order.created carries passes its consumers' validation.
      const auto back = bus::order_created::from_json(bus::to_json(o.order));
      REQUIRE(back.has_value());
      CHECK(*back == o.order);
    }
    SUBCASE("the address keeps the wire's field names") {
      cmd.shipping_address =
          bus::postal_address{"1 Main St", std::nullopt, "Berlin", std::nullopt, "10115", "DE"};
      cmd.note = "ring twice";
      const stored_order o = make_order(cmd, priced(), "ord_1", nov23, "c");
      REQUIRE(o.shipping_address);
      CHECK(*o.shipping_address ==
            json::object{
                {"line1", "1 Main St"}, {"city", "Berlin"}, {"postalCode", "10115"}, {"country", "DE"}});
      CHECK(o.note == "ring twice");
    }
  }

  TEST_CASE("order: the confirmation email") {
    const stored_order o = make_order(command(), priced(), "ord_1", nov23, "chk_42");
    const bus::email_notification n = confirmation_email(o.order);
    CHECK(n.to == "ada@example.com");
    CHECK(n.template_name == "order_confirmation");
    CHECK_FALSE(n.subject);
    CHECK(n.variables.at("orderId") == "ord_1");
    CHECK(n.variables.at("customerName") == "Ada Lovelace");
    CHECK(n.variables.at("subtotalCents") == 4499);
    CHECK(n.variables.at("currency") == "EUR");
    CHECK(n.variables.at("items") == json::array{json::object{{"sku", "MUG-01"},
                                                              {"name", "Coffee mug"},
                                                              {"quantity", 2},
                                                              {"unitPriceCents", 1250},
                                                              {"lineTotalCents", 2500}},
                                                 json::object{{"sku", "TEE-L"},
                                                              {"name", "T-shirt"},
                                                              {"quantity", 1},
                                                              {"unitPriceCents", 1999},
                                                              {"lineTotalCents", 1999}}});
    const auto back = bus::email_notification::from_json(bus::to_json(n));
    REQUIRE(back.has_value());
    CHECK(*back == n);
  }

  TEST_CASE("order: the stock the order takes") {
    const stored_order o = make_order(command(), priced(), "ord_1", nov23, "chk_42");
    const bus::stock_updated u = stock_taken(o.order);
    CHECK(u.order_id == "ord_1");
    CHECK(u.reason == bus::stock_reason::order);
    CHECK(u.movements == std::vector<bus::stock_movement>{{"MUG-01", -2}, {"TEE-L", -1}});
    const auto back = bus::stock_updated::from_json(bus::to_json(u));
    REQUIRE(back.has_value());
    CHECK(*back == u);
  }

  TEST_CASE("order: the audit detail") {
    const stored_order o = make_order(command(), priced(), "ord_1", nov23, "chk_42");
    CHECK(order_audit_detail(o.order) ==
          json::object{{"checkoutId", "chk_42"}, {"subtotalCents", 4499}, {"currency", "EUR"}, {"lines", 2}});
  }

  TEST_CASE("order: checkout status names") {
    CHECK(to_string(checkout_status::accepted) == "accepted");
    CHECK(to_string(checkout_status::rejected) == "rejected");
  }
}
