#include "shopd/roles/inventory/inventory_role.hpp"

#include "shopd/bus/dispatch.hpp"
#include "shopd/bus/events.hpp"
#include "shopd/config/config.hpp"
#include "shopd/db/database.hpp"
#include "shopd/http/auth.hpp"
#include "shopd/http/message.hpp"
#include "shopd/http/router.hpp"
#include "shopd/roles/inventory/api_input.hpp"
#include "shopd/roles/inventory/inventory_repository.hpp"
#include "shopd/roles/inventory/stock_keeper.hpp"
#include "shopd/roles/inventory/stock_rules.hpp"

#include <boost/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace shopd::inventory {

namespace {

namespace json = boost::json;
using http::status;

// What the event handler and the routes share; they hold it by shared_ptr, so it lives as long as
// the last of them whatever happens to the role object.
struct service {
  explicit service(app::role_context& ctx)
      : role(ctx.name),
        settings(ctx.settings),
        db(ctx.db),
        destinations(ctx.destinations),
        notify_outbox(ctx.notify_outbox),
        keeper(ctx.metrics) {}

  std::string role;
  const config::settings& settings;
  db::database& db;
  const bus::destinations& destinations;
  std::function<void()> notify_outbox;
  stock_keeper keeper;

  void wake_outbox() const {
    if (notify_outbox) notify_outbox();
  }
};

// ---------------------------------------------------------------------------------------------
// JSON

std::string iso_time(std::int64_t ms) {
  return bus::format_timestamp(bus::timestamp(std::chrono::milliseconds(ms)));
}

json::value optional_text(const std::optional<std::string>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}

json::object product_json(const product& p) {
  return {{"sku", p.sku},
          {"name", p.name},
          {"priceCents", p.price_cents},
          {"currency", p.currency},
          {"stock", p.stock},
          {"active", p.active},
          {"updatedAt", iso_time(p.updated_at_ms)}};
}

json::object ledger_json(const ledger_row& r) {
  return {{"id", r.id},
          {"sku", r.sku},
          {"requestedDelta", r.requested_delta},
          {"appliedDelta", r.applied_delta},
          {"stockAfter", r.stock_after},
          {"reason", r.reason},
          {"status", r.status},
          {"orderId", optional_text(r.order_id)},
          {"eventId", optional_text(r.event_id)},
          {"correlationId", optional_text(r.correlation_id)},
          {"createdAt", iso_time(r.created_at_ms)}};
}

// ---------------------------------------------------------------------------------------------
// Request helpers

http::http_error bad_parameter(const bus::validation_error& e) {
  return {status::bad_request, "invalid_parameter", e.field + " " + e.message, e.field};
}

http::http_error bad_body(const bus::validation_error& e) {
  return {status::bad_request, "invalid_body", (e.field.empty() ? "the body " : e.field + " ") + e.message,
          e.field};
}

json::value read_body(const http::request_context& rc) {
  auto doc = bus::parse_json(rc.req.body());
  if (!doc) {
    throw http::http_error(status::bad_request, "invalid_body",
                           "the body is not valid JSON: " + doc.error().message, doc.error().field);
  }
  return std::move(*doc);
}

int limit_of(const http::request_context& rc) {
  auto limit = parse_limit(rc.query_param("limit"));
  if (!limit) throw bad_parameter(limit.error());
  return *limit;
}

// A cursor parameter, with `cursor=` (what a client that echoes a null nextCursor sends) as absent.
std::optional<std::string> cursor_of(const http::request_context& rc) {
  auto c = rc.query_param("cursor");
  if (c && c->empty()) return std::nullopt;
  return c;
}

http::http_error bad_cursor() {
  return {status::bad_request, "invalid_parameter", "cursor is not a cursor this list handed out", "cursor"};
}

// The sku of a `{sku}` route; a value that can never be a sku is simply not found.
std::string sku_of(const http::request_context& rc) {
  std::string sku(rc.param("sku"));
  if (!bus::is_valid_sku(sku)) throw http::http_error(status::not_found, "not_found", "no such product");
  return sku;
}

http::http_error no_product(std::string_view sku) {
  return {status::not_found, "not_found", "no product with sku " + std::string(sku)};
}

// The correlation id of an API write: the caller's when it is a valid id, else a fresh one, which
// the request log then shows too.
std::string correlation_of(http::request_context& rc) {
  if (!bus::is_valid_id(rc.correlation_id)) rc.correlation_id = "api_" + bus::new_event_id();
  return rc.correlation_id;
}

// ---------------------------------------------------------------------------------------------
// inventory.stock.updated

bus::outcome handle_stock_updated(service& svc, bus::delivery& d) {
  std::vector<movement_result> results;
  std::optional<bus::rejection> rejected;
  const bool first = d.once([&](bus::unit_of_work& uow) {
    results.clear();
    rejected.reset();
    const bus::envelope& ev = d.event();
    reporter rep(uow, ev.correlation_id);
    auto payload = bus::payload_of<bus::stock_updated>(ev);
    if (!payload) {
      const auto& e = payload.error();
      rep.audit("stock.rejected", "event", ev.event_id, false,
                {{"code", "invalid_payload"},
                 {"field", e.field},
                 {"message", e.message},
                 {"eventType", ev.event_type}});
      rejected = bus::rejection{"invalid_payload", e.field, e.message};
      return;
    }
    std::vector<movement_request> requests;
    requests.reserve(payload->movements.size());
    for (const auto& m : payload->movements) {
      requests.push_back({.sku = m.sku,
                          .delta = m.delta,
                          .reason = payload->reason,
                          .order_id = payload->order_id,
                          .event_id = ev.event_id});
    }
    results = svc.keeper.apply(rep, requests);
    svc.keeper.report_update(rep, results, payload->order_id, payload->reason);
  });
  if (!first) return bus::duplicate{};
  if (rejected) return *rejected;
  svc.keeper.count(results);
  return bus::processed{};
}

// ---------------------------------------------------------------------------------------------
// Routes

http::response list_products(service& svc, http::request_context& rc) {
  const int limit = limit_of(rc);
  auto active = parse_active_filter(rc.query_param("active"));
  if (!active) throw bad_parameter(active.error());
  std::optional<std::string> after;
  if (auto c = cursor_of(rc)) {
    after = parse_product_cursor(*c);
    if (!after) throw bad_cursor();
  }
  auto rows = svc.db.with_session(
      [&](soci::session& s) { return inventory_repository(s).list_products(after, *active, limit + 1); });
  json::value next = nullptr;
  if (rows.size() > static_cast<std::size_t>(limit)) {
    rows.resize(static_cast<std::size_t>(limit));
    next = product_cursor(rows.back().sku);
  }
  json::array items;
  items.reserve(rows.size());
  for (const auto& p : rows) items.push_back(product_json(p));
  return http::json_response(status::ok, json::object{{"products", std::move(items)}, {"nextCursor", next}});
}

http::response get_product(service& svc, http::request_context& rc) {
  const std::string sku = sku_of(rc);
  auto p = svc.db.with_session([&](soci::session& s) { return inventory_repository(s).find_product(sku); });
  if (!p) throw no_product(sku);
  return http::json_response(status::ok, product_json(*p));
}

http::response upsert_product(service& svc, http::request_context& rc) {
  http::require_bearer(rc, svc.settings.shopd_api_token);
  auto input = parse_product_upsert(read_body(rc));
  if (!input) throw bad_body(input.error());
  const std::string correlation = correlation_of(rc);

  struct upserted {
    product p;
    bool created = false;
  };
  const auto done = svc.db.in_transaction([&](soci::session& tx) {
    bus::unit_of_work uow(tx, svc.role, nullptr, svc.destinations, bus::now_ms());
    reporter rep(uow, correlation);
    inventory_repository repo(tx);
    const std::int64_t now = uow.now_ms();
    upserted out;
    out.p = product{.sku = input->sku,
                    .name = input->name,
                    .price_cents = input->price_cents,
                    .currency = input->currency,
                    .stock = input->stock.value_or(0),
                    .active = input->active.value_or(true),
                    .created_at_ms = now,
                    .updated_at_ms = now};
    json::object detail{{"name", out.p.name},
                        {"priceCents", out.p.price_cents},
                        {"currency", out.p.currency},
                        {"active", out.p.active}};
    if (repo.insert_product(out.p)) {
      out.created = true;
      if (out.p.stock > 0) {
        ledger_row row;
        row.sku = out.p.sku;
        row.requested_delta = out.p.stock;
        row.applied_delta = out.p.stock;
        row.stock_after = out.p.stock;
        row.reason = "restock";
        row.status = "applied";
        row.correlation_id = correlation;
        row.created_at_ms = now;
        repo.append_movement(std::move(row));
      }
      detail["created"] = true;
      detail["stock"] = out.p.stock;
      rep.audit("product.upserted", "product", out.p.sku, true, std::move(detail));
      if (out.p.stock > 0) {
        rep.metric("stock.level", static_cast<double>(out.p.stock), "units", {{"sku", out.p.sku}});
      }
      return out;
    }
    const auto existing = repo.lock_product(out.p.sku);
    if (!existing) throw std::runtime_error("product " + out.p.sku + " vanished during an upsert");
    if (input->stock) {
      throw http::http_error(status::conflict, "use_adjust",
                             "product " + out.p.sku +
                                 " exists: change its stock with POST /api/stock/{sku}/adjust, so the ledger "
                                 "records it",
                             "stock");
    }
    out.p.stock = existing->stock;
    out.p.active = input->active.value_or(existing->active);
    out.p.created_at_ms = existing->created_at_ms;
    repo.update_details(out.p.sku, out.p.name, out.p.price_cents, out.p.currency, out.p.active, now);
    detail["active"] = out.p.active;
    detail["created"] = false;
    detail["previous"] = json::object{{"name", existing->name},
                                      {"priceCents", existing->price_cents},
                                      {"currency", existing->currency},
                                      {"active", existing->active}};
    rep.audit("product.upserted", "product", out.p.sku, true, std::move(detail));
    return out;
  });
  svc.wake_outbox();
  return http::json_response(done.created ? status::created : status::ok, product_json(done.p));
}

http::response adjust_stock(service& svc, http::request_context& rc) {
  http::require_bearer(rc, svc.settings.shopd_api_token);
  const std::string sku = sku_of(rc);
  auto input = parse_stock_adjustment(read_body(rc));
  if (!input) throw bad_body(input.error());
  const std::string correlation = correlation_of(rc);

  const movement_request request{.sku = sku,
                                 .delta = input->delta,
                                 .reason = input->reason,
                                 .order_id = input->order_id,
                                 .event_id = {}};
  auto results = svc.db.in_transaction([&](soci::session& tx) {
    bus::unit_of_work uow(tx, svc.role, nullptr, svc.destinations, bus::now_ms());
    reporter rep(uow, correlation);
    // An admin's typo is answered 404 without leaving traces; events, which cannot be answered,
    // report unknown skus instead (stock_keeper).
    if (!inventory_repository(tx).lock_product(sku)) throw no_product(sku);
    auto out = svc.keeper.apply(rep, std::span(&request, 1));
    json::object extra{{"source", "api"}};
    if (input->note) extra["note"] = *input->note;
    svc.keeper.report_update(rep, out, input->order_id, input->reason, extra);
    return out;
  });
  svc.keeper.count(results);
  svc.wake_outbox();

  const movement_result& r = results.front();
  switch (r.outcome) {
    case movement_outcome::applied:
      return http::json_response(status::ok, ledger_json(*r.entry));
    case movement_outcome::shortfall:
      return http::json_response(
          status::conflict,
          json::object{{"error", "only " + std::to_string(r.available) + " of " + sku + " in stock, " +
                                     std::to_string(-input->delta) + " requested: nothing was taken"},
                       {"code", "insufficient_stock"},
                       {"field", "delta"},
                       {"available", r.available},
                       {"requested", -input->delta},
                       {"movement", ledger_json(*r.entry)}});
    case movement_outcome::over_limit:
      return http::json_response(status::conflict,
                                 json::object{{"error", "the stock of " + sku + " would pass the limit of " +
                                                            std::to_string(max_stock) + " units"},
                                              {"code", "stock_limit"},
                                              {"field", "delta"},
                                              {"available", r.available},
                                              {"limit", max_stock}});
    case movement_outcome::unknown_sku:
      break;
  }
  throw no_product(sku);  // the row was locked above: only a deleted product gets here
}

http::response list_movements(service& svc, http::request_context& rc) {
  http::require_bearer(rc, svc.settings.shopd_api_token);
  const std::string sku = sku_of(rc);
  const int limit = limit_of(rc);
  std::optional<std::int64_t> before;
  if (auto c = cursor_of(rc)) {
    before = parse_movement_cursor(*c);
    if (!before) throw bad_cursor();
  }
  auto rows = svc.db.with_session([&](soci::session& s) -> std::optional<std::vector<ledger_row>> {
    inventory_repository repo(s);
    if (!repo.find_product(sku)) return std::nullopt;
    return repo.list_movements(sku, before, limit + 1);
  });
  if (!rows) throw no_product(sku);
  json::value next = nullptr;
  if (rows->size() > static_cast<std::size_t>(limit)) {
    rows->resize(static_cast<std::size_t>(limit));
    next = movement_cursor(rows->back().id);
  }
  json::array items;
  items.reserve(rows->size());
  for (const auto& r : *rows) items.push_back(ledger_json(r));
  return http::json_response(status::ok, json::object{{"movements", std::move(items)}, {"nextCursor", next}});
}

}  // namespace

std::unique_ptr<app::role> make_inventory_role(app::role_context& ctx) {
  auto svc = std::make_shared<service>(ctx);
  ctx.events.on(bus::event_types::stock_updated,
                [svc](bus::delivery& d) { return handle_stock_updated(*svc, d); });

  using http::execution;
  using http::verb;
  auto route = [&](verb method, std::string pattern, http::response (*fn)(service&, http::request_context&)) {
    ctx.routes.add(
        method, std::move(pattern), [svc, fn](http::request_context& rc) { return fn(*svc, rc); },
        execution::blocking);
  };
  route(verb::get, "/api/products", &list_products);
  route(verb::get, "/api/products/{sku}", &get_product);
  route(verb::post, "/api/products", &upsert_product);
  route(verb::post, "/api/stock/{sku}/adjust", &adjust_stock);
  route(verb::get, "/api/stock/{sku}/movements", &list_movements);
  return std::make_unique<app::role>();
}

}  // namespace shopd::inventory
