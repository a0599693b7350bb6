#include "shopd/roles/inventory/api_input.hpp"

#include "shopd/bus/crypto.hpp"
#include "shopd/roles/inventory/stock_rules.hpp"

#include "validation_error_string.hpp"

#include <doctest/doctest.h>
#include <boost/json.hpp>

#include <string>

namespace json = boost::json;
using namespace shopd::inventory;
using shopd::bus::stock_reason;

namespace {

json::value body(std::string_view text) {
  return json::parse(text);
}

// The field a body is refused for, or "<accepted>".
std::string upsert_error(std::string_view text) {
  auto r = parse_product_upsert(body(text));
  return r ? "<accepted>" : r.error().field;
}

std::string adjust_error(std::string_view text) {
  auto r = parse_stock_adjustment(body(text));
  return r ? "<accepted>" : r.error().field;
}

std::string product_with(std::string_view field_json) {
  return R"({"sku":"MUG-LOGO","name":"Mug","priceCents":1290,"currency":"EUR",)" + std::string(field_json) +
         "}";
}

}  // namespace

TEST_SUITE("inventory/api_input") {
  TEST_CASE("a product upsert with every field") {
    auto p = parse_product_upsert(
        body(R"({"sku":"TSHIRT-BLK-M","name":"T-shirt \u2014 black","priceCents":2490,"currency":"EUR",)"
             R"("active":false,"stock":100})"));
    REQUIRE(p.has_value());
    CHECK(p->sku == "TSHIRT-BLK-M");
    CHECK(p->name == "T-shirt \xe2\x80\x94 black");
    CHECK(p->price_cents == 2490);
    CHECK(p->currency == "EUR");
    CHECK(p->active == false);
    CHECK(p->stock == 100);
  }

  TEST_CASE("a minimal product upsert leaves active and stock unset; null counts as absent") {
    auto p = parse_product_upsert(body(R"({"sku":"A","name":"A","priceCents":0,"currency":"USD"})"));
    REQUIRE(p.has_value());
    CHECK_FALSE(p->active.has_value());
    CHECK_FALSE(p->stock.has_value());
    auto q = parse_product_upsert(body(product_with(R"("active":null,"stock":null)")));
    REQUIRE(q.has_value());
    CHECK_FALSE(q->active.has_value());
    CHECK_FALSE(q->stock.has_value());
  }

  TEST_CASE("product upserts are refused naming the field") {
    SUBCASE("not an object") {
      auto r = parse_product_upsert(body("[1]"));
      REQUIRE(r.has_error());
      CHECK(r.error().field == "");
    }
    SUBCASE("each required field") {
      CHECK(upsert_error(R"({"name":"Mug","priceCents":1,"currency":"EUR"})") == "sku");
      CHECK(upsert_error(R"({"sku":"M","priceCents":1,"currency":"EUR"})") == "name");
      CHECK(upsert_error(R"({"sku":"M","name":"Mug","currency":"EUR"})") == "priceCents");
      CHECK(upsert_error(R"({"sku":"M","name":"Mug","priceCents":1})") == "currency");
      CHECK(upsert_error(R"({"sku":null,"name":"Mug","priceCents":1,"currency":"EUR"})") == "sku");
    }
    SUBCASE("skus") {
      CHECK(upsert_error(R"({"sku":"has space","name":"Mug","priceCents":1,"currency":"EUR"})") == "sku");
      CHECK(upsert_error(R"({"sku":"","name":"Mug","priceCents":1,"currency":"EUR"})") == "sku");
      CHECK(upsert_error(R"({"sku":7,"name":"Mug","priceCents":1,"currency":"EUR"})") == "sku");
      CHECK(upsert_error(R"({"sku":")" + std::string(65, 'X') +
                         R"(","name":"Mug","priceCents":1,"currency":"EUR"})") == "sku");
      CHECK(upsert_error(R"({"sku":")" + std::string(64, 'X') +
                         R"(","name":"Mug","priceCents":1,"currency":"EUR"})") == "<accepted>");
    }
    SUBCASE("names: single line, not blank, at most 200 code points") {
      CHECK(upsert_error(R"({"sku":"M","name":"","priceCents":1,"currency":"EUR"})") == "name");
      CHECK(upsert_error(R"({"sku":"M","name":"   ","priceCents":1,"currency":"EUR"})") == "name");
      CHECK(upsert_error(R"({"sku":"M","name":"\u00a0\u3000","priceCents":1,"currency":"EUR"})") == "name");
      CHECK(upsert_error(R"({"sku":"M","name":"\u1680\ufeff","priceCents":1,"currency":"EUR"})") == "name");
      CHECK(upsert_error(R"({"sku":"M","name":"two\nlines","priceCents":1,"currency":"EUR"})") == "name");
      CHECK(upsert_error(R"({"sku":"M","name":"tab\there","priceCents":1,"currency":"EUR"})") == "name");
      CHECK(upsert_error(R"({"sku":"M","name":"sep\u2028x","priceCents":1,"currency":"EUR"})") == "name");
      std::string euro200;
      for (int i = 0; i < 200; ++i) euro200 += "\\u20ac";  // 3 bytes each: the cap counts characters
      CHECK(upsert_error(R"({"sku":"M","name":")" + euro200 + R"(","priceCents":1,"currency":"EUR"})") ==
            "<accepted>");
      CHECK(upsert_error(R"({"sku":"M","name":")" + euro200 + R"(x","priceCents":1,"currency":"EUR"})") ==
            "name");
    }
    SUBCASE("prices are JSON integers within the money range") {
      CHECK(upsert_error(R"({"sku":"M","name":"Mug","priceCents":-1,"currency":"EUR"})") == "priceCents");
      CHECK(upsert_error(R"({"sku":"M","name":"Mug","priceCents":1.0,"currency":"EUR"})") == "priceCents");
      CHECK(upsert_error(R"({"sku":"M","name":"Mug","priceCents":"1","currency":"EUR"})") == "priceCents");
      CHECK(upsert_error(R"({"sku":"M","name":"Mug","priceCents":1000000000000001,"currency":"EUR"})") ==
            "priceCents");
      CHECK(upsert_error(R"({"sku":"M","name":"Mug","priceCents":1000000000000000,"currency":"EUR"})") ==
            "<accepted>");
      CHECK(upsert_error(R"({"sku":"M","name":"Mug","priceCents":18446744073709551615,"currency":"EUR"})") ==
            "priceCents");
    }
    SUBCASE("currencies") {
      CHECK(upsert_error(R"({"sku":"M","name":"Mug","priceCents":1,"currency":"eur"})") == "currency");
      CHECK(upsert_error(R"({"sku":"M","name":"Mug","priceCents":1,"currency":"EURO"})") == "currency");
    }
    SUBCASE("active and stock") {
      CHECK(upsert_error(product_with(R"("active":"yes")")) == "active");
      CHECK(upsert_error(product_with(R"("active":1)")) == "active");
      CHECK(upsert_error(product_with(R"("stock":-1)")) == "stock");
      CHECK(upsert_error(product_with(R"("stock":2.5)")) == "stock");
      CHECK(upsert_error(product_with(R"("stock":)" + std::to_string(max_stock + 1))) == "stock");
      CHECK(upsert_error(product_with(R"("stock":)" + std::to_string(max_stock))) == "<accepted>");
    }
    SUBCASE("an unknown field, so a typo never passes silently") {
      CHECK(upsert_error(product_with(R"("actve":false)")) == "actve");
      CHECK(upsert_error(product_with(R"("price":12)")) == "price");
    }
  }

  TEST_CASE("stock adjustments") {
    SUBCASE("accepted forms") {
      auto a = parse_stock_adjustment(
          body(R"({"delta":-4,"reason":"adjustment","note":"broken in the warehouse"})"));
      REQUIRE(a.has_value());
      CHECK(a->delta == -4);
      CHECK(a->reason == stock_reason::adjustment);
      CHECK_FALSE(a->order_id.has_value());
      CHECK(a->note == "broken in the warehouse");
      auto r = parse_stock_adjustment(body(R"({"delta":50,"reason":"restock"})"));
      REQUIRE(r.has_value());
      CHECK(r->reason == stock_reason::restock);
      auto c = parse_stock_adjustment(body(R"({"delta":2,"reason":"cancel","orderId":"ord_1"})"));
      REQUIRE(c.has_value());
      CHECK(c->reason == stock_reason::cancel);
      CHECK(c->order_id == "ord_1");
      CHECK(adjust_error(R"({"delta":1000000000,"reason":"adjustment"})") == "<accepted>");
      CHECK(adjust_error(R"({"delta":-1000000000,"reason":"adjustment"})") == "<accepted>");
    }
    SUBCASE("refusals name the field") {
      CHECK(adjust_error("3") == "");
      CHECK(adjust_error(R"({"reason":"restock"})") == "delta");
      CHECK(adjust_error(R"({"delta":0,"reason":"adjustment"})") == "delta");
      CHECK(adjust_error(R"({"delta":1.5,"reason":"adjustment"})") == "delta");
      CHECK(adjust_error(R"({"delta":1000000001,"reason":"adjustment"})") == "delta");
      CHECK(adjust_error(R"({"delta":-1000000001,"reason":"adjustment"})") == "delta");
      CHECK(adjust_error(R"({"delta":1})") == "reason");
      CHECK(adjust_error(R"({"delta":-1,"reason":"order","orderId":"o"})") == "reason");
      CHECK(adjust_error(R"({"delta":-1,"reason":"restock"})") == "delta");
      CHECK(adjust_error(R"({"delta":-1,"reason":"cancel","orderId":"o"})") == "delta");
      CHECK(adjust_error(R"({"delta":1,"reason":"cancel"})") == "orderId");
      CHECK(adjust_error(R"({"delta":1,"reason":"restock","orderId":"has space"})") == "orderId");
      CHECK(adjust_error(R"({"delta":1,"reason":"restock","note":"line\nbreak"})") == "note");
      CHECK(adjust_error(R"({"delta":1,"reason":"restock","note":"\u200b \u202f"})") == "note");
      CHECK(adjust_error(R"({"delta":1,"reason":"restock","note":")" + std::string(501, 'n') + R"("})") ==
            "note");
      CHECK(adjust_error(R"({"delta":1,"reason":"restock","sku":"X"})") == "sku");
    }
  }

  TEST_CASE("limit") {
    CHECK(parse_limit(std::nullopt).value() == default_page_size);
    CHECK(parse_limit(std::string("1")).value() == 1);
    CHECK(parse_limit(std::string("100")).value() == 100);
    for (const char* bad : {"0", "101", "-1", "+5", "1.0", "abc", "", " 5", "99999999999999999999999"}) {
      CAPTURE(bad);
      auto r = parse_limit(std::string(bad));
      REQUIRE(r.has_error());
      CHECK(r.error().field == "limit");
    }
  }

  TEST_CASE("active filter") {
    CHECK_FALSE(parse_active_filter(std::nullopt).value().has_value());
    CHECK(parse_active_filter(std::string("true")).value() == true);
    CHECK(parse_active_filter(std::string("false")).value() == false);
    for (const char* bad : {"1", "yes", "TRUE", ""}) {
      CAPTURE(bad);
      auto r = parse_active_filter(std::string(bad));
      REQUIRE(r.has_error());
      CHECK(r.error().field == "active");
    }
  }

  TEST_CASE("cursors round-trip and are refused by the other list") {
    const auto pc = product_cursor("MUG-LOGO");
    CHECK(parse_product_cursor(pc) == "MUG-LOGO");
    CHECK_FALSE(parse_movement_cursor(pc).has_value());
    const auto mc = movement_cursor(42);
    CHECK(parse_movement_cursor(mc) == 42);
    CHECK_FALSE(parse_product_cursor(mc).has_value());
    CHECK(pc.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
          std::string::npos);
  }

  TEST_CASE("forged or damaged cursors are refused") {
    using shopd::bus::crypto::base64url_encode;
    CHECK_FALSE(parse_product_cursor("").has_value());
    CHECK_FALSE(parse_product_cursor("not base64!").has_value());
    CHECK_FALSE(parse_product_cursor(product_cursor("MUG") + "=").has_value());
    CHECK_FALSE(parse_product_cursor(base64url_encode(std::string_view("MUG"))).has_value());
    CHECK_FALSE(parse_product_cursor(base64url_encode(std::string_view("p1:bad sku"))).has_value());
    CHECK_FALSE(parse_product_cursor(base64url_encode(std::string_view("p1:"))).has_value());
    CHECK_FALSE(parse_movement_cursor(base64url_encode(std::string_view("m1:"))).has_value());
    CHECK_FALSE(parse_movement_cursor(base64url_encode(std::string_view("m1:0"))).has_value());
    CHECK_FALSE(parse_movement_cursor(base64url_encode(std::string_view("m1:007"))).has_value());
    CHECK_FALSE(parse_movement_cursor(base64url_encode(std::string_view("m1:-3"))).has_value());
    CHECK_FALSE(parse_movement_cursor(base64url_encode(std::string_view("m1:12x"))).has_value());
    CHECK_FALSE(
        parse_movement_cursor(base64url_encode(std::string_view("m1:99999999999999999999"))).has_value());
  }
}
