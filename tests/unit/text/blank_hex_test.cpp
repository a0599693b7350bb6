#include "shopd/text/blank.hpp"
#include "shopd/text/hex.hpp"

#include <doctest/doctest.h>

using namespace shopd::text;

TEST_SUITE("text") {
  TEST_CASE("trim_blanks removes spaces and tabs at both ends, nothing else") {
    CHECK(trim_blanks("  a b\t") == "a b");
    CHECK(trim_blanks("\t\t") == "");
    CHECK(trim_blanks("") == "");
    CHECK(trim_blanks("x") == "x");
    CHECK(trim_blanks("\na\r") == "\na\r");  // line ends are not blanks
    CHECK(is_blank(' '));
    CHECK(is_blank('\t'));
    CHECK_FALSE(is_blank('\n'));
    CHECK_FALSE(is_blank('\v'));
  }

  TEST_CASE("hex_value reads either case and refuses the rest") {
    CHECK(hex_value('0') == 0);
    CHECK(hex_value('9') == 9);
    CHECK(hex_value('a') == 10);
    CHECK(hex_value('F') == 15);
    CHECK(hex_value('g') == -1);
    CHECK(hex_value('G') == -1);
    CHECK(hex_value('/') == -1);
    CHECK(hex_value(':') == -1);
    CHECK(hex_value('@') == -1);
    CHECK(hex_value('`') == -1);
    CHECK(hex_value('\0') == -1);
    CHECK(hex_value(static_cast<char>(0xC3)) == -1);
  }
}
