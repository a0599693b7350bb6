#include "shopd/mail/templates.hpp"

#include <boost/json/parse.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <string>

using namespace shopd::mail;

namespace {

boost::json::object order_variables() {
  return boost::json::parse(R"({
    "orderId": "ord_42",
    "customerName": "Ada Lovelace",
    "items": [
      {"sku": "MUG-1", "name": "Blue mug", "quantity": 2, "unitPriceCents": 1250, "lineTotalCents": 2500},
      {"sku": "TEA-7", "name": "Teapot", "quantity": 1, "unitPriceCents": 3000, "lineTotalCents": 3000}
    ],
    "subtotalCents": 5500,
    "currency": "EUR"
  })")
      .as_object();
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

mail_error render_error(std::string_view name, const boost::json::object& vars) {
  auto r = render_template(name, vars);
  REQUIRE(r.has_error());
  return r.error();
}

}  // namespace

TEST_SUITE("mail/templates") {
  TEST_CASE("order_confirmation renders greeting, lines and total in both parts") {
    const auto r = render_template("order_confirmation", order_variables());
    REQUIRE(r.has_value());
    CHECK(r->subject == "Your order ord_42 is confirmed");

    SUBCASE("text") {
      CHECK(r->text.starts_with("Hello Ada Lovelace,\n"));
      CHECK(contains(r->text, "order ord_42"));
      CHECK(contains(r->text, "  2 x Blue mug (MUG-1), 12.50 EUR each: 25.00 EUR\n"));
      CHECK(contains(r->text, "  1 x Teapot (TEA-7), 30.00 EUR each: 30.00 EUR\n"));
      CHECK(contains(r->text, "\nTotal: 55.00 EUR\n"));
      CHECK(r->text.find("Blue mug") < r->text.find("Teapot"));
    }
    SUBCASE("html") {
      CHECK(r->html.starts_with("<!DOCTYPE html>"));
      CHECK(contains(r->html, "<meta charset=\"utf-8\">"));
      CHECK(contains(r->html, "<p>Hello Ada Lovelace,</p>"));
      CHECK(contains(r->html, "<strong>ord_42</strong>"));
      CHECK(contains(
          r->html,
          "<tr><td>Blue mug</td><td>MUG-1</td><td align=\"right\">2</td><td align=\"right\">12.50 EUR</td>"
          "<td align=\"right\">25.00 EUR</td></tr>"));
      CHECK(contains(r->html, "<th align=\"right\">55.00 EUR</th>"));
      CHECK(std::count(r->html.begin(), r->html.end(), '\n') > 10);
    }
  }

  TEST_CASE("order_confirmation formats money in the order's currency") {
    auto vars = order_variables();
    vars["currency"] = "JPY";
    vars["items"].as_array()[0].as_object()["unitPriceCents"] = 1250;
    vars["items"].as_array()[0].as_object()["lineTotalCents"] = 2500;
    vars["subtotalCents"] = 5500;
    const auto r = render_template("order_confirmation", vars);
    REQUIRE(r.has_value());
    CHECK(contains(r->text, "1250 JPY each: 2500 JPY"));
    CHECK(contains(r->text, "Total: 5500 JPY"));

    vars["currency"] = "KWD";
    const auto k = render_template("order_confirmation", vars);
    REQUIRE(k.has_value());
    CHECK(contains(k->text, "Total: 5.500 KWD"));
  }

  TEST_CASE("order_confirmation accepts a numeric order id and an empty name") {
    auto vars = order_variables();
    vars["orderId"] = 1234;
    vars["customerName"] = "";
    const auto r = render_template("order_confirmation", vars);
    REQUIRE(r.has_value());
    CHECK(r->subject == "Your order 1234 is confirmed");
    CHECK(r->text.starts_with("Hello,\n"));
    CHECK(contains(r->html, "<p>Hello,</p>"));
  }

  TEST_CASE("every variable is HTML-escaped in the HTML part, and only there") {
    auto vars = order_variables();
    vars["customerName"] = "<script>alert('x')</script>";
    vars["orderId"] = "o\"1&2";
    auto& item = vars["items"].as_array()[0].as_object();
    item["name"] = "Mug <b>&</b> \"Co\"";
    item["sku"] = "<i>SKU</i>";
    const auto r = render_template("order_confirmation", vars);
    REQUIRE(r.has_value());

    CHECK_FALSE(contains(r->html, "<script>"));
    CHECK_FALSE(contains(r->html, "<b>"));
    CHECK_FALSE(contains(r->html, "<i>"));
    CHECK(contains(r->html, "<p>Hello &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;,</p>"));
    CHECK(contains(r->html,
                   "<td>Mug &lt;b&gt;&amp;&lt;/b&gt; &quot;Co&quot;</td><td>&lt;i&gt;SKU&lt;/i&gt;</td>"));
    CHECK(contains(r->html, "<strong>o&quot;1&amp;2</strong>"));
    CHECK(contains(r->html, "<title>Your order o&quot;1&amp;2 is confirmed</title>"));

    CHECK(r->text.starts_with("Hello <script>alert('x')</script>,\n"));
    CHECK(contains(r->text, "Mug <b>&</b> \"Co\" (<i>SKU</i>)"));
  }

  TEST_CASE("a missing variable is an error naming it") {
    for (const char* name : {"orderId", "customerName", "items", "subtotalCents", "currency"}) {
      CAPTURE(name);
      auto vars = order_variables();
      vars.erase(name);
      const auto e = render_error("order_confirmation", vars);
      CHECK(e.code == mail_errc::missing_variable);
      CHECK(e.field == name);
      CHECK(contains(e.message, name));
    }
    for (const char* name : {"sku", "name", "quantity", "unitPriceCents", "lineTotalCents"}) {
      CAPTURE(name);
      auto vars = order_variables();
      vars["items"].as_array()[1].as_object().erase(name);
      const auto e = render_error("order_confirmation", vars);
      CHECK(e.code == mail_errc::missing_variable);
      CHECK(e.field == "items[1]." + std::string(name));
      CHECK(contains(e.message, "items[1]." + std::string(name)));
    }
  }

  TEST_CASE("a mistyped or unacceptable variable is an error naming it") {
    struct bad_case {
      const char* json_pointer;
      const char* value;
      const char* field;
    };
    const bad_case cases[] = {
        {"/subtotalCents", R"("5500")", "subtotalCents"},
        {"/subtotalCents", "55.0", "subtotalCents"},
        {"/subtotalCents", "18446744073709551615", "subtotalCents"},
        {"/customerName", "null", "customerName"},
        {"/orderId", "true", "orderId"},
        {"/orderId", R"("")", "orderId"},
        {"/orderId", R"("a\r\nBcc: x@y")", "orderId"},
        {"/currency", R"("eur")", "currency"},
        {"/currency", "978", "currency"},
        {"/items", R"({"sku": "x"})", "items"},
        {"/items", "[]", "items"},
        {"/items/0", R"("MUG-1")", "items[0]"},
        {"/items/0/quantity", "0", "items[0].quantity"},
        {"/items/0/quantity", "1.5", "items[0].quantity"},
        {"/items/1/unitPriceCents", "-1", "items[1].unitPriceCents"},
        {"/items/1/lineTotalCents", R"("3000")", "items[1].lineTotalCents"},
        {"/items/1/name", "7", "items[1].name"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.json_pointer);
      CAPTURE(c.value);
      boost::json::value vars = order_variables();
      vars.at_pointer(c.json_pointer) = boost::json::parse(c.value);
      const auto e = render_error("order_confirmation", vars.as_object());
      CHECK(e.code == mail_errc::invalid_variable);
      CHECK(e.field == c.field);
      CHECK(contains(e.message, c.field));
    }
  }

  TEST_CASE("extra variables are ignored") {
    auto vars = order_variables();
    vars["shippingAddress"] = "somewhere";
    CHECK(render_template("order_confirmation", vars).has_value());
  }

  TEST_CASE("plain renders subject and text, the HTML part escaped in paragraphs") {
    const auto vars = boost::json::parse(R"({
      "subject": "Shipping update",
      "text": "Hello <you>,\r\nyour parcel left.\n\n\nRegards & thanks\n"
    })")
                          .as_object();
    const auto r = render_template("plain", vars);
    REQUIRE(r.has_value());
    CHECK(r->subject == "Shipping update");
    CHECK(r->text == "Hello <you>,\r\nyour parcel left.\n\n\nRegards & thanks\n");
    CHECK(contains(r->html, "<title>Shipping update</title>"));
    CHECK(
        contains(r->html, "<p>Hello &lt;you&gt;,<br>\nyour parcel left.</p>\n<p>Regards &amp; thanks</p>\n"));
    CHECK_FALSE(contains(r->html, "<p></p>"));
  }

  TEST_CASE("plain checks its variables") {
    SUBCASE("missing") {
      const auto e = render_error("plain", boost::json::parse(R"({"subject": "s"})").as_object());
      CHECK(e.code == mail_errc::missing_variable);
      CHECK(e.field == "text");
    }
    SUBCASE("a subject of several lines") {
      const auto e =
          render_error("plain", boost::json::parse(R"({"subject": "a\nb", "text": ""})").as_object());
      CHECK(e.code == mail_errc::invalid_variable);
      CHECK(e.field == "subject");
    }
    SUBCASE("an empty subject") {
      const auto e = render_error("plain", boost::json::parse(R"({"subject": "", "text": ""})").as_object());
      CHECK(e.code == mail_errc::invalid_variable);
      CHECK(e.field == "subject");
    }
  }

  TEST_CASE("an unknown template is an error listing the valid names") {
    const auto e = render_error("order_confirmaton", order_variables());
    CHECK(e.code == mail_errc::unknown_template);
    CHECK(contains(e.message, "order_confirmaton"));
    CHECK(contains(e.message, "order_confirmation"));
    CHECK(contains(e.message, "plain"));
    CHECK_THROWS_AS(render_template("nope", {}).value(), mail_exception);
  }

  TEST_CASE("template_names lists what render_template accepts") {
    const auto names = template_names();
    REQUIRE(names.size() >= 2);
    CHECK(std::find(names.begin(), names.end(), "order_confirmation") != names.end());
    CHECK(std::find(names.begin(), names.end(), "plain") != names.end());
    for (const auto name : names) {
      CAPTURE(name);
      const auto r = render_template(name, {});
      REQUIRE(r.has_error());
      CHECK(r.error().code == mail_errc::missing_variable);
    }
  }

  TEST_CASE("html_escape") {
    CHECK(html_escape("") == "");
    CHECK(html_escape("plain text") == "plain text");
    CHECK(html_escape(R"(<a href="x">'&'</a>)") == "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    CHECK(html_escape("Grüße") == "Grüße");
  }
}
