#include "shopd/relay/responses.hpp"

#include <doctest/doctest.h>

#include <boost/json/serialize.hpp>

#include <string>
#include <vector>

using namespace shopd::relay;
namespace json = boost::json;

namespace {

message_spec sample_message() {
  message_spec m;
  m.destination = "http://127.0.0.1:3001/api/webhook";
  m.method = "PUT";
  m.headers = {{"Content-Type", "application/json"}, {"x-h", "1"}, {"X-H", "2"}};
  m.body = "{\"hello\":\"world\"}";
  m.max_retries = 3;
  m.retry_delay_expr = "1000 * (1 + retried)";
  m.timeout_ms = 30'000;
  m.callback = "http://127.0.0.1:3004/cb";
  m.failure_callback = "http://127.0.0.1:3004/failed";
  m.options.labels = {"orders", "urgent"};
  m.options.queue = "q1";
  m.caller_ip = "10.0.0.7";
  m.not_before_ms = 1'700'000'010'000;
  m.created_at_ms = 1'700'000'000'000;
  return m;
}

message_spec bare_message() {
  message_spec m;
  m.destination = "https://h/p";
  m.max_retries = 0;
  m.caller_ip = "::1";
  m.not_before_ms = 5;
  m.created_at_ms = 5;
  return m;
}

}  // namespace

