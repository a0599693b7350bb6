#include "shopd/http/auth.hpp"

#include <doctest/doctest.h>

using shopd::http::bearer_token;
using shopd::http::field;
using shopd::http::http_error;
using shopd::http::request;
using shopd::http::request_context;
using shopd::http::require_bearer;
using shopd::http::status;
using shopd::http::token_equals;
using shopd::http::verb;

namespace {

// The status require_bearer answers for an Authorization header (nullptr: none), 200 when it passes.
unsigned check(const char* authorization, std::string_view expected = "s3cret") {
  request req{verb::get, "/api/orders", 11};
  if (authorization != nullptr) req.set(field::authorization, authorization);
  const request_context ctx{req, "/api/orders", {}, {}, {}};
  try {
    require_bearer(ctx, expected);
    return 200;
  } catch (const http_error& e) {
    return static_cast<unsigned>(e.status_code());
  }
}

}  // namespace

TEST_SUITE("http.auth") {
  TEST_CASE("bearer_token reads the token of a Bearer credential") {
    CHECK(bearer_token("Bearer abc") == "abc");
    SUBCASE("the scheme name is case-insensitive") {
      CHECK(bearer_token("bearer abc") == "abc");
      CHECK(bearer_token("BEARER abc") == "abc");
      CHECK(bearer_token("bEaReR abc") == "abc");
    }
    SUBCASE("one or more spaces before the token, none of them part of it") {
      CHECK(bearer_token("Bearer   abc") == "abc");
      CHECK(bearer_token("Bearer abc  ") == "abc");
    }
    SUBCASE("anything else is no bearer credential") {
      CHECK_FALSE(bearer_token(""));
      CHECK_FALSE(bearer_token("Bearer"));
      CHECK_FALSE(bearer_token("Bearer "));
      CHECK_FALSE(bearer_token("Bearer    "));
      CHECK_FALSE(bearer_token("Bearerabc"));
      CHECK_FALSE(bearer_token("Basic YWxhZGRpbjpvcGVuc2VzYW1l"));
      CHECK_FALSE(bearer_token("Token abc"));
    }
  }

  TEST_CASE("token_equals compares whole tokens") {
    CHECK(token_equals("abc", "abc"));
    CHECK_FALSE(token_equals("abd", "abc"));
    CHECK_FALSE(token_equals("ab", "abc"));
    CHECK_FALSE(token_equals("abcd", "abc"));
    CHECK_FALSE(token_equals("", "abc"));
  }

  TEST_CASE("require_bearer") {
    CHECK(check("Bearer s3cret") == 200);
    CHECK(check("bearer s3cret") == 200);
    CHECK(check("Bearer s3cre") == 401);
    CHECK(check("Bearer s3cretX") == 401);
    CHECK(check("Basic s3cret") == 401);
    CHECK(check(nullptr) == 401);
    SUBCASE("no token configured refuses everything") {
      CHECK(check("Bearer ", "") == 503);
    }
  }
}
