#include "shopd/roles/email/compose.hpp"

#include "shopd/bus/crypto.hpp"

#include <boost/json/parse.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <set>
#include <string>

using namespace shopd;
using namespace shopd::roles::email;
using namespace std::chrono_literals;

namespace {

const auto order_variables = R"({
  "orderId": "ord_42", "customerName": "Ada Lovelace", "currency": "EUR", "subtotalCents": 5500,
  "items": [
    {"sku": "MUG-1", "name": "Blue mug", "quantity": 2, "unitPriceCents": 1250, "lineTotalCents": 2500},
    {"sku": "TEA-7", "name": "Teapot", "quantity": 1, "unitPriceCents": 3000, "lineTotalCents": 3000}
  ]})";

bus::email_notification order_notification() {
  bus::email_notification n;
  n.to = "ada@example.com";
  n.template_name = "order_confirmation";
  n.variables = boost::json::parse(order_variables).as_object();
  return n;
}

mail::mailbox shop() {
  return mail::mailbox::parse("shopd <shop@shop.example>").value();
}

constexpr auto date = std::chrono::sys_days{std::chrono::year{2026} / 11 / 23} + 10h;

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

mail::mail_error compose_error(const bus::email_notification& n) {
  auto r = compose(n, shop(), "01JD8ZQ3K4V6Y7X9ABCDEFGHJK", date);
  REQUIRE(r.has_error());
  return r.error();
}

}  // namespace

