#include "shopd/http/router.hpp"

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

using shopd::http::execution;
using shopd::http::percent_decode;
using shopd::http::request;
using shopd::http::request_context;
using shopd::http::response;
using shopd::http::router;
using shopd::http::verb;

namespace {

shopd::http::handler answer(std::string body) {
  return [body = std::move(body)](request_context&) {
    response res{shopd::http::status::ok, 11};
    res.body() = body;
    return res;
  };
}

/// The pattern of the route `lookup` found; fails the test when it found none.
std::string found_pattern(const router::lookup_result& result) {
  const auto* f = std::get_if<router::found>(&result);
  REQUIRE(f != nullptr);
  return f->r->pattern;
}

}  // namespace

TEST_SUITE("http/router") {
  TEST_CASE("router: dispatch") {
    router r;
    r.add(verb::get, "/", answer("root"));
    r.add(verb::get, "/api/orders", answer("list"), execution::blocking);
    r.add(verb::post, "/api/orders", answer("create"), execution::io);
    r.add(verb::get, "/api/orders/{id}", answer("one"));
    r.add(verb::post, "/api/stock/{sku}/adjust", answer("adjust"));

    SUBCASE("literal routes") {
      CHECK(found_pattern(r.lookup(verb::get, "/")) == "/");
      CHECK(found_pattern(r.lookup(verb::get, "/api/orders")) == "/api/orders");
      const auto post = r.lookup(verb::post, "/api/orders");
      CHECK(found_pattern(post) == "/api/orders");
      CHECK(std::get<router::found>(post).r->exec == execution::io);
      CHECK(std::get<router::found>(post).params.empty());
    }
    SUBCASE("the handler found is the one registered") {
      const auto result = r.lookup(verb::post, "/api/orders");
      request req{verb::post, "/api/orders", 11};
      request_context ctx{req, "/api/orders", {}, {}, {}};
      CHECK(std::get<router::found>(result).r->fn(ctx).body() == "create");
    }
    SUBCASE("captures are percent-decoded") {
      const auto one = r.lookup(verb::get, "/api/orders/ord%201%2Fb+c");
      CHECK(found_pattern(one) == "/api/orders/{id}");
      const auto& params = std::get<router::found>(one).params;
      REQUIRE(params.size() == 1);
      CHECK(params[0].first == "id");
      CHECK(params[0].second == "ord 1/b+c");  // '+' is only a space in query strings
      const auto adjust = r.lookup(verb::post, "/api/stock/SKU-1/adjust");
      CHECK(std::get<router::found>(adjust).params ==
            std::vector<std::pair<std::string, std::string>>{{"sku", "SKU-1"}});
    }
    SUBCASE("malformed escapes stay as they are") {
      const auto one = r.lookup(verb::get, "/api/orders/100%25%zz%4");
      CHECK(std::get<router::found>(one).params[0].second == "100%%zz%4");
    }
    SUBCASE("404: unknown paths, other lengths, trailing slash, empty segments") {
      CHECK(std::holds_alternative<router::not_found>(r.lookup(verb::get, "/nope")));
      CHECK(std::holds_alternative<router::not_found>(r.lookup(verb::get, "/api/orders/1/extra")));
      CHECK(std::holds_alternative<router::not_found>(r.lookup(verb::get, "/api/orders/")));
      CHECK(std::holds_alternative<router::not_found>(r.lookup(verb::get, "/api//orders")));
      CHECK(std::holds_alternative<router::not_found>(r.lookup(verb::get, "api/orders")));
      CHECK(std::holds_alternative<router::not_found>(r.lookup(verb::get, "")));
      CHECK(std::holds_alternative<router::not_found>(r.lookup(verb::get, "*")));
    }
    SUBCASE("405 lists the path's methods in registration order") {
      const auto result = r.lookup(verb::delete_, "/api/orders");
      const auto* wrong = std::get_if<router::method_not_allowed>(&result);
      REQUIRE(wrong != nullptr);
      CHECK(wrong->allowed == std::vector<verb>{verb::get, verb::post});
      CHECK(r.methods_for("/api/orders") == std::vector<verb>{verb::get, verb::post});
      CHECK(r.methods_for("/api/orders/7") == std::vector<verb>{verb::get});
      CHECK(r.methods_for("/unknown").empty());
    }
  }

  TEST_CASE("router: literal segments win over captures") {
    router r;
    SUBCASE("whatever the registration order") {
      r.add(verb::get, "/api/products/{sku}", answer("capture"));
      r.add(verb::get, "/api/products/featured", answer("literal"));
      CHECK(found_pattern(r.lookup(verb::get, "/api/products/featured")) == "/api/products/featured");
      CHECK(found_pattern(r.lookup(verb::get, "/api/products/abc")) == "/api/products/{sku}");
    }
    SUBCASE("at the first position where they differ") {
      r.add(verb::get, "/{a}/x", answer("1"));
      r.add(verb::get, "/y/{b}", answer("2"));
      CHECK(found_pattern(r.lookup(verb::get, "/y/x")) == "/y/{b}");
      CHECK(found_pattern(r.lookup(verb::get, "/z/x")) == "/{a}/x");
    }
    SUBCASE("only among routes of the requested method") {
      r.add(verb::get, "/a/{id}", answer("get"));
      r.add(verb::post, "/a/new", answer("post"));
      const auto get = r.lookup(verb::get, "/a/new");
      CHECK(found_pattern(get) == "/a/{id}");
      CHECK(std::get<router::found>(get).params[0].second == "new");
      CHECK(found_pattern(r.lookup(verb::post, "/a/new")) == "/a/new");
      const auto put = r.lookup(verb::put, "/a/new");
      REQUIRE(std::holds_alternative<router::method_not_allowed>(put));
      CHECK(std::get<router::method_not_allowed>(put).allowed == std::vector<verb>{verb::get, verb::post});
    }
  }

  TEST_CASE("router: query parameters") {
    request req{verb::get, "/x", 11};
    request_context ctx{req, "/x", "a=1&b=x%20y&c=p+q&flag&a=2&k%65y=v&empty=&&", {}, {}};
    CHECK(ctx.query_param("a") == "1");  // the first one
    CHECK(ctx.query_param("b") == "x y");
    CHECK(ctx.query_param("c") == "p q");
    CHECK(ctx.query_param("flag") == "");
    CHECK(ctx.query_param("key") == "v");
    CHECK(ctx.query_param("empty") == "");
    CHECK_FALSE(ctx.query_param("missing").has_value());
    request_context none{req, "/x", "", {}, {}};
    CHECK_FALSE(none.query_param("a").has_value());
  }

  TEST_CASE("percent_decode is lenient and '+' is a space only in forms") {
    CHECK(percent_decode("a%2Fb%2fc", false) == "a/b/c");
    CHECK(percent_decode("p+q", false) == "p+q");
    CHECK(percent_decode("p+q", true) == "p q");
    CHECK(percent_decode("%2B", true) == "+");
    // A '%' without two hex digits after it stays as it is.
    CHECK(percent_decode("100%", false) == "100%");
    CHECK(percent_decode("%4", false) == "%4");
    CHECK(percent_decode("%zz%41", false) == "%zzA");
    CHECK(percent_decode("%00", false) == std::string(1, '\0'));
    CHECK(percent_decode("", true).empty());
  }

  TEST_CASE("router: captures by name") {
    request req{verb::get, "/x", 11};
    request_context ctx{req, "/x", "", {{"id", "7"}, {"sku", "A"}}, {}};
    CHECK(ctx.param("id") == "7");
    CHECK(ctx.param("sku") == "A");
    CHECK(ctx.param("nope").empty());
  }

  TEST_CASE("router: malformed patterns are refused") {
    router r;
    for (const char* bad : {"", "no/slash", "/a//b", "/a/", "/a/{", "/a/{}", "/a/{id}x", "/a/x{id}",
                            "/a/{id}/{id}", "/a/{bad-name}", "/a b", "/a?x=1", "/a#frag", "/a/}"}) {
      CAPTURE(bad);
      CHECK_THROWS_AS(r.add(verb::get, bad, answer("x")), std::invalid_argument);
    }
    CHECK_THROWS_AS(r.add(verb::get, "/ok", shopd::http::handler{}), std::invalid_argument);
    CHECK(r.routes().empty());
  }

  TEST_CASE("router: duplicates are refused") {
    router r;
    r.add(verb::get, "/a/{id}", answer("x"));
    CHECK_THROWS_AS(r.add(verb::get, "/a/{id}", answer("y")), std::invalid_argument);
    CHECK_THROWS_AS(r.add(verb::get, "/a/{other}", answer("y")), std::invalid_argument);  // same paths match
    CHECK_NOTHROW(r.add(verb::post, "/a/{id}", answer("y")));
    CHECK_NOTHROW(r.add(verb::get, "/a/literal", answer("y")));
    CHECK(r.routes().size() == 3);
  }

  TEST_CASE("router: a route's own body limit") {
    router r;
    r.add(verb::post, "/small", answer("s"));
    r.add(verb::post, "/big/{id}", answer("b"));
    r.add(verb::get, "/big/{id}", answer("g"));
    CHECK(r.largest_body_limit() == 0);
    r.limit_body(verb::post, "/big/{id}", 5000);
    r.limit_body(verb::post, "/small", 10);
    CHECK(r.largest_body_limit() == 5000);
    const auto limit_of = [&](verb m, std::string_view path) {
      return std::get<router::found>(r.lookup(m, path)).r->body_limit;
    };
    CHECK(limit_of(verb::post, "/big/7") == 5000);
    CHECK(limit_of(verb::get, "/big/7") == 0);  // the server's
    CHECK(limit_of(verb::post, "/small") == 10);
    CHECK_THROWS_AS(r.limit_body(verb::put, "/big/{id}", 100), std::invalid_argument);
    CHECK_THROWS_AS(r.limit_body(verb::post, "/big/7", 100), std::invalid_argument);  // a pattern, not a path
    CHECK_THROWS_AS(r.limit_body(verb::post, "/small", 0), std::invalid_argument);
  }
}

