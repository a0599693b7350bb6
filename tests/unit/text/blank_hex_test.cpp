#include "shopd/text/blank.hpp"
#include "shopd/text/hex.hpp"
#include "shopd/text/space.hpp"

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

  TEST_CASE("is_space: Unicode's White_Space and the two zero-width spaces, nothing that prints") {
    for (char32_t cp :
         {U'\t', U'\n', U'\v', U'\f', U'\r', U' ', U'\u0085', U'\u00A0', U'\u1680', U'\u2000', U'\u200A',
          U'\u200B', U'\u2028', U'\u2029', U'\u202F', U'\u205F', U'\u3000', U'\uFEFF'}) {
      CAPTURE(static_cast<unsigned>(cp));
      CHECK(is_space(cp));
    }
    // Each range's neighbours, and characters that look empty but print (or join) something.
    for (char32_t cp : {U'\x08',   U'\x0E',   U'\x1F',   U'!',      U'\u0084', U'\u0086', U'\u00A1',
                        U'\u1FFF', U'\u200C', U'\u200D', U'\u202E', U'\u2030', U'\u205E', U'\u2060',
                        U'\u2FFF', U'\u3001', U'\uFEFE', U'\uFFFD', U'a',      U'\u00E9'}) {
      CAPTURE(static_cast<unsigned>(cp));
      CHECK_FALSE(is_space(cp));
    }
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
