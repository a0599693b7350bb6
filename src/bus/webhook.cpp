#include "shopd/bus/webhook.hpp"

#include "shopd/bus/events.hpp"
#include "shopd/db/database.hpp"
#include "shopd/obs/log.hpp"
#include "shopd/obs/metrics.hpp"

#include <boost/json.hpp>

#include <array>
#include <map>

namespace shopd::bus {

namespace {

namespace json = boost::json;
using http::status;

constexpr auto non_retryable = static_cast<status>(489);

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// The `outcome` label of shopd_events_handled_total.
enum class handled : std::size_t {
  processed,     ///< 200: effects applied
  duplicate,     ///< 200: already handled (inbox), nothing repeated
  rejected,      ///< 489: non-retryable (bad envelope, unknown type, refused by the handler)
  failed,        ///< 503: transient fault, the relay retries
  error,         ///< 500: unexpected exception (a bug), the relay retries
  unauthorized,  ///< 401: signature refused
};
constexpr std::array<std::string_view, 6> handled_names{"processed", "duplicate", "rejected",
                                                        "failed",    "error",     "unauthorized"};

// Events that never reach a handler (unverified, unparsable, or of a type this role does not
// consume) are counted under one type, so that no sender can create series at will.
constexpr std::string_view unknown_type = "unknown";

}  // namespace

struct webhook::instruments {
  struct per_type {
    std::array<obs::counter*, handled_names.size()> handled{};
    obs::histogram* duration = nullptr;

    void count(enum handled h) const noexcept { handled[static_cast<std::size_t>(h)]->inc(); }
  };

  instruments(obs::registry& r, const std::string& role, const std::vector<std::string>& types)
      : signature_rejected(r.counter_family("shopd_webhook_signature_rejected_total",
                                            "Deliveries refused for their signature, by role and reason",
                                            {"role", "reason"})),
        duplicates(r.counter_family("shopd_inbox_duplicates_total",
                                    "Redelivered events acknowledged without effects (inbox hits), by role",
                                    {"role"})
                       .with({role})) {
    auto& handled_family = r.counter_family("shopd_events_handled_total",
                                            "Events answered by a role's webhook, by role, type and outcome",
                                            {"role", "type", "outcome"});
    auto& duration_family =
        r.histogram_family("shopd_event_handler_duration_seconds",
                           "Time a role's handler took for one event, by role and type", {"role", "type"});
    for (const auto& type : types) {
      per_type t;
      for (std::size_t i = 0; i < handled_names.size(); ++i) {
        if (static_cast<handled>(i) == handled::unauthorized) continue;  // checked before the type is known
        t.handled[i] = &handled_family.with({role, type, std::string(handled_names[i])});
      }
      t.duration = &duration_family.with({role, type});
      by_type.emplace(type, t);
    }
    const std::string unknown_label(unknown_type);
    for (const auto h : {handled::rejected, handled::unauthorized}) {
      const auto i = static_cast<std::size_t>(h);
      unknown.handled[i] = &handled_family.with({role, unknown_label, std::string(handled_names[i])});
    }
  }

