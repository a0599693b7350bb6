#include "shopd/bus/events.hpp"

#include "validation_error_string.hpp"

#include <doctest/doctest.h>
#include <boost/json.hpp>

#include <string>
#include <string_view>

namespace json = boost::json;
using namespace shopd::bus;

namespace {

// 2026-11-23T10:00:00.000Z
const timestamp nov23{std::chrono::milliseconds{1'795'428'000'000}};

checkout_command full_checkout() {
  checkout_command c;
  c.checkout_id = "chk_123";
  c.customer = {"ada@example.com", "Ada Lovelace"};
  c.items = {{"MUG-01", 2}, {"tee.black_L", 1}};
  c.currency = "EUR";
  c.shipping_address = postal_address{"1 Main St", "Flat 2", "Berlin", "BE", "10115", "DE"};
  c.note = "Leave at the door.\nThanks!";
  return c;
}

checkout_command minimal_checkout() {
  checkout_command c;
  c.checkout_id = "chk_1";
  c.customer = {"a@b.co", "A"};
  c.items = {{"X", 1}};
  c.currency = "USD";
  return c;
}

order_created full_order() {
  order_created o;
  o.order_id = "ord_42";
  o.checkout_id = "chk_123";
  o.customer = {"ada@example.com", "Ada Lovelace"};
  o.items = {{"MUG-01", "Mug \xe2\x80\x94 white", 2, 1250, 2500}, {"tee.black_L", "T-shirt", 1, 0, 0}};
  o.subtotal_cents = 2500;
  o.currency = "EUR";
  o.created_at = nov23 + std::chrono::milliseconds{7};
  return o;
}

email_notification full_email() {
  email_notification n;
  n.to = "ada@example.com";
  n.template_name = "order_confirmation";
  n.variables = json::object{{"orderId", "ord_42"}, {"items", json::array{json::object{{"sku", "MUG-01"}}}}};
  n.subject = "Your order ord_42";
  return n;
}

stock_updated order_stock() {
  stock_updated u;
  u.order_id = "ord_42";
  u.reason = stock_reason::order;
  u.movements = {{"MUG-01", -2}, {"tee.black_L", -1}};
  return u;
}

audit_record full_audit() {
  audit_record r;
  r.action = "order.create";
  r.actor = "orders";
  r.entity_type = "order";
  r.entity_id = "ord_42";
  r.outcome = audit_outcome::failure;
  r.detail = json::object{{"reason", "out of stock"}, {"skus", json::array{"MUG-01"}}};
  return r;
}

metric_point full_metric() {
  metric_point m;
  m.name = "orders.created";
  m.value = 2.5;
  m.unit = "ms";
  m.tags = {{"role", "orders"}, {"currency", "EUR"}};
  return m;
}

dead_letter full_dead_letter() {
  dead_letter l;
  l.source_message_id = "msg_abc";
  l.destination = "http://127.0.0.1:3002/api/webhook";
  l.last_status = 503;
  l.last_response = "{\"error\":\"smtp down\"}\n";
  l.attempts = 4;
  l.body = R"({"eventId":"01J","eventType":"notification.email"})";
  l.dlq_id = "dlq_1";
  return l;
}

template <class T>
void check_round_trip(const T& payload) {
  const json::object wire = to_json(payload);
  auto back = T::from_json(wire);
  REQUIRE_MESSAGE(back.has_value(), json::serialize(wire));
  CHECK(*back == payload);
  // Through text as well: what actually travels.
  auto reparsed = T::from_json(json::parse(json::serialize(wire)).as_object());
  REQUIRE(reparsed.has_value());
  CHECK(*reparsed == payload);
}

// Decodes `o` as T and returns the error it must produce.
template <class T>
validation_error error_of(const json::object& o) {
  auto r = T::from_json(o);
  REQUIRE_MESSAGE(!r.has_value(), json::serialize(o));
  return r.error();
}

// Sets the member at a dotted path with [i] indices ("items[1].quantity"), or erases it when
// `value` is absent.
void set_path(json::object& root, std::string_view path, const std::optional<json::value>& value) {
  json::value* cursor = nullptr;
  json::object* object = &root;
  while (true) {
    const auto dot = path.find('.');
    std::string_view part = path.substr(0, dot);
    std::optional<std::size_t> index;
    if (const auto bracket = part.find('['); bracket != std::string_view::npos) {
      index = std::stoul(std::string(part.substr(bracket + 1)));
      part = part.substr(0, bracket);
    }
    const bool last = dot == std::string_view::npos;
    if (last && !index) {
      if (value) {
        (*object)[part] = *value;
      } else {
        object->erase(part);
      }
      return;
    }
    cursor = &object->at(part);
    if (index) cursor = &cursor->as_array().at(*index);
    if (last) {
      REQUIRE(value.has_value());
      *cursor = *value;
      return;
    }
    object = &cursor->as_object();
    path = path.substr(dot + 1);
  }
}

struct bad_field {
  std::string_view path;             // relative to data
  std::optional<json::value> value;  // nullopt: remove the field
  std::string_view message;
  std::string_view reported = {};  // when the error is reported elsewhere than data.<path>
};

template <class T>
void check_bad_fields(const T& valid, std::initializer_list<bad_field> cases) {
  for (const bad_field& c : cases) {
    json::object o = to_json(valid);
    set_path(o, c.path, c.value);
    CAPTURE(c.path);
    CAPTURE(json::serialize(o));
    const validation_error e = error_of<T>(o);
    CHECK(e.field == "data." + std::string(c.reported.empty() ? c.path : c.reported));
    CHECK(e.message == c.message);
  }
}

std::string repeat(std::string_view s, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += s;
  return out;
}

constexpr std::string_view required = "is required";
constexpr std::string_view single_line = "must be a single line without control characters";
constexpr std::string_view bad_email = "must be a plain email address such as name@example.com";
constexpr std::string_view bad_sku = "must be 1 to 64 of A-Z a-z 0-9 . _ -";
constexpr std::string_view not_integer = "must be an integer, written without a fraction or exponent";
constexpr std::string_view bad_id = "must be 1 to 256 printable ASCII characters without spaces";

}  // namespace

