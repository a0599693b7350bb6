#include "shopd/text/utf8.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <string_view>
#include <vector>

using namespace shopd::text;

namespace {

// Every code point of `s`, nullopt for each malformed byte skipped.
std::vector<std::optional<char32_t>> decode_all(std::string_view s) {
  std::vector<std::optional<char32_t>> out;
  for (std::size_t i = 0; i < s.size();) out.push_back(next_code_point(s, i));
  return out;
}

}  // namespace

TEST_SUITE("text.utf8") {
  TEST_CASE("well-formed text") {
    for (std::string_view ok : {"", "plain", "Grüße € 🛒", "\xc3\xa9", "\xe2\x82\xac",
                                "\xf0\x9f\x98\x80", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf"}) {
      CAPTURE(ok);
      CHECK(is_valid_utf8(ok));
    }
    CHECK(
        is_valid_utf8(std::string_view("a\0b", 3)));  // NUL is a code point; refusing it is the caller's rule
  }

  TEST_CASE("malformed text: RFC 3629's exclusions") {
    for (std::string_view bad : {
             "\x80",              // a continuation byte alone
             "\xc3",              // truncated
             "\xe2\x82",          // truncated
             "a\xf0\x9f\x98",     // truncated at the end
             "\xe2\x28\xa1",      // not a continuation byte
             "\xc0\xaf",          // overlong '/'
             "\xc0\x80",          // overlong NUL
             "\xc1\xbf",          // overlong
             "\xe0\x80\xaf",      // overlong
             "\xe0\x9f\xbf",      // overlong
             "\xf0\x80\x80\x80",  // overlong
             "\xed\xa0\x80",      // a surrogate
             "\xf4\x90\x80\x80",  // above U+10FFFF
             "\xf5\x80\x80\x80",  // no such lead byte
             "\xff",
         }) {
      CAPTURE(bad);
      CHECK_FALSE(is_valid_utf8(bad));
    }
  }

  TEST_CASE("sequence lengths") {
    const std::string_view s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    CHECK(utf8_sequence_length(s, 0) == 1);
    CHECK(utf8_sequence_length(s, 1) == 2);
    CHECK(utf8_sequence_length(s, 3) == 3);
    CHECK(utf8_sequence_length(s, 6) == 4);
    CHECK(utf8_sequence_length(s, 2) == 0);                                 // inside a sequence
    CHECK(utf8_sequence_length(s.substr(0, 9), 6) == 0);                    // cut short
    CHECK(utf8_sequence_length(std::string_view("\xed\xa0\x80"), 0) == 0);  // a surrogate
  }

  TEST_CASE("decoding") {
    CHECK(decode_all("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80") ==
          std::vector<std::optional<char32_t>>{U'a', U'\u00e9', U'\u20ac', U'\U0001F600'});
    CHECK(decode_all("\xf4\x8f\xbf\xbf") == std::vector<std::optional<char32_t>>{U'\U0010FFFF'});
    // A malformed byte decodes to nothing and is stepped over: decoding goes on after it.
    CHECK(decode_all("a\xffz") == std::vector<std::optional<char32_t>>{U'a', std::nullopt, U'z'});
    CHECK(decode_all("\xe2\x82") == std::vector<std::optional<char32_t>>{std::nullopt, std::nullopt});
  }

  TEST_CASE("a prefix never ends inside a sequence") {
    const std::string_view s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";  // a é € 😀: 1 + 2 + 3 + 4 bytes
    CHECK(utf8_prefix(s, 100) == s);
    CHECK(utf8_prefix(s, s.size()) == s);
    CHECK(utf8_prefix(s, 0).empty());
    CHECK(utf8_prefix(s, 1) == "a");
    CHECK(utf8_prefix(s, 2) == "a");  // é would be cut
    CHECK(utf8_prefix(s, 3) == "a\xc3\xa9");
    CHECK(utf8_prefix(s, 5) == "a\xc3\xa9");
    CHECK(utf8_prefix(s, 6) == "a\xc3\xa9\xe2\x82\xac");
    CHECK(utf8_prefix(s, 9) == "a\xc3\xa9\xe2\x82\xac");
    for (std::size_t n = 0; n <= s.size(); ++n) CHECK(is_valid_utf8(utf8_prefix(s, n)));
  }
}
