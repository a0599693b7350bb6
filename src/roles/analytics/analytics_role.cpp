#include "shopd/roles/analytics/analytics_role.hpp"

// Ahead of http/message.hpp: GCC 12's -Wshadow takes the enumerator client_stage::request for a
// shadow of the type alias http::request when the alias is declared first.
#include "shopd/http/client.hpp"

#include "shopd/bus/dispatch.hpp"
#include "shopd/bus/events.hpp"
#include "shopd/bus/signature.hpp"
#include "shopd/config/config.hpp"
#include "shopd/db/database.hpp"
#include "shopd/http/auth.hpp"
#include "shopd/http/router.hpp"
#include "shopd/obs/log.hpp"
#include "shopd/obs/metrics.hpp"
#include "shopd/roles/analytics/analytics_repository.hpp"
#include "shopd/roles/analytics/failure_callback.hpp"
#include "shopd/roles/analytics/query.hpp"
#include "shopd/roles/analytics/records.hpp"
#include "shopd/roles/analytics/replay.hpp"

#include <boost/json.hpp>

#include <charconv>
#include <chrono>
#include <utility>

namespace shopd::roles::analytics {

namespace {

namespace json = boost::json;
using http::status;

constexpr std::chrono::milliseconds replay_timeout{10'000};

bus::timestamp now() {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

// The counters of rows stored, one per kind, created up front so that every kind renders (at 0).
struct record_counters {
  obs::counter& audit;
  obs::counter& metric;
  obs::counter& dlq;
  obs::counter& sale;

  explicit record_counters(obs::registry& r)
      : record_counters(r.counter_family("shopd_analytics_records_total",
                                         "Rows stored by the analytics role, by kind", {"kind"})) {}

 private:
  explicit record_counters(obs::family<obs::counter>& f)
      : audit(f.with({"audit"})), metric(f.with({"metric"})), dlq(f.with({"dlq"})), sale(f.with({"sale"})) {}
};

// A refused event is audited like the webhook audits a refused envelope. What this emits is built
// from validated fields only, so analytics always accepts it: no refusal can feed another.
void audit_rejection(bus::unit_of_work& uow, const bus::envelope& ev, const bus::rejection& r) {
  uow.audit("event.rejected", "event", ev.event_id, false,
            json::object{
                {"code", r.code}, {"field", r.field}, {"message", r.message}, {"eventType", ev.event_type}});
}

// The handler storing events of type Payload: `store(tx, event, payload, now_ms)` inserts the row and
// says whether it was new. Successful recordings emit nothing (auditing them would loop).
template <class Payload, class Store>
bus::event_handler recorder(obs::counter& recorded, Store store) {
  return [&recorded, store = std::move(store)](bus::delivery& d) -> bus::outcome {
    const bus::envelope& ev = d.event();
    const auto payload = bus::payload_of<Payload>(ev);
    std::optional<bus::rejection> rejected;
    bool stored = false;
    const bool first = d.once([&](bus::unit_of_work& uow) {
      if (!payload) {
        rejected = bus::rejection{"invalid_payload", payload.error().field, payload.error().message};
        audit_rejection(uow, ev, *rejected);
        return;
      }
      stored = store(uow.tx(), ev, *payload, uow.now_ms());
    });
    if (!first) return bus::duplicate{};
    if (rejected) return *rejected;
    // A row with this event id (or order) exists although the inbox did not know the event.
    if (!stored) return bus::duplicate{};
    recorded.inc();
    return bus::processed{};
  };
}

http::http_error query_error(const bus::validation_error& e) {
  return {status::bad_request, "invalid_query", e.field + " " + e.message, e.field};
}

// One page of a list fetched with one row more than `limit`: that row only says a next page exists.
template <class Row>
json::object page_json(std::string_view key, std::vector<Row> rows, std::int64_t limit, cursor_kind kind) {
  json::value next = nullptr;
  if (rows.size() > static_cast<std::size_t>(limit)) {
    rows.resize(static_cast<std::size_t>(limit));
    next = encode_cursor(kind, rows.back().id);
  }
  json::array items;
  items.reserve(rows.size());
  for (const Row& r : rows) items.push_back(to_json(r));
  return json::object{{key, std::move(items)}, {"nextCursor", std::move(next)}};
}

// The `{id}` of a dead-letter route: a positive decimal integer.
std::optional<std::int64_t> path_id(std::string_view text) {
  std::int64_t id = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc{} || end != text.data() + text.size() || id <= 0) return std::nullopt;
  return id;
}

class service {
 public:
  explicit service(app::role_context& ctx)
      : role_(ctx.name),
        settings_(ctx.settings),
        db_(ctx.db),
        destinations_(ctx.destinations),
        notify_outbox_(ctx.notify_outbox),
        records_(ctx.metrics),
        callback_refused_(ctx.metrics.counter_family("shopd_dlq_callback_refused_total",
                                                     "Failure callbacks refused, by reason", {"reason"})),
        on_dead_letter_(recorder<bus::dead_letter>(
            records_.dlq,
            [](soci::session& tx, const bus::envelope& ev, const bus::dead_letter& p, std::int64_t t) {
              return repository::insert_dead_letter(tx, to_row(ev, p, t));
            })) {}

  void register_handlers(bus::event_router& events) {
    events.on(bus::event_types::audit_record,
              recorder<bus::audit_record>(records_.audit, [](soci::session& tx, const bus::envelope& ev,
                                                             const bus::audit_record& p, std::int64_t t) {
                return repository::insert_audit(tx, to_row(ev, p, t));
              }));
    events.on(bus::event_types::metric_point,
              recorder<bus::metric_point>(records_.metric, [](soci::session& tx, const bus::envelope& ev,
                                                              const bus::metric_point& p, std::int64_t t) {
                return repository::insert_metric(tx, to_row(ev, p, t));
              }));
    events.on(bus::event_types::dead_letter, on_dead_letter_);
    events.on(bus::event_types::order_created,
              recorder<bus::order_created>(
                  records_.sale, [](soci::session& tx, const bus::envelope& ev, const bus::order_created& p,
                                    std::int64_t) { return repository::insert_sale(tx, to_row(ev, p)); }));
  }

  http::response failure_callback(http::request_context& rc) {
    const auto& req = rc.req;
    const bus::signing_keys keys{settings_.qstash_current_signing_key, settings_.qstash_next_signing_key};
    bus::verify_options vo;
    vo.clock_tolerance = std::chrono::seconds(settings_.signature_clock_tolerance_s);
    vo.expected_url = destinations_.failure_callback_url();
    const auto verified =
        bus::verify(req["Upstash-Signature"], keys, req.body(), std::chrono::system_clock::now(), vo);
    if (!verified) {
      const auto reason = std::string(bus::to_string(verified.error()));
      obs::warn("failure callback signature rejected", {{"role", role_}, {"reason", reason}});
      callback_refused_.with({reason}).inc();
      return http::json_error(status::unauthorized, "unauthorized", "missing or invalid Upstash-Signature");
    }

    auto report = parse_failure_callback(req.body());
    if (!report) {
      const auto& e = report.error();
      obs::warn("failure callback refused", {{"role", role_}, {"field", e.field}, {"message", e.message}});
      callback_refused_.with({"invalid_callback"}).inc();
      const std::string message = e.field.empty() ? e.message : e.field + " " + e.message;
      return http::json_error(status::bad_request, "invalid_callback", message, e.field);
    }
    const bus::envelope ev = to_envelope(*report, now());
    rc.correlation_id = ev.correlation_id;

    bus::delivery d(ev, role_, db_, destinations_, notify_outbox_);
    bus::outcome outcome;
    try {
      outcome = on_dead_letter_(d);
    } catch (const db::transient_error& e) {
      obs::warn("failure callback deferred",
                {{"role", role_}, {"eventId", ev.event_id}, {"reason", e.what()}});
      return http::json_error(status::service_unavailable, "unavailable",
                              "temporarily unavailable, retry later");
    }
    if (const auto* r = std::get_if<bus::rejection>(&outcome)) {
      // parse_failure_callback applies the payload's rules, so this means the two disagree.
      obs::error("failure callback rejected by the dead-letter handler",
                 {{"role", role_}, {"eventId", ev.event_id}, {"field", r->field}, {"message", r->message}});
      return http::json_error(status::bad_request, r->code, r->message, r->field);
    }
    const bool duplicate = std::holds_alternative<bus::duplicate>(outcome);
    obs::info("dead letter reported", {{"role", role_},
                                       {"eventId", ev.event_id},
                                       {"sourceMessageId", report->letter.source_message_id},
                                       {"correlation_id", ev.correlation_id},
                                       {"duplicate", duplicate}});
    return http::json_response(status::ok, json::object{{"status", duplicate ? "duplicate" : "processed"},
                                                        {"eventId", ev.event_id}});
  }

  http::response audit(http::request_context& rc) {
    http::require_bearer(rc, settings_.shopd_api_token);
    const auto q = parse_audit_query([&](std::string_view name) { return rc.query_param(name); });
    if (!q) throw query_error(q.error());
    auto rows = db_.with_session([&](soci::session& s) { return repository::find_audit(s, *q); });
    return http::json_response(status::ok,
                               page_json("records", std::move(rows), q->page.limit, cursor_kind::audit));
  }

  http::response summary(http::request_context& rc) {
    http::require_bearer(rc, settings_.shopd_api_token);
    const auto s = db_.with_session([](soci::session& session) { return repository::load_summary(session); });
    return http::json_response(status::ok, to_json(s));
  }

  http::response dead_letters(http::request_context& rc) {
    http::require_bearer(rc, settings_.shopd_api_token);
    const auto page =
        parse_page([&](std::string_view name) { return rc.query_param(name); }, cursor_kind::dead_letters);
    if (!page) throw query_error(page.error());
    auto rows = db_.with_session([&](soci::session& s) { return repository::list_dead_letters(s, *page); });
    return http::json_response(
        status::ok, page_json("deadLetters", std::move(rows), page->limit, cursor_kind::dead_letters));
  }

  http::response replay(http::request_context& rc) {
    http::require_bearer(rc, settings_.shopd_api_token);
    const auto id = path_id(rc.param("id"));
    const auto row =
        id ? db_.with_session([&](soci::session& s) { return repository::find_dead_letter(s, *id); })
           : std::nullopt;
    if (!row) throw http::http_error(status::not_found, "not_found", "no such dead letter", "id");
    if (!row->dlq_id) {
      throw http::http_error(
          status::not_found, "not_found",
          "dead letter " + std::to_string(*id) + " has no dlqId: there is no DLQ entry to retry", "id");
    }
    if (row->replayed_at_ms) {
      throw http::http_error(
          status::conflict, "already_replayed",
          "dead letter " + std::to_string(*id) + " was replayed at " + format_ms(*row->replayed_at_ms));
    }

    http::client_request request{.method = http::verb::post,
                                 .url = replay_url(settings_.qstash_url, *row->dlq_id),
                                 .headers = {},
                                 .body = {},
                                 .timeout = replay_timeout};
    if (!settings_.qstash_token.empty())
      request.headers.emplace_back("Authorization", "Bearer " + settings_.qstash_token);
    const auto answer = http::send_blocking(std::move(request));
    if (!answer) {
      obs::warn("dlq replay failed",
                {{"role", role_}, {"dlqId", *row->dlq_id}, {"error", answer.error().message}});
      throw http::http_error(status::bad_gateway, "upstream_error",
                             "replay request failed: " + answer.error().message);
    }
    if (answer->status < 200 || answer->status > 299) {
      const auto message = upstream_error(answer->status, answer->body);
      obs::warn("dlq replay refused", {{"role", role_}, {"dlqId", *row->dlq_id}, {"error", message}});
      throw http::http_error(status::bad_gateway, "upstream_error", message);
    }

    const auto message_id = replayed_message_id(answer->body);
    std::optional<dead_letter_row> updated;
    try {
      updated = record_replay(*row, message_id);
    } catch (const std::exception& e) {
      // QStash has already re-published the message and dropped its DLQ entry: say so, since the
      // dead letter will keep looking unreplayed.
      obs::error("dead letter replayed but not recorded",
                 {{"role", role_}, {"id", *id}, {"dlqId", *row->dlq_id}, {"error", e.what()}});
      throw;
    }
    if (notify_outbox_) notify_outbox_();
    obs::info(
        "dead letter replayed",
        {{"role", role_}, {"id", *id}, {"dlqId", *row->dlq_id}, {"messageId", message_id.value_or("")}});
    return http::json_response(
        status::ok,
        json::object{{"deadLetter", updated ? json::value(to_json(*updated)) : json::value(nullptr)},
                     {"messageId", message_id ? json::value(*message_id) : json::value(nullptr)}});
  }

 private:
  // Marks the dead letter replayed and audits it (for its own chain, or `uncorrelated`), in one
  // transaction. Returns the row as it is now.
  std::optional<dead_letter_row> record_replay(const dead_letter_row& row,
                                               const std::optional<std::string>& message_id) {
    return db_.in_transaction([&](soci::session& tx) {
      bus::unit_of_work uow(tx, role_, nullptr, destinations_, bus::now_ms());
      repository::mark_replayed(tx, row.id, uow.now_ms());
      json::object detail{{"dlqId", row.dlq_id.value_or("")}};
      if (row.source_message_id) detail["sourceMessageId"] = *row.source_message_id;
      if (message_id) detail["messageId"] = *message_id;
      const bus::audit_record rec{.action = "dlq.replayed",
                                  .actor = std::string(role_),
                                  .entity_type = "dead_letter",
                                  .entity_id = std::to_string(row.id),
                                  .outcome = bus::audit_outcome::success,
                                  .detail = std::move(detail)};
      const std::string_view correlation =
          row.correlation_id && bus::is_valid_id(*row.correlation_id) ? *row.correlation_id : uncorrelated;
      uow.emit(bus::event_types::audit_record, bus::to_json(rec), correlation);
      return repository::find_dead_letter(tx, row.id);
    });
  }

  std::string_view role_;
  const config::settings& settings_;
  db::database& db_;
  const bus::destinations& destinations_;
  std::function<void()> notify_outbox_;
  record_counters records_;
  obs::family<obs::counter>& callback_refused_;
  bus::event_handler on_dead_letter_;  // also run by the failure-callback route
};

class analytics_role final : public app::role {
 public:
  explicit analytics_role(std::shared_ptr<service> s) : service_(std::move(s)) {}

 private:
  std::shared_ptr<service> service_;  // shared with the routes, which may outlive the role object
};

}  // namespace

std::unique_ptr<app::role> make_analytics_role(app::role_context& ctx) {
  auto svc = std::make_shared<service>(ctx);
  svc->register_handlers(ctx.events);
  const auto route = [&](http::verb method, std::string pattern,
                         http::response (service::*fn)(http::request_context&)) {
    ctx.routes.add(
        method, pattern,
        [svc, fn, pattern](http::request_context& rc) {
          try {
            return ((*svc).*fn)(rc);
          } catch (const db::transient_error& e) {
            // A busy or unreachable database is worth a retry, not a 500.
            obs::warn("request deferred", {{"route", pattern}, {"reason", e.what()}});
            throw http::http_error(status::service_unavailable, "unavailable",
                                   "temporarily unavailable, retry later");
          }
        },
        http::execution::blocking);
  };
  route(http::verb::post, "/api/dlq/callback", &service::failure_callback);
  // A callback carries a whole message, base64-encoded: a limit of HTTP_BODY_LIMIT would lose the
  // report of every dead letter near it.
  ctx.routes.limit_body(http::verb::post, "/api/dlq/callback",
                        callback_body_limit(static_cast<std::size_t>(ctx.settings.http_body_limit)));
  route(http::verb::get, "/api/audit", &service::audit);
  route(http::verb::get, "/api/metrics/summary", &service::summary);
  route(http::verb::get, "/api/dlq", &service::dead_letters);
  route(http::verb::post, "/api/dlq/{id}/replay", &service::replay);
  return std::make_unique<analytics_role>(std::move(svc));
}

}  // namespace shopd::roles::analytics
