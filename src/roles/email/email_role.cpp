#include "shopd/roles/email/email_role.hpp"

#include "shopd/bus/dispatch.hpp"
#include "shopd/bus/events.hpp"
#include "shopd/config/config.hpp"
#include "shopd/db/database.hpp"
#include "shopd/http/auth.hpp"
#include "shopd/http/router.hpp"
#include "shopd/mail/transport.hpp"
#include "shopd/obs/log.hpp"
#include "shopd/obs/metrics.hpp"
#include "shopd/roles/email/compose.hpp"
#include "shopd/roles/email/email_query.hpp"

#include "roles/email/email_repository.hpp"

#include <boost/json/value.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>

namespace shopd::roles::email {

namespace {

namespace json = boost::json;

constexpr std::string_view entity_type = "email";

mail::mailbox sender_from(const config::settings& s) {
  auto from = mail::mailbox::parse(s.mail_from);
  if (!from) throw config::config_error("MAIL_FROM: " + from.error().message);
  if (from->domain().size() > max_sender_domain) {
    throw config::config_error("MAIL_FROM: the domain is longer than " + std::to_string(max_sender_domain) +
                               " characters, too long for the Message-IDs derived from it");
  }
  return std::move(*from);
}

std::unique_ptr<mail::transport> transport_from(const config::settings& s) {
  try {
    return mail::make_transport(s.mail_transport, s.smtp_url);
  } catch (const std::invalid_argument& e) {
    // The factory's messages already name the key (MAIL_TRANSPORT, SMTP_URL).
    throw config::config_error(e.what());
  }
}

json::object audit_detail(const bus::email_notification& n, const std::optional<std::string>& order_id) {
  return json::object{{"to", n.to},
                      {"template", n.template_name},
                      {"orderId", order_id ? json::value(*order_id) : json::value(nullptr)}};
}

[[noreturn]] void bad_parameter(const query_error& e) {
  throw http::http_error(http::status::bad_request, "invalid_parameter", e.message, e.field);
}

class email_role final : public app::role {
 public:
  explicit email_role(app::role_context& ctx)
      : db_(ctx.db),
        api_token_(ctx.settings.shopd_api_token),
        from_(sender_from(ctx.settings)),
        transport_(transport_from(ctx.settings)),
        transport_name_(ctx.settings.mail_transport == "smtp" ? "smtp" : "file"),
        sent_(
            ctx.metrics.counter_family("shopd_emails_sent_total", "Emails handed over to the mail transport")
                .get()),
        failed_transient_(failed_family(ctx).with({"transient"})),
        failed_configuration_(failed_family(ctx).with({"configuration"})),
        failed_permanent_(failed_family(ctx).with({"permanent"})) {
    ctx.events.on(bus::event_types::email_notification, [this](bus::delivery& d) { return handle(d); });
    ctx.routes.add(
        http::verb::get, "/api/emails", [this](http::request_context& rc) { return list(rc); },
        http::execution::blocking);
    ctx.routes.add(
        http::verb::get, "/api/emails/{id}", [this](http::request_context& rc) { return get(rc); },
        http::execution::blocking);
    obs::info("mail transport ready", {{"role", ctx.name}, {"transport", transport_->describe()}});
  }

 private:
  static obs::family<obs::counter>& failed_family(app::role_context& ctx) {
    return ctx.metrics.counter_family(
        "shopd_emails_failed_total",
        "Email hand-overs that failed: transient ones are retried, configuration ones too (SMTP_URL's "
        "credentials, CA file or STARTTLS: every email fails until it is fixed), permanent ones (refused "
        "by the server, unrenderable) are not",
        {"kind"});
  }

