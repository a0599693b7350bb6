#include "shopd/http/message.hpp"

#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

using shopd::http::field;
using shopd::http::http_error;
using shopd::http::status;

TEST_SUITE("http/message") {
  TEST_CASE("message: json_error: the one error shape") {
    SUBCASE("without a field") {
      const auto res = shopd::http::json_error(status::not_found, "not_found", "no such order");
      CHECK(res.result() == status::not_found);
      CHECK(res[field::content_type] == "application/json");
      CHECK(res.body() == R"({"error":"no such order","code":"not_found"})");
    }
    SUBCASE("with a field") {
      const auto res = shopd::http::json_error(static_cast<status>(489), "invalid_envelope",
                                               "quantity must be positive", "data.items[0].quantity");
      CHECK(res.result_int() == 489);
      CHECK(
          res.body() ==
          R"({"error":"quantity must be positive","code":"invalid_envelope","field":"data.items[0].quantity"})");
    }
    SUBCASE("text is JSON-escaped") {
      const auto res =
          shopd::http::json_error(status::bad_request, "bad_request", "a \"quote\"\nand \\ more");
      CHECK(res.body() == R"({"error":"a \"quote\"\nand \\ more","code":"bad_request"})");
      CHECK(boost::json::parse(res.body()).at("error").as_string() == "a \"quote\"\nand \\ more");
    }
  }

  TEST_CASE("message: json_response") {
    const auto from_value =
        shopd::http::json_response(status::created, boost::json::value{{"id", "ord_1"}, {"n", 2}});
    CHECK(from_value.result() == status::created);
    CHECK(from_value[field::content_type] == "application/json");
    CHECK(from_value.body() == R"({"id":"ord_1","n":2})");
    const auto from_text = shopd::http::json_response(status::accepted, R"({"checkoutId":"chk_1"})");
    CHECK(from_text.result() == status::accepted);
    CHECK(from_text.body() == R"({"checkoutId":"chk_1"})");
  }

  TEST_CASE("message: http_error") {
    http_error e(static_cast<status>(489), "invalid_envelope", "eventType is missing", "eventType");
    e.with_header("Upstash-NonRetryable-Error", "true").with_header("X-Extra", "1");
    CHECK(e.status_code() == static_cast<status>(489));
    CHECK(e.code() == "invalid_envelope");
    CHECK(e.field_name() == "eventType");
    CHECK(std::string(e.what()) == "eventType is missing");
    REQUIRE(e.headers().size() == 2);

    const auto res = e.to_response();
    CHECK(res.result_int() == 489);
    CHECK(res["Upstash-NonRetryable-Error"] == "true");
    CHECK(res["X-Extra"] == "1");
    CHECK(res[field::content_type] == "application/json");
    CHECK(res.body() == R"({"error":"eventType is missing","code":"invalid_envelope","field":"eventType"})");

    const http_error plain(status::conflict, "conflict", "already exists");
    CHECK(plain.to_response().body() == R"({"error":"already exists","code":"conflict"})");
  }

  TEST_CASE("message: default_code") {
    CHECK(shopd::http::default_code(status::bad_request) == "bad_request");
    CHECK(shopd::http::default_code(status::not_found) == "not_found");
    CHECK(shopd::http::default_code(status::method_not_allowed) == "method_not_allowed");
    CHECK(shopd::http::default_code(status::request_timeout) == "request_timeout");
    CHECK(shopd::http::default_code(status::payload_too_large) == "payload_too_large");
    CHECK(shopd::http::default_code(status::request_header_fields_too_large) ==
          "request_header_fields_too_large");
    CHECK(shopd::http::default_code(status::too_many_requests) == "too_many_requests");
    CHECK(shopd::http::default_code(status::internal_server_error) == "internal_error");
    CHECK(shopd::http::default_code(status::service_unavailable) == "service_unavailable");
    CHECK(shopd::http::default_code(static_cast<status>(489)) == "client_error");
    CHECK(shopd::http::default_code(static_cast<status>(599)) == "server_error");
    CHECK(shopd::http::default_code(status::ok) == "error");
  }
}
