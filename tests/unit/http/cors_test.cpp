#include "shopd/http/cors.hpp"

#include <doctest/doctest.h>

#include <stdexcept>

using shopd::http::cors_policy;
using shopd::http::field;
using shopd::http::request;
using shopd::http::response;
using shopd::http::status;
using shopd::http::verb;

namespace {

request preflight(std::string_view origin, std::string_view method) {
  request req{verb::options, "/api/checkout", 11};
  req.set(field::origin, origin);
  req.set(field::access_control_request_method, method);
  req.set(field::access_control_request_headers, "content-type");
  return req;
}

request actual(std::string_view origin) {
  request req{verb::post, "/api/checkout", 11};
  if (!origin.empty()) req.set(field::origin, origin);
  return req;
}

const std::vector<verb> checkout_methods{verb::post, verb::get};

}  // namespace

TEST_SUITE("http/cors") {
  TEST_CASE("cors: from_config") {
    SUBCASE("a comma-separated list, trimmed, empty items skipped, lower-cased") {
      const auto p =
          cors_policy::from_config(" https://Shop.Example , http://localhost:3000,, http://[::1]:8080 ",
                                   " Content-Type, X-Api ", false, 120);
      CHECK(p.allowed_origins ==
            std::vector<std::string>{"https://shop.example", "http://localhost:3000", "http://[::1]:8080"});
      CHECK(p.allowed_headers == "Content-Type, X-Api");
      CHECK_FALSE(p.allow_credentials);
      CHECK(p.max_age_s == 120);
      CHECK(p.enabled());
    }
    SUBCASE("empty: CORS disabled") {
      const auto p = cors_policy::from_config("", "Content-Type", false, 600);
      CHECK_FALSE(p.enabled());
      CHECK_FALSE(p.allows("https://shop.example"));
    }
    SUBCASE("wildcard") {
      const auto p = cors_policy::from_config("*", "Content-Type", false, 600);
      CHECK(p.allows("https://anything.example"));
      CHECK_THROWS_AS(cors_policy::from_config("*", "Content-Type", true, 600), std::invalid_argument);
      CHECK_THROWS_AS(cors_policy::from_config("https://a.example,*", "", true, 600), std::invalid_argument);
    }
    SUBCASE("origins that are not scheme://host[:port]") {
      for (const char* bad :
           {"shop.example", "https://", "https://shop.example/", "https://shop.example/path",
            "https://shop.example:", "https://shop.example:0", "https://shop.example:65536",
            "https://shop.example:80x", "https://sh op.example", "://shop.example", "1http://a",
            "http://[]:80", "http://[::1"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(cors_policy::from_config(bad, "", false, 600), std::invalid_argument);
      }
    }
    SUBCASE("negative max age") {
      CHECK_THROWS_AS(cors_policy::from_config("https://a.example", "", false, -1), std::invalid_argument);
    }
  }

  TEST_CASE("cors: allows: exact origins only") {
    const auto p = cors_policy::from_config("https://shop.example,http://localhost:3000", "", false, 600);
    CHECK(p.allows("https://shop.example"));
    CHECK(p.allows("http://localhost:3000"));
    CHECK_FALSE(p.allows("http://shop.example"));
    CHECK_FALSE(p.allows("https://shop.example:443"));
    CHECK_FALSE(p.allows("https://shop.example.evil.example"));
    CHECK_FALSE(p.allows("http://localhost:3001"));
    CHECK_FALSE(p.allows(""));
  }

  TEST_CASE("cors: is_preflight") {
    CHECK(shopd::http::is_preflight(preflight("https://shop.example", "POST")));
    request no_method{verb::options, "/x", 11};
    no_method.set(field::origin, "https://shop.example");
    CHECK_FALSE(shopd::http::is_preflight(no_method));
    request no_origin{verb::options, "/x", 11};
    no_origin.set(field::access_control_request_method, "POST");
    CHECK_FALSE(shopd::http::is_preflight(no_origin));
    auto not_options = preflight("https://shop.example", "POST");
    not_options.method(verb::post);
    CHECK_FALSE(shopd::http::is_preflight(not_options));
  }

  TEST_CASE("cors: preflight responses") {
    SUBCASE("204 with the allow headers for an allowed origin and method") {
      const auto p =
          cors_policy::from_config("https://shop.example", "Content-Type, Authorization", false, 600);
      const auto res =
          shopd::http::preflight_response(p, preflight("https://shop.example", "POST"), checkout_methods);
      CHECK(res.result() == status::no_content);
      CHECK(res[field::access_control_allow_origin] == "https://shop.example");
      CHECK(res[field::access_control_allow_methods] == "POST, GET");
      CHECK(res[field::access_control_allow_headers] == "Content-Type, Authorization");
      CHECK(res[field::access_control_max_age] == "600");
      CHECK(res[field::vary].find("Origin") != std::string_view::npos);
      CHECK(res.find(field::access_control_allow_credentials) == res.end());
      CHECK(res.body().empty());
    }
    SUBCASE("credentials") {
      const auto p = cors_policy::from_config("https://shop.example", "Content-Type", true, 60);
      const auto res =
          shopd::http::preflight_response(p, preflight("https://shop.example", "GET"), checkout_methods);
      CHECK(res.result() == status::no_content);
      CHECK(res[field::access_control_allow_credentials] == "true");
      CHECK(res[field::access_control_allow_origin] == "https://shop.example");
      CHECK(res[field::access_control_max_age] == "60");
    }
    SUBCASE("wildcard answers *") {
      const auto p = cors_policy::from_config("*", "Content-Type", false, 600);
      const auto res =
          shopd::http::preflight_response(p, preflight("https://any.example", "POST"), checkout_methods);
      CHECK(res.result() == status::no_content);
      CHECK(res[field::access_control_allow_origin] == "*");
    }
    SUBCASE("HEAD is allowed where GET is") {
      const auto p = cors_policy::from_config("https://shop.example", "", false, 600);
      const auto res =
          shopd::http::preflight_response(p, preflight("https://shop.example", "HEAD"), checkout_methods);
      CHECK(res.result() == status::no_content);
    }
    SUBCASE("403 in the error shape for a foreign origin or method") {
      const auto p = cors_policy::from_config("https://shop.example", "", false, 600);
      for (const auto& req :
           {preflight("https://evil.example", "POST"), preflight("https://shop.example", "DELETE"),
            preflight("https://shop.example", "BREW")}) {
        const auto res = shopd::http::preflight_response(p, req, checkout_methods);
        CHECK(res.result() == status::forbidden);
        CHECK(res[field::content_type] == "application/json");
        CHECK(res.body().find(R"("code":"cors_rejected")") != std::string::npos);
        CHECK(res.find(field::access_control_allow_origin) == res.end());
      }
    }
    SUBCASE("403 when CORS is disabled") {
      const auto res = shopd::http::preflight_response(
          cors_policy{}, preflight("https://shop.example", "POST"), checkout_methods);
      CHECK(res.result() == status::forbidden);
    }
  }

  TEST_CASE("cors: decorate") {
    const auto p = cors_policy::from_config("https://shop.example", "", false, 600);
    SUBCASE("an allowed origin gets Allow-Origin and Vary") {
      response res{status::ok, 11};
      shopd::http::decorate(p, actual("https://shop.example"), res);
      CHECK(res[field::access_control_allow_origin] == "https://shop.example");
      CHECK(res[field::vary] == "Origin");
      CHECK(res.find(field::access_control_allow_credentials) == res.end());
    }
    SUBCASE("an existing Vary is extended") {
      response res{status::ok, 11};
      res.set(field::vary, "Accept-Encoding");
      shopd::http::decorate(p, actual("https://shop.example"), res);
      CHECK(res[field::vary] == "Accept-Encoding, Origin");
    }
    SUBCASE("no headers for another origin, no Origin, or CORS disabled") {
      for (const auto& req : {actual("https://evil.example"), actual("")}) {
        response res{status::ok, 11};
        shopd::http::decorate(p, req, res);
        CHECK(res.find(field::access_control_allow_origin) == res.end());
        CHECK(res.find(field::vary) == res.end());
      }
      response res{status::ok, 11};
      shopd::http::decorate(cors_policy{}, actual("https://shop.example"), res);
      CHECK(res.find(field::access_control_allow_origin) == res.end());
    }
    SUBCASE("credentials") {
      const auto with_credentials = cors_policy::from_config("https://shop.example", "", true, 600);
      response res{status::ok, 11};
      shopd::http::decorate(with_credentials, actual("https://shop.example"), res);
      CHECK(res[field::access_control_allow_credentials] == "true");
      CHECK(res[field::access_control_allow_origin] == "https://shop.example");
    }
    SUBCASE("wildcard") {
      const auto any = cors_policy::from_config("*", "", false, 600);
      response res{status::ok, 11};
      shopd::http::decorate(any, actual("https://else.example"), res);
      CHECK(res[field::access_control_allow_origin] == "*");
      CHECK(res.find(field::vary) == res.end());
    }
  }
}