TEST_SUITE("http/router") {
  TEST_CASE("router: rest captures") {
    router r;
    r.add(verb::post, "/v2/publish/{destination...}", answer("publish"));
    r.add(verb::post, "/v2/enqueue/{queue}/{destination...}", answer("enqueue"));
    r.add(verb::post, "/v2/publish/special", answer("literal"));
    r.add(verb::get, "/v2/publish/{one}", answer("one"));

    SUBCASE("the rest of the path, verbatim, empty segments and escapes included") {
      const auto found = r.lookup(verb::post, "/v2/publish/http://127.0.0.1:3001/api/webhook");
      CHECK(found_pattern(found) == "/v2/publish/{destination...}");
      CHECK(std::get<router::found>(found).params ==
            std::vector<std::pair<std::string, std::string>>{
                {"destination", "http://127.0.0.1:3001/api/webhook"}});
      const auto encoded = r.lookup(verb::post, "/v2/publish/http%3A%2F%2Fh%2Fp");
      CHECK(std::get<router::found>(encoded).params[0].second == "http%3A%2F%2Fh%2Fp");
      const auto trailing = r.lookup(verb::post, "/v2/publish/a/");
      CHECK(std::get<router::found>(trailing).params[0].second == "a/");
    }
    SUBCASE("captures before the rest are decoded as usual") {
      const auto found = r.lookup(verb::post, "/v2/enqueue/q%201/https://h/x");
      CHECK(std::get<router::found>(found).params == std::vector<std::pair<std::string, std::string>>{
                                                         {"queue", "q 1"}, {"destination", "https://h/x"}});
    }
    SUBCASE("the rest must not be empty") {
      CHECK(std::holds_alternative<router::not_found>(r.lookup(verb::post, "/v2/publish")));
      CHECK(std::holds_alternative<router::not_found>(r.lookup(verb::post, "/v2/publish/")));
      CHECK(std::holds_alternative<router::not_found>(r.lookup(verb::post, "/v2/enqueue/q/")));
    }
    SUBCASE("a literal and a one-segment capture are more specific than a rest capture") {
      CHECK(found_pattern(r.lookup(verb::post, "/v2/publish/special")) == "/v2/publish/special");
      CHECK(found_pattern(r.lookup(verb::post, "/v2/publish/special/more")) ==
            "/v2/publish/{destination...}");
      CHECK(found_pattern(r.lookup(verb::get, "/v2/publish/x")) == "/v2/publish/{one}");
      const auto wrong = r.lookup(verb::get, "/v2/publish/x/y");
      REQUIRE(std::holds_alternative<router::method_not_allowed>(wrong));
      CHECK(std::get<router::method_not_allowed>(wrong).allowed == std::vector<verb>{verb::post});
    }
    SUBCASE("pattern checks") {
      CHECK_THROWS_AS(r.add(verb::post, "/v2/publish/{d...}", answer("dup")), std::invalid_argument);
      CHECK_THROWS_AS(r.add(verb::post, "/x/{rest...}/tail", answer("x")), std::invalid_argument);
      CHECK_THROWS_AS(r.add(verb::post, "/x/{...}", answer("x")), std::invalid_argument);
      CHECK_THROWS_AS(r.add(verb::post, "/x/{a.b...}", answer("x")), std::invalid_argument);
      CHECK_NOTHROW(r.add(verb::post, "/{all...}", answer("all")));
      CHECK(found_pattern(r.lookup(verb::post, "/anything/at//all")) == "/{all...}");
    }
  }
}
