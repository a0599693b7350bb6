#include "shopd/bus/crypto.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>

using namespace std::literals;
namespace crypto = shopd::bus::crypto;

TEST_SUITE("bus/crypto") {
  TEST_CASE("base64url and base64 encode the RFC 4648 section 10 vectors") {
    struct vec {
      std::string_view in, unpadded, padded;
    };
    const vec vectors[] = {
        {"", "", ""},
        {"f", "Zg", "Zg=="},
        {"fo", "Zm8", "Zm8="},
        {"foo", "Zm9v", "Zm9v"},
        {"foob", "Zm9vYg", "Zm9vYg=="},
        {"fooba", "Zm9vYmE", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
    };
    for (const auto& v : vectors) {
      CAPTURE(v.in);
      CHECK(crypto::base64url_encode(v.in) == v.unpadded);
      CHECK(crypto::base64url_encode(v.in, crypto::padding::pad) == v.padded);
      CHECK(crypto::base64_encode(v.in) == v.padded);
      CHECK(crypto::base64url_decode(v.unpadded) == std::string(v.in));
      CHECK(crypto::base64_decode(v.padded) == std::string(v.in));
    }
  }

  TEST_CASE("the two alphabets differ only in the last two characters") {
    const std::string bytes = "\xfb\xff"s;
    CHECK(crypto::base64url_encode(bytes, crypto::padding::pad) == "-_8=");
    CHECK(crypto::base64_encode(bytes) == "+/8=");
    CHECK(crypto::base64url_decode("-_8") == bytes);
    CHECK(crypto::base64_decode("+/8=") == bytes);
    CHECK_FALSE(crypto::base64url_decode("+/8"));
    CHECK_FALSE(crypto::base64_decode("-_8="));
  }

  TEST_CASE("every byte value round-trips, embedded NULs included") {
    std::string all;
    for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
    CHECK(crypto::base64url_decode(crypto::base64url_encode(all)) == all);
    CHECK(crypto::base64_decode(crypto::base64_encode(all)) == all);
  }

  TEST_CASE("base64url_decode accepts only the canonical unpadded form") {
    SUBCASE("padding") {
      CHECK_FALSE(crypto::base64url_decode("Zg=="));
      CHECK_FALSE(crypto::base64url_decode("Zm8="));
    }
    SUBCASE("characters outside the alphabet") {
      CHECK_FALSE(crypto::base64url_decode("Zm9v!"));
      CHECK_FALSE(crypto::base64url_decode("Zm 9v"));
      CHECK_FALSE(crypto::base64url_decode("Zm9v\n"));
      CHECK_FALSE(crypto::base64url_decode("Zm9v."));
      CHECK_FALSE(crypto::base64url_decode("Zm9\0v"sv));
    }
    SUBCASE("impossible length 4n+1") {
      CHECK_FALSE(crypto::base64url_decode("Z"));
      CHECK_FALSE(crypto::base64url_decode("Zm9vY"));
    }
    SUBCASE("non-zero bits after the last byte") {
      CHECK(crypto::base64url_decode("Zg") == "f");
      CHECK_FALSE(crypto::base64url_decode("Zh"));
      CHECK(crypto::base64url_decode("Zm8") == "fo");
      CHECK_FALSE(crypto::base64url_decode("Zm9"));
    }
  }

  TEST_CASE("base64_decode requires exact padding") {
    CHECK_FALSE(crypto::base64_decode("Zg"));
    CHECK_FALSE(crypto::base64_decode("Zg="));
    CHECK_FALSE(crypto::base64_decode("Z==="));
    CHECK_FALSE(crypto::base64_decode("===="));
    CHECK_FALSE(crypto::base64_decode("Zg==Zg=="));
    CHECK_FALSE(crypto::base64_decode("Zh=="));
    CHECK_FALSE(crypto::base64_decode("Zm9v "));
  }

  TEST_CASE("sha256 matches the FIPS 180-2 examples") {
    CHECK(crypto::hex_encode(crypto::sha256("")) ==
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(crypto::hex_encode(crypto::sha256("abc")) ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(crypto::hex_encode(crypto::sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  }

  TEST_CASE("hmac_sha256 matches RFC 4231") {
    SUBCASE("test case 1") {
      CHECK(crypto::hex_encode(crypto::hmac_sha256(std::string(20, '\x0b'), "Hi There")) ==
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    }
    SUBCASE("test case 2: a key shorter than the output") {
      CHECK(crypto::hex_encode(crypto::hmac_sha256("Jefe", "what do ya want for nothing?")) ==
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
    SUBCASE("test case 6: a key longer than the block is hashed first") {
      CHECK(crypto::hex_encode(crypto::hmac_sha256(
                std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First")) ==
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }
    SUBCASE("an empty key is a valid HMAC key") {
      CHECK(crypto::hex_encode(crypto::hmac_sha256("", "abc")) ==
            "fd7adb152c05ef80dccf50a1fa4c05d5a3ec6da95575fc312ae7c5d091836351");
    }
  }

  TEST_CASE("constant_time_equal") {
    CHECK(crypto::constant_time_equal("", ""));
    CHECK(crypto::constant_time_equal("abc", "abc"));
    CHECK_FALSE(crypto::constant_time_equal("abc", "abd"));
    CHECK_FALSE(crypto::constant_time_equal("abc", "ab"));
    CHECK_FALSE(crypto::constant_time_equal("", "a"));
    const auto a = crypto::sha256("x");
    auto b = a;
    CHECK(crypto::constant_time_equal(a, b));
    b[31] ^= 1;
    CHECK_FALSE(crypto::constant_time_equal(a, b));
  }

  TEST_CASE("hex_encode and as_string_view") {
    const unsigned char bytes[] = {0x00, 0x0f, 0xa0, 0xff};
    CHECK(crypto::hex_encode(bytes) == "000fa0ff");
    const auto d = crypto::sha256("abc");
    CHECK(crypto::as_string_view(d).size() == 32);
    CHECK(crypto::base64url_encode(crypto::as_string_view(d)) == crypto::base64url_encode(d));
  }

  TEST_CASE("random_id") {
    const std::string id = crypto::random_id("jwt_");
    CHECK(id.size() == 4 + 22);
    CHECK(id.starts_with("jwt_"));
    CHECK(id.find_first_not_of("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", 4) ==
          std::string::npos);
    CHECK(crypto::random_id("msg_", 100).size() == 104);
    CHECK(crypto::random_id("x", 0) == "x");
    // 131 random bits each: equal ids would mean the generator is broken.
    CHECK(crypto::random_id("") != crypto::random_id(""));
  }
}