TEST_SUITE("relay.responses") {
  TEST_CASE("relay.responses: publish and batch answers") {
    CHECK(json::serialize(publish_response("msg_1", "http://h/p")) ==
          R"({"messageId":"msg_1","url":"http://h/p"})");
    CHECK(json::serialize(publish_response("msg_1", "http://h/p", true)) ==
          R"({"messageId":"msg_1","url":"http://h/p","deduplicated":true})");
    std::vector<batch_outcome> outcomes{
        {.message_id = "msg_a", .url = "http://h/1"},
        {.error = "invalid destination url: endpoint has invalid scheme, add http:// or https://"},
        {.message_id = "msg_b", .url = "http://h/2", .deduplicated = true},
    };
    CHECK(json::serialize(batch_response(outcomes)) ==
          R"([{"messageId":"msg_a","url":"http://h/1"},)"
          R"({"error":"invalid destination url: endpoint has invalid scheme, add http:// or https://"},)"
          R"({"messageId":"msg_b","url":"http://h/2","deduplicated":true}])");
    CHECK(json::serialize(batch_response({})) == "[]");
  }

  TEST_CASE("relay.responses: GET /v2/messages/{id}") {
    SUBCASE("every field") {
      CHECK(
          json::serialize(message_json("msg_x", sample_message())) ==
          R"({"messageId":"msg_x","url":"http://127.0.0.1:3001/api/webhook","method":"PUT",)"
          R"("header":{"Content-Type":["application/json"],"X-H":["1","2"]},"body":"{\"hello\":\"world\"}",)"
          R"j("maxRetries":3,"retryDelayExpression":"1000 * (1 + retried)","notBefore":1700000010000,)j"
          R"("createdAt":1700000000000,"callback":"http://127.0.0.1:3004/cb",)"
          R"("failureCallback":"http://127.0.0.1:3004/failed","queueName":"q1","callerIP":"10.0.0.7",)"
          R"("label":"orders","labels":["orders","urgent"]})");
    }
    SUBCASE("optional fields left out, empty body left out") {
      CHECK(json::serialize(message_json("msg_y", bare_message())) ==
            R"({"messageId":"msg_y","url":"https://h/p","method":"POST","header":{},"maxRetries":0,)"
            R"("notBefore":5,"createdAt":5,"callerIP":"::1"})");
    }
    SUBCASE("a binary body goes out as bodyBase64") {
      auto m = bare_message();
      m.body = std::string("\xff\x00\x01", 3);
      auto o = message_json("msg_z", m);
      CHECK_FALSE(o.contains("body"));
      CHECK(o.at("bodyBase64") == "/wAB");
    }
  }

  TEST_CASE("relay.responses: DLQ shapes") {
    dlq_entry e{.dlq_id = "1725323658779-0",
                .message_id = "msg_x",
                .failed_at_ms = 1'725'323'658'779,
                .response_status = 500,
                .response_headers = {{"content-type", "text/plain"}, {"X-Trace", "t1"}},
                .response_body = "boom"};
    auto m = bare_message();
    SUBCASE("one message") {
      CHECK(json::serialize(dlq_message_json(e, m)) ==
            R"({"messageId":"msg_x","url":"https://h/p","method":"POST","header":{},"maxRetries":0,)"
            R"("notBefore":5,"createdAt":5,"callerIP":"::1","dlqId":"1725323658779-0","responseStatus":500,)"
            R"("responseHeader":{"Content-Type":["text/plain"],"X-Trace":["t1"]},"responseBody":"boom"})");
    }
    SUBCASE("binary and empty response bodies") {
      e.response_body = std::string("\xc3\x28", 2);
      auto o = dlq_message_json(e, m);
      CHECK_FALSE(o.contains("responseBody"));
      CHECK(o.at("responseBodyBase64") == "wyg=");
      e.response_body.clear();
      auto empty = dlq_message_json(e, m);
      CHECK_FALSE(empty.contains("responseBody"));
      CHECK_FALSE(empty.contains("responseBodyBase64"));
    }
    SUBCASE("list, with and without a cursor") {
      json::array messages;
      messages.emplace_back(dlq_message_json(e, m));
      auto page = dlq_list_response(messages, "1725323658779-0");
      CHECK(page.at("messages").as_array().size() == 1);
      CHECK(page.at("cursor") == "1725323658779-0");
      CHECK(json::serialize(dlq_list_response({}, std::nullopt)) == R"({"messages":[]})");
      CHECK(json::serialize(dlq_list_response({}, "")) == R"({"messages":[]})");
    }
    SUBCASE("retry, bulk retry, bulk delete, cancel") {
      CHECK(json::serialize(dlq_retry_response("msg_new")) == R"({"messageId":"msg_new"})");
      std::vector<std::string> ids{"msg_1", "msg_2"};
      CHECK(json::serialize(dlq_retry_bulk_response(ids, std::nullopt)) ==
            R"({"responses":[{"messageId":"msg_1"},{"messageId":"msg_2"}]})");
      CHECK(json::serialize(dlq_retry_bulk_response(ids, "c1")) ==
            R"({"responses":[{"messageId":"msg_1"},{"messageId":"msg_2"}],"cursor":"c1"})");
      CHECK(json::serialize(dlq_delete_response(2, std::nullopt)) == R"({"deleted":2})");
      CHECK(json::serialize(dlq_delete_response(100, "c2")) == R"({"deleted":100,"cursor":"c2"})");
      CHECK(json::serialize(cancel_response(1)) == R"({"cancelled":1})");
    }
  }

  TEST_CASE("relay.responses: callback and failure-callback bodies") {
    auto m = sample_message();
    attempt_response r{.status = 503, .headers = {{"retry-after", "5"}}, .body = "busy"};
    SUBCASE("callback") {
      CHECK(json::serialize(callback_body("msg_src", m, r, 2)) ==
            R"({"status":503,"header":{"Retry-After":["5"]},"body":"YnVzeQ==","retried":2,"maxRetries":3,)"
            R"("sourceMessageId":"msg_src","url":"http://127.0.0.1:3001/api/webhook","method":"PUT",)"
            R"("sourceHeader":{"Content-Type":["application/json"],"X-H":["1","2"]},)"
            R"("sourceBody":"eyJoZWxsbyI6IndvcmxkIn0=","notBefore":1700000010000,"createdAt":1700000000000,)"
            R"("callerIP":"10.0.0.7"})");
    }
    SUBCASE("failure callback adds dlqId") {
      auto o = failure_callback_body("msg_src", m, r, 3, "1725323658779-0");
      CHECK(o.at("dlqId") == "1725323658779-0");
      CHECK(o.at("retried") == 3);
      CHECK(o.at("status") == 503);
      CHECK(o.size() == callback_body("msg_src", m, r, 3).size() + 1);
    }
    SUBCASE("no response at all: status 0, empty body still present") {
      auto o = callback_body("msg_src", bare_message(), attempt_response{}, 0);
      CHECK(o.at("status") == 0);
      CHECK(o.at("body") == "");
      CHECK(o.at("header").as_object().empty());
      CHECK(o.at("sourceBody") == "");
    }
  }

  TEST_CASE("relay.responses: base64 (standard alphabet, padded): RFC 4648 vectors") {
    CHECK(base64_encode("") == "");
    CHECK(base64_encode("f") == "Zg==");
    CHECK(base64_encode("fo") == "Zm8=");
    CHECK(base64_encode("foo") == "Zm9v");
    CHECK(base64_encode("foob") == "Zm9vYg==");
    CHECK(base64_encode("fooba") == "Zm9vYmE=");
    CHECK(base64_encode("foobar") == "Zm9vYmFy");
    CHECK(base64_encode("\xfb\xff") == "+/8=");
    CHECK(base64_encode(std::string(100, 'a')).size() == 136);  // no line breaks
  }
}
