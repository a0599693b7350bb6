#include "shopd/roles/analytics/failure_callback.hpp"

#include "shopd/bus/crypto.hpp"
#include "shopd/config/config.hpp"
#include "shopd/relay/delivery.hpp"
#include "shopd/relay/responses.hpp"

#include <doctest/doctest.h>
#include <boost/json.hpp>

#include <string>

namespace json = boost::json;
namespace analytics = shopd::roles::analytics;
namespace bus = shopd::bus;
using bus::crypto::base64_encode;

namespace {

const std::string original_envelope =
    R"({"eventId":"01JD5M5ZQ8W9X7Y6V5T4S3R2Q1","eventType":"notification.email","version":1,)"
    R"("timestamp":"2026-11-23T10:00:00.000Z","source":"orders","correlationId":"chk_123",)"
    R"("causationId":"01JD5M5ZQ8W9X7Y6V5T4S3R2Q0","data":{"to":"ada@example.com","template":"order_confirmation"}})";

// A failure callback as reference §4 describes it (the shape the relay and QStash post).
json::object reference_callback() {
  return json::object{
      {"status", 500},
      {"header", json::object{{"Content-Type", json::array{"application/json"}}}},
      {"body", base64_encode(R"({"error":"smtp down"})")},
      {"retried", 3},
      {"maxRetries", 3},
      {"dlqId", "1725323658779-0"},
      {"sourceMessageId", "msg_26hZCxZCuWyyTWPmSVBrNC1RADwpgWxPcak2rQD51EMjFMuzcW7qYXpPiDyw"},
      {"topicName", ""},
      {"endpointName", ""},
      {"url", "http://127.0.0.1:3002/api/webhook"},
      {"method", "POST"},
      {"sourceHeader", json::object{{"Content-Type", json::array{"application/json"}}}},
      {"sourceBody", base64_encode(original_envelope)},
      {"notBefore", 1725323658779},
      {"createdAt", "1725323658779"},  // reference §4: strings in the docs, numbers in the SDK
      {"callerIP", "127.0.0.1"},
  };
}

bus::result<analytics::failure_report> parse(const json::object& o) {
  return analytics::parse_failure_callback(json::serialize(o));
}

std::string field_of(const bus::result<analytics::failure_report>& r) {
  REQUIRE_FALSE(r.has_value());
  return r.error().field;
}

}  // namespace

