#include "shopd/roles/email/email_role.hpp"

#include "fresh_database.hpp"
#include "shopd/app/role.hpp"
#include "shopd/bus/dispatch.hpp"
#include "shopd/bus/envelope.hpp"
#include "shopd/bus/events.hpp"
#include "shopd/config/config.hpp"
#include "shopd/db/database.hpp"
#include "shopd/db/migrations.hpp"
#include "shopd/http/router.hpp"
#include "shopd/http/server.hpp"
#include "shopd/obs/metrics.hpp"
#include "smtp_server.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <doctest/doctest.h>
#include <soci/soci.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

using namespace shopd;
using shopd::test::read_file;
using shopd::test::smtp_server;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

// ---------------------------------------------------------------------------------------------
// Scratch space, databases and the SMTP server

enum class backend { sqlite, postgresql };

// A migrated database of either kind, gone afterwards.
class test_database {
 public:
  explicit test_database(backend b) {
    std::string url = "sqlite:" + (dir_.path() / "shopd.db").string();
    if (b == backend::postgresql) {
      pg_.emplace("shopd_email_");
      url = pg_->url();
    }
    db_ = std::make_unique<db::database>(db::database_url::parse(url), db::database_options{.pool_size = 4});
    db::migrate(*db_);
  }
  ~test_database() { db_.reset(); }  // before the PostgreSQL database is dropped
  test_database(const test_database&) = delete;
  test_database& operator=(const test_database&) = delete;

  [[nodiscard]] db::database& db() { return *db_; }
  [[nodiscard]] const fs::path& dir() const { return dir_.path(); }

 private:
  test::temp_dir dir_;
  std::optional<test::pg_scratch_database> pg_;
  std::unique_ptr<db::database> db_;
};

// A port on 127.0.0.1 that refuses connections: bound (so nobody else takes it) but not listening.
// SO_REUSEADDR lets the SMTP server bind the same port later while this socket still holds it.
class refusing_port {
 public:
  refusing_port() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    REQUIRE(fd_ >= 0);
    const int on = 1;
    REQUIRE(::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  refusing_port(const refusing_port&) = delete;
  refusing_port& operator=(const refusing_port&) = delete;
  ~refusing_port() { ::close(fd_); }
  [[nodiscard]] int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

// Messages the sink stored: N.eml with N.json next to it once complete.
int messages_received(const fs::path& dir) {
  int n = 0;
  while (fs::exists(dir / (std::to_string(n + 1) + ".json"))) ++n;
  return n;
}

// ---------------------------------------------------------------------------------------------
// The role, as `shopd serve --role=email` builds it (without starting the server)

config::settings settings_with(config::string_map flags) {
  flags.emplace("SHOPD_API_TOKEN", "test-token");
  return config::load({.env_file = std::nullopt, .environment = {}, .flags = std::move(flags)});
}

struct email_role_fixture {
  email_role_fixture(db::database& database, config::settings s)
      : settings(std::move(s)),
        db(database),
        server(http::server_options{.io_threads = 1, .worker_threads = 1}, metrics),
        destinations(settings),
        ctx{"email", settings,     db,
            routes,  server,       metrics,
            events,  destinations, [this] { ++outbox_wakeups; },
            nullptr},
        role(roles::email::make_email_role(ctx)) {}

  bus::outcome deliver(const bus::envelope& ev) {
    const auto* handler = events.find(ev.event_type);
    REQUIRE(handler != nullptr);
    bus::delivery d(ev, "email", db, destinations, [this] { ++outbox_wakeups; });
    return handler->fn(d);
  }

  double sent_total() { return metrics.counter_family("shopd_emails_sent_total", "").get().value(); }
  double failed_total(const std::string& kind) {
    return metrics.counter_family("shopd_emails_failed_total", "", {"kind"}).with({kind}).value();
  }

  // Through the router as the server would: http_error becomes its response.
  http::response get(const std::string& target, std::optional<std::string> token = "test-token") {
    http::request req{http::verb::get, target, 11};
    if (token) req.set(http::field::authorization, "Bearer " + *token);
    const auto q = target.find('?');
    const std::string_view path = std::string_view(target).substr(0, q);
    const std::string_view query =
        q == std::string::npos ? std::string_view() : std::string_view(target).substr(q + 1);
    auto found = routes.lookup(http::verb::get, path);
    auto* f = std::get_if<http::router::found>(&found);
    REQUIRE_MESSAGE(f != nullptr, "no route for ", target);
    http::request_context rc{req, path, query, f->params, {}};
    try {
      return http::run_inline(*f->r, rc);
    } catch (const http::http_error& e) {
      return e.to_response();
    }
  }

  config::settings settings;
  db::database& db;
  http::router routes;
  obs::registry metrics;
  http::server server;
  bus::event_router events;
  bus::destinations destinations;
  int outbox_wakeups = 0;
  app::role_context ctx;
  std::unique_ptr<app::role> role;
};

// ---------------------------------------------------------------------------------------------
// Events and what the role left behind

const char* const order_variables = R"({
  "orderId": "ord_42", "customerName": "Ada Lovelace", "currency": "EUR", "subtotalCents": 5500,
  "items": [
    {"sku": "MUG-1", "name": "Blue mug", "quantity": 2, "unitPriceCents": 1250, "lineTotalCents": 2500},
    {"sku": "TEA-7", "name": "Teapot", "quantity": 1, "unitPriceCents": 3000, "lineTotalCents": 3000}
  ]})";