  // Sending cannot join a database transaction, so the steps are: the inbox check; the emails row
  // in its own transaction (transient failures count their attempts on it); the hand-over outside
  // any transaction; its outcome committed together with the inbox entry (delivery::once).
  bus::outcome handle(bus::delivery& d) {
    if (d.seen()) return bus::duplicate{};
    const auto& ev = d.event();
    auto decoded = bus::email_notification::from_json(ev.data);
    if (!decoded) return reject_payload(d, decoded.error());
    const auto& n = *decoded;
    const auto order_id = order_id_of(n.variables);

    auto composed = compose(n, from_, ev.event_id, std::chrono::system_clock::now());
    const new_email spec{.event_id = ev.event_id,
                         .order_id = order_id,
                         .to = n.to,
                         .template_name = n.template_name,
                         .subject = composed ? composed->subject : n.subject.value_or(""),
                         .correlation_id = ev.correlation_id,
                         .created_at_ms = bus::now_ms()};
    if (!composed) return reject_unbuildable(d, n, spec, composed.error());

    const auto row = d.db().in_transaction([&](soci::session& tx) { return ensure_email(tx, spec); });
    if (row.status != email_status::pending) {
      // An earlier delivery finished this email, but its inbox entry is not there (a concurrent
      // delivery of the same event committing between our check and now): record the event, send nothing.
      const bool first = d.once([](bus::unit_of_work&) {});
      obs::info("email already handled", {{"eventId", ev.event_id},
                                          {"emailId", row.id},
                                          {"status", to_string(row.status)},
                                          {"recorded", first}});
      return bus::duplicate{};
    }

    const auto result = transport_->send(composed->mail);
    if (const auto* ok = std::get_if<mail::sent>(&result))
      return record_sent(d, n, order_id, row, *composed, *ok);
    if (const auto* t = std::get_if<mail::transient_failure>(&result)) defer(d, row, *t);
    return record_refused(d, n, order_id, row, std::get<mail::permanent_failure>(result));
  }

  bus::outcome reject_payload(bus::delivery& d, const bus::validation_error& e) {
    const auto& ev = d.event();
    const bool first = d.once([&](bus::unit_of_work& uow) {
      uow.audit("email.rejected", "event", ev.event_id, false,
                json::object{{"code", "invalid_payload"}, {"field", e.field}, {"message", e.message}});
    });
    if (!first) return bus::duplicate{};
    return bus::rejection{.code = "invalid_payload", .field = e.field, .message = e.message};
  }

  // The template cannot be rendered with these variables, or the result is not a valid message:
  // every delivery would fail the same way.
  bus::outcome reject_unbuildable(bus::delivery& d, const bus::email_notification& n, const new_email& spec,
                                  const mail::mail_error& e) {
    auto r = rejection_for(e, n);
    bool finished_before = false;
    const bool first = d.once([&](bus::unit_of_work& uow) {
      const auto row = ensure_email(uow.tx(), spec);
      if (row.status != email_status::pending) {
        finished_before = true;
        return;
      }
      mark_failed(uow.tx(), row.id, e.message, false);
      auto detail = audit_detail(n, spec.order_id);
      detail["kind"] = "permanent";
      detail["code"] = r.code;
      detail["field"] = r.field;
      detail["reason"] = e.message;
      uow.audit("email.failed", entity_type, std::to_string(row.id), false, std::move(detail));
    });
    if (!first || finished_before) return bus::duplicate{};
    failed_permanent_.inc();
    obs::warn("email not renderable", {{"eventId", d.event().event_id},
                                       {"correlation_id", spec.correlation_id},
                                       {"code", r.code},
                                       {"field", r.field},
                                       {"reason", e.message}});
    return r;
  }

  bus::outcome record_sent(bus::delivery& d, const bus::email_notification& n,
                           const std::optional<std::string>& order_id, const email_record& row,
                           const composed_email& composed, const mail::sent& ok) {
    sent_.inc();
    const bool first = d.once([&](bus::unit_of_work& uow) {
      mark_sent(uow.tx(), row.id, composed.mail.message_id, transport_name_, uow.now_ms());
      auto detail = audit_detail(n, order_id);
      detail["messageId"] = composed.mail.message_id;
      detail["transport"] = transport_name_;
      detail["handedOver"] = ok.detail;
      uow.audit("email.sent", entity_type, std::to_string(row.id), true, std::move(detail));
    });
    const auto& ev = d.event();
    if (!first) {
      obs::warn("email sent by two concurrent deliveries of one event",
                {{"eventId", ev.event_id}, {"emailId", row.id}, {"messageId", composed.mail.message_id}});
      return bus::duplicate{};
    }
    obs::info("email sent", {{"eventId", ev.event_id},
                             {"emailId", row.id},
                             {"messageId", composed.mail.message_id},
                             {"correlation_id", ev.correlation_id},
                             {"detail", ok.detail}});
    return bus::processed{};
  }

