#include "shopd/roles/email/email_query.hpp"

#include "shopd/bus/crypto.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <doctest/doctest.h>

#include <limits>
#include <string>
#include <vector>

using namespace shopd;
using namespace shopd::roles::email;

namespace {

email_record sent_record() {
  return email_record{.id = 7,
                      .event_id = "01JD8ZQ3K4V6Y7X9ABCDEFGHJK",
                      .order_id = "ord_42",
                      .to = "ada@example.com",
                      .template_name = "order_confirmation",
                      .subject = "Your order ord_42 is confirmed",
                      .status = email_status::sent,
                      .message_id = "<01JD8ZQ3K4V6Y7X9ABCDEFGHJK@shop.example>",
                      .transport = "smtp",
                      .error = std::nullopt,
                      .attempts = 2,
                      .correlation_id = "chk_1",
                      .created_at_ms = 1'795'428'000'000,
                      .sent_at_ms = 1'795'428'000'250};
}

std::vector<email_record> records(std::int64_t newest, std::size_t count) {
  std::vector<email_record> out;
  for (std::size_t i = 0; i < count; ++i) {
    auto r = sent_record();
    r.id = newest - static_cast<std::int64_t>(i);
    out.push_back(r);
  }
  return out;
}

query_error list_error(std::optional<std::string> order_id, std::optional<std::string> limit,
                       std::optional<std::string> cursor) {
  const auto r = parse_list_query(order_id, limit, cursor);
  REQUIRE(r.has_error());
  return r.error();
}

}  // namespace

TEST_SUITE("roles/email/query") {
  TEST_CASE("email query: statuses") {
    for (const auto s : {email_status::pending, email_status::sent, email_status::failed}) {
      CHECK(parse_email_status(to_string(s)) == s);
    }
    CHECK(to_string(email_status::sent) == "sent");
    CHECK_FALSE(parse_email_status("SENT"));
    CHECK_FALSE(parse_email_status(""));
  }

  TEST_CASE("email query: the JSON of a record") {
    SUBCASE("sent") {
      const auto j = to_json(sent_record());
      CHECK(boost::json::serialize(j) ==
            R"({"id":7,"eventId":"01JD8ZQ3K4V6Y7X9ABCDEFGHJK","orderId":"ord_42","to":"ada@example.com",)"
            R"("template":"order_confirmation","subject":"Your order ord_42 is confirmed","status":"sent",)"
            R"("messageId":"<01JD8ZQ3K4V6Y7X9ABCDEFGHJK@shop.example>","transport":"smtp","error":null,)"
            R"("attempts":2,"correlationId":"chk_1","createdAt":"2026-11-23T10:00:00.000Z",)"
            R"("sentAt":"2026-11-23T10:00:00.250Z"})");
    }
    SUBCASE("pending after a transient failure: absent values are null") {
      auto r = sent_record();
      r.status = email_status::pending;
      r.order_id.reset();
      r.message_id.reset();
      r.transport.reset();
      r.sent_at_ms.reset();
      r.correlation_id.reset();
      r.error = "connection refused";
      const auto j = to_json(r);
      CHECK(j.at("status") == "pending");
      CHECK(j.at("orderId").is_null());
      CHECK(j.at("messageId").is_null());
      CHECK(j.at("transport").is_null());
      CHECK(j.at("sentAt").is_null());
      CHECK(j.at("correlationId").is_null());
      CHECK(j.at("error") == "connection refused");
      CHECK(j.size() == 14);
    }
  }

  TEST_CASE("email query: list query parameters") {
    SUBCASE("defaults") {
      const auto q = parse_list_query(std::nullopt, std::nullopt, std::nullopt).value();
      CHECK_FALSE(q.order_id);
      CHECK(q.limit == default_page_size);
      CHECK_FALSE(q.before_id);
    }
    SUBCASE("all given") {
      const auto q = parse_list_query("ord_42", "100", encode_cursor(55)).value();
      CHECK(q.order_id == "ord_42");
      CHECK(q.limit == 100);
      CHECK(q.before_id == 55);
      CHECK(parse_list_query(std::nullopt, "1", std::nullopt).value().limit == 1);
    }
    SUBCASE("limit out of range or not a plain integer") {
      for (const char* bad :
           {"0", "101", "-1", "+5", "05", "1.0", "1e2", "", " 5", "5 ", "abc", "99999999999999999999999"}) {
        CAPTURE(bad);
        const auto e = list_error(std::nullopt, bad, std::nullopt);
        CHECK(e.field == "limit");
        CHECK(e.message.find("limit") != std::string::npos);
      }
    }
    SUBCASE("orderId must be an id") {
      for (const auto& bad : std::vector<std::string>{"", "a b", std::string(257, 'x'), "\x01"}) {
        CHECK(list_error(bad, std::nullopt, std::nullopt).field == "orderId");
      }
    }
    SUBCASE("cursors this endpoint did not make") {
      for (const auto& bad : std::vector<std::string>{
               "", "55", "!!", bus::crypto::base64url_encode("e1:"), bus::crypto::base64url_encode("e1:0"),
               bus::crypto::base64url_encode("e1:-4"), bus::crypto::base64url_encode("e2:55"),
               bus::crypto::base64url_encode("e1:55x"),
               bus::crypto::base64url_encode("e1:99999999999999999999"), encode_cursor(55) + "="}) {
        CAPTURE(bad);
        CHECK(list_error(std::nullopt, std::nullopt, bad).field == "cursor");
      }
    }
  }

  TEST_CASE("email query: cursors round-trip every positive id") {
    for (const std::int64_t id :
         {std::int64_t{1}, std::int64_t{42}, std::numeric_limits<std::int64_t>::max()}) {
      CHECK(decode_cursor(encode_cursor(id)) == id);
    }
  }

  TEST_CASE("email query: email ids in the path") {
    CHECK(parse_email_id("1").value() == 1);
    CHECK(parse_email_id("9223372036854775807").value() == std::numeric_limits<std::int64_t>::max());
    for (const char* bad : {"0", "-1", "01", "x", "", "1x", "9223372036854775808"}) {
      CAPTURE(bad);
      const auto r = parse_email_id(bad);
      REQUIRE(r.has_error());
      CHECK(r.error().field == "id");
    }
  }

  TEST_CASE("email query: pages") {
    SUBCASE("an extra row means another page, continuing after the last one shown") {
      const auto rows = records(10, 4);
      const auto page = page_json(rows, 3);
      const auto& emails = page.at("emails").as_array();
      REQUIRE(emails.size() == 3);
      CHECK(emails[0].at("id") == 10);
      CHECK(emails[2].at("id") == 8);
      CHECK(decode_cursor(page.at("nextCursor").as_string()) == 8);
    }
    SUBCASE("no extra row: the last page") {
      const auto page = page_json(records(10, 3), 3);
      CHECK(page.at("emails").as_array().size() == 3);
      CHECK(page.at("nextCursor").is_null());
    }
    SUBCASE("empty") {
      const auto page = page_json({}, 20);
      CHECK(page.at("emails").as_array().empty());
      CHECK(page.at("nextCursor").is_null());
    }
  }
}
