#include "shopd/bus/dispatch.hpp"

#include "shopd/bus/events.hpp"
#include "shopd/bus/local_relay.hpp"
#include "shopd/bus/outbox.hpp"
#include "shopd/bus/outbox_publish.hpp"
#include "shopd/config/config.hpp"
#include "shopd/db/database.hpp"
#include "shopd/obs/trace.hpp"

#include <soci/soci.h>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <stdexcept>

namespace shopd::bus {

// What a handler's transaction stored in the co-located relay's queue: the hand-offs to its engine,
// run once the transaction has committed, and whether any event went to the outbox dispatcher.
struct relay_hand_off {
  const local_stage_fn* stage = nullptr;
  std::vector<std::function<void()>> after_commit;
  std::size_t stored = 0;  // events the relay stored (duplicates of live messages included)
  bool left_to_dispatcher = false;
};

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

destinations::destinations(const config::settings& s) {
  auto add = [this](std::string_view role, const std::string& base) {
    std::string url = base;
    while (!url.empty() && url.back() == '/') url.pop_back();
    urls_.emplace(std::string(role), url);
  };
  add("orders", s.orders_service_url);
  add("email", s.email_service_url);
  add("inventory", s.inventory_service_url);
  add("analytics", s.analytics_service_url);
}

const std::string& destinations::service_url(std::string_view role) const {
  const auto it = urls_.find(role);
  if (it == urls_.end()) throw std::invalid_argument("no service URL for role \"" + std::string(role) + "\"");
  return it->second;
}

std::string destinations::webhook_url(std::string_view role) const {
  return service_url(role) + "/api/webhook";
}

std::string destinations::url_for(std::string_view event_type) const {
  const auto role = consumer_role(event_type);
  if (!role) throw std::invalid_argument("no role consumes event type \"" + std::string(event_type) + "\"");
  return webhook_url(*role);
}

std::string destinations::failure_callback_url() const {
  return service_url("analytics") + "/api/dlq/callback";
}

const envelope& unit_of_work::emit(std::string_view event_type, boost::json::object data,
                                   std::optional<std::string_view> correlation_id) {
  const std::string_view correlation =
      correlation_id ? *correlation_id : (cause_ != nullptr ? std::string_view(cause_->correlation_id) : "");
  std::optional<std::string_view> causation;
  if (cause_ != nullptr) causation = cause_->event_id;
  auto ev = make_envelope(event_type, role_, std::move(data), correlation, causation);
  // The event continues the trace of the request or delivery being handled; emitted outside of one,
  // it starts its own, so that every chain can be followed.
  const obs::trace_context* current = obs::current_trace();
  const auto trace = current != nullptr ? current->child() : obs::trace_context::start();
  const auto traceparent = trace.traceparent();
  const outbox_event row{
      .event_id = ev.event_id,
      .event_type = ev.event_type,
      .destination = dest_.url_for(event_type),
      .body = serialize(ev),
      .headers = boost::json::serialize(boost::json::object{{"traceparent", traceparent}})};
  std::optional<staged_event> staged;
  if (hand_off_ != nullptr && hand_off_->stage != nullptr) {
    staged = (*hand_off_->stage)(
        tx_, outbox_entry(row, dest_.failure_callback_url(), {{"traceparent", traceparent}}));
  }
  if (staged) {
    outbox::enqueue_sent(tx_, role_, row, now_ms_, staged->message_id);
    ++hand_off_->stored;
    if (staged->after_commit) hand_off_->after_commit.push_back(std::move(staged->after_commit));
  } else {
    outbox::enqueue(tx_, role_, row, now_ms_);
    if (hand_off_ != nullptr) hand_off_->left_to_dispatcher = true;
  }
  ++emitted_;
  kept_.push_back(std::move(ev));
  return kept_.back();
}

void unit_of_work::audit(std::string_view action, std::string_view entity_type, std::string_view entity_id,
                         bool success, boost::json::object detail) {
  audit_record rec;
  rec.action = std::string(action);
  rec.actor = std::string(role_);
  rec.entity_type = std::string(entity_type);
  rec.entity_id = std::string(entity_id);
  rec.outcome = success ? audit_outcome::success : audit_outcome::failure;
  rec.detail = std::move(detail);
  emit(event_types::audit_record, to_json(rec));
}

bool delivery::seen() {
  return db_.with_session([&](soci::session& s) {
    const std::string role(role_);
    int n = 0;
    s << "SELECT COUNT(*) FROM inbox WHERE consumer = :consumer AND event_id = :event_id", soci::into(n),
        soci::use(role), soci::use(event_.event_id);
    return n > 0;
  });
}

bool delivery::once(const std::function<void(unit_of_work&)>& f) {
  std::size_t emitted = 0;
  relay_hand_off hand_off;
  hand_off.stage = relay_ != nullptr ? relay_->stage_for(db_) : nullptr;
  const bool first = db_.in_transaction([&](soci::session& tx) {
    const auto now = now_ms();
    if (!inbox::record_once(tx, role_, event_.event_id, event_.event_type, now)) return false;
    unit_of_work uow(tx, role_, &event_, dest_, now, &hand_off);
    f(uow);
    emitted = uow.emitted();
    return true;
  });
  for (auto& handed : hand_off.after_commit) handed();
  if (hand_off.stored > 0 && on_stored_) on_stored_(hand_off.stored);
  const bool dispatcher_has_work = hand_off.stage == nullptr ? emitted > 0 : hand_off.left_to_dispatcher;
  if (dispatcher_has_work && on_emit_) on_emit_();
  return first;
}

event_handler transactional(std::function<std::optional<rejection>(unit_of_work&)> f) {
  return [f = std::move(f)](delivery& d) -> outcome {
    std::optional<rejection> rejected;
    if (!d.once([&](unit_of_work& uow) { rejected = f(uow); })) return duplicate{};
    if (rejected) return *rejected;
    return processed{};
  };
}

void event_router::on(std::string_view event_type, event_handler h, http::execution exec) {
  if (!handlers_.emplace(std::string(event_type), entry{std::move(h), exec}).second) {
    throw std::invalid_argument("event type \"" + std::string(event_type) + "\" registered twice");
  }
}

const event_router::entry* event_router::find(std::string_view event_type) const {
  const auto it = handlers_.find(event_type);
  return it == handlers_.end() ? nullptr : &it->second;
}

std::vector<std::string> event_router::types() const {
  std::vector<std::string> out;
  for (const auto& [type, h] : handlers_) out.push_back(type);
  return out;
}

}  // namespace shopd::bus
