#include "shopd/roles/orders/order_api.hpp"

#include "shopd/bus/crypto.hpp"

#include <doctest/doctest.h>
#include <boost/json.hpp>

#include <chrono>
#include <limits>
#include <string>

using namespace shopd::roles::orders;
namespace bus = shopd::bus;
namespace json = boost::json;

namespace {

std::string cursor_of(std::string_view raw) {
  return bus::crypto::base64url_encode(raw);
}

bus::validation_error limit_error(const std::optional<std::string>& v) {
  const auto r = parse_limit(v);
  REQUIRE_FALSE(r.has_value());
  return r.error();
}

bus::validation_error cursor_error(std::string_view c) {
  const auto r = decode_cursor(c);
  REQUIRE_FALSE(r.has_value());
  return r.error();
}

// A generator that records whether it was asked.
struct id_source {
  int calls = 0;
  std::function<std::string()> fn() {
    return [this] {
      ++calls;
      return std::string("chk_generated");
    };
  }
};

constexpr std::string_view cart = R"({
  "customer": {"email": "ada@example.com", "name": "Ada Lovelace"},
  "items": [{"sku": "MUG-01", "quantity": 2, "unitPriceCents": 1}],
  "currency": "EUR",
  "totalCents": 2
})";

}  // namespace

TEST_SUITE("roles/orders/order_api") {
  TEST_CASE("order_api: limit") {
    CHECK(parse_limit(std::nullopt).value() == default_page_limit);
    CHECK(parse_limit("1").value() == 1);
    CHECK(parse_limit("100").value() == max_page_limit);
    CHECK(parse_limit("007").value() == 7);
    for (const char* bad :
         {"0", "101", "", "-1", "+5", " 5", "5 ", "1e2", "2.0", "abc", "99999999999999999999"}) {
      CAPTURE(bad);
      const auto e = limit_error(std::string(bad));
      CHECK(e.field == "limit");
      CHECK(e.message == "must be an integer from 1 to 100");
    }
  }

  TEST_CASE("order_api: cursor") {
    SUBCASE("round trip") {
      const page_key k{1'795'428'000'123, "ord_01JABCDEFGHJKMNPQRSTVWXYZ0"};
      const std::string c = encode_cursor(k);
      CHECK(c.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
            std::string::npos);
      CHECK(decode_cursor(c).value() == k);
      const page_key zero{0, "x"};
      CHECK(decode_cursor(encode_cursor(zero)).value() == zero);
      const page_key max{std::numeric_limits<std::int64_t>::max(), "ord:with:colons"};
      CHECK(decode_cursor(encode_cursor(max)).value() == max);
    }
    SUBCASE("anything else names the cursor") {
      for (const std::string& bad :
           {std::string("!!!"), cursor_of("12:ord_1") + "=", cursor_of("no colon"), cursor_of(":ord_1"),
            cursor_of("-5:ord_1"), cursor_of("+5:ord_1"), cursor_of("5x:ord_1"), cursor_of("5:"),
            cursor_of("5:has space"), cursor_of("99999999999999999999:ord_1"), std::string("MTI6b3JkXzE=")}) {
        CAPTURE(bad);
        CHECK(cursor_error(bad).field == "cursor");
      }
    }
  }

  TEST_CASE("order_api: the checkout request body") {
    SUBCASE("a checkoutId is generated when absent, and prices in the body are ignored") {
      id_source ids;
      const auto cmd = decode_checkout_request(cart, ids.fn());
      REQUIRE(cmd.has_value());
      CHECK(ids.calls == 1);
      CHECK(cmd->checkout_id == "chk_generated");
      CHECK(cmd->items == std::vector<bus::checkout_item>{{"MUG-01", 2}});
      CHECK(bus::to_json(*cmd).at("items").at(0).as_object().size() == 2);  // sku and quantity only
    }
    SUBCASE("null counts as absent") {
      id_source ids;
      auto body = json::parse(cart).as_object();
      body["checkoutId"] = nullptr;
      CHECK(decode_checkout_request(json::serialize(body), ids.fn()).value().checkout_id == "chk_generated");
      CHECK(ids.calls == 1);
    }
    SUBCASE("a given checkoutId is kept and nothing is generated") {
      id_source ids;
      auto body = json::parse(cart).as_object();
      body["checkoutId"] = "cart-7";
      CHECK(decode_checkout_request(json::serialize(body), ids.fn()).value().checkout_id == "cart-7");
      CHECK(ids.calls == 0);
    }
    SUBCASE("a given checkoutId must pass the id rule") {
      id_source ids;
      auto body = json::parse(cart).as_object();
      body["checkoutId"] = "has space";
      const auto r = decode_checkout_request(json::serialize(body), ids.fn());
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error().field == "checkoutId");
      body["checkoutId"] = 42;
      CHECK(decode_checkout_request(json::serialize(body), ids.fn()).error().field == "checkoutId");
    }
    SUBCASE("field errors are named without the data. prefix") {
      id_source ids;
      auto body = json::parse(cart).as_object();
      body["items"].as_array()[0].as_object()["quantity"] = 0;
      CHECK(decode_checkout_request(json::serialize(body), ids.fn()).error().field == "items[0].quantity");
      body.erase("customer");
      CHECK(decode_checkout_request(json::serialize(body), ids.fn()).error().field == "customer");
    }
    SUBCASE("bodies that are not one JSON object") {
      id_source ids;
      for (std::string_view bad :
           {"", "not json", "[1,2]", "\"text\"", "null", "{\"a\":1,\"a\":2}", "{} x"}) {
        CAPTURE(bad);
        const auto r = decode_checkout_request(bad, ids.fn());
        REQUIRE_FALSE(r.has_value());
        CHECK_FALSE(r.error().message.empty());
      }
      CHECK(decode_checkout_request("[1]", ids.fn()).error().field.empty());
      CHECK(decode_checkout_request("[1]", ids.fn()).error().message == "the body must be a JSON object");
      CHECK(ids.calls == 0);
    }
  }

  TEST_CASE("order_api: request_field") {
    CHECK(request_field("data.items[0].sku") == "items[0].sku");
    CHECK(request_field("data.currency") == "currency");
    CHECK(request_field("data").empty());
    CHECK(request_field("").empty());
    CHECK(request_field("eventId") == "eventId");
    CHECK(request_field("database") == "database");
  }

  TEST_CASE("order_api: views") {
    stored_order o;
    o.order.order_id = "ord_1";
    o.order.checkout_id = "chk_1";
    o.order.customer = {"ada@example.com", "Ada"};
    o.order.items = {{"MUG-01", "Mug", 2, 1250, 2500}};
    o.order.subtotal_cents = 2500;
    o.order.currency = "EUR";
    o.order.created_at = bus::timestamp(std::chrono::milliseconds(1'795'428'000'000));
    SUBCASE("an order") {
      const json::object v = order_view(o);
      CHECK(v.at("orderId") == "ord_1");
      CHECK(v.at("checkoutId") == "chk_1");
      CHECK(v.at("customer") == json::object{{"email", "ada@example.com"}, {"name", "Ada"}});
      CHECK(v.at("items").as_array().size() == 1);
      CHECK(v.at("subtotalCents") == 2500);
      CHECK(v.at("createdAt") == "2026-11-23T10:00:00.000Z");
      CHECK(v.at("status") == "created");
      CHECK_FALSE(v.contains("shippingAddress"));
      CHECK_FALSE(v.contains("note"));
      o.shipping_address = json::object{{"line1", "x"}};
      o.note = "n";
      const json::object w = order_view(o);
      CHECK(w.at("shippingAddress") == json::object{{"line1", "x"}});
      CHECK(w.at("note") == "n");
    }
    SUBCASE("a checkout") {
      CHECK(checkout_view("chk_1", std::nullopt) ==
            json::object{{"checkoutId", "chk_1"}, {"status", "pending"}});
      checkout_record accepted{"chk_1", checkout_status::accepted, "ord_1", std::nullopt, "ev", "chk_1", 1};
      CHECK(checkout_view("chk_1", accepted) ==
            json::object{{"checkoutId", "chk_1"}, {"status", "accepted"}, {"orderId", "ord_1"}});
      checkout_record rejected{"chk_1", checkout_status::rejected, std::nullopt, "unknown_sku", "ev", "chk_1",
                               1};
      CHECK(checkout_view("chk_1", rejected) ==
            json::object{{"checkoutId", "chk_1"}, {"status", "rejected"}, {"reason", "unknown_sku"}});
    }
  }

  TEST_CASE("order_api: checkout_location percent-encodes the id as one path segment") {
    CHECK(checkout_location("chk_01JAB-x.y~z") == "/api/checkouts/chk_01JAB-x.y~z");
    CHECK(checkout_location("a/b?c#d%e") == "/api/checkouts/a%2Fb%3Fc%23d%25e");
  }
}
