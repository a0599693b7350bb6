#include "shopd/roles/inventory/stock_keeper.hpp"

#include "shopd/bus/dispatch.hpp"
#include "shopd/obs/metrics.hpp"
#include "shopd/roles/inventory/stock_rules.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <stdexcept>

namespace shopd::inventory {

namespace {

namespace json = boost::json;

json::value optional_text(const std::optional<std::string>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}

json::object movement_detail(const movement_result& r) {
  json::object o{{"sku", r.request.sku},
                 {"requested", r.request.delta},
                 {"applied", r.entry ? r.entry->applied_delta : 0},
                 {"status", to_string(r.outcome)}};
  o["stockAfter"] = r.entry ? json::value(r.entry->stock_after) : json::value(nullptr);
  return o;
}

}  // namespace

void reporter::audit(std::string_view action, std::string_view entity_type, std::string_view entity_id,
                     bool success, json::object detail) {
  bus::audit_record rec;
  rec.action = std::string(action);
  rec.actor = std::string(uow_.role());
  rec.entity_type = std::string(entity_type);
  rec.entity_id = std::string(entity_id);
  rec.outcome = success ? bus::audit_outcome::success : bus::audit_outcome::failure;
  rec.detail = std::move(detail);
  uow_.emit(bus::event_types::audit_record, bus::to_json(rec), correlation_id_);
}

void reporter::metric(std::string_view name, double value, std::string_view unit,
                      std::map<std::string, std::string> tags) {
  bus::metric_point point;
  point.name = std::string(name);
  point.value = value;
  point.unit = std::string(unit);
  point.tags = std::move(tags);
  uow_.emit(bus::event_types::metric_point, bus::to_json(point), correlation_id_);
}

std::string_view to_string(movement_outcome o) noexcept {
  switch (o) {
    case movement_outcome::applied:
      return "applied";
    case movement_outcome::shortfall:
      return "shortfall";
    case movement_outcome::unknown_sku:
      return "unknown_sku";
    case movement_outcome::over_limit:
      return "over_limit";
  }
  return "applied";
}

stock_keeper::stock_keeper(obs::registry& metrics)
    : movements_(metrics.counter_family("shopd_stock_movements_total",
                                        "Stock movements handled, by reason and outcome",
                                        {"reason", "status"})),
      shortfalls_(metrics
                      .counter_family("shopd_stock_shortfalls_total",
                                      "Stock movements refused because the stock could not cover them")
                      .get()) {}

std::vector<movement_result> stock_keeper::apply(reporter& rep, std::span<const movement_request> movements) {
  inventory_repository repo(rep.uow().tx());
  std::vector<std::string> skus;
  skus.reserve(movements.size());
  for (const auto& m : movements) skus.push_back(m.sku);
  std::sort(skus.begin(), skus.end());
  skus.erase(std::unique(skus.begin(), skus.end()), skus.end());
  // The stock each row holds, read once as it is locked: nothing else writes a locked row, so the
  // movements below keep it up to date themselves instead of reading it again (a round trip under
  // the lock on PostgreSQL, where a popular product's row is what concurrent orders queue for).
  std::map<std::string, std::optional<std::int64_t>, std::less<>> stock;
  for (auto& sku : skus) {
    const auto p = repo.lock_product(sku);
    stock.emplace(std::move(sku), p ? std::optional(p->stock) : std::nullopt);
  }

  std::vector<movement_result> results;
  results.reserve(movements.size());
  for (const auto& m : movements) results.push_back(apply_one(rep, repo, m, stock.find(m.sku)->second));
  return results;
}

movement_result stock_keeper::apply_one(reporter& rep, inventory_repository& repo, const movement_request& m,
                                        std::optional<std::int64_t>& stock) {
  const std::int64_t now = rep.uow().now_ms();
  const std::string reason(bus::to_string(m.reason));
  movement_result r;
  r.request = m;

  if (!stock) {
    r.outcome = movement_outcome::unknown_sku;
    rep.audit("stock.unknown_sku", "product", m.sku, false,
              {{"orderId", optional_text(m.order_id)}, {"reason", reason}, {"delta", m.delta}});
    rep.metric("stock.unknown_sku", static_cast<double>(m.delta < 0 ? -m.delta : m.delta), "units",
               {{"sku", m.sku}, {"reason", reason}});
    return r;
  }
  r.available = *stock;

  const movement_decision d = decide_movement(*stock, m.delta);
  if (d.status == movement_status::over_limit) {
    r.outcome = movement_outcome::over_limit;
    rep.audit("stock.over_limit", "product", m.sku, false,
              {{"orderId", optional_text(m.order_id)},
               {"reason", reason},
               {"delta", m.delta},
               {"available", *stock},
               {"limit", max_stock}});
    return r;
  }
  if (d.status == movement_status::applied && !repo.add_stock(m.sku, m.delta, now)) {
    // The row is locked and the decision was taken on its value: the guard can only refuse if
    // something wrote the stock around the lock. Failing the whole transaction beats overselling.
    throw std::runtime_error("stock of " + m.sku + " changed while its row was locked");
  }
  stock = d.stock_after;

  ledger_row row;
  row.sku = m.sku;
  row.requested_delta = m.delta;
  row.applied_delta = d.applied_delta;
  row.stock_after = d.stock_after;
  row.reason = reason;
  row.status = std::string(to_string(d.status));
  row.order_id = m.order_id;
  row.event_id = m.event_id;
  row.correlation_id = rep.correlation_id();
  row.created_at_ms = now;
  r.entry = repo.append_movement(std::move(row));

  if (d.status == movement_status::shortfall) {
    r.outcome = movement_outcome::shortfall;
    r.missing = d.missing;
    rep.audit("stock.shortfall", "product", m.sku, false,
              {{"orderId", optional_text(m.order_id)},
               {"reason", reason},
               {"requested", -m.delta},
               {"available", r.available},
               {"missing", d.missing}});
    rep.metric("stock.shortfall", static_cast<double>(d.missing), "units",
               {{"sku", m.sku}, {"reason", reason}});
  }
  return r;
}

void stock_keeper::report_update(reporter& rep, std::span<const movement_result> results,
                                 const std::optional<std::string>& order_id, bus::stock_reason reason,
                                 const json::object& extra) {
  const bool any_applied = std::any_of(results.begin(), results.end(), [](const movement_result& r) {
    return r.outcome == movement_outcome::applied;
  });
  if (any_applied) {
    auto detail_for = [&](json::array movements) {
      json::object detail = extra;
      if (order_id) detail["orderId"] = *order_id;
      detail["reason"] = bus::to_string(reason);
      detail["movements"] = std::move(movements);
      return detail;
    };
    if (order_id) {
      json::array all;
      for (const auto& r : results) all.push_back(movement_detail(r));
      rep.audit("stock.updated", "order", *order_id, true, detail_for(std::move(all)));
    } else {
      for (const auto& r : results) {
        if (r.outcome != movement_outcome::applied) continue;
        rep.audit("stock.updated", "product", r.request.sku, true,
                  detail_for(json::array{movement_detail(r)}));
      }
    }
  }
  for (const auto& r : results) {
    if (!r.entry) continue;
    rep.metric("stock.level", static_cast<double>(r.entry->stock_after), "units", {{"sku", r.request.sku}});
  }
}

void stock_keeper::count(std::span<const movement_result> results) {
  for (const auto& r : results) {
    movements_.with({std::string(bus::to_string(r.request.reason)), std::string(to_string(r.outcome))}).inc();
    if (r.outcome == movement_outcome::shortfall) shortfalls_.inc();
  }
}

}  // namespace shopd::inventory
