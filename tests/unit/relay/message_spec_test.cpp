#include "shopd/relay/message_spec.hpp"

#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <string>

using namespace shopd::relay;
namespace json = boost::json;

namespace {

message_spec source_with_callbacks() {
  message_spec m;
  m.destination = "http://127.0.0.1:3001/api/webhook";
  m.max_retries = 4;
  m.timeout_ms = 30'000;
  m.callback = "http://127.0.0.1:3004/cb";
  m.failure_callback = "http://127.0.0.1:3004/failed";
  m.options.callback = {.method = "PUT", .retries = 1, .forward_headers = {{"X-Cb", "1"}}};
  m.options.failure_callback = {.timeout_ms = 5'000, .retry_delay_expr = "100", .delay_ms = 2'000};
  m.options.labels = {"orders"};
  m.caller_ip = "10.0.0.7";
  return m;
}

}  // namespace

TEST_SUITE("relay.message_spec") {
  TEST_CASE("relay.message_spec: kinds as stored") {
    for (auto k : {message_kind::message, message_kind::callback, message_kind::failure_callback})
      CHECK(message_kind_from_string(to_string(k)) == k);
    CHECK(to_string(message_kind::failure_callback) == "failure_callback");
    CHECK_FALSE(message_kind_from_string("Message").has_value());
  }

  TEST_CASE("relay.message_spec: options JSON") {
    SUBCASE("empty options are an empty object") {
      CHECK(json::serialize(message_options{}.to_json()) == "{}");
      CHECK(message_options::from_json(json::object{}).value() == message_options{});
    }
    SUBCASE("exact shape and round trip") {
      message_options o;
      o.callback = {.method = "PATCH",
                    .timeout_ms = 5'000,
                    .retries = 1,
                    .retry_delay_expr = "500",
                    .delay_ms = 2'000,
                    .forward_headers = {{"X-Cb", "yes"}, {"X-Cb", "again"}}};
      o.failure_callback = {.retries = 0};
      o.labels = {"a", "b"};
      o.queue = "q1";
      o.source_message_id = "msg_src";
      auto j = o.to_json();
      CHECK(json::serialize(j) ==
            R"({"callback":{"method":"PATCH","timeoutMs":5000,"retries":1,"retryDelay":"500","delayMs":2000,)"
            R"("headers":{"X-Cb":["yes","again"]}},"failureCallback":{"retries":0},"labels":["a","b"],)"
            R"("queue":"q1","sourceMessageId":"msg_src"})");
      CHECK(message_options::from_json(json::parse(json::serialize(j))).value() == o);
    }
    SUBCASE("unknown keys are ignored, wrong types are not") {
      CHECK(message_options::from_json(json::parse(R"({"future":1,"labels":null})")).value() ==
            message_options{});
      for (std::string_view bad : {R"([])", R"({"labels":"a"})", R"({"labels":[1]})", R"({"queue":1})",
                                   R"({"callback":[]})", R"({"callback":{"retries":"1"}})",
                                   R"({"callback":{"retries":1.5}})", R"({"failureCallback":{"method":1}})",
                                   R"({"callback":{"headers":{"X":[1]}}})", R"({"sourceMessageId":false})"}) {
        INFO("json: ", std::string(bad));
        auto r = message_options::from_json(json::parse(bad));
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == errc::invalid_stored_value);
      }
    }
  }

  TEST_CASE("relay.message_spec: callback messages") {
    const message_limits limits{.default_timeout_ms = 60'000};
    const auto source = source_with_callbacks();
    SUBCASE("callback: the config's method, retries and forwarded headers") {
      auto cb =
          make_callback_spec(source, "msg_src", message_kind::callback, R"({"status":200})", 1'000, limits);
      REQUIRE(cb.has_value());
      CHECK(cb->kind == message_kind::callback);
      CHECK(cb->destination == "http://127.0.0.1:3004/cb");
      CHECK(cb->method == "PUT");
      CHECK(cb->headers == header_list{{"Content-Type", "application/json"}, {"X-Cb", "1"}});
      CHECK(cb->body == R"({"status":200})");
      CHECK(cb->max_retries == 1);
      CHECK_FALSE(cb->retry_delay_expr.has_value());
      CHECK(cb->timeout_ms == 60'000);
      CHECK_FALSE(cb->callback.has_value());
      CHECK_FALSE(cb->failure_callback.has_value());
      CHECK_FALSE(cb->dedup_id.has_value());
      CHECK(cb->options.source_message_id == "msg_src");
      CHECK(cb->options.labels == std::vector<std::string>{"orders"});
      CHECK(cb->options.callback.empty());
      CHECK(cb->caller_ip == "10.0.0.7");
      CHECK(cb->not_before_ms == 1'000);
      CHECK(cb->created_at_ms == 1'000);
    }
    SUBCASE(
        "failure callback: defaults to POST and the source's retries; delay and timeout from its config") {
      auto f = make_callback_spec(source, "msg_src", message_kind::failure_callback, "{}", 1'000, limits);
      REQUIRE(f.has_value());
      CHECK(f->kind == message_kind::failure_callback);
      CHECK(f->destination == "http://127.0.0.1:3004/failed");
      CHECK(f->method == "POST");
      CHECK(f->headers == header_list{{"Content-Type", "application/json"}});
      CHECK(f->max_retries == 4);
      CHECK(f->retry_delay_expr == "100");
      CHECK(f->timeout_ms == 5'000);
      CHECK(f->not_before_ms == 3'000);
    }
    SUBCASE("nothing to call") {
      message_spec plain;
      CHECK_FALSE(make_callback_spec(plain, "m", message_kind::callback, "{}", 0, limits).has_value());
      CHECK_FALSE(
          make_callback_spec(plain, "m", message_kind::failure_callback, "{}", 0, limits).has_value());
      CHECK_FALSE(make_callback_spec(source, "m", message_kind::message, "{}", 0, limits).has_value());
    }
  }
}