bus::envelope confirmation_event(const std::string& to = "ada@example.com",
                                 const std::string& order_id = "ord_42",
                                 const std::string& correlation = "chk_42") {
  bus::email_notification n;
  n.to = to;
  n.template_name = "order_confirmation";
  n.variables = json::parse(order_variables).as_object();
  n.variables["orderId"] = order_id;
  return bus::make_event(n, "orders", correlation);
}

bus::envelope notification_event(json::object data) {
  return bus::make_envelope(bus::event_types::email_notification, "orders", std::move(data), "chk_7");
}

struct email_row {
  long long id = 0;
  std::string status;
  long long attempts = 0;
  std::optional<std::string> error;
  std::optional<std::string> message_id;
  std::optional<std::string> transport;
  std::optional<std::string> order_id;
  std::string subject;
  std::optional<std::string> correlation_id;
  std::optional<long long> sent_at_ms;
};

std::optional<email_row> find_row(db::database& db, const std::string& event_id) {
  return db.with_session([&](soci::session& s) -> std::optional<email_row> {
    email_row r;
    std::string error, message_id, transport, order_id, correlation_id;
    long long sent_at = 0;
    soci::indicator error_i{}, message_id_i{}, transport_i{}, order_id_i{}, correlation_i{}, sent_at_i{};
    s << "SELECT id, status, attempts, error, message_id, transport, order_id, subject, correlation_id, "
         "sent_at_ms "
         "FROM emails WHERE event_id = :e",
        soci::into(r.id), soci::into(r.status), soci::into(r.attempts), soci::into(error, error_i),
        soci::into(message_id, message_id_i), soci::into(transport, transport_i),
        soci::into(order_id, order_id_i), soci::into(r.subject), soci::into(correlation_id, correlation_i),
        soci::into(sent_at, sent_at_i), soci::use(event_id);
    if (!s.got_data()) return std::nullopt;
    const auto opt = [](const std::string& v, soci::indicator i) {
      return i == soci::i_ok ? std::optional<std::string>(v) : std::nullopt;
    };
    r.error = opt(error, error_i);
    r.message_id = opt(message_id, message_id_i);
    r.transport = opt(transport, transport_i);
    r.order_id = opt(order_id, order_id_i);
    r.correlation_id = opt(correlation_id, correlation_i);
    if (sent_at_i == soci::i_ok) r.sent_at_ms = sent_at;
    return r;
  });
}

email_row row_of(db::database& db, const std::string& event_id) {
  auto r = find_row(db, event_id);
  REQUIRE_MESSAGE(r.has_value(), "no emails row for ", event_id);
  return *r;
}

long long count(db::database& db, const std::string& sql) {
  return db.with_session([&](soci::session& s) {
    long long n = 0;
    s << sql, soci::into(n);
    return n;
  });
}

bool inbox_has(db::database& db, const std::string& event_id) {
  return count(db, "SELECT COUNT(*) FROM inbox WHERE consumer = 'email' AND event_id = '" + event_id + "'") ==
         1;
}

struct published {
  std::string destination;
  bus::envelope ev;
  bus::audit_record audit;
};