TEST_SUITE("roles/email/compose") {
  TEST_CASE("email compose: message_id_for") {
    SUBCASE("a ULID is kept as it is") {
      CHECK(message_id_for("01JD8ZQ3K4V6Y7X9ABCDEFGHJK", "shop.example") ==
            "<01JD8ZQ3K4V6Y7X9ABCDEFGHJK@shop.example>");
    }
    SUBCASE("bytes that are not atext, and '.' and '=', are escaped") {
      CHECK(message_id_for("a.b", "d.example") == "<a=2Eb@d.example>");
      CHECK(message_id_for("a=b", "d.example") == "<a=3Db@d.example>");
      CHECK(message_id_for("<x>@\"y\"", "d.example") == "<=3Cx=3E=40=22y=22@d.example>");
      CHECK(message_id_for("evt_1-2+3", "d.example") == "<evt_1-2+3@d.example>");
    }
    SUBCASE("distinct ids give distinct Message-IDs, the same id the same one") {
      std::set<std::string> ids;
      for (const char* id : {"a.b", "a=2Eb", "a=b", "a=3Db", "ab", "a..b", "a.", ".a"}) {
        CHECK(ids.insert(message_id_for(id, "d.example")).second);
      }
      CHECK(message_id_for("a.b", "d.example") == message_id_for("a.b", "d.example"));
    }
    SUBCASE("an id too long to escape becomes a digest") {
      const std::string long_id(129, 'x');
      const auto expected = "<h-" + bus::crypto::hex_encode(bus::crypto::sha256(long_id)) + "@d.example>";
      CHECK(message_id_for(long_id, "d.example") == expected);
      CHECK(message_id_for(std::string(128, 'x'), "d.example") ==
            "<" + std::string(128, 'x') + "@d.example>");
      // 43 escaped bytes (129 characters) are over the limit too.
      CHECK(message_id_for(std::string(43, '.'), "d.example").starts_with("<h-"));
    }
  }

  TEST_CASE("email compose: order_id_of") {
    const auto vars = [](const char* text) { return boost::json::parse(text).as_object(); };
    CHECK(order_id_of(vars(R"({"orderId": "ord_42"})")) == "ord_42");
    CHECK(order_id_of(vars(R"({"orderId": 42})")) == "42");
    CHECK(order_id_of(vars(R"({"orderId": 18446744073709551615})")) == "18446744073709551615");
    CHECK(order_id_of(vars(R"({"orderId": -7})")) == "-7");
    CHECK_FALSE(order_id_of(vars(R"({})")));
    CHECK_FALSE(order_id_of(vars(R"({"orderId": null})")));
    CHECK_FALSE(order_id_of(vars(R"({"orderId": 4.2})")));
    CHECK_FALSE(order_id_of(vars(R"({"orderId": ""})")));
    CHECK_FALSE(order_id_of(vars(R"({"orderId": "has space"})")));
    CHECK_FALSE(order_id_of(vars(R"({"orderId": {"id": "x"}})")));
    CHECK_FALSE(order_id_of(boost::json::object{{"orderId", std::string(257, 'a')}}));
  }

  TEST_CASE("email compose: compose an order confirmation") {
    const auto n = order_notification();
    const auto composed = compose(n, shop(), "01JD8ZQ3K4V6Y7X9ABCDEFGHJK", date).value();
    const auto& m = composed.mail;
    CHECK(composed.subject == "Your order ord_42 is confirmed");
    CHECK(m.envelope_from == "shop@shop.example");
    CHECK(m.recipients == std::vector<std::string>{"ada@example.com"});
    CHECK(m.message_id == "<01JD8ZQ3K4V6Y7X9ABCDEFGHJK@shop.example>");
    CHECK(contains(m.data, "\r\nMessage-ID: <01JD8ZQ3K4V6Y7X9ABCDEFGHJK@shop.example>\r\n"));
    CHECK(contains(m.data, "\r\nFrom: shopd <shop@shop.example>\r\n"));
    CHECK(contains(m.data, "\r\nTo: ada@example.com\r\n"));
    CHECK(contains(m.data, "\r\nSubject: Your order ord_42 is confirmed\r\n"));
    CHECK(m.data.starts_with("Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"));
    CHECK(contains(m.data, "Content-Type: text/plain; charset=UTF-8"));
    CHECK(contains(m.data, "Content-Type: text/html; charset=UTF-8"));
    CHECK(contains(m.data, "Blue mug (MUG-1), 12.50 EUR each: 25.00 EUR"));
    CHECK(contains(m.data, "Total: 55.00 EUR"));

    SUBCASE("composing again gives the same Message-ID") {
      CHECK(compose(n, shop(), "01JD8ZQ3K4V6Y7X9ABCDEFGHJK", date + 1h).value().mail.message_id ==
            m.message_id);
      CHECK(compose(n, shop(), "01JD8ZQ3K4V6Y7X9ABCDEFGHJM", date).value().mail.message_id != m.message_id);
    }
  }

  TEST_CASE("email compose: the payload's subject overrides the template's") {
    auto n = order_notification();
    n.subject = "Danke für Ihre Bestellung";
    const auto composed = compose(n, shop(), "evt-1", date).value();
    CHECK(composed.subject == "Danke für Ihre Bestellung");
    CHECK(contains(composed.mail.data, "\r\nSubject: =?UTF-8?B?"));
    CHECK_FALSE(contains(composed.mail.data, "is confirmed\r\n"));
  }

  TEST_CASE("email compose: the plain template") {
    bus::email_notification n;
    n.to = "ops@example.com";
    n.template_name = "plain";
    n.variables = boost::json::object{{"subject", "Stock is low"}, {"text", "MUG-1: 2 left"}};
    const auto composed = compose(n, shop(), "evt-2", date).value();
    CHECK(composed.subject == "Stock is low");
    CHECK(contains(composed.mail.data, "MUG-1: 2 left"));
  }

  TEST_CASE("email compose: errors are mapped to rejections naming the event field") {
    SUBCASE("unknown template") {
      auto n = order_notification();
      n.template_name = "newsletter";
      const auto e = compose_error(n);
      CHECK(e.code == mail::mail_errc::unknown_template);
      const auto r = rejection_for(e, n);
      CHECK(r.code == "unknown_template");
      CHECK(r.field == "data.template");
      CHECK(r.message == e.message);
    }
    SUBCASE("a missing variable") {
      auto n = order_notification();
      n.variables.erase("currency");
      const auto r = rejection_for(compose_error(n), n);
      CHECK(r.code == "missing_variable");
      CHECK(r.field == "data.variables.currency");
    }
    SUBCASE("an invalid nested variable") {
      auto n = order_notification();
      n.variables["items"].as_array()[1].as_object()["quantity"] = 0;
      const auto r = rejection_for(compose_error(n), n);
      CHECK(r.code == "invalid_variable");
      CHECK(r.field == "data.variables.items[1].quantity");
    }
    SUBCASE("a subject variable the template refuses") {
      bus::email_notification n;
      n.to = "ops@example.com";
      n.template_name = "plain";
      n.variables = boost::json::object{{"subject", "two\nlines"}, {"text", "x"}};
      const auto r = rejection_for(compose_error(n), n);
      CHECK(r.code == "invalid_variable");
      CHECK(r.field == "data.variables.subject");
    }
    SUBCASE("a header the template made from variables") {
      const mail::mail_error e{mail::mail_errc::invalid_header, "Subject", "Subject contains CR"};
      CHECK(rejection_for(e, order_notification()).field == "data.variables");
    }
    SUBCASE("a malformed header from the payload's subject") {
      const mail::mail_error e{mail::mail_errc::invalid_header, "Subject", "Subject contains CR"};
      auto n = order_notification();
      n.subject = "x";
      CHECK(rejection_for(e, n).field == "data.subject");
      CHECK(rejection_for(e, n).code == "invalid_header");
    }
    SUBCASE("a recipient the mail layer refuses") {
      auto n = order_notification();
      n.to = "not an address";
      const auto e = compose_error(n);
      CHECK(e.field == "To");
      CHECK(rejection_for(e, n).field == "data.to");
      CHECK(rejection_for(e, n).code == "invalid_address");
    }
    SUBCASE("an event id that makes no Message-ID points at eventId") {
      const auto r = rejection_for({mail::mail_errc::invalid_header, "Message-ID", "Message-ID must ..."},
                                   order_notification());
      CHECK(r.field == "eventId");
    }
    SUBCASE("the sender is configuration, not a field of the event") {
      const auto r =
          rejection_for({mail::mail_errc::invalid_address, "From", "From address ..."}, order_notification());
      CHECK(r.field.empty());
      CHECK(r.code == "invalid_address");
    }
    SUBCASE("invalid UTF-8 in the body comes from the variables") {
      const auto r =
          rejection_for({mail::mail_errc::invalid_body, "text", "text part ..."}, order_notification());
      CHECK(r.field == "data.variables");
    }
  }
}