  // Keeps the attempt on the row (its own short transaction: there is no inbox entry to write yet)
  // and answers 503, so the relay delivers the event again later. A failure of this side's SMTP
  // settings is retried too (the email is not at fault: once SMTP_URL is fixed a redelivery or a DLQ
  // replay sends it), but logged as an error, since no email goes out until someone fixes them.
  [[noreturn]] void defer(bus::delivery& d, const email_record& row, const mail::transient_failure& t) {
    d.db().in_transaction([&](soci::session& tx) { record_transient_failure(tx, row.id, t.reason); });
    const std::initializer_list<obs::field> fields{{"eventId", d.event().event_id},
                                                   {"emailId", row.id},
                                                   {"attempt", row.attempts + 1},
                                                   {"reason", t.reason}};
    if (t.configuration) {
      failed_configuration_.inc();
      obs::error("email not sent: the SMTP settings are wrong; fix SMTP_URL, the email is retried", fields);
    } else {
      failed_transient_.inc();
      obs::warn("email not sent yet", fields);
    }
    // The reason (server names, replies) stays in the row and the log, not in the relay's records.
    throw bus::transient_failure("the mail transport is unavailable; retry later");
  }

  bus::outcome record_refused(bus::delivery& d, const bus::email_notification& n,
                              const std::optional<std::string>& order_id, const email_record& row,
                              const mail::permanent_failure& p) {
    failed_permanent_.inc();
    const bool first = d.once([&](bus::unit_of_work& uow) {
      mark_failed(uow.tx(), row.id, p.reason, true);
      auto detail = audit_detail(n, order_id);
      detail["kind"] = "permanent";
      detail["reason"] = p.reason;
      detail["smtpCode"] = p.smtp_code != 0 ? json::value(p.smtp_code) : json::value(nullptr);
      uow.audit("email.failed", entity_type, std::to_string(row.id), false, std::move(detail));
    });
    obs::warn("email refused", {{"eventId", d.event().event_id},
                                {"emailId", row.id},
                                {"smtp_code", p.smtp_code},
                                {"reason", p.reason}});
    if (!first) return bus::duplicate{};
    return bus::rejection{.code = "email_rejected", .field = "", .message = p.reason};
  }

  http::response list(http::request_context& rc) {
    http::require_bearer(rc, api_token_);
    const auto q =
        parse_list_query(rc.query_param("orderId"), rc.query_param("limit"), rc.query_param("cursor"));
    if (!q) bad_parameter(q.error());
    const auto rows = db_.with_session([&](soci::session& s) { return list_emails(s, *q); });
    return http::json_response(http::status::ok, json::value(page_json(rows, q->limit)));
  }

  http::response get(http::request_context& rc) {
    http::require_bearer(rc, api_token_);
    const auto id = parse_email_id(rc.param("id"));
    if (!id) bad_parameter(id.error());
    const auto row = db_.with_session([&](soci::session& s) { return find_email(s, *id); });
    if (!row) {
      throw http::http_error(http::status::not_found, "not_found", "no email with id " + std::to_string(*id));
    }
    return http::json_response(http::status::ok, json::value(to_json(*row)));
  }

  db::database& db_;
  std::string api_token_;
  mail::mailbox from_;
  std::unique_ptr<mail::transport> transport_;
  std::string transport_name_;
  obs::counter& sent_;
  obs::counter& failed_transient_;
  obs::counter& failed_configuration_;
  obs::counter& failed_permanent_;
};

}  // namespace

std::unique_ptr<app::role> make_email_role(app::role_context& ctx) {
  return std::make_unique<email_role>(ctx);
}

}  // namespace shopd::roles::email
