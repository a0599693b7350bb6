#include "shopd/bus/signature.hpp"

#include "shopd/bus/crypto.hpp"

#include <doctest/doctest.h>
#include <boost/json.hpp>

#include <chrono>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <string_view>

namespace bus = shopd::bus;
namespace crypto = shopd::bus::crypto;
namespace json = boost::json;
using bus::verify_error;
using std::chrono::seconds;
using sys_clock = std::chrono::system_clock;

namespace {

// The worked example of reference/qstash-protocol.md §3.5.
const sys_clock::time_point t0{seconds{1700000000}};
constexpr std::string_view current_key = "sig_test_current";
constexpr std::string_view next_key = "sig_test_next";
constexpr std::string_view url = "http://127.0.0.1:3001/api/webhook";
constexpr std::string_view body = R"({"hello":"world"})";
constexpr std::string_view body_hash = "k6I5cakU5erL8KjSUVTNownDwccvu5kU1Hxg88toFYg=";
constexpr std::string_view jti = "jwt_test0000000000000000000001";
const bus::signing_keys keys{std::string(current_key), std::string(next_key)};

// What shopd must produce for the inputs above, computed independently with openssl(1):
//   H=$(printf '%s' '{"alg":"HS256","typ":"JWT"}' | openssl base64 -A | tr '+/' '-_' | tr -d '=')
//   P=... the same for the claims {"iss":"Upstash","sub":URL,"exp":1700000300,"nbf":0,
//         "iat":1700000000,"jti":JTI,"body":BODY_HASH}
//   printf '%s' "$H.$P" | openssl dgst -sha256 -hmac sig_test_current -binary | openssl base64 -A | ...
constexpr std::string_view expected_token =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJpc3MiOiJVcHN0YXNoIiwic3ViIjoiaHR0cDovLzEyNy4wLjAuMTozMDAxL2FwaS93ZWJob29rIiwiZXhwIjoxNzAwMDAwMzAwLCJu"
    "Ym"
    "YiOjAsImlhdCI6MTcwMDAwMDAwMCwianRpIjoiand0X3Rlc3QwMDAwMDAwMDAwMDAwMDAwMDAwMDAxIiwiYm9keSI6Ims2STVjYWtVNW"
    "Vy"
    "TDhLalNVVlROb3duRHdjY3Z1NWtVMUh4Zzg4dG9GWWc9In0."
    "4stXtsZ2R04GqxWfx3qmscdOlFuSJFpaMJwQnH6hZno";

// The §3.5 token itself (nbf = iat, as QStash sent before Sept 2024), verified there with the SDK.
constexpr std::string_view reference_token =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJpc3MiOiJVcHN0YXNoIiwic3ViIjoiaHR0cDovLzEyNy4wLjAuMTozMDAxL2FwaS93ZWJob29rIiwiZXhwIjoxNzAwMDAwMzAwLCJu"
    "Ym"
    "YiOjE3MDAwMDAwMDAsImlhdCI6MTcwMDAwMDAwMCwianRpIjoiand0X3Rlc3QwMDAwMDAwMDAwMDAwMDAwMDAwMDAxIiwiYm9keSI6Im"
    "s2"
    "STVjYWtVNWVyTDhLalNVVlROb3duRHdjY3Z1NWtVMUh4Zzg4dG9GWWc9In0."
    "PKC1gKhKUKh1oDHX0NADiLoiSvatily0PqXf4plY0w8";

constexpr std::string_view hs256_header = R"({"alg":"HS256","typ":"JWT"})";

// Claims as QStash sends them for `body` to `url` at t0; tests edit them to build bad tokens.
json::object qstash_claims() {
  return {{"iss", "Upstash"},  {"sub", url}, {"exp", 1700000300}, {"nbf", 0},
          {"iat", 1700000000}, {"jti", jti}, {"body", body_hash}};
}

// A token with arbitrary header and claims text, correctly MACed with `key`.
std::string make_token(std::string_view header, std::string_view claims, std::string_view key = current_key) {
  std::string token = crypto::base64url_encode(header) + "." + crypto::base64url_encode(claims);
  token += "." + crypto::base64url_encode(crypto::hmac_sha256(key, token));
  return token;
}

std::string make_token(const json::object& claims, std::string_view key = current_key) {
  return make_token(hs256_header, json::serialize(claims), key);
}

// "ok" or the error's name, so failed checks print something readable.
std::string outcome(const bus::verify_result& r) {
  return r ? std::string("ok") : std::string(bus::to_string(r.error()));
}

std::string check(std::string_view token, sys_clock::time_point now = t0,
                  const bus::verify_options& opts = {}, std::string_view received_body = body,
                  const bus::signing_keys& ks = keys) {
  return outcome(bus::verify(token, ks, received_body, now, opts));
}

}  // namespace