// The email role's outbox, oldest first; every row must be a well-formed analytics.audit event.
std::vector<published> outbox(email_role_fixture& f) {
  std::vector<published> out;
  f.db.with_session([&](soci::session& s) {
    soci::rowset<soci::row> rows =
        (s.prepare
         << "SELECT event_type, destination, body FROM outbox WHERE producer = 'email' ORDER BY id");
    for (const auto& row : rows) {
      const auto type = row.get<std::string>(0);
      CHECK(type == bus::event_types::audit_record);
      auto ev = bus::parse_envelope(row.get<std::string>(2));
      REQUIRE_MESSAGE(ev.has_value(), "outbox body does not parse");
      CHECK(ev->event_type == type);
      CHECK(ev->source == "email");
      auto audit = bus::audit_record::from_json(ev->data);
      REQUIRE_MESSAGE(audit.has_value(), "audit payload does not validate");
      out.push_back({row.get<std::string>(1), std::move(*ev), std::move(*audit)});
    }
  });
  for (const auto& p : out) CHECK(p.destination == f.destinations.url_for(bus::event_types::audit_record));
  return out;
}

// The one audit record of a handled event, with its correlation and causation.
bus::audit_record only_audit(email_role_fixture& f, const bus::envelope& cause) {
  const auto rows = outbox(f);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].ev.correlation_id == cause.correlation_id);
  CHECK(rows[0].ev.causation_id == cause.event_id);
  CHECK(rows[0].audit.actor == "email");
  return rows[0].audit;
}

template <typename T>
const T& outcome_as(const bus::outcome& o) {
  REQUIRE(std::holds_alternative<T>(o));
  return std::get<T>(o);
}

std::string qp_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '=') {
      out += s[i];
    } else if (s.substr(i + 1, 2) == "\r\n") {
      i += 2;
    } else {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    }
  }
  return out;
}

