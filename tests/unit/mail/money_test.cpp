#include "shopd/mail/money.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>

using shopd::mail::currency_exponent;
using shopd::mail::format_money;
using shopd::mail::is_currency_code;

TEST_SUITE("mail/money") {
  TEST_CASE("two-decimal currencies") {
    CHECK(format_money(1250, "EUR") == "12.50 EUR");
    CHECK(format_money(100, "USD") == "1.00 USD");
    CHECK(format_money(0, "EUR") == "0.00 EUR");
    CHECK(format_money(5, "EUR") == "0.05 EUR");
    CHECK(format_money(99, "GBP") == "0.99 GBP");
    CHECK(format_money(123456789, "CHF") == "1234567.89 CHF");
  }

  TEST_CASE("negative amounts keep their sign in front of the leading zero") {
    CHECK(format_money(-5, "EUR") == "-0.05 EUR");
    CHECK(format_money(-1250, "EUR") == "-12.50 EUR");
    CHECK(format_money(-7, "JPY") == "-7 JPY");
  }

  TEST_CASE("zero- and three-decimal currencies") {
    CHECK(format_money(1250, "JPY") == "1250 JPY");
    CHECK(format_money(0, "KRW") == "0 KRW");
    CHECK(format_money(1250, "KWD") == "1.250 KWD");
    CHECK(format_money(5, "BHD") == "0.005 BHD");
    CHECK(format_money(1000, "JOD") == "1.000 JOD");
    CHECK(format_money(12345, "OMR") == "12.345 OMR");
    CHECK(format_money(1, "TND") == "0.001 TND");
  }

  TEST_CASE("the extremes of int64") {
    CHECK(format_money(std::numeric_limits<std::int64_t>::max(), "EUR") == "92233720368547758.07 EUR");
    CHECK(format_money(std::numeric_limits<std::int64_t>::min(), "EUR") == "-92233720368547758.08 EUR");
    CHECK(format_money(std::numeric_limits<std::int64_t>::min(), "JPY") == "-9223372036854775808 JPY");
  }

  TEST_CASE("exponent table") {
    SUBCASE("listed codes") {
      CHECK(currency_exponent("JPY") == 0);
      CHECK(currency_exponent("KRW") == 0);
      CHECK(currency_exponent("BHD") == 3);
      CHECK(currency_exponent("KWD") == 3);
      CHECK(currency_exponent("JOD") == 3);
      CHECK(currency_exponent("OMR") == 3);
      CHECK(currency_exponent("TND") == 3);
      CHECK(currency_exponent("CLF") == 4);
    }
    SUBCASE("everything else has two") {
      CHECK(currency_exponent("EUR") == 2);
      CHECK(currency_exponent("USD") == 2);
      CHECK(currency_exponent("AAA") == 2);
      CHECK(currency_exponent("ZZZ") == 2);
      CHECK(currency_exponent("jpy") == 2);
      CHECK(currency_exponent("") == 2);
    }
  }

  TEST_CASE("currency code shape") {
    CHECK(is_currency_code("EUR"));
    CHECK_FALSE(is_currency_code("eur"));
    CHECK_FALSE(is_currency_code("EU"));
    CHECK_FALSE(is_currency_code("EURO"));
    CHECK_FALSE(is_currency_code("E1R"));
    CHECK_FALSE(is_currency_code(""));
  }
}