TEST_SUITE("bus/signature") {
  TEST_CASE("sign produces QStash's token byte for byte") {
    CHECK(bus::sign(current_key, url, body, t0, jti) == expected_token);
  }

  TEST_CASE("sign ignores sub-second parts of now") {
    CHECK(bus::sign(current_key, url, body, t0 + std::chrono::milliseconds{999}, jti) == expected_token);
  }

  TEST_CASE("sign draws a fresh jwt_ id per token") {
    const std::string a = bus::sign(current_key, url, body, t0);
    const std::string b = bus::sign(current_key, url, body, t0);
    CHECK(a != b);
    const auto r = bus::verify(a, keys, body, t0);
    REQUIRE(r.has_value());
    CHECK(r->jwt_id.starts_with("jwt_"));
    CHECK(r->jwt_id.size() == 26);
  }

  TEST_CASE("sign escapes the URL as JSON and hashes an empty body") {
    const std::string odd_url = "http://h/p?q=\"x\"&u=\xc3\xa9";
    const auto r = bus::verify(bus::sign(current_key, odd_url, "", t0, jti), keys, "", t0);
    REQUIRE(r.has_value());
    CHECK(r->subject == odd_url);
    CHECK(r->body_hash == "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU=");
  }

  TEST_CASE("sign refuses an empty key") {
    CHECK_THROWS_AS((void)bus::sign("", url, body, t0), std::invalid_argument);
  }

  TEST_CASE("verify returns the claims of a good token") {
    const auto r = bus::verify(expected_token, keys, body, t0);
    REQUIRE(r.has_value());
    CHECK(r->issuer == "Upstash");
    CHECK(r->subject == url);
    CHECK(r->issued_at == 1700000000);
    CHECK(r->expires_at == 1700000300);
    CHECK(r->not_before == 0);
    CHECK(r->jwt_id == jti);
    CHECK(r->body_hash == body_hash);
    CHECK(r->key == bus::signing_key_slot::current);
  }

  TEST_CASE("verify accepts the reference token, whose nbf equals iat") {
    CHECK(check(reference_token) == "ok");
    CHECK(check(reference_token, t0 + seconds{299}) == "ok");
  }

  TEST_CASE("verify accepts the current and the next key") {
    SUBCASE("current") {
      CHECK(check(bus::sign(current_key, url, body, t0)) == "ok");
    }
    SUBCASE("next, reported as such") {
      const auto r = bus::verify(bus::sign(next_key, url, body, t0), keys, body, t0);
      REQUIRE(r.has_value());
      CHECK(r->key == bus::signing_key_slot::next);
    }
    SUBCASE("only one key configured") {
      const std::string by_next = bus::sign(next_key, url, body, t0);
      CHECK(check(by_next, t0, {}, body, {"", std::string(next_key)}) == "ok");
      CHECK(check(by_next, t0, {}, body, {std::string(next_key), ""}) == "ok");
      CHECK(check(by_next, t0, {}, body, {std::string(current_key), ""}) == "bad_signature");
    }
  }

  TEST_CASE("verify without any key is a configuration error") {
    CHECK(check(expected_token, t0, {}, body, {"", ""}) == "no_signing_key");
  }

  TEST_CASE("verify rejects a missing token") {
    CHECK(check("") == "missing");
  }

  TEST_CASE("verify rejects oversized tokens before decoding them") {
    CHECK(check(std::string(bus::max_signature_size + 1, 'a')) == "too_large");
    CHECK(check(std::string(bus::max_signature_size, 'a')) == "malformed");
    // A real token with a URL making it just too long.
    const std::string long_url = "http://h/" + std::string(bus::max_signature_size, 'p');
    CHECK(check(bus::sign(current_key, long_url, body, t0)) == "too_large");
  }

  TEST_CASE("verify rejects malformed tokens") {
    const std::string h = crypto::base64url_encode(hs256_header);
    const std::string c = crypto::base64url_encode(json::serialize(qstash_claims()));
    const std::string s = std::string(expected_token.substr(expected_token.rfind('.') + 1));

    SUBCASE("not three segments") {
      CHECK(check("abc") == "malformed");
      CHECK(check(h + "." + c) == "malformed");
      CHECK(check(h + "." + c + "." + s + ".") == "malformed");
      CHECK(check(h + "." + c + "." + s + "." + s) == "malformed");
    }
    SUBCASE("bad base64url in a segment") {
      CHECK(check(h + "!." + c + "." + s) == "malformed");
      CHECK(check(h + "." + c + "+." + s) == "malformed");
      CHECK(check(h + "." + c + "." + s + "/") == "malformed");
      CHECK(check(h + "." + c + "." + s + " ") == "malformed");
    }
    SUBCASE("padded segments are not canonical") {
      CHECK(check(h + "=." + c + "." + s) == "malformed");
      CHECK(check(h + "." + c + "." + s + "=") == "malformed");
    }
    SUBCASE("header is not a JSON object") {
      CHECK(check(make_token(R"({"alg":"HS256")", json::serialize(qstash_claims()))) == "malformed");
      CHECK(check(make_token(R"(["HS256"])", json::serialize(qstash_claims()))) == "malformed");
      CHECK(check(make_token(R"("HS256")", json::serialize(qstash_claims()))) == "malformed");
      CHECK(check(make_token(R"({"alg":"HS256",})", json::serialize(qstash_claims()))) == "malformed");
      CHECK(check(make_token("{\"alg\":\"HS256\",\"x\":\"\xff\"}", json::serialize(qstash_claims()))) ==
            "malformed");
    }
    SUBCASE("header without a string alg, or with crit") {
      CHECK(check(make_token(R"({"typ":"JWT"})", json::serialize(qstash_claims()))) == "malformed");
      CHECK(check(make_token(R"({"alg":256})", json::serialize(qstash_claims()))) == "malformed");
      CHECK(check(make_token(R"({"alg":"HS256","crit":["exp"]})", json::serialize(qstash_claims()))) ==
            "malformed");
    }
    SUBCASE("claims are not a JSON object (but correctly MACed)") {
      CHECK(check(make_token(hs256_header, "{\"iss\":\"Upstash\"")) == "malformed");
      CHECK(check(make_token(hs256_header, "[1,2]")) == "malformed");
      CHECK(check(make_token(hs256_header, "")) == "malformed");
    }
    SUBCASE("required claims missing or mistyped") {
      for (const char* name : {"iss", "sub", "exp", "body"}) {
        CAPTURE(name);
        auto claims = qstash_claims();
        claims.erase(name);
        CHECK(check(make_token(claims)) == "malformed");
      }
      auto claims = qstash_claims();
      SUBCASE("exp as a string") {
        claims["exp"] = "1700000300";
      }
      SUBCASE("exp with a fraction") {
        claims["exp"] = 1700000300.5;
      }
      SUBCASE("exp beyond int64") {
        claims["exp"] = std::uint64_t{18446744073709551615u};
      }
      SUBCASE("nbf as null") {
        claims["nbf"] = nullptr;
      }
      SUBCASE("iat as a string") {
        claims["iat"] = "now";
      }
      SUBCASE("iss as a number") {
        claims["iss"] = 1;
      }
      SUBCASE("sub as an array") {
        claims["sub"] = json::array{url};
      }
      SUBCASE("jti as a number") {
        claims["jti"] = 7;
      }
      SUBCASE("body as an object") {
        claims["body"] = json::object{};
      }
      CHECK(check(make_token(claims)) == "malformed");
    }
  }

  TEST_CASE("verify accepts claims that QStash or jose may leave out") {
    auto claims = qstash_claims();
    claims.erase("nbf");
    claims.erase("iat");
    claims.erase("jti");
    const auto r = bus::verify(make_token(claims), keys, body, t0);
    REQUIRE(r.has_value());
    CHECK(r->not_before == 0);
    CHECK(r->issued_at == 0);
    CHECK(r->jwt_id.empty());
  }

  TEST_CASE("verify pins the algorithm to HS256") {
    const std::string claims = json::serialize(qstash_claims());
    SUBCASE("none with an empty signature") {
      const std::string token = crypto::base64url_encode(std::string_view{R"({"alg":"none"})"}) + "." +
                                crypto::base64url_encode(claims) + ".";
      CHECK(check(token) == "bad_algorithm");
    }
    SUBCASE("HS512, even with a valid HMAC-SHA256 under the current key") {
      CHECK(check(make_token(R"({"alg":"HS512","typ":"JWT"})", claims)) == "bad_algorithm");
    }
    SUBCASE("RS256") {
      CHECK(check(make_token(R"({"alg":"RS256"})", claims)) == "bad_algorithm");
    }
    SUBCASE("case matters") {
      CHECK(check(make_token(R"({"alg":"hs256"})", claims)) == "bad_algorithm");
    }
    SUBCASE("typ is not checked") {
      CHECK(check(make_token(R"({"alg":"HS256"})", claims)) == "ok");
    }
  }

  TEST_CASE("verify rejects a bad MAC") {
    SUBCASE("signed with a key that is neither current nor next") {
      CHECK(check(bus::sign("sig_someone_else", url, body, t0)) == "bad_signature");
    }
    SUBCASE("one changed MAC character") {
      std::string token(expected_token);
      char& c = token[token.size() - 10];
      c = c == 'A' ? 'B' : 'A';
      CHECK(check(token) == "bad_signature");
    }
    SUBCASE("a MAC whose last character has stray low bits is not canonical base64url") {
      std::string token(expected_token);
      REQUIRE(token.back() == 'o');
      token.back() = 'p';  // same 32 bytes once decoded, if the decoder were lax
      CHECK(check(token) == "malformed");
    }
    SUBCASE("a truncated MAC") {
      CHECK(check(expected_token.substr(0, expected_token.size() - 3)) == "bad_signature");
    }
    SUBCASE("an empty MAC") {
      CHECK(check(expected_token.substr(0, expected_token.rfind('.') + 1)) == "bad_signature");
    }
    SUBCASE("claims changed after signing") {
      auto claims = qstash_claims();
      claims["sub"] = "http://evil.example/";
      const std::string forged = std::string(expected_token.substr(0, expected_token.find('.') + 1)) +
                                 crypto::base64url_encode(json::serialize(claims)) +
                                 std::string(expected_token.substr(expected_token.rfind('.')));
      CHECK(check(forged) == "bad_signature");
    }
  }

  TEST_CASE("verify rejects another issuer") {
    auto claims = qstash_claims();
    claims["iss"] = "upstash";
    CHECK(check(make_token(claims)) == "wrong_issuer");
    claims["iss"] = "";
    CHECK(check(make_token(claims)) == "wrong_issuer");
  }

  TEST_CASE("verify enforces exp with the clock tolerance") {
    const seconds life = bus::signature_lifetime;
    SUBCASE("default tolerance of 5 s") {
      CHECK(check(expected_token, t0 + life + seconds{4}) == "ok");
      CHECK(check(expected_token, t0 + life + seconds{5}) == "expired");
      CHECK(check(expected_token, t0 + std::chrono::hours{24}) == "expired");
    }
    SUBCASE("no tolerance: exp itself is already too late") {
      bus::verify_options strict;
      strict.clock_tolerance = seconds{0};
      CHECK(check(expected_token, t0 + life - seconds{1}, strict) == "ok");
      CHECK(check(expected_token, t0 + life, strict) == "expired");
    }
    SUBCASE("a negative tolerance counts as none") {
      bus::verify_options odd;
      odd.clock_tolerance = seconds{-100};
      CHECK(check(expected_token, t0 + life - seconds{1}, odd) == "ok");
      CHECK(check(expected_token, t0 + life, odd) == "expired");
    }
    SUBCASE("extreme exp values do not wrap") {
      auto claims = qstash_claims();
      claims["exp"] = std::numeric_limits<std::int64_t>::min();
      CHECK(check(make_token(claims)) == "expired");
      claims["exp"] = std::numeric_limits<std::int64_t>::max();
      bus::verify_options huge;
      huge.clock_tolerance = seconds{std::numeric_limits<std::int64_t>::max()};
      CHECK(check(make_token(claims), t0, huge) == "ok");
    }
  }

  TEST_CASE("verify enforces nbf with the clock tolerance") {
    auto claims = qstash_claims();
    claims["nbf"] = 1700000000 + 5;
    CHECK(check(make_token(claims)) == "ok");
    claims["nbf"] = 1700000000 + 6;
    CHECK(check(make_token(claims)) == "not_yet_valid");
    claims["nbf"] = 1700000000 + 3600;
    CHECK(check(make_token(claims)) == "not_yet_valid");
  }

  TEST_CASE("verify checks the subject only when asked to") {
    bus::verify_options opts;
    CHECK(check(expected_token, t0, opts) == "ok");
    opts.expected_url = std::string(url);
    CHECK(check(expected_token, t0, opts) == "ok");
    opts.expected_url = std::string(url) + "/";
    CHECK(check(expected_token, t0, opts) == "wrong_subject");
    opts.expected_url = "https://127.0.0.1:3001/api/webhook";
    CHECK(check(expected_token, t0, opts) == "wrong_subject");
  }

  TEST_CASE("verify compares the body hash with the received bytes") {
    SUBCASE("one changed byte") {
      CHECK(check(expected_token, t0, {}, R"({"hello":"World"})") == "body_mismatch");
    }
    SUBCASE("one extra byte") {
      CHECK(check(expected_token, t0, {}, std::string(body) + "\n") == "body_mismatch");
    }
    SUBCASE("empty body") {
      CHECK(check(expected_token, t0, {}, "") == "body_mismatch");
    }
    SUBCASE("unpadded body claim is accepted") {
      auto claims = qstash_claims();
      claims["body"] = body_hash.substr(0, body_hash.size() - 1);
      CHECK(check(make_token(claims)) == "ok");
    }
    SUBCASE("standard-alphabet body claim is not base64url") {
      auto claims = qstash_claims();
      claims["body"] = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
      CHECK(check(make_token(claims), t0, {}, "") == "body_mismatch");
      claims["body"] = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU=";
      CHECK(check(make_token(claims), t0, {}, "") == "ok");
    }
    SUBCASE("binary bodies are hashed as raw bytes") {
      const std::string binary("\x00\xff\x80 \xc3", 5);
      CHECK(check(bus::sign(current_key, url, binary, t0), t0, {}, binary) == "ok");
      CHECK(check(bus::sign(current_key, url, binary, t0), t0, {}, binary.substr(0, 4)) == "body_mismatch");
    }
  }

  TEST_CASE("verify reports the first failed check in the documented order") {
    auto claims = qstash_claims();
    claims["iss"] = "X";
    claims["sub"] = "http://other/";
    bus::verify_options opts;
    opts.expected_url = std::string(url);
    // Wrong issuer, expired, wrong subject and wrong body at once: the issuer is reported.
    CHECK(check(make_token(claims), t0 + std::chrono::hours{1}, opts, "other") == "wrong_issuer");
    claims["iss"] = "Upstash";
    CHECK(check(make_token(claims), t0 + std::chrono::hours{1}, opts, "other") == "expired");
    CHECK(check(make_token(claims), t0, opts, "other") == "wrong_subject");
  }

  TEST_CASE("a failed result throws signature_error from value()") {
    const auto r = bus::verify("x.y.z", keys, body, t0);
    REQUIRE_FALSE(r.has_value());
    try {
      (void)r.value();
      FAIL("value() did not throw");
    } catch (const bus::signature_error& e) {
      CHECK(e.reason() == verify_error::malformed);
      CHECK(std::string_view(e.what()).find("well-formed") != std::string_view::npos);
    }
  }

  TEST_CASE("every reason has a distinct name and a description") {
    const verify_error all[] = {
        verify_error::no_signing_key, verify_error::missing,       verify_error::too_large,
        verify_error::malformed,      verify_error::bad_algorithm, verify_error::bad_signature,
        verify_error::wrong_issuer,   verify_error::expired,       verify_error::not_yet_valid,
        verify_error::wrong_subject,  verify_error::body_mismatch};
    std::set<std::string_view> names;
    for (const auto e : all) {
      CHECK(bus::to_string(e) != "unknown");
      CHECK(bus::describe(e).size() > 10);
      names.insert(bus::to_string(e));
    }
    CHECK(names.size() == std::size(all));
  }
}