// The decoded text and HTML parts of a multipart/alternative message built by shopd.
std::pair<std::string, std::string> text_and_html(const std::string& message) {
  const auto text_at = message.find("Content-Type: text/plain; charset=UTF-8");
  const auto html_at = message.find("Content-Type: text/html; charset=UTF-8");
  REQUIRE(text_at != std::string::npos);
  REQUIRE(html_at != std::string::npos);
  REQUIRE(text_at < html_at);
  const auto body = [&](std::size_t at, std::size_t end) {
    const auto start = message.find("\r\n\r\n", at) + 4;
    return qp_decode(std::string_view(message).substr(start, end - start));
  };
  // Each part ends where the CRLF before the next boundary delimiter begins.
  return {body(text_at, message.rfind("\r\n--", html_at)), body(html_at, message.rfind("\r\n--"))};
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// ---------------------------------------------------------------------------------------------
// The key cases, run on SQLite and on PostgreSQL

void order_confirmation_over_smtp(backend b) {
  test_database tdb(b);
  const auto mail_dir = tdb.dir() / "received";
  fs::create_directory(mail_dir);
  smtp_server server(tdb.dir(), {"sink", "--dir", mail_dir.string()});
  email_role_fixture f(tdb.db(), settings_with({{"MAIL_TRANSPORT", "smtp"}, {"SMTP_URL", server.url()}}));

  const auto ev = confirmation_event();
  outcome_as<bus::processed>(f.deliver(ev));

  REQUIRE(messages_received(mail_dir) == 1);
  const auto message = read_file(mail_dir / "1.eml");
  const auto envelope = json::parse(read_file(mail_dir / "1.json")).as_object();
  CHECK(envelope.at("mail_from") == "shop@localhost");
  CHECK(envelope.at("rcpt_tos") == json::array{"ada@example.com"});
  CHECK(contains(message, "\r\nMessage-ID: <" + ev.event_id + "@localhost>\r\n"));
  CHECK(contains(message, "\r\nSubject: Your order ord_42 is confirmed\r\n"));
  CHECK(contains(message, "\r\nFrom: shopd <shop@localhost>\r\n"));
  const auto [text, html] = text_and_html(message);
  CHECK(contains(text, "2 x Blue mug (MUG-1), 12.50 EUR each: 25.00 EUR"));
  CHECK(contains(text, "1 x Teapot (TEA-7), 30.00 EUR each: 30.00 EUR"));
  CHECK(contains(text, "Total: 55.00 EUR"));
  CHECK(contains(html, "<td>Blue mug</td><td>MUG-1</td>"));
  CHECK(contains(html, "<td>Teapot</td><td>TEA-7</td>"));
  CHECK(contains(html, ">55.00 EUR</th>"));

  const auto row = row_of(f.db, ev.event_id);
  CHECK(row.status == "sent");
  CHECK(row.attempts == 1);
  CHECK_FALSE(row.error);
  CHECK(row.message_id == "<" + ev.event_id + "@localhost>");
  CHECK(row.transport == "smtp");
  CHECK(row.order_id == "ord_42");
  CHECK(row.subject == "Your order ord_42 is confirmed");
  CHECK(row.correlation_id == "chk_42");
  CHECK(row.sent_at_ms.has_value());
  CHECK(inbox_has(f.db, ev.event_id));

  const auto audit = only_audit(f, ev);
  CHECK(audit.action == "email.sent");
  CHECK(audit.outcome == bus::audit_outcome::success);
  CHECK(audit.entity_type == "email");
  CHECK(audit.entity_id == std::to_string(row.id));
  CHECK(audit.detail.at("to") == "ada@example.com");
  CHECK(audit.detail.at("template") == "order_confirmation");
  CHECK(audit.detail.at("orderId") == "ord_42");
  CHECK(audit.detail.at("messageId").as_string() == *row.message_id);
  CHECK(contains(audit.detail.at("handedOver").as_string(), "250"));
  CHECK(f.outbox_wakeups == 1);
  CHECK(f.sent_total() == 1);
  CHECK(f.failed_total("permanent") == 0);

  // The relay delivers again (its ack was lost): nothing is sent twice, nothing recorded twice.
  outcome_as<bus::duplicate>(f.deliver(ev));
  CHECK(messages_received(mail_dir) == 1);
  CHECK(outbox(f).size() == 1);
  CHECK(row_of(f.db, ev.event_id).attempts == 1);
  CHECK(f.sent_total() == 1);

  // Sent, but the inbox entry missing (what a concurrent delivery of the same event sees between
  // its inbox check and the other's commit): recorded as handled, not sent again.
  f.db.with_session(
      [&](soci::session& s) { s << "DELETE FROM inbox WHERE event_id = :e", soci::use(ev.event_id); });
  outcome_as<bus::duplicate>(f.deliver(ev));
  CHECK(messages_received(mail_dir) == 1);
  CHECK(inbox_has(f.db, ev.event_id));
  CHECK(outbox(f).size() == 1);
}

void smtp_down_then_up(backend b) {
  test_database tdb(b);
  const auto mail_dir = tdb.dir() / "received";
  fs::create_directory(mail_dir);
  auto refusing = std::make_unique<refusing_port>();
  const auto port = std::to_string(refusing->port());
  email_role_fixture f(tdb.db(),
                       settings_with({{"MAIL_TRANSPORT", "smtp"}, {"SMTP_URL", "smtp://127.0.0.1:" + port}}));
  const auto ev = confirmation_event();

  CHECK_THROWS_AS(static_cast<void>(f.deliver(ev)), bus::transient_failure);
  auto row = row_of(f.db, ev.event_id);
  CHECK(row.status == "pending");
  CHECK(row.attempts == 1);
  REQUIRE(row.error.has_value());
  CHECK_MESSAGE(contains(*row.error, "127.0.0.1:" + port), *row.error);
  CHECK_FALSE(inbox_has(f.db, ev.event_id));
  CHECK(outbox(f).empty());
  CHECK(f.failed_total("transient") == 1);

  SUBCASE("still down: each attempt is counted") {
    CHECK_THROWS_AS(static_cast<void>(f.deliver(ev)), bus::transient_failure);
    CHECK(row_of(f.db, ev.event_id).attempts == 2);
    CHECK(f.failed_total("transient") == 2);
  }
  SUBCASE("back up: the redelivery sends it once") {
    smtp_server server(tdb.dir(), {"sink", "--dir", mail_dir.string(), "--port", port});
    refusing.reset();
    outcome_as<bus::processed>(f.deliver(ev));
    CHECK(messages_received(mail_dir) == 1);
    row = row_of(f.db, ev.event_id);
    CHECK(row.status == "sent");
    CHECK(row.attempts == 2);
    CHECK_FALSE(row.error);
    CHECK(only_audit(f, ev).action == "email.sent");
    outcome_as<bus::duplicate>(f.deliver(ev));
    CHECK(messages_received(mail_dir) == 1);
  }
}

// This side's SMTP settings wrong (here STARTTLS required of a server that offers none; a refused
// password or an untrusted certificate are classified alike, smtp_test): every email fails until
// they are fixed, so each one is retried, never given up, and the first delivery after the fix sends
// it once.
void smtp_settings_wrong(backend b) {
  test_database tdb(b);
  const auto mail_dir = tdb.dir() / "received";
  fs::create_directory(mail_dir);
  smtp_server server(tdb.dir(), {"sink", "--dir", mail_dir.string()});
  const auto ev = confirmation_event();
  {
    email_role_fixture f(tdb.db(), settings_with({{"MAIL_TRANSPORT", "smtp"},
                                                  {"SMTP_URL", server.url() + "?starttls=required"}}));
    for (int attempt = 1; attempt <= 2; ++attempt) {
      CAPTURE(attempt);
      CHECK_THROWS_AS(static_cast<void>(f.deliver(ev)), bus::transient_failure);
      const auto row = row_of(f.db, ev.event_id);
      CHECK(row.status == "pending");
      CHECK(row.attempts == attempt);
      REQUIRE(row.error.has_value());
      CHECK_MESSAGE(contains(*row.error, "STARTTLS"), *row.error);
      CHECK_FALSE(inbox_has(f.db, ev.event_id));
      CHECK(f.failed_total("configuration") == attempt);
      CHECK(f.failed_total("transient") == 0);
      CHECK(f.failed_total("permanent") == 0);
    }
    CHECK(outbox(f).empty());
  }
  email_role_fixture fixed(tdb.db(), settings_with({{"MAIL_TRANSPORT", "smtp"}, {"SMTP_URL", server.url()}}));
  outcome_as<bus::processed>(fixed.deliver(ev));
  CHECK(messages_received(mail_dir) == 1);
  const auto row = row_of(fixed.db, ev.event_id);
  CHECK(row.status == "sent");
  CHECK(row.attempts == 3);
  CHECK(only_audit(fixed, ev).action == "email.sent");
  outcome_as<bus::duplicate>(fixed.deliver(ev));
  CHECK(messages_received(mail_dir) == 1);
}

void recipient_refused(backend b) {
  test_database tdb(b);
  const auto mail_dir = tdb.dir() / "received";
  fs::create_directory(mail_dir);
  smtp_server server(tdb.dir(), {"reject-rcpt", "--dir", mail_dir.string(), "--reject", "gone@example.com"});
  email_role_fixture f(tdb.db(), settings_with({{"MAIL_TRANSPORT", "smtp"}, {"SMTP_URL", server.url()}}));
  const auto ev = confirmation_event("gone@example.com");

  const auto r = outcome_as<bus::rejection>(f.deliver(ev));
  CHECK(r.code == "email_rejected");
  CHECK_MESSAGE(contains(r.message, "550"), r.message);
  CHECK(messages_received(mail_dir) == 0);

  const auto row = row_of(f.db, ev.event_id);
  CHECK(row.status == "failed");
  CHECK(row.attempts == 1);
  REQUIRE(row.error.has_value());
  CHECK(contains(*row.error, "User unknown"));
  CHECK_FALSE(row.message_id);
  CHECK(inbox_has(f.db, ev.event_id));

  const auto audit = only_audit(f, ev);
  CHECK(audit.action == "email.failed");
  CHECK(audit.outcome == bus::audit_outcome::failure);
  CHECK(audit.entity_type == "email");
  CHECK(audit.entity_id == std::to_string(row.id));
  CHECK(audit.detail.at("smtpCode") == 550);
  CHECK(audit.detail.at("kind") == "permanent");
  CHECK(audit.detail.at("to") == "gone@example.com");
  CHECK(contains(audit.detail.at("reason").as_string(), "550 5.1.1"));
  CHECK(f.failed_total("permanent") == 1);
  CHECK(f.sent_total() == 0);

  outcome_as<bus::duplicate>(f.deliver(ev));
  CHECK(outbox(f).size() == 1);
  CHECK(f.failed_total("permanent") == 1);
}

void template_error(backend b) {
  test_database tdb(b);
  const auto mail_dir = tdb.dir() / "mail";
  email_role_fixture f(tdb.db(), settings_with({{"MAIL_TRANSPORT", "file:" + mail_dir.string()}}));
  auto data = json::parse(R"({"to": "ada@example.com", "template": "order_confirmation"})").as_object();
  data["variables"] = json::parse(order_variables);
  data["variables"].as_object()["items"].as_array()[1].as_object()["quantity"] = "one";
  const auto ev = notification_event(data);

  const auto r = outcome_as<bus::rejection>(f.deliver(ev));
  CHECK(r.code == "invalid_variable");
  CHECK(r.field == "data.variables.items[1].quantity");

  const auto row = row_of(f.db, ev.event_id);
  CHECK(row.status == "failed");
  CHECK(row.attempts == 0);
  REQUIRE(row.error.has_value());
  CHECK(contains(*row.error, "items[1].quantity"));
  CHECK(row.order_id == "ord_42");
  CHECK(fs::is_empty(mail_dir));

  const auto audit = only_audit(f, ev);
  CHECK(audit.action == "email.failed");
  CHECK(audit.outcome == bus::audit_outcome::failure);
  CHECK(audit.entity_id == std::to_string(row.id));
  CHECK(audit.detail.at("code") == "invalid_variable");
  CHECK(audit.detail.at("field") == "data.variables.items[1].quantity");
  CHECK(f.failed_total("permanent") == 1);

  outcome_as<bus::duplicate>(f.deliver(ev));
  CHECK(outbox(f).size() == 1);
}

// Emails of two orders (and one without an order), for the API.
std::vector<bus::envelope> seed(email_role_fixture& f) {
  std::vector<bus::envelope> sent;
  for (const auto* order : {"ord_A", "ord_B", "ord_A", "ord_A", "ord_B"}) {
    sent.push_back(confirmation_event("ada@example.com", order, std::string("chk_") + order));
    outcome_as<bus::processed>(f.deliver(sent.back()));
  }
  sent.push_back(
      notification_event(json::object{{"to", "ops@example.com"},
                                      {"template", "plain"},
                                      {"variables", {{"subject", "Stock is low"}, {"text", "x"}}}}));
  outcome_as<bus::processed>(f.deliver(sent.back()));
  return sent;
}

json::object body_of(const http::response& res) {
  return json::parse(res.body()).as_object();
}

void api(backend b) {
  test_database tdb(b);
  email_role_fixture f(tdb.db(),
                       settings_with({{"MAIL_TRANSPORT", "file:" + (tdb.dir() / "mail").string()}}));
  const auto events = seed(f);

  SUBCASE("all emails, newest first") {
    const auto res = f.get("/api/emails");
    REQUIRE(res.result() == http::status::ok);
    const auto body = body_of(res);
    const auto& emails = body.at("emails").as_array();
    REQUIRE(emails.size() == events.size());
    CHECK(body.at("nextCursor").is_null());
    for (std::size_t i = 0; i < emails.size(); ++i) {
      CHECK(emails[i].at("eventId").as_string() == events[events.size() - 1 - i].event_id);
    }
    const auto& plain = emails[0].as_object();
    CHECK(plain.at("orderId").is_null());
    CHECK(plain.at("subject") == "Stock is low");
    const auto& first = emails.back().as_object();
    CHECK(first.at("orderId") == "ord_A");
    CHECK(first.at("to") == "ada@example.com");
    CHECK(first.at("template") == "order_confirmation");
    CHECK(first.at("status") == "sent");
    CHECK(first.at("transport") == "file");
    CHECK(first.at("messageId").as_string() == "<" + events[0].event_id + "@localhost>");
    CHECK(first.at("attempts") == 1);
    CHECK(first.at("error").is_null());
    CHECK(first.at("correlationId") == "chk_ord_A");
    CHECK(bus::parse_timestamp(first.at("createdAt").as_string()).has_value());
    CHECK(bus::parse_timestamp(first.at("sentAt").as_string()).has_value());
  }
  SUBCASE("one order's emails") {
    const auto body = body_of(f.get("/api/emails?orderId=ord_A"));
    const auto& emails = body.at("emails").as_array();
    REQUIRE(emails.size() == 3);
    CHECK(emails[0].at("eventId").as_string() == events[3].event_id);
    CHECK(emails[2].at("eventId").as_string() == events[0].event_id);
    for (const auto& e : emails) CHECK(e.at("orderId") == "ord_A");
    CHECK(body_of(f.get("/api/emails?orderId=ord_none")).at("emails").as_array().empty());
  }
  SUBCASE("pages of two, following nextCursor to the end") {
    std::vector<std::string> seen;
    std::string target = "/api/emails?limit=2";
    for (int page = 0; page < 10; ++page) {
      const auto body = body_of(f.get(target));
      const auto& emails = body.at("emails").as_array();
      CHECK(emails.size() <= 2);
      for (const auto& e : emails) seen.emplace_back(e.at("eventId").as_string());
      if (body.at("nextCursor").is_null()) break;
      target = "/api/emails?limit=2&cursor=" + std::string(body.at("nextCursor").as_string());
    }
    REQUIRE(seen.size() == events.size());
    for (std::size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == events[events.size() - 1 - i].event_id);

    const auto filtered = body_of(f.get("/api/emails?orderId=ord_A&limit=2"));
    REQUIRE(filtered.at("emails").as_array().size() == 2);
    const auto rest = body_of(f.get("/api/emails?orderId=ord_A&limit=2&cursor=" +
                                    std::string(filtered.at("nextCursor").as_string())));
    REQUIRE(rest.at("emails").as_array().size() == 1);
    CHECK(rest.at("emails").as_array()[0].at("eventId").as_string() == events[0].event_id);
    CHECK(rest.at("nextCursor").is_null());
  }
  SUBCASE("one email by id") {
    const auto list = body_of(f.get("/api/emails?limit=1"));
    const auto id = list.at("emails").as_array()[0].at("id").as_int64();
    const auto res = f.get("/api/emails/" + std::to_string(id));
    REQUIRE(res.result() == http::status::ok);
    CHECK(body_of(res) == list.at("emails").as_array()[0].as_object());
    CHECK(f.get("/api/emails/" + std::to_string(id + 1000)).result() == http::status::not_found);
    const auto bad = f.get("/api/emails/abc");
    CHECK(bad.result() == http::status::bad_request);
    CHECK(body_of(bad).at("field") == "id");
  }
  SUBCASE("bad parameters are 400 naming the parameter") {
    for (const auto& [target, field] :
         std::vector<std::pair<std::string, std::string>>{{"/api/emails?limit=0", "limit"},
                                                          {"/api/emails?limit=101", "limit"},
                                                          {"/api/emails?limit=ten", "limit"},
                                                          {"/api/emails?cursor=nonsense", "cursor"},
                                                          {"/api/emails?orderId=a%20b", "orderId"},
                                                          {"/api/emails?orderId=", "orderId"}}) {
      CAPTURE(target);
      const auto res = f.get(target);
      CHECK(res.result() == http::status::bad_request);
      CHECK(body_of(res).at("field").as_string() == field);
    }
  }
  SUBCASE("a bearer token is required") {
    for (const auto* target : {"/api/emails", "/api/emails/1"}) {
      CAPTURE(target);
      CHECK(f.get(target, std::nullopt).result() == http::status::unauthorized);
      CHECK(f.get(target, "wrong-token").result() == http::status::unauthorized);
    }
  }
}

}  // namespace

