#include "shopd/bus/webhook.hpp"

#include "shopd/bus/events.hpp"
#include "shopd/db/database.hpp"
#include "shopd/obs/log.hpp"
#include "shopd/obs/metrics.hpp"

#include <boost/json.hpp>

namespace shopd::bus {

namespace {

namespace json = boost::json;
using http::status;

constexpr auto non_retryable = static_cast<status>(489);

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

webhook::webhook(webhook_config cfg, db::database& db, const destinations& dest, const event_router& handlers,
                 obs::registry& metrics, std::function<void()> on_emit)
    : cfg_(std::move(cfg)),
      db_(db),
      dest_(dest),
      handlers_(handlers),
      metrics_(metrics),
      on_emit_(std::move(on_emit)) {}

void webhook::add_route(http::router& routes) {
  routes.add(
      http::verb::post, "/api/webhook", [this](http::request_context& ctx) { return handle(ctx); },
      http::execution::blocking);
}

http::response webhook::handle(http::request_context& ctx) {
  const auto start = std::chrono::steady_clock::now();
  auto& handled = metrics_.counter_family("shopd_events_handled_total", "Events answered by a role's webhook",
                                          {"role", "type", "outcome"});

  // 1. The signature, over the raw bytes, before any parsing.
  const auto& req = ctx.req;
  const auto sig = req["Upstash-Signature"];
  verify_options vo;
  vo.clock_tolerance = cfg_.clock_tolerance;
  vo.expected_url = cfg_.expected_url;
  const auto verified = verify(sig, cfg_.keys, req.body(), std::chrono::system_clock::now(), vo);
  if (!verified) {
    obs::warn("webhook signature rejected", {{"role", cfg_.role}, {"reason", to_string(verified.error())}});
    metrics_
        .counter_family("shopd_webhook_signature_rejected_total", "Deliveries refused for their signature",
                        {"role", "reason"})
        .with({cfg_.role, std::string(to_string(verified.error()))})
        .inc();
    return http::json_error(status::unauthorized, "unauthorized", "missing or invalid Upstash-Signature");
  }

  // 2. The envelope.
  auto parsed = parse_envelope(req.body());
  if (!parsed) {
    handled.with({cfg_.role, "invalid", "rejected"}).inc();
    return reject(ctx, nullptr, "invalid_envelope", parsed.error().field, parsed.error().message);
  }
  const envelope& ev = *parsed;
  ctx.correlation_id = ev.correlation_id;
  const auto* handler = handlers_.find(ev.event_type);
  if (handler == nullptr) {
    handled.with({cfg_.role, "unknown", "rejected"}).inc();
    return reject(ctx, &ev, "unsupported_event_type", "eventType",
                  "role " + cfg_.role + " does not consume events of type \"" + ev.event_type + "\"");
  }

  // 3. The handler.
  delivery d(ev, cfg_.role, db_, dest_, on_emit_);
  outcome result;
  try {
    result = (*handler)(d);
  } catch (const db::transient_error& e) {
    handled.with({cfg_.role, ev.event_type, "transient"}).inc();
    obs::warn("event deferred", {{"role", cfg_.role},
                                 {"type", ev.event_type},
                                 {"eventId", ev.event_id},
                                 {"correlation_id", ev.correlation_id},
                                 {"reason", e.what()}});
    return http::json_error(status::service_unavailable, "unavailable",
                            "temporarily unavailable, retry later");
  } catch (const transient_failure& e) {
    handled.with({cfg_.role, ev.event_type, "transient"}).inc();
    obs::warn("event deferred", {{"role", cfg_.role},
                                 {"type", ev.event_type},
                                 {"eventId", ev.event_id},
                                 {"correlation_id", ev.correlation_id},
                                 {"reason", e.what()}});
    return http::json_error(status::service_unavailable, "unavailable", e.what());
  }
  metrics_
      .histogram_family("shopd_event_handler_duration_seconds", "Time to handle one event", {"role", "type"})
      .with({cfg_.role, ev.event_type})
      .observe(seconds_since(start));

  if (std::holds_alternative<duplicate>(result)) {
    handled.with({cfg_.role, ev.event_type, "duplicate"}).inc();
    metrics_
        .counter_family("shopd_inbox_duplicates_total", "Redelivered events acknowledged without effects",
                        {"role"})
        .with({cfg_.role})
        .inc();
    return http::json_response(status::ok, json::object{{"status", "duplicate"}, {"eventId", ev.event_id}});
  }
  if (const auto* r = std::get_if<rejection>(&result)) {
    handled.with({cfg_.role, ev.event_type, "rejected"}).inc();
    obs::info("event rejected", {{"role", cfg_.role},
                                 {"type", ev.event_type},
                                 {"eventId", ev.event_id},
                                 {"correlation_id", ev.correlation_id},
                                 {"code", r->code},
                                 {"field", r->field}});
    auto res = http::json_error(non_retryable, r->code, r->message, r->field);
    res.set("Upstash-NonRetryable-Error", "true");
    return res;
  }
  handled.with({cfg_.role, ev.event_type, "processed"}).inc();
  obs::debug("event processed", {{"role", cfg_.role},
                                 {"type", ev.event_type},
                                 {"eventId", ev.event_id},
                                 {"correlation_id", ev.correlation_id}});
  return http::json_response(status::ok, json::object{{"status", "processed"}, {"eventId", ev.event_id}});
}

http::response webhook::reject(http::request_context& ctx, const envelope* ev, std::string_view code,
                               std::string_view field, std::string_view message) {
  obs::warn("event refused", {{"role", cfg_.role},
                              {"code", code},
                              {"field", field},
                              {"message", message},
                              {"correlation_id", ctx.correlation_id}});
  // The refusal is audited like any other outcome. If even that cannot be written, the 489 still
  // stands: retrying the same bytes would be refused again.
  try {
    db_.in_transaction([&](soci::session& tx) {
      unit_of_work uow(tx, cfg_.role, nullptr, dest_, now_ms());
      json::object detail{{"code", code}, {"field", field}, {"message", message}};
      const std::string entity = ev != nullptr ? ev->event_id : std::string("unparsed");
      if (ev != nullptr) detail["eventType"] = ev->event_type;
      const std::string correlation = ev != nullptr ? ev->correlation_id : "uncorrelated";
      uow.emit(event_types::audit_record,
               to_json(audit_record{.action = "event.rejected",
                                    .actor = cfg_.role,
                                    .entity_type = "event",
                                    .entity_id = entity,
                                    .outcome = audit_outcome::failure,
                                    .detail = std::move(detail)}),
               correlation);
    });
    if (on_emit_) on_emit_();
  } catch (const std::exception& e) {
    obs::error("could not audit a refused event", {{"role", cfg_.role}, {"error", e.what()}});
  }
  auto res = http::json_error(non_retryable, code, message, field);
  res.set("Upstash-NonRetryable-Error", "true");
  return res;
}

}  // namespace shopd::bus
