#include "shopd/roles/analytics/records.hpp"

#include <boost/json.hpp>

namespace shopd::roles::analytics {

namespace json = boost::json;

namespace {

std::int64_t ms_of(bus::timestamp t) {
  return t.time_since_epoch().count();
}

json::value or_null(const std::optional<std::string>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}
json::value or_null(const std::optional<std::int64_t>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}

// Stored by this role as a serialized object; anything else (a row written by hand) is shown as
// the text it is rather than failing the whole page.
json::value detail_of(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (!ec && v.is_object()) return v;
  return json::value(text);
}

}  // namespace

std::string format_ms(std::int64_t ms) {
  return bus::format_timestamp(bus::timestamp(std::chrono::milliseconds(ms)));
}

audit_row to_row(const bus::envelope& ev, const bus::audit_record& r, std::int64_t now_ms) {
  return audit_row{.id = 0,
                   .event_id = ev.event_id,
                   .correlation_id = ev.correlation_id,
                   .causation_id = ev.causation_id,
                   .action = r.action,
                   .actor = r.actor,
                   .entity_type = r.entity_type,
                   .entity_id = r.entity_id,
                   .outcome = std::string(bus::to_string(r.outcome)),
                   .detail = json::serialize(r.detail),
                   .occurred_at_ms = ms_of(ev.time),
                   .recorded_at_ms = now_ms};
}

metric_row to_row(const bus::envelope& ev, const bus::metric_point& m, std::int64_t now_ms) {
  json::object tags;
  for (const auto& [k, v] : m.tags) tags.emplace(k, v);
  return metric_row{.event_id = ev.event_id,
                    .name = m.name,
                    .value = m.value,
                    .unit = m.unit,
                    .tags = json::serialize(tags),
                    .occurred_at_ms = ms_of(ev.time),
                    .recorded_at_ms = now_ms};
}

dead_letter_row to_row(const bus::envelope& ev, const bus::dead_letter& d, std::int64_t now_ms) {
  return dead_letter_row{.id = 0,
                         .event_id = ev.event_id,
                         .dlq_id = d.dlq_id,
                         .source_message_id = d.source_message_id,
                         .destination = d.destination,
                         .last_status = d.last_status,
                         .last_response = d.last_response,
                         .attempts = d.attempts,
                         .body = d.body,
                         .correlation_id = ev.correlation_id,
                         .occurred_at_ms = ms_of(ev.time),
                         .recorded_at_ms = now_ms,
                         .replayed_at_ms = std::nullopt};
}

sale_row to_row(const bus::envelope& ev, const bus::order_created& o) {
  std::int64_t units = 0;
  for (const auto& line : o.items) units += line.quantity;  // <= max_order_lines * max_quantity
  return sale_row{.order_id = o.order_id,
                  .event_id = ev.event_id,
                  .subtotal_cents = o.subtotal_cents,
                  .currency = o.currency,
                  .item_count = units,
                  .created_at_ms = ms_of(o.created_at)};
}

json::object to_json(const audit_row& r) {
  return json::object{{"id", r.id},
                      {"eventId", r.event_id},
                      {"correlationId", or_null(r.correlation_id)},
                      {"causationId", or_null(r.causation_id)},
                      {"action", r.action},
                      {"actor", r.actor},
                      {"entityType", r.entity_type},
                      {"entityId", r.entity_id},
                      {"outcome", r.outcome},
                      {"detail", detail_of(r.detail)},
                      {"occurredAt", format_ms(r.occurred_at_ms)},
                      {"recordedAt", format_ms(r.recorded_at_ms)}};
}

json::object to_json(const dead_letter_row& r) {
  return json::object{
      {"id", r.id},
      {"eventId", r.event_id},
      {"dlqId", or_null(r.dlq_id)},
      {"sourceMessageId", or_null(r.source_message_id)},
      {"destination", or_null(r.destination)},
      {"lastStatus", or_null(r.last_status)},
      {"lastResponse", or_null(r.last_response)},
      {"attempts", or_null(r.attempts)},
      {"body", or_null(r.body)},
      {"correlationId", or_null(r.correlation_id)},
      {"occurredAt", format_ms(r.occurred_at_ms)},
      {"recordedAt", format_ms(r.recorded_at_ms)},
      {"replayedAt", r.replayed_at_ms ? json::value(format_ms(*r.replayed_at_ms)) : json::value(nullptr)}};
}

json::object to_json(const summary& s) {
  json::array revenue;
  revenue.reserve(s.revenues.size());
  for (const auto& r : s.revenues)
    revenue.push_back(json::object{{"currency", r.currency}, {"totalCents", r.total_cents}});
  json::array events;
  events.reserve(s.events.size());
  for (const auto& e : s.events) {
    events.push_back(json::object{{"action", e.action}, {"outcome", e.outcome}, {"count", e.count}});
  }
  return json::object{
      {"orders", s.orders},
      {"revenue", std::move(revenue)},
      {"events", std::move(events)},
      {"dlq", json::object{{"count", s.dead_letters}, {"unreplayed", s.unreplayed_dead_letters}}},
      {"shortfalls", s.shortfalls}};
}

}  // namespace shopd::roles::analytics
