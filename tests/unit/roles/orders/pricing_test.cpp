#include "shopd/roles/orders/pricing.hpp"

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

using namespace shopd::roles::orders;
namespace bus = shopd::bus;

namespace {

bus::checkout_command checkout(std::vector<bus::checkout_item> items, std::string currency = "EUR") {
  bus::checkout_command c;
  c.checkout_id = "chk_1";
  c.customer = {"ada@example.com", "Ada Lovelace"};
  c.items = std::move(items);
  c.currency = std::move(currency);
  return c;
}

catalogue shop() {
  catalogue c;
  c.emplace("MUG-01", product{"MUG-01", "Coffee mug", 1250, "EUR", true});
  c.emplace("TEE-L", product{"TEE-L", "T-shirt, large", 1999, "EUR", true});
  c.emplace("OLD-1", product{"OLD-1", "Discontinued", 500, "EUR", false});
  c.emplace("USD-1", product{"USD-1", "Imported", 700, "USD", true});
  return c;
}

pricing_error error_of(const pricing_result<priced_order>& r) {
  REQUIRE_FALSE(r.has_value());
  return r.error();
}

}  // namespace

TEST_SUITE("roles/orders/pricing") {
  TEST_CASE("pricing: lines and subtotal come from the catalogue") {
    const auto r = price_checkout(checkout({{"MUG-01", 2}, {"TEE-L", 1}}), shop());
    REQUIRE(r.has_value());
    REQUIRE(r->lines.size() == 2);
    CHECK(r->lines[0] == bus::order_line{"MUG-01", "Coffee mug", 2, 1250, 2500});
    CHECK(r->lines[1] == bus::order_line{"TEE-L", "T-shirt, large", 1, 1999, 1999});
    CHECK(r->subtotal_cents == 4499);
  }

  TEST_CASE("pricing: a free product is a line of zero") {
    catalogue c = shop();
    c["MUG-01"].price_cents = 0;
    const auto r = price_checkout(checkout({{"MUG-01", 3}}), c);
    REQUIRE(r.has_value());
    CHECK(r->lines[0].line_total_cents == 0);
    CHECK(r->subtotal_cents == 0);
  }

  TEST_CASE("pricing: refusals name the field, the first problem in item order wins") {
    SUBCASE("unknown sku") {
      const auto e = error_of(price_checkout(checkout({{"MUG-01", 1}, {"NOPE", 1}}), shop()));
      CHECK(e.code == pricing_errc::unknown_sku);
      CHECK(e.field == "items[1].sku");
      CHECK(e.message.find("NOPE") != std::string::npos);
    }
    SUBCASE("inactive product") {
      const auto e = error_of(price_checkout(checkout({{"OLD-1", 1}}), shop()));
      CHECK(e.code == pricing_errc::product_unavailable);
      CHECK(e.field == "items[0].sku");
    }
    SUBCASE("currency mismatch is reported on the checkout's currency") {
      const auto e = error_of(price_checkout(checkout({{"MUG-01", 1}, {"USD-1", 1}}), shop()));
      CHECK(e.code == pricing_errc::currency_mismatch);
      CHECK(e.field == "currency");
      CHECK(e.message.find("USD") != std::string::npos);
    }
    SUBCASE("a damaged catalogue currency is not echoed") {
      catalogue c = shop();
      c["MUG-01"].currency = "<script>";
      const auto e = error_of(price_checkout(checkout({{"MUG-01", 1}}), c));
      CHECK(e.code == pricing_errc::currency_mismatch);
      CHECK(e.message.find("<script>") == std::string::npos);
    }
    SUBCASE("an earlier unknown sku wins over a later inactive one") {
      const auto e = error_of(price_checkout(checkout({{"NOPE", 1}, {"OLD-1", 1}}), shop()));
      CHECK(e.code == pricing_errc::unknown_sku);
      CHECK(e.field == "items[0].sku");
    }
    SUBCASE("an earlier inactive product wins over a later currency mismatch") {
      const auto e = error_of(price_checkout(checkout({{"OLD-1", 1}, {"USD-1", 1}}), shop()));
      CHECK(e.code == pricing_errc::product_unavailable);
    }
    SUBCASE("an empty catalogue knows nothing") {
      const auto e = error_of(price_checkout(checkout({{"MUG-01", 1}}), catalogue{}));
      CHECK(e.code == pricing_errc::unknown_sku);
    }
  }

  TEST_CASE("pricing: a catalogue name that order.created would refuse makes the product unavailable") {
    catalogue c = shop();
    const auto with_name = [&](std::string name) {
      c["MUG-01"].name = std::move(name);
      return price_checkout(checkout({{"MUG-01", 1}}), c);
    };
    CHECK(error_of(with_name("")).code == pricing_errc::product_unavailable);
    CHECK(error_of(with_name("   ")).code == pricing_errc::product_unavailable);
    CHECK(error_of(with_name("\xC2\xA0\xE3\x80\x80")).code ==
          pricing_errc::product_unavailable);  // NBSP, ideographic
    // The spaces the inventory API always counted as blank, and order.created now does too.
    CHECK(error_of(with_name("\xE2\x80\xAF\xEF\xBB\xBF")).code == pricing_errc::product_unavailable);
    CHECK(error_of(with_name("two\nlines")).code == pricing_errc::product_unavailable);
    CHECK(error_of(with_name("bad \xFF utf-8")).code == pricing_errc::product_unavailable);
    CHECK(error_of(with_name(std::string(201, 'x'))).code == pricing_errc::product_unavailable);
    // 200 code points of two bytes each: within the limit, which counts characters.
    std::string accents;
    for (int i = 0; i < 200; ++i) accents += "\xC3\xA9";
    CHECK(with_name(accents).has_value());
    CHECK(with_name(" Mug ").has_value());
  }

  TEST_CASE("pricing: amounts stay within max_money_cents without overflowing") {
    catalogue c = shop();
    SUBCASE("a price beyond the maximum") {
      c["MUG-01"].price_cents = bus::max_money_cents + 1;
      const auto e = error_of(price_checkout(checkout({{"MUG-01", 1}}), c));
      CHECK(e.code == pricing_errc::amount_out_of_range);
      CHECK(e.field == "items[0].sku");
    }
    SUBCASE("a negative price") {
      c["MUG-01"].price_cents = -1;
      CHECK(error_of(price_checkout(checkout({{"MUG-01", 1}}), c)).code == pricing_errc::amount_out_of_range);
    }
    SUBCASE("the maximum price once is fine, twice is not") {
      c["MUG-01"].price_cents = bus::max_money_cents;
      const auto once = price_checkout(checkout({{"MUG-01", 1}}), c);
      REQUIRE(once.has_value());
      CHECK(once->subtotal_cents == bus::max_money_cents);
      const auto e = error_of(price_checkout(checkout({{"MUG-01", 2}}), c));
      CHECK(e.code == pricing_errc::amount_out_of_range);
      CHECK(e.field == "items[0].quantity");
    }
    SUBCASE("a product that would overflow int64 is refused, not wrapped") {
      c["MUG-01"].price_cents = bus::max_money_cents;  // 10^15 x 10^4 > 2^63
      const auto e = error_of(price_checkout(checkout({{"MUG-01", bus::max_quantity}}), c));
      CHECK(e.code == pricing_errc::amount_out_of_range);
      CHECK(e.field == "items[0].quantity");
    }
    SUBCASE("lines within range whose sum is not") {
      c["MUG-01"].price_cents = bus::max_money_cents / 2 + 1;
      c["TEE-L"].price_cents = bus::max_money_cents / 2;
      const auto e = error_of(price_checkout(checkout({{"MUG-01", 1}, {"TEE-L", 1}}), c));
      CHECK(e.code == pricing_errc::amount_out_of_range);
      CHECK(e.field == "items");
      c["MUG-01"].price_cents = bus::max_money_cents / 2;
      const auto exact = price_checkout(checkout({{"MUG-01", 1}, {"TEE-L", 1}}), c);
      REQUIRE(exact.has_value());
      CHECK(exact->subtotal_cents == bus::max_money_cents);
    }
    SUBCASE("the largest order possible: max_order_lines lines of max_quantity") {
      bus::checkout_command cmd = checkout({});
      catalogue big;
      for (std::size_t i = 0; i < bus::max_order_lines; ++i) {
        const std::string sku = "SKU-" + std::to_string(i);
        big.emplace(sku, product{sku, "Item " + std::to_string(i), 1'000'000, "EUR", true});
        cmd.items.push_back({sku, bus::max_quantity});
      }
      const auto r = price_checkout(cmd, big);
      REQUIRE(r.has_value());
      CHECK(r->lines.size() == bus::max_order_lines);
      CHECK(r->subtotal_cents ==
            1'000'000 * bus::max_quantity * static_cast<std::int64_t>(bus::max_order_lines));
    }
  }

  TEST_CASE("pricing: codes and the exception of value()") {
    CHECK(to_string(pricing_errc::unknown_sku) == "unknown_sku");
    CHECK(to_string(pricing_errc::product_unavailable) == "product_unavailable");
    CHECK(to_string(pricing_errc::currency_mismatch) == "currency_mismatch");
    CHECK(to_string(pricing_errc::amount_out_of_range) == "amount_out_of_range");
    const auto r = price_checkout(checkout({{"NOPE", 1}}), shop());
    CHECK_THROWS_AS((void)r.value(), std::invalid_argument);
  }
}