  obs::family<obs::counter>& signature_rejected;  // rare: children made on first use
  obs::counter& duplicates;
  std::map<std::string, per_type, std::less<>> by_type;
  per_type unknown;
};

webhook::webhook(webhook_config cfg, db::database& db, const destinations& dest, const event_router& handlers,
                 obs::registry& metrics, std::function<void()> on_emit, const local_relay* relay,
                 std::function<void(std::size_t)> on_stored)
    : cfg_(std::move(cfg)),
      db_(db),
      dest_(dest),
      handlers_(handlers),
      instruments_(std::make_unique<const instruments>(metrics, cfg_.role, handlers.types())),
      on_emit_(std::move(on_emit)),
      relay_(relay),
      on_stored_(std::move(on_stored)) {}

webhook::~webhook() = default;

void webhook::add_route(http::router& routes) {
  routes.add_deferring(http::verb::post, "/api/webhook",
                       [this](http::request_context& ctx) { return screen(ctx); });
}

std::variant<http::response, http::deferred> webhook::screen(http::request_context& ctx) {
  const instruments& m = *instruments_;

  // 1. The signature, over the raw bytes, before any parsing.
  const auto& req = ctx.req;
  const auto sig = req["Upstash-Signature"];
  verify_options vo;
  vo.clock_tolerance = cfg_.clock_tolerance;
  vo.expected_url = cfg_.expected_url;
  const auto verified = verify(sig, cfg_.keys, req.body(), std::chrono::system_clock::now(), vo);
  if (!verified) {
    obs::warn("webhook signature rejected", {{"role", cfg_.role}, {"reason", to_string(verified.error())}});
    m.unknown.count(handled::unauthorized);
    m.signature_rejected.with({cfg_.role, std::string(to_string(verified.error()))}).inc();
    return http::json_error(status::unauthorized, "unauthorized", "missing or invalid Upstash-Signature");
  }

  // 2. The envelope. A refusal is audited, which writes to the database: on the worker pool.
  auto parsed = parse_envelope(req.body());
  if (!parsed) {
    m.unknown.count(handled::rejected);
    return http::deferred([this, &ctx, error = std::move(parsed.error())] {
      return reject(ctx, nullptr, "invalid_envelope", error.field, error.message);
    });
  }
  ctx.correlation_id = parsed->correlation_id;
  const auto* handler = handlers_.find(parsed->event_type);
  if (handler == nullptr || !m.by_type.contains(parsed->event_type)) {
    m.unknown.count(handled::rejected);
    return http::deferred([this, &ctx, ev = std::move(*parsed)] {
      return reject(ctx, &ev, "unsupported_event_type", "eventType",
                    "role " + cfg_.role + " does not consume events of type \"" + ev.event_type + "\"");
    });
  }

  // 3. The handler, where it was registered to run.
  if (handler->exec == http::execution::io) return run_handler(*parsed, *handler);
  return http::deferred([this, handler, ev = std::move(*parsed)] { return run_handler(ev, *handler); });
}

http::response webhook::run_handler(const envelope& ev, const event_router::entry& handler) {
  const auto start = std::chrono::steady_clock::now();
  const auto& t = instruments_->by_type.find(ev.event_type)->second;
  delivery d(ev, cfg_.role, db_, dest_, on_emit_, relay_, on_stored_);
  // A transient failure: counted, logged, and answered 503 so that the relay retries.
  const auto deferred = [&](std::string_view reason) {
    t.duration->observe(seconds_since(start));
    t.count(handled::failed);
    obs::warn("event deferred", {{"role", cfg_.role},
                                 {"type", ev.event_type},
                                 {"eventId", ev.event_id},
                                 {"correlation_id", ev.correlation_id},
                                 {"reason", reason}});
  };
  outcome result;
  try {
    result = handler.fn(d);
  } catch (const db::transient_error& e) {
    deferred(e.what());
    return http::json_error(status::service_unavailable, "unavailable",
                            "temporarily unavailable, retry later");
  } catch (const transient_failure& e) {
    deferred(e.what());
    return http::json_error(status::service_unavailable, "unavailable", e.what());
  } catch (...) {
    // The server answers 500 and logs it; counted here so that bugs show apart from transient faults.
    t.duration->observe(seconds_since(start));
    t.count(handled::error);
    throw;
  }
  t.duration->observe(seconds_since(start));

  if (std::holds_alternative<duplicate>(result)) {
    t.count(handled::duplicate);
    instruments_->duplicates.inc();
    return http::json_response(status::ok, json::object{{"status", "duplicate"}, {"eventId", ev.event_id}});
  }
  if (const auto* r = std::get_if<rejection>(&result)) {
    t.count(handled::rejected);
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
  t.count(handled::processed);
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
