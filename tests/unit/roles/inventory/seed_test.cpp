#include "shopd/roles/inventory/seed.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace shopd::inventory;

TEST_SUITE("inventory/seed") {
  TEST_CASE("a catalogue document is a list of product upserts") {
    auto c = parse_catalogue(R"({"products":[
        {"sku":"MUG-LOGO","name":"Mug","priceCents":1290,"currency":"EUR","stock":100},
        {"sku":"CAP","name":"Cap","priceCents":1990,"currency":"EUR","active":false}]})");
    REQUIRE(c.has_value());
    REQUIRE(c->size() == 2);
    CHECK((*c)[0].sku == "MUG-LOGO");
    CHECK((*c)[0].stock == 100);
    CHECK((*c)[1].active == false);
    CHECK_FALSE((*c)[1].stock.has_value());
    auto empty = parse_catalogue(R"({"products":[]})");
    REQUIRE(empty.has_value());
    CHECK(empty->empty());
  }

  TEST_CASE("a bad entry is named with its index, its sku and the field") {
    auto c = parse_catalogue(R"({"products":[
        {"sku":"OK","name":"Fine","priceCents":1,"currency":"EUR"},
        {"sku":"MUG-LOGO","name":"Mug","priceCents":-5,"currency":"EUR"}]})");
    REQUIRE(c.has_error());
    CHECK(c.error().field == "products[1].priceCents");
    CHECK(c.error().message.starts_with("products[1] (sku \"MUG-LOGO\"): priceCents must be an integer"));

    SUBCASE("an entry without a usable sku is named by its index alone") {
      auto d =
          parse_catalogue(R"({"products":[{"sku":"bad sku","name":"x","priceCents":1,"currency":"EUR"}]})");
      REQUIRE(d.has_error());
      CHECK(d.error().field == "products[0].sku");
      CHECK(d.error().message.starts_with("products[0]: sku "));
    }
    SUBCASE("an entry that is not an object") {
      auto d = parse_catalogue(R"({"products":["MUG"]})");
      REQUIRE(d.has_error());
      CHECK(d.error().field == "products[0]");
    }
  }

  TEST_CASE("a sku listed twice is refused, naming both entries") {
    auto c = parse_catalogue(R"({"products":[
        {"sku":"A","name":"A","priceCents":1,"currency":"EUR"},
        {"sku":"B","name":"B","priceCents":1,"currency":"EUR"},
        {"sku":"A","name":"A again","priceCents":2,"currency":"EUR"}]})");
    REQUIRE(c.has_error());
    CHECK(c.error().field == "products[2].sku");
    CHECK(c.error().message == "products[2] (sku \"A\"): repeats the sku of products[0]");
  }

  TEST_CASE("the document's shape") {
    CHECK(parse_catalogue("").error().field == "");
    CHECK(parse_catalogue("{\"products\":[],}").has_error());
    CHECK(parse_catalogue("[]").error().field == "");
    CHECK(parse_catalogue("{}").error().field == "products");
    CHECK(parse_catalogue(R"({"products":{}})").error().field == "products");
    CHECK(parse_catalogue(R"({"products":[],"version":1})").error().field == "version");
    CHECK(parse_catalogue(R"({"products":[],"products":[]})").has_error());  // duplicate keys
  }
}