TEST_SUITE("bus/events") {
  TEST_CASE("event types and the roles that consume them") {
    CHECK(consumer_role("command.checkout") == "orders");
    CHECK(consumer_role("order.created") == "analytics");
    CHECK(consumer_role("notification.email") == "email");
    CHECK(consumer_role("inventory.stock.updated") == "inventory");
    CHECK(consumer_role("analytics.audit") == "analytics");
    CHECK(consumer_role("analytics.metric") == "analytics");
    CHECK(consumer_role("analytics.dlq") == "analytics");
    CHECK_FALSE(consumer_role("order.cancelled").has_value());
    CHECK_FALSE(consumer_role("").has_value());

    CHECK(event_routes().size() == 7);
    for (const event_route& r : event_routes()) {
      CAPTURE(r.event_type);
      CHECK(is_valid_event_type(r.event_type));
      CHECK(consumer_role(r.event_type) == r.consumer);
    }
    CHECK(checkout_command::event_type == event_types::checkout_command);
    CHECK(order_created::event_type == event_types::order_created);
    CHECK(email_notification::event_type == event_types::email_notification);
    CHECK(stock_updated::event_type == event_types::stock_updated);
    CHECK(audit_record::event_type == event_types::audit_record);
    CHECK(metric_point::event_type == event_types::metric_point);
    CHECK(dead_letter::event_type == event_types::dead_letter);
  }

  TEST_CASE("every payload survives to_json then from_json") {
    SUBCASE("command.checkout") {
      check_round_trip(full_checkout());
      check_round_trip(minimal_checkout());
      checkout_command sparse_address = minimal_checkout();
      sparse_address.shipping_address =
          postal_address{"Main Road 1", std::nullopt, "Hong Kong", std::nullopt, std::nullopt, "HK"};
      check_round_trip(sparse_address);
    }
    SUBCASE("order.created") {
      check_round_trip(full_order());
    }
    SUBCASE("notification.email") {
      check_round_trip(full_email());
      email_notification bare;
      bare.to = "x@y.org";
      bare.template_name = "welcome";
      check_round_trip(bare);
    }
    SUBCASE("inventory.stock.updated") {
      check_round_trip(order_stock());
      stock_updated restock;
      restock.reason = stock_reason::restock;
      restock.movements = {{"MUG-01", 100}};
      check_round_trip(restock);
      stock_updated adjust;
      adjust.reason = stock_reason::adjustment;
      adjust.movements = {{"A", -3}, {"B", 5}};
      check_round_trip(adjust);
      stock_updated cancel;
      cancel.order_id = "ord_1";
      cancel.reason = stock_reason::cancel;
      cancel.movements = {{"A", 1}};
      check_round_trip(cancel);
    }
    SUBCASE("analytics.audit") {
      check_round_trip(full_audit());
      audit_record ok = full_audit();
      ok.outcome = audit_outcome::success;
      ok.detail = {};
      check_round_trip(ok);
    }
    SUBCASE("analytics.metric") {
      check_round_trip(full_metric());
      metric_point bare;
      bare.name = "stock_shortfall";
      bare.value = -3;
      check_round_trip(bare);
    }
    SUBCASE("analytics.dlq") {
      check_round_trip(full_dead_letter());
      dead_letter bare;
      bare.source_message_id = "msg_1";
      bare.destination = "https://shop.example/api/webhook";
      bare.attempts = 1;
      check_round_trip(bare);  // an empty original body is legal
    }
  }

  TEST_CASE("to_json writes the exact wire names") {
    CHECK(json::serialize(to_json(full_checkout())) ==
          R"({"checkoutId":"chk_123","customer":{"email":"ada@example.com","name":"Ada Lovelace"},)"
          R"("items":[{"sku":"MUG-01","quantity":2},{"sku":"tee.black_L","quantity":1}],"currency":"EUR",)"
          R"("shippingAddress":{"line1":"1 Main St","line2":"Flat 2","city":"Berlin","region":"BE",)"
          R"("postalCode":"10115","country":"DE"},"note":"Leave at the door.\nThanks!"})");
    CHECK(
        json::serialize(to_json(full_order())) ==
        R"({"orderId":"ord_42","checkoutId":"chk_123","customer":{"email":"ada@example.com","name":"Ada Lovelace"},)"
        R"("items":[{"sku":"MUG-01","name":"Mug — white","quantity":2,"unitPriceCents":1250,"lineTotalCents":2500},)"
        R"({"sku":"tee.black_L","name":"T-shirt","quantity":1,"unitPriceCents":0,"lineTotalCents":0}],)"
        R"("subtotalCents":2500,"currency":"EUR","createdAt":"2026-11-23T10:00:00.007Z"})");
    CHECK(json::serialize(to_json(full_email())) ==
          R"({"to":"ada@example.com","template":"order_confirmation",)"
          R"("variables":{"orderId":"ord_42","items":[{"sku":"MUG-01"}]},"subject":"Your order ord_42"})");
    CHECK(
        json::serialize(to_json(order_stock())) ==
        R"({"orderId":"ord_42","reason":"order","movements":[{"sku":"MUG-01","delta":-2},{"sku":"tee.black_L","delta":-1}]})");
    CHECK(
        json::serialize(to_json(full_audit())) ==
        R"({"action":"order.create","actor":"orders","entityType":"order","entityId":"ord_42","outcome":"failure",)"
        R"("detail":{"reason":"out of stock","skus":["MUG-01"]}})");
    CHECK(json::serialize(to_json(full_metric())) ==
          R"({"name":"orders.created","value":2.5E0,"unit":"ms","tags":{"currency":"EUR","role":"orders"}})");
    CHECK(
        json::serialize(to_json(full_dead_letter())) ==
        R"({"sourceMessageId":"msg_abc","destination":"http://127.0.0.1:3002/api/webhook","lastStatus":503,)"
        R"("lastResponse":"{\"error\":\"smtp down\"}\n","attempts":4,)"
        R"("body":"{\"eventId\":\"01J\",\"eventType\":\"notification.email\"}","dlqId":"dlq_1"})");
  }

  TEST_CASE("command.checkout validation names the field") {
    const checkout_command valid = full_checkout();
    check_bad_fields(
        valid,
        {
            {"checkoutId", std::nullopt, required},
            {"checkoutId", json::value(nullptr), required},
            {"checkoutId", json::value(12), "must be a string"},
            {"checkoutId", json::value("chk 1"), bad_id},
            {"checkoutId", json::value(std::string(257, 'c')), bad_id},
            {"customer", std::nullopt, required},
            {"customer", json::value("ada@example.com"), "must be an object"},
            {"customer.email", std::nullopt, required},
            {"customer.email", json::value("ada"), bad_email},
            {"customer.email", json::value("ada@example.com\r\nBcc: evil@example.net"), bad_email},
            {"customer.name", json::value(""), "must not be empty"},
            {"customer.name", json::value(" \t "), single_line},
            {"customer.name", json::value("   "), "must not be blank"},
            // U+202F NARROW NO-BREAK SPACE, U+205F MEDIUM MATHEMATICAL SPACE, U+FEFF, U+1680
            {"customer.name", json::value("\xe2\x80\xaf\xe2\x81\x9f\xef\xbb\xbf\xe1\x9a\x80"),
             "must not be blank"},
            {"customer.name", json::value("Ada\r\nBcc: evil@example.net"), single_line},
            {"customer.name", json::value("Ada\nLovelace"), single_line},
            {"customer.name", json::value(std::string_view("Ada\0", 4)), single_line},
            {"customer.name", json::value("Ada\x7f"), single_line},
            {"customer.name", json::value("Ada\xc2\x85"), single_line},       // U+0085 NEXT LINE
            {"customer.name", json::value("Ada\xe2\x80\xa8x"), single_line},  // U+2028
            {"customer.name", json::value(std::string(201, 'a')), "must be at most 200 characters"},
            {"customer.name", json::value(repeat("\xc3\xa9", 201)), "must be at most 200 characters"},
            {"customer.name", json::value("\xff"), "must be valid UTF-8"},
            {"items", std::nullopt, required},
            {"items", json::value(json::array{}), "must not be empty"},
            {"items", json::value(json::object{}), "must be an array"},
            {"items[1]", json::value("MUG-01"), "must be an object"},
            {"items[1].sku", std::nullopt, required},
            {"items[1].sku", json::value(""), bad_sku},
            {"items[1].sku", json::value("MUG 01"), bad_sku},
            {"items[1].sku", json::value("../etc"), bad_sku},
            {"items[1].sku", json::value(std::string(65, 'S')), bad_sku},
            {"items[1].sku", json::value("MUG-01"),
             "duplicate sku \"MUG-01\" (also in items[0]); send one line per sku"},
            {"items[1].quantity", std::nullopt, required},
            {"items[1].quantity", json::value(0), "must be an integer from 1 to 10000"},
            {"items[1].quantity", json::value(-1), "must be an integer from 1 to 10000"},
            {"items[1].quantity", json::value(10001), "must be an integer from 1 to 10000"},
            {"items[1].quantity", json::value(1.0), not_integer},
            {"items[1].quantity", json::value(1.5), not_integer},
            {"items[1].quantity", json::value(1e3), not_integer},
            {"items[1].quantity", json::value(std::uint64_t{9223372036854775808ULL}),
             "must be an integer from 1 to 10000"},
            {"items[1].quantity", json::value("1"), "must be an integer"},
            {"items[1].quantity", json::value(true), "must be an integer"},
            {"currency", std::nullopt, required},
            {"currency", json::value("eur"), "must be a three-letter uppercase ISO 4217 code such as EUR"},
            {"currency", json::value("EURO"), "must be a three-letter uppercase ISO 4217 code such as EUR"},
            {"currency", json::value("E1R"), "must be a three-letter uppercase ISO 4217 code such as EUR"},
            {"shippingAddress", json::value("1 Main St, Berlin"), "must be an object"},
            {"shippingAddress.line1", std::nullopt, required},
            {"shippingAddress.line1", json::value("1 Main St\r\nX-Injected: 1"), single_line},
            {"shippingAddress.city", std::nullopt, required},
            {"shippingAddress.country", json::value("de"),
             "must be a two-letter uppercase ISO 3166-1 code such as DE"},
            {"shippingAddress.country", json::value("DEU"),
             "must be a two-letter uppercase ISO 3166-1 code such as DE"},
            {"shippingAddress.postalCode", json::value(10115), "must be a string"},
            {"shippingAddress.postalCode", json::value(std::string(33, '1')),
             "must be at most 32 characters"},
            {"note", json::value("bell\x07"),
             "must not contain control characters other than tab and line breaks"},
            {"note", json::value(std::string(2001, 'n')), "must be at most 2000 characters"},
            {"note", json::value(42), "must be a string"},
            // A multi-line note of only line breaks and spaces (U+200B, U+3000 among them) is blank.
            {"note", json::value("\n\t \xe2\x80\x8b\r\n\xe3\x80\x80"), "must not be blank"},
        });

    SUBCASE("limits are inclusive") {
      json::object o = to_json(valid);
      set_path(o, "customer.name", json::value(repeat("\xc3\xa9", 200)));
      set_path(o, "items[0].quantity", json::value(10000));
      set_path(o, "items[1].quantity", json::value(1));
      set_path(o, "items[1].sku", json::value(std::string(64, 'S')));
      set_path(o, "note", json::value("tab\there\r\nnew line " + std::string(1980, 'n')));
      CHECK(checkout_command::from_json(o).has_value());
    }
    SUBCASE("at most 100 lines") {
      json::object o = to_json(valid);
      json::array items;
      for (int i = 0; i < 100; ++i)
        items.push_back(json::object{{"sku", "S" + std::to_string(i)}, {"quantity", 1}});
      o["items"] = items;
      CHECK(checkout_command::from_json(o).has_value());
      items.push_back(json::object{{"sku", "S100"}, {"quantity", 1}});
      o["items"] = items;
      CHECK(error_of<checkout_command>(o) == validation_error{"data.items", "must have at most 100 entries"});
    }
    SUBCASE("optional fields may be null; unknown fields are ignored") {
      json::object o = to_json(minimal_checkout());
      o["shippingAddress"] = nullptr;
      o["note"] = nullptr;
      o["coupon"] = "SAVE10";
      o["items"].as_array()[0].as_object()["priceCents"] = 1;  // prices never come from the command
      auto r = checkout_command::from_json(o);
      REQUIRE(r.has_value());
      CHECK(*r == minimal_checkout());
    }
    SUBCASE("the first error wins") {
      json::object o = to_json(valid);
      o.erase("checkoutId");
      o["currency"] = "eur";
      CHECK(error_of<checkout_command>(o).field == "data.checkoutId");
    }
  }

  TEST_CASE("order.created validation") {
    check_bad_fields(
        full_order(),
        {
            {"orderId", std::nullopt, required},
            {"checkoutId", json::value(""), bad_id},
            {"customer.email", json::value("a@@b.com"), bad_email},
            {"items", json::value(json::array{}), "must not be empty"},
            {"items[0].name", std::nullopt, required},
            {"items[0].name", json::value("Mug\r\nBcc: x@y.z"), single_line},
            {"items[0].unitPriceCents", json::value(-1), "must be an integer from 0 to 1000000000000000"},
            {"items[0].unitPriceCents", json::value(12.5), not_integer},
            {"items[0].lineTotalCents", json::value(2499), "must equal quantity * unitPriceCents"},
            {"items[1].sku", json::value("MUG-01"),
             "duplicate sku \"MUG-01\" (also in items[0]); send one line per sku"},
            {"subtotalCents", json::value(2499), "must equal the sum of the lines' lineTotalCents (2500)"},
            {"subtotalCents", json::value(-0.0), not_integer},
            {"currency", json::value("eu"), "must be a three-letter uppercase ISO 4217 code such as EUR"},
            {"createdAt", json::value("yesterday"),
             "must be an RFC 3339 date-time such as 2026-11-23T10:00:00.000Z"},
            {"createdAt", json::value(1795428000000), "must be a string"},
        });

    SUBCASE("line arithmetic cannot overflow") {
      json::object o = to_json(full_order());
      set_path(o, "items[0].quantity", json::value(10000));
      set_path(o, "items[0].unitPriceCents", json::value(max_money_cents));
      set_path(o, "items[0].lineTotalCents", json::value(max_money_cents));
      CHECK(error_of<order_created>(o) ==
            validation_error{"data.items[0].lineTotalCents", "must equal quantity * unitPriceCents"});
    }
    SUBCASE("createdAt accepts any RFC 3339 offset and normalizes it") {
      json::object o = to_json(full_order());
      o["createdAt"] = "2026-11-23T11:00:00.007+01:00";
      auto r = order_created::from_json(o);
      REQUIRE(r.has_value());
      CHECK(r->created_at == full_order().created_at);
    }
  }

  TEST_CASE("notification.email validation keeps headers injection-free") {
    check_bad_fields(full_email(),
                     {
                         {"to", std::nullopt, required},
                         {"to", json::value("ada@example.com\r\nBcc: all@example.net"), bad_email},
                         {"to", json::value("ada@example.com\nBcc: all@example.net"), bad_email},
                         {"to", json::value("ada@example.com,eve@example.net"), bad_email},
                         {"to", json::value("Ada <ada@example.com>"), bad_email},
                         {"template", std::nullopt, required},
                         {"template", json::value("../../etc/passwd"), "must match [a-z][a-z0-9_]{0,63}"},
                         {"template", json::value("Order"), "must match [a-z][a-z0-9_]{0,63}"},
                         {"variables", json::value(json::array{}), "must be an object"},
                         {"subject", json::value("Hello\r\nBcc: all@example.net"), single_line},
                         {"subject", json::value("Hello\rBcc: all@example.net"), single_line},
                         {"subject", json::value("Hello\xe2\x80\xa9"), single_line},  // U+2029
                         {"subject", json::value(""), "must not be empty"},
                         {"subject", json::value(std::string(201, 's')), "must be at most 200 characters"},
                     });
    SUBCASE("variables default to an empty object") {
      auto r = email_notification::from_json(json::object{{"to", "a@b.co"}, {"template", "welcome"}});
      REQUIRE(r.has_value());
      CHECK(r->variables.empty());
      CHECK_FALSE(r->subject.has_value());
    }
  }

  TEST_CASE("inventory.stock.updated validation") {
    check_bad_fields(order_stock(),
                     {
                         {"reason", std::nullopt, required},
                         {"reason", json::value("sale"), "must be one of order, restock, adjustment, cancel"},
                         {"orderId", std::nullopt, "is required when reason is order"},
                         {"orderId", json::value("ord 1"), bad_id},
                         {"movements", json::value(json::array{}), "must not be empty"},
                         {"movements[1].sku", json::value("MUG-01"),
                          "duplicate sku \"MUG-01\" (also in movements[0]); send one line per sku"},
                         {"movements[0].delta", json::value(0), "must not be zero"},
                         {"movements[0].delta", json::value(2), "must be negative when reason is order"},
                         {"movements[0].delta", json::value(-2.0), not_integer},
                         {"movements[0].delta", json::value(-1'000'000'001),
                          "must be an integer from -1000000000 to 1000000000"},
                     });
    SUBCASE("reason-specific rules") {
      json::object restock{{"reason", "restock"},
                           {"movements", json::array{json::object{{"sku", "A"}, {"delta", -1}}}}};
      CHECK(error_of<stock_updated>(restock) ==
            validation_error{"data.movements[0].delta", "must be positive when reason is restock"});
      json::object cancel{{"reason", "cancel"},
                          {"movements", json::array{json::object{{"sku", "A"}, {"delta", 1}}}}};
      CHECK(error_of<stock_updated>(cancel) ==
            validation_error{"data.orderId", "is required when reason is cancel"});
      cancel["orderId"] = "ord_1";
      CHECK(stock_updated::from_json(cancel).has_value());
      json::object adjust{{"reason", "adjustment"},
                          {"movements", json::array{json::object{{"sku", "A"}, {"delta", -1'000'000'000}}}}};
      CHECK(stock_updated::from_json(adjust).has_value());
    }
  }

  TEST_CASE("analytics.audit validation") {
    check_bad_fields(full_audit(),
                     {
                         {"action", std::nullopt, required},
                         {"action", json::value("Order.Create"), "must match [a-z][a-z0-9_.-]{0,63}"},
                         {"actor", json::value("orders role"), "must match [a-z][a-z0-9_.-]{0,63}"},
                         {"entityType", json::value(""), "must match [a-z][a-z0-9_.-]{0,63}"},
                         {"entityId", std::nullopt, required},
                         {"entityId", json::value("a b"), bad_id},
                         {"outcome", json::value("ok"), "must be success or failure"},
                         {"outcome", json::value(true), "must be a string"},
                         {"detail", json::value("out of stock"), "must be an object"},
                     });
  }

  TEST_CASE("analytics.metric validation") {
    check_bad_fields(
        full_metric(),
        {
            {"name", std::nullopt, required},
            {"name", json::value("1st"), "must match [A-Za-z_][A-Za-z0-9_.:-]{0,127}"},
            {"name", json::value("orders created"), "must match [A-Za-z_][A-Za-z0-9_.:-]{0,127}"},
            {"value", std::nullopt, required},
            {"value", json::value("2.5"), "must be a number"},
            {"unit", json::value("m s"), "must be 1 to 32 of A-Z a-z 0-9 _ % / . -"},
            {"tags", json::value(json::array{}), "must be an object"},
            {"tags.role", json::value(1), "must be a string"},
            {"tags.role", json::value("a\nb"), "must be a single line of at most 256 bytes"},
            {"tags.role", json::value(std::string(257, 'r')), "must be a single line of at most 256 bytes"},
            {"tags.bad-key", json::value("x"), "tag names must match [A-Za-z_][A-Za-z0-9_]{0,63}", "tags"},
        });
    SUBCASE("value accepts any JSON number") {
      json::object o = to_json(full_metric());
      o["value"] = 7;
      CHECK(metric_point::from_json(o)->value == 7.0);
      o["value"] = std::uint64_t{18'000'000'000'000'000'000ULL};
      CHECK(metric_point::from_json(o)->value == 18e18);
      o["value"] = -0.25;
      CHECK(metric_point::from_json(o)->value == -0.25);
    }
    SUBCASE("at most 32 tags") {
      json::object tags;
      for (int i = 0; i < 33; ++i) tags["t" + std::to_string(i)] = "v";
      json::object o{{"name", "m"}, {"value", 1}, {"tags", tags}};
      CHECK(error_of<metric_point>(o) == validation_error{"data.tags", "must have at most 32 entries"});
      tags.erase("t0");
      o["tags"] = tags;
      CHECK(metric_point::from_json(o).has_value());
    }
  }

  TEST_CASE("analytics.dlq validation") {
    check_bad_fields(
        full_dead_letter(),
        {
            {"sourceMessageId", std::nullopt, required},
            {"destination", json::value(""), "must not be empty"},
            {"destination", json::value("http://x/\r\nHost: evil"), single_line},
            {"lastStatus", json::value(600), "must be an integer from 100 to 599"},
            {"lastStatus", json::value("503"), "must be an integer"},
            {"lastResponse", json::value(std::string(64 * 1024 + 1, 'r')), "must be at most 65536 bytes"},
            {"attempts", std::nullopt, required},
            {"attempts", json::value(0), "must be an integer from 1 to 1000000"},
            {"body", std::nullopt, required},
            {"body", json::value(std::string(64 * 1024 + 1, 'b')), "must be at most 65536 bytes"},
            {"dlqId", json::value(""), bad_id},
        });
    SUBCASE("body and lastResponse are opaque text") {
      json::object o = to_json(full_dead_letter());
      o["body"] = "line1\r\nline2\x01\xe2\x80\xa8";
      o["lastResponse"] = std::string(64 * 1024, 'r');
      CHECK(dead_letter::from_json(o).has_value());
    }
  }

  TEST_CASE("field rules") {
    SUBCASE("is_valid_email") {
      for (const char* good : {"a@b.co", "ada.lovelace+shop@example.com", "x_y-z@sub.example.co.uk", "1@2.io",
                               "o'brien@example.ie", "user@xn--bcher-kva.example"}) {
        CAPTURE(good);
        CHECK(is_valid_email(good));
      }
      const std::string long_local = std::string(65, 'a') + "@example.com";
      const std::string long_address =
          std::string(64, 'a') + "@" + repeat(std::string(60, 'd') + ".", 4) + "com";
      const std::string long_label = "a@" + std::string(64, 'd') + ".com";
      for (const std::string& bad : {std::string(""),
                                     std::string("plain"),
                                     std::string("@example.com"),
                                     std::string("a@"),
                                     std::string("a@localhost"),
                                     std::string("a@@example.com"),
                                     std::string("a@b@example.com"),
                                     std::string("a b@example.com"),
                                     std::string("a@exa mple.com"),
                                     std::string(".a@example.com"),
                                     std::string("a.@example.com"),
                                     std::string("a..b@example.com"),
                                     std::string("a@example..com"),
                                     std::string("a@.example.com"),
                                     std::string("a@example.com."),
                                     std::string("a@-example.com"),
                                     std::string("a@example-.com"),
                                     std::string("a@exa_mple.com"),
                                     std::string("\"a\"@example.com"),
                                     std::string("a,b@example.com"),
                                     std::string("a;b@example.com"),
                                     std::string("<a@example.com>"),
                                     std::string("a@example.com\r\n"),
                                     std::string("a\r\n@example.com"),
                                     std::string("\xc3\xa9@example.com"),
                                     std::string("a@\xc3\xa9xample.com"),
                                     std::string("a\0@example.com", 14),
                                     long_local,
                                     long_address,
                                     long_label}) {
        CAPTURE(bad);
        CHECK_FALSE(is_valid_email(bad));
      }
      CHECK(long_address.size() > 254);
    }
    SUBCASE("is_valid_sku and is_valid_currency") {
      CHECK(is_valid_sku("A"));
      CHECK(is_valid_sku("tee.black_L-2"));
      CHECK_FALSE(is_valid_sku("tee/black"));
      CHECK_FALSE(is_valid_sku("caf\xc3\xa9"));
      CHECK(is_valid_currency("JPY"));
      CHECK_FALSE(is_valid_currency("JP"));
      CHECK_FALSE(is_valid_currency("jpy"));
    }
    SUBCASE("is_single_line") {
      CHECK(is_single_line(""));
      CHECK(is_single_line("Zoë Ørsted — 東京"));
      CHECK_FALSE(is_single_line("a\rb"));
      CHECK_FALSE(is_single_line("a\tb"));
      CHECK_FALSE(is_single_line("\xe2\x80\xa8"));
      CHECK_FALSE(is_single_line("\xc2\x9b"));          // C1 CSI
      CHECK_FALSE(is_single_line("\xc0\x8a"));          // overlong LF
      CHECK_FALSE(is_single_line("\xed\xa0\x80"));      // surrogate
      CHECK_FALSE(is_single_line("\xf4\x90\x80\x80"));  // beyond U+10FFFF
      CHECK_FALSE(is_single_line("\xe2\x82"));          // truncated
    }
  }

  TEST_CASE("from the wire: envelope, then payload") {
    const std::string raw =
        R"({"eventId":"01JDAQ4N2G6J4V3C5Y1T8R9W0X","eventType":"command.checkout","version":1,)"
        R"("timestamp":"2026-11-23T10:00:00.000Z","source":"cli","correlationId":"chk_9",)"
        R"("data":{"checkoutId":"chk_9","customer":{"email":"a@b.co","name":"A"},)"
        R"("items":[{"sku":"X","quantity":1},{"sku":"Y","quantity":1e3}],"currency":"EUR"}})";
    auto e = parse_envelope(raw);
    REQUIRE(e.has_value());
    CHECK(consumer_role(e->event_type) == "orders");
    auto command = payload_of<checkout_command>(*e);
    REQUIRE_FALSE(command.has_value());
    CHECK(command.error() == validation_error{"data.items[1].quantity", std::string(not_integer)});

    CHECK(payload_of<order_created>(*e).error() ==
          validation_error{"eventType", "expected order.created, got command.checkout"});

    SUBCASE("make_event builds an envelope its consumer accepts") {
      const envelope out = make_event(full_order(), "orders", "chk_123", std::string_view(e->event_id));
      CHECK(out.event_type == "order.created");
      CHECK(out.causation_id == e->event_id);
      auto back = parse_envelope(serialize(out));
      REQUIRE(back.has_value());
      auto order = payload_of<order_created>(*back);
      REQUIRE(order.has_value());
      CHECK(*order == full_order());
    }
  }
}