TEST_SUITE("integration/roles/email") {
  TEST_CASE("email role: an order confirmation over real SMTP, sent once (SQLite)") {
    order_confirmation_over_smtp(backend::sqlite);
  }
  TEST_CASE("email role: an order confirmation over real SMTP, sent once (PostgreSQL)") {
    order_confirmation_over_smtp(backend::postgresql);
  }
  TEST_CASE("email role: SMTP down is transient, and once it is back the redelivery sends once (SQLite)") {
    smtp_down_then_up(backend::sqlite);
  }
  TEST_CASE(
      "email role: SMTP down is transient, and once it is back the redelivery sends once (PostgreSQL)") {
    smtp_down_then_up(backend::postgresql);
  }
  TEST_CASE("email role: wrong SMTP settings fail every email alike: retried, sent once fixed (SQLite)") {
    smtp_settings_wrong(backend::sqlite);
  }
  TEST_CASE("email role: wrong SMTP settings fail every email alike: retried, sent once fixed (PostgreSQL)") {
    smtp_settings_wrong(backend::postgresql);
  }
  TEST_CASE("email role: a refused recipient is a permanent failure (SQLite)") {
    recipient_refused(backend::sqlite);
  }
  TEST_CASE("email role: a refused recipient is a permanent failure (PostgreSQL)") {
    recipient_refused(backend::postgresql);
  }
  TEST_CASE("email role: a template error is a permanent failure (SQLite)") {
    template_error(backend::sqlite);
  }
  TEST_CASE("email role: a template error is a permanent failure (PostgreSQL)") {
    template_error(backend::postgresql);
  }
  TEST_CASE("email role: the emails API (SQLite)") {
    api(backend::sqlite);
  }
  TEST_CASE("email role: the emails API (PostgreSQL)") {
    api(backend::postgresql);
  }

  TEST_CASE("email role: a 4xx reply is transient") {
    test_database tdb(backend::sqlite);
    smtp_server server(tdb.dir(), {"tempfail", "--stage", "data"});
    email_role_fixture f(tdb.db(), settings_with({{"MAIL_TRANSPORT", "smtp"}, {"SMTP_URL", server.url()}}));
    const auto ev = confirmation_event();
    CHECK_THROWS_AS(static_cast<void>(f.deliver(ev)), bus::transient_failure);
    const auto row = row_of(f.db, ev.event_id);
    CHECK(row.status == "pending");
    CHECK(row.attempts == 1);
    REQUIRE(row.error.has_value());
    CHECK_MESSAGE(contains(*row.error, "451"), *row.error);
    CHECK(outbox(f).empty());
  }

  TEST_CASE("email role: the file transport writes one .eml and records it") {
    test_database tdb(backend::sqlite);
    const auto mail_dir = tdb.dir() / "mail";
    email_role_fixture f(tdb.db(), settings_with({{"MAIL_TRANSPORT", "file:" + mail_dir.string()}}));
    const auto ev = confirmation_event();
    outcome_as<bus::processed>(f.deliver(ev));
    outcome_as<bus::duplicate>(f.deliver(ev));

    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(mail_dir)) files.push_back(entry.path());
    REQUIRE(files.size() == 1);
    CHECK(files[0].extension() == ".eml");
    CHECK(contains(files[0].filename().string(), ev.event_id));
    const auto message = read_file(files[0]);
    CHECK(contains(message, "\r\nMessage-ID: <" + ev.event_id + "@localhost>\r\n"));
    CHECK(contains(text_and_html(message).first, "Total: 55.00 EUR"));

    const auto row = row_of(f.db, ev.event_id);
    CHECK(row.status == "sent");
    CHECK(row.transport == "file");
    CHECK(row.message_id == "<" + ev.event_id + "@localhost>");
    const auto audit = only_audit(f, ev);
    CHECK(audit.action == "email.sent");
    CHECK(audit.detail.at("transport") == "file");
    CHECK(audit.detail.at("handedOver").as_string() == files[0].string());
  }

  TEST_CASE("email role: an invalid payload is rejected and audited, and creates no email") {
    test_database tdb(backend::sqlite);
    email_role_fixture f(tdb.db(),
                         settings_with({{"MAIL_TRANSPORT", "file:" + (tdb.dir() / "mail").string()}}));
    const auto ev = notification_event(json::object{{"to", "not an address"}, {"template", "plain"}});
    const auto r = outcome_as<bus::rejection>(f.deliver(ev));
    CHECK(r.code == "invalid_payload");
    CHECK(r.field == "data.to");
    CHECK(count(f.db, "SELECT COUNT(*) FROM emails") == 0);
    CHECK(inbox_has(f.db, ev.event_id));
    const auto audit = only_audit(f, ev);
    CHECK(audit.action == "email.rejected");
    CHECK(audit.outcome == bus::audit_outcome::failure);
    CHECK(audit.entity_type == "event");
    CHECK(audit.entity_id == ev.event_id);
    CHECK(audit.detail.at("field") == "data.to");
    outcome_as<bus::duplicate>(f.deliver(ev));
    CHECK(outbox(f).size() == 1);
  }

  TEST_CASE("email role: an unknown template is rejected on data.template") {
    test_database tdb(backend::sqlite);
    email_role_fixture f(tdb.db(),
                         settings_with({{"MAIL_TRANSPORT", "file:" + (tdb.dir() / "mail").string()}}));
    const auto ev = notification_event(json::object{{"to", "ada@example.com"}, {"template", "newsletter"}});
    const auto r = outcome_as<bus::rejection>(f.deliver(ev));
    CHECK(r.code == "unknown_template");
    CHECK(r.field == "data.template");
    CHECK(row_of(f.db, ev.event_id).status == "failed");
  }

  TEST_CASE("email role: a bad mail configuration fails start-up with one line naming the key") {
    test_database tdb(backend::sqlite);
    const auto failure = [&](config::string_map flags) -> std::string {
      try {
        email_role_fixture f(tdb.db(), settings_with(std::move(flags)));
      } catch (const config::config_error& e) {
        return e.what();
      }
      FAIL("start-up succeeded");
      return {};
    };
    const auto smtp_missing = failure({{"MAIL_TRANSPORT", "smtp"}});
    CHECK_MESSAGE(contains(smtp_missing, "SMTP_URL"), smtp_missing);
    const auto bad_option =
        failure({{"MAIL_TRANSPORT", "smtp"}, {"SMTP_URL", "smtp://127.0.0.1:25?tls=yes"}});
    CHECK_MESSAGE(contains(bad_option, "SMTP_URL"), bad_option);
    const auto bad_from = failure({{"MAIL_FROM", "shop@exa_mple.com"}});
    CHECK_MESSAGE(bad_from.starts_with("MAIL_FROM: "), bad_from);
    const auto long_domain =
        failure({{"MAIL_FROM", "shop@" + std::string(60, 'a') + "." + std::string(60, 'b')}});
    CHECK_MESSAGE(long_domain.starts_with("MAIL_FROM: "), long_domain);
    for (const auto& message : {smtp_missing, bad_option, bad_from, long_domain}) {
      CHECK(message.find('\n') == std::string::npos);
    }
  }
}