TEST_SUITE("roles/analytics/failure_callback") {
  TEST_CASE("analytics.failure_callback: a reference failure callback becomes the dead letter it reports") {
    const auto r = parse(reference_callback());
    REQUIRE(r.has_value());
    const bus::dead_letter& l = r->letter;
    CHECK(l.source_message_id == "msg_26hZCxZCuWyyTWPmSVBrNC1RADwpgWxPcak2rQD51EMjFMuzcW7qYXpPiDyw");
    CHECK(l.destination == "http://127.0.0.1:3002/api/webhook");
    CHECK(l.last_status == 500);
    CHECK(l.last_response == R"({"error":"smtp down"})");
    CHECK(l.attempts == 4);
    CHECK(l.body == original_envelope);
    CHECK(l.dlq_id == "1725323658779-0");
    CHECK(r->event_id == "dlq_1725323658779-0");
    CHECK(r->correlation_id == "chk_123");
    CHECK(r->causation_id == "01JD5M5ZQ8W9X7Y6V5T4S3R2Q1");
    // What the conversion produces, the payload's own rules accept.
    const auto again = bus::dead_letter::from_json(bus::to_json(l));
    REQUIRE(again.has_value());
    CHECK(*again == l);
  }

  TEST_CASE("analytics.failure_callback: a re-posted callback has the same event id") {
    CHECK(parse(reference_callback())->event_id == parse(reference_callback())->event_id);

    SUBCASE("without dlqId it comes from the source message id") {
      auto cb = reference_callback();
      cb.erase("dlqId");
      const auto r = parse(cb);
      REQUIRE(r.has_value());
      CHECK_FALSE(r->letter.dlq_id.has_value());
      CHECK(r->event_id == "dlqmsg_msg_26hZCxZCuWyyTWPmSVBrNC1RADwpgWxPcak2rQD51EMjFMuzcW7qYXpPiDyw");
    }
    SUBCASE("null is absence") {
      auto cb = reference_callback();
      cb["dlqId"] = nullptr;
      CHECK(parse(cb)->event_id.starts_with("dlqmsg_"));
    }
    SUBCASE("ids too long for an event id are hashed, still deterministically and per namespace") {
      auto cb = reference_callback();
      cb["dlqId"] = std::string(255, 'd');
      const auto a = parse(cb);
      REQUIRE(a.has_value());
      CHECK(a->event_id.starts_with("dlq_h_"));
      CHECK(a->event_id.size() == 6 + 43);
      CHECK(bus::is_valid_id(a->event_id));
      CHECK(parse(cb)->event_id == a->event_id);
      CHECK(a->letter.dlq_id == std::string(255, 'd'));

      cb["dlqId"] = std::string(255, 'e');
      CHECK(parse(cb)->event_id != a->event_id);

      cb.erase("dlqId");
      cb["sourceMessageId"] = std::string(255, 'd');
      const auto b = parse(cb);
      REQUIRE(b.has_value());
      CHECK(b->event_id.starts_with("dlq_h_"));
      CHECK(b->event_id != a->event_id);  // "dlqmsg_ddd..." and "dlq_ddd..." hash apart
    }
    SUBCASE("an id that just fits is kept as it is") {
      auto cb = reference_callback();
      cb["dlqId"] = std::string(252, 'x');
      CHECK(parse(cb)->event_id == "dlq_" + std::string(252, 'x'));
      cb["dlqId"] = std::string(253, 'x');
      CHECK(parse(cb)->event_id.starts_with("dlq_h_"));
    }
  }

  TEST_CASE("analytics.failure_callback: correlation comes from the original envelope when it parses") {
    auto cb = reference_callback();
    SUBCASE("a body that is not an envelope is uncorrelated") {
      cb["sourceBody"] = base64_encode("hello, plain text");
      const auto r = parse(cb);
      REQUIRE(r.has_value());
      CHECK(r->correlation_id == "uncorrelated");
      CHECK_FALSE(r->causation_id.has_value());
      CHECK(r->letter.body == "hello, plain text");
    }
    SUBCASE("an invalid envelope (no correlationId) is uncorrelated") {
      cb["sourceBody"] = base64_encode(R"({"eventId":"e1","eventType":"order.created","data":{}})");
      CHECK(parse(cb)->correlation_id == "uncorrelated");
    }
    SUBCASE("no sourceBody: an empty body") {
      cb.erase("sourceBody");
      const auto r = parse(cb);
      REQUIRE(r.has_value());
      CHECK(r->letter.body.empty());
      CHECK(r->correlation_id == "uncorrelated");
    }
    SUBCASE("an envelope longer than what is stored still names its chain") {
      auto big = json::parse(original_envelope).as_object();
      big["data"].as_object()["variables"] = json::object{{"pad", std::string(60'000, 'p')}};
      big["data"].as_object()["more"] = std::string(10'000, 'q');
      const auto text = json::serialize(big);
      REQUIRE(text.size() > bus::max_text_bytes);
      cb["sourceBody"] = base64_encode(text);
      const auto r = parse(cb);
      REQUIRE(r.has_value());
      CHECK(r->correlation_id == "chk_123");
      CHECK(r->letter.body.size() == bus::max_text_bytes);
      CHECK(text.starts_with(r->letter.body));
    }
  }

  TEST_CASE("analytics.failure_callback: status, response and attempts") {
    auto cb = reference_callback();
    SUBCASE("status 0 is the relay's 'no HTTP answer'") {
      cb["status"] = 0;
      cb["body"] = "";
      const auto r = parse(cb);
      REQUIRE(r.has_value());
      CHECK_FALSE(r->letter.last_status.has_value());
      CHECK(r->letter.last_response == "");
    }
    SUBCASE("489, the non-retryable answer") {
      cb["status"] = 489;
      CHECK(parse(cb)->letter.last_status == 489);
    }
    SUBCASE("out-of-range statuses are not HTTP statuses") {
      cb["status"] = 600;
      CHECK_FALSE(parse(cb)->letter.last_status.has_value());
      cb["status"] = -1;
      CHECK_FALSE(parse(cb)->letter.last_status.has_value());
      cb["status"] = 18446744073709551615ULL;
      CHECK_FALSE(parse(cb)->letter.last_status.has_value());
    }
    SUBCASE("no response body: no last response") {
      cb.erase("body");
      CHECK_FALSE(parse(cb)->letter.last_response.has_value());
    }
    SUBCASE("retried absent: one attempt") {
      cb.erase("retried");
      CHECK(parse(cb)->letter.attempts == 1);
    }
    SUBCASE("retried 0: one attempt (a 489 on the first try)") {
      cb["retried"] = 0;
      CHECK(parse(cb)->letter.attempts == 1);
    }
    SUBCASE("absurd retry counts are capped at the payload's limit") {
      cb["retried"] = 5'000'000'000LL;
      CHECK(parse(cb)->letter.attempts == 1'000'000);
      cb["retried"] = 18446744073709551615ULL;
      CHECK(parse(cb)->letter.attempts == 1'000'000);
    }
  }

  TEST_CASE("analytics.failure_callback: decoded bytes are stored as bounded, valid UTF-8 text") {
    auto cb = reference_callback();
    SUBCASE("a response longer than 64 KiB is cut to 64 KiB") {
      cb["body"] = base64_encode(std::string(70'000, 'r'));
      CHECK(parse(cb)->letter.last_response == std::string(bus::max_text_bytes, 'r'));
    }
    SUBCASE("binary bytes and NUL become U+FFFD") {
      cb["sourceBody"] = base64_encode(std::string("a\0b\xff", 4));
      CHECK(parse(cb)->letter.body ==
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD");
    }
  }

  TEST_CASE("analytics.failure_callback: a body that is not a failure callback names the field") {
    auto cb = reference_callback();
    SUBCASE("not JSON") {
      CHECK(field_of(analytics::parse_failure_callback("not json")).empty());
    }
    SUBCASE("not an object") {
      CHECK(field_of(analytics::parse_failure_callback("[1,2]")).empty());
    }
    SUBCASE("a duplicate key") {
      CHECK_FALSE(analytics::parse_failure_callback(R"({"url":"http://a/","url":"http://b/"})").has_value());
    }
    SUBCASE("sourceMessageId missing") {
      cb.erase("sourceMessageId");
      CHECK(field_of(parse(cb)) == "sourceMessageId");
    }
    SUBCASE("sourceMessageId with a space") {
      cb["sourceMessageId"] = "msg 1";
      CHECK(field_of(parse(cb)) == "sourceMessageId");
    }
    SUBCASE("sourceMessageId not a string") {
      cb["sourceMessageId"] = 12;
      CHECK(field_of(parse(cb)) == "sourceMessageId");
    }
    SUBCASE("url missing") {
      cb.erase("url");
      CHECK(field_of(parse(cb)) == "url");
    }
    SUBCASE("url on two lines") {
      cb["url"] = "http://a/\r\nX-Injected: 1";
      CHECK(field_of(parse(cb)) == "url");
    }
    SUBCASE("url too long") {
      cb["url"] = "http://a/" + std::string(2048, 'p');
      CHECK(field_of(parse(cb)) == "url");
    }
    SUBCASE("url blank") {
      cb["url"] = "   ";
      CHECK(field_of(parse(cb)) == "url");  // caught by the payload's own rule
    }
    SUBCASE("status as a string") {
      cb["status"] = "500";
      CHECK(field_of(parse(cb)) == "status");
    }
    SUBCASE("status as a fraction") {
      cb["status"] = 500.5;
      CHECK(field_of(parse(cb)) == "status");
    }
    SUBCASE("body not base64") {
      cb["body"] = "not base64!";
      CHECK(field_of(parse(cb)) == "body");
    }
    SUBCASE("body not a string") {
      cb["body"] = json::object{};
      CHECK(field_of(parse(cb)) == "body");
    }
    SUBCASE("sourceBody not base64") {
      cb["sourceBody"] = "abcde";
      CHECK(field_of(parse(cb)) == "sourceBody");
    }
    SUBCASE("retried negative") {
      cb["retried"] = -1;
      CHECK(field_of(parse(cb)) == "retried");
    }
    SUBCASE("dlqId not an id") {
      cb["dlqId"] = 17;
      CHECK(field_of(parse(cb)) == "dlqId");
      cb["dlqId"] = "";
      CHECK(field_of(parse(cb)) == "dlqId");
    }
  }

  TEST_CASE("analytics.failure_callback: to_envelope makes an analytics.dlq event any consumer accepts") {
    const auto r = parse(reference_callback());
    REQUIRE(r.has_value());
    const auto at = bus::parse_timestamp("2026-11-23T10:05:00.123Z");
    REQUIRE(at.has_value());
    const bus::envelope ev = analytics::to_envelope(*r, *at);
    CHECK(ev.event_id == "dlq_1725323658779-0");
    CHECK(ev.event_type == "analytics.dlq");
    CHECK(ev.source == "relay");
    CHECK(ev.correlation_id == "chk_123");
    CHECK(ev.causation_id == "01JD5M5ZQ8W9X7Y6V5T4S3R2Q1");
    CHECK(ev.time == *at);

    const auto reparsed = bus::parse_envelope(bus::serialize(ev));
    REQUIRE(reparsed.has_value());
    CHECK(*reparsed == ev);
    const auto payload = bus::payload_of<bus::dead_letter>(*reparsed);
    REQUIRE(payload.has_value());
    CHECK(*payload == r->letter);
  }

  TEST_CASE("analytics.failure_callback: decode_base64 accepts what senders send") {
    CHECK(analytics::decode_base64("") == "");
    CHECK(analytics::decode_base64("aGVsbG8=") == "hello");
    CHECK(analytics::decode_base64("aGVsbG8") == "hello");
    CHECK(analytics::decode_base64("aGk=") == "hi");
    CHECK(analytics::decode_base64("aGk") == "hi");
    CHECK(analytics::decode_base64("+/+/") == analytics::decode_base64("-_-_"));
    CHECK(analytics::decode_base64("+/+/") == std::string("\xfb\xff\xbf", 3));
    SUBCASE("and refuses the rest") {
      CHECK_FALSE(analytics::decode_base64("aGVsbG8==").has_value());  // padding to 10 chars
      CHECK_FALSE(analytics::decode_base64("aGk===").has_value());
      CHECK_FALSE(analytics::decode_base64("a").has_value());
      CHECK_FALSE(analytics::decode_base64("aGVsb").has_value());  // 4n+1
      CHECK_FALSE(analytics::decode_base64("aG k").has_value());
      CHECK_FALSE(analytics::decode_base64("aG=k").has_value());
      CHECK_FALSE(analytics::decode_base64("aGk*").has_value());
    }
    SUBCASE("round trip of every byte value") {
      std::string all;
      for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
      CHECK(analytics::decode_base64(base64_encode(all)) == all);
      CHECK(analytics::decode_base64(bus::crypto::base64url_encode(all)) == all);
    }
  }

  TEST_CASE("analytics.failure_callback: to_stored_text") {
    using analytics::to_stored_text;
    const std::string fffd = "\xEF\xBF\xBD";
    CHECK(to_stored_text("plain") == "plain");
    CHECK(to_stored_text("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") ==
          "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
    SUBCASE("ill-formed sequences: one U+FFFD per byte") {
      CHECK(to_stored_text("\xC0\x80") == fffd + fffd);                        // overlong NUL
      CHECK(to_stored_text("\xED\xA0\x80") == fffd + fffd + fffd);             // surrogate
      CHECK(to_stored_text("\xF4\x90\x80\x80") == fffd + fffd + fffd + fffd);  // above U+10FFFF
      CHECK(to_stored_text("a\xE2\x82") == "a" + fffd + fffd);                 // cut short
      CHECK(to_stored_text("\x80z") == fffd + "z");                            // lone continuation
    }
    SUBCASE("NUL") {
      CHECK(to_stored_text(std::string("x\0y", 3)) == "x" + fffd + "y");
    }
    SUBCASE("the cut never splits a character") {
      CHECK(to_stored_text("ab\xC3\xA9", 3) == "ab");
      CHECK(to_stored_text("ab\xC3\xA9", 4) == "ab\xC3\xA9");
      CHECK(to_stored_text("ab\xff", 4) == "ab");  // U+FFFD needs 3 bytes
      CHECK(to_stored_text("ab\xff", 5) == "ab" + fffd);
      CHECK(to_stored_text("abc", 0).empty());
    }
  }
}

TEST_SUITE("roles/analytics/failure_callback") {
  TEST_CASE("callback_body_limit holds the relay's failure callback of the largest message") {
    for (const std::size_t message_limit :
         {std::size_t{1024}, std::size_t{1024 * 1024}, std::size_t{5'000'001}}) {
      CAPTURE(message_limit);
      shopd::relay::message_spec m;
      m.destination = "http://127.0.0.1:3002/api/webhook";
      // A body of binary bytes at the limit, and headers as large as a publish's 8 KiB header allows.
      m.body = std::string(message_limit, '\xff');
      m.headers.push_back({"Content-Type", "application/octet-stream"});
      m.headers.push_back({"X-Big", std::string(8000, '"')});  // each escaped as \"
      shopd::relay::attempt_response r;
      r.status = 500;
      r.body = std::string(shopd::relay::max_recorded_response_bytes, '\x01');  // escaped as \u0001 if text
      r.headers.push_back({"Content-Type", "text/plain"});
      const auto body =
          json::serialize(shopd::relay::failure_callback_body("msg_src", m, r, 3, "1725323658779-0"));
      CHECK(body.size() <= analytics::callback_body_limit(message_limit));
      CHECK(analytics::parse_failure_callback(body).has_value());
    }
    CHECK(analytics::callback_body_limit(std::size_t{1} << 40) == analytics::max_callback_bytes);
  }

  TEST_CASE("the cap leaves callback_body_limit's formula alone up to the largest HTTP_BODY_LIMIT") {
    const auto* key = shopd::config::find_key("HTTP_BODY_LIMIT");
    REQUIRE(key != nullptr);
    const auto largest = static_cast<std::size_t>(key->max);
    const std::size_t base64 = (largest / 3 + 1) * 4;
    CHECK(analytics::callback_body_limit(largest) > base64);
    CHECK(analytics::callback_body_limit(largest) < analytics::max_callback_bytes);
  }
}
