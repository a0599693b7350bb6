#include "shopd/roles/orders/orders_role.hpp"

#include "shopd/bus/dispatch.hpp"
#include "shopd/bus/events.hpp"
#include "shopd/config/config.hpp"
#include "shopd/db/database.hpp"
#include "shopd/http/auth.hpp"
#include "shopd/http/router.hpp"
#include "shopd/obs/log.hpp"
#include "shopd/obs/metrics.hpp"
#include "shopd/roles/orders/order.hpp"
#include "shopd/roles/orders/order_api.hpp"
#include "shopd/roles/orders/orders_repository.hpp"
#include "shopd/roles/orders/pricing.hpp"

#include <boost/json.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>

namespace shopd::roles::orders {

namespace {

namespace json = boost::json;
using http::status;

constexpr std::string_view invalid_payload = "invalid_payload";

http::http_error bad_parameter(const bus::validation_error& e) {
  return {status::bad_request, "invalid_parameter", e.field + " " + e.message, e.field};
}

// The API's answer to a database that is busy or unreachable: the client may simply retry.
template <typename F>
decltype(auto) unless_unavailable(F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (const db::transient_error& e) {
    obs::warn("orders API: database unavailable", {{"error", e.what()}});
    throw http::http_error(status::service_unavailable, "unavailable", "temporarily unavailable, retry later")
        .with_header("Retry-After", "1");
  }
}

class orders_service {
 public:
  explicit orders_service(app::role_context& ctx)
      : role_(ctx.name),
        api_token_(ctx.settings.shopd_api_token),
        db_(ctx.db),
        destinations_(ctx.destinations),
        notify_outbox_(ctx.notify_outbox),
        orders_created_(
            ctx.metrics.counter_family("shopd_orders_created_total", "Orders created from checkouts").get()),
        checkouts_rejected_(ctx.metrics.counter_family("shopd_checkouts_rejected_total",
                                                       "Checkouts rejected, by reason", {"reason"})),
        order_value_(ctx.metrics.counter_family("shopd_order_value_cents_total",
                                                "Subtotal of the orders created, in minor units, by currency",
                                                {"currency"})) {}

  bus::outcome handle_checkout(bus::delivery& d) {
    const bus::envelope& ev = d.event();
    std::optional<bus::rejection> rejected;
    std::optional<bus::order_created> created;
    const bool first = d.once([&](bus::unit_of_work& uow) {
      auto cmd = bus::checkout_command::from_json(ev.data);
      if (!cmd) {
        rejected = reject_invalid(uow, ev, cmd.error());
        return;
      }
      soci::session& tx = uow.tx();
      if (const auto prior = repository::find_checkout(tx, cmd->checkout_id)) {
        log_repeat(ev, *prior);
        return;
      }
      auto priced = price_checkout(*cmd, repository::find_products(tx, cmd->items));
      if (!priced) {
        rejected = reject_checkout(uow, ev, cmd->checkout_id, priced.error());
        return;
      }
      std::string order_id = "ord_" + bus::new_event_id();
      stored_order order =
          make_order(*cmd, std::move(*priced), order_id,
                     bus::timestamp(std::chrono::milliseconds(uow.now_ms())), ev.correlation_id);
      // The claim on the checkoutId comes first: a concurrent delivery of the same checkout under
      // another eventId either waits here and then finds it taken, or has taken it already.
      if (!repository::insert_checkout(tx, checkout_record{.checkout_id = cmd->checkout_id,
                                                           .status = checkout_status::accepted,
                                                           .order_id = order_id,
                                                           .reason = std::nullopt,
                                                           .event_id = ev.event_id,
                                                           .correlation_id = ev.correlation_id,
                                                           .created_at_ms = uow.now_ms()})) {
        log_concurrent(ev, cmd->checkout_id);
        return;
      }
      repository::insert_order(tx, order);
      uow.emit(bus::event_types::order_created, bus::to_json(order.order));
      uow.emit(bus::event_types::email_notification, bus::to_json(confirmation_email(order.order)));
      uow.emit(bus::event_types::stock_updated, bus::to_json(stock_taken(order.order)));
      uow.audit("order.created", "order", order_id, true, order_audit_detail(order.order));
      created = std::move(order.order);
    });
    if (!first) return bus::duplicate{};
    if (rejected) {
      checkouts_rejected_.with({rejected->code}).inc();
      return *std::move(rejected);
    }
    if (created) {
      orders_created_.inc();
      order_value_.with({created->currency}).inc(static_cast<double>(created->subtotal_cents));
      obs::info("order created", {{"orderId", created->order_id},
                                  {"checkoutId", created->checkout_id},
                                  {"lines", created->items.size()},
                                  {"subtotalCents", created->subtotal_cents},
                                  {"currency", created->currency},
                                  {"eventId", ev.event_id},
                                  {"correlation_id", ev.correlation_id}});
    }
    return bus::processed{};
  }

  http::response get_order(http::request_context& rc) {
    http::require_bearer(rc, api_token_);
    const std::string id(rc.param("id"));
    // An id no order can have is simply not found.
    std::optional<stored_order> order;
    if (bus::is_valid_id(id)) {
      order = unless_unavailable(
          [&] { return db_.with_session([&](soci::session& s) { return repository::find_order(s, id); }); });
    }
    if (!order) throw http::http_error(status::not_found, "not_found", "no such order");
    return http::json_response(status::ok, order_view(*order));
  }

  http::response list_orders(http::request_context& rc) {
    http::require_bearer(rc, api_token_);
    const auto email = rc.query_param("email");
    if (!email || email->empty()) {
      throw bad_parameter({"email", "is required: the customer whose orders to list"});
    }
    if (!bus::is_valid_email(*email)) throw bad_parameter({"email", "must be a plain email address"});
    const auto limit = parse_limit(rc.query_param("limit"));
    if (!limit) throw bad_parameter(limit.error());
    std::optional<page_key> after;
    if (const auto cursor = rc.query_param("cursor"); cursor && !cursor->empty()) {
      auto key = decode_cursor(*cursor);
      if (!key) throw bad_parameter(key.error());
      after = std::move(*key);
    }
    // One row more than asked tells whether another page follows.
    auto page = unless_unavailable([&] {
      return db_.with_session(
          [&](soci::session& s) { return repository::orders_by_email(s, *email, after, *limit + 1); });
    });
    json::value next_cursor = nullptr;
    if (page.size() > *limit) {
      page.resize(*limit);
      const bus::order_created& last = page.back().order;
      next_cursor = encode_cursor({last.created_at.time_since_epoch().count(), last.order_id});
    }
    json::array orders;
    orders.reserve(page.size());
    for (const stored_order& o : page) orders.push_back(order_view(o));
    return http::json_response(
        status::ok, json::object{{"orders", std::move(orders)}, {"nextCursor", std::move(next_cursor)}});
  }

  http::response post_checkout(http::request_context& rc) {
    auto cmd = decode_checkout_request(rc.req.body(), [] { return "chk_" + bus::new_event_id(); });
    if (!cmd) {
      const auto& e = cmd.error();
      throw http::http_error(status::bad_request, std::string(invalid_payload),
                             e.field.empty() ? e.message : e.field + " " + e.message, e.field);
    }
    rc.correlation_id = cmd->checkout_id;
    // The same pricing the handler will apply, so a cart that cannot become an order is refused
    // now rather than after the event has travelled.
    const auto products = unless_unavailable([&] {
      return db_.with_session([&](soci::session& s) { return repository::find_products(s, cmd->items); });
    });
    if (const auto priced = price_checkout(*cmd, products); !priced) {
      const auto& e = priced.error();
      throw http::http_error(status::bad_request, std::string(to_string(e.code)), e.message, e.field);
    }
    unless_unavailable([&] {
      db_.in_transaction([&](soci::session& tx) {
        bus::unit_of_work uow(tx, role_, nullptr, destinations_, bus::now_ms());
        uow.emit(bus::event_types::checkout_command, bus::to_json(*cmd), cmd->checkout_id);
      });
    });
    if (notify_outbox_) notify_outbox_();
    obs::info("checkout queued", {{"checkoutId", cmd->checkout_id},
                                  {"lines", cmd->items.size()},
                                  {"correlation_id", cmd->checkout_id}});
    auto res = http::json_response(status::accepted,
                                   json::object{{"checkoutId", cmd->checkout_id}, {"status", "accepted"}});
    res.set(http::field::location, checkout_location(cmd->checkout_id));
    return res;
  }

  http::response get_checkout(http::request_context& rc) {
    http::require_bearer(rc, api_token_);
    const std::string id(rc.param("checkoutId"));
    if (!bus::is_valid_id(id)) {
      throw bad_parameter({"checkoutId", "must be 1 to 256 printable ASCII characters without spaces"});
    }
    const auto record = unless_unavailable(
        [&] { return db_.with_session([&](soci::session& s) { return repository::find_checkout(s, id); }); });
    return http::json_response(status::ok, checkout_view(id, record));
  }

 private:
  // Invalid commands are rejected for good; when the checkoutId can be read, the checkout is
  // recorded as rejected so that a poll of its status does not stay pending forever.
  bus::rejection reject_invalid(bus::unit_of_work& uow, const bus::envelope& ev,
                                const bus::validation_error& e) {
    bus::rejection r{std::string(invalid_payload), e.field, e.message};
    std::string entity_id = ev.event_id;
    const auto* id = ev.data.if_contains("checkoutId");
    if (id != nullptr && id->is_string() && bus::is_valid_id(id->get_string())) {
      entity_id = std::string(id->get_string());
      // Nothing to do when this checkoutId was decided before: that decision stands.
      (void)repository::insert_checkout(uow.tx(), checkout_record{.checkout_id = entity_id,
                                                                  .status = checkout_status::rejected,
                                                                  .order_id = std::nullopt,
                                                                  .reason = r.code,
                                                                  .event_id = ev.event_id,
                                                                  .correlation_id = ev.correlation_id,
                                                                  .created_at_ms = uow.now_ms()});
    }
    uow.audit(
        "checkout.rejected", "checkout", entity_id, false,
        json::object{{"code", r.code}, {"field", r.field}, {"message", r.message}, {"eventId", ev.event_id}});
    return r;
  }

  // A checkout that cannot be priced; nullopt when another delivery decided it meanwhile.
  std::optional<bus::rejection> reject_checkout(bus::unit_of_work& uow, const bus::envelope& ev,
                                                const std::string& checkout_id, const pricing_error& e) {
    bus::rejection r{std::string(to_string(e.code)), "data." + e.field, e.message};
    if (!repository::insert_checkout(uow.tx(), checkout_record{.checkout_id = checkout_id,
                                                               .status = checkout_status::rejected,
                                                               .order_id = std::nullopt,
                                                               .reason = r.code,
                                                               .event_id = ev.event_id,
                                                               .correlation_id = ev.correlation_id,
                                                               .created_at_ms = uow.now_ms()})) {
      log_concurrent(ev, checkout_id);
      return std::nullopt;
    }
    uow.audit(
        "checkout.rejected", "checkout", checkout_id, false,
        json::object{{"code", r.code}, {"field", r.field}, {"message", r.message}, {"eventId", ev.event_id}});
    return r;
  }

  static void log_repeat(const bus::envelope& ev, const checkout_record& prior) {
    obs::info("checkout already decided: acknowledged without effects (a client retry)",
              {{"checkoutId", prior.checkout_id},
               {"status", to_string(prior.status)},
               {"decidedBy", prior.event_id},
               {"eventId", ev.event_id},
               {"correlation_id", ev.correlation_id}});
  }

  static void log_concurrent(const bus::envelope& ev, const std::string& checkout_id) {
    obs::info("checkout decided by a concurrent delivery: acknowledged without effects",
              {{"checkoutId", checkout_id}, {"eventId", ev.event_id}, {"correlation_id", ev.correlation_id}});
  }

  std::string role_;
  std::string api_token_;
  db::database& db_;
  const bus::destinations& destinations_;
  std::function<void()> notify_outbox_;
  obs::counter& orders_created_;
  obs::family<obs::counter>& checkouts_rejected_;
  obs::family<obs::counter>& order_value_;
};

// The service is shared by the registered handlers, so it lives as long as the last of them
// whatever order the role, its router and its event router are destroyed in.
class orders_role final : public app::role {
 public:
  explicit orders_role(std::shared_ptr<orders_service> service) : service_(std::move(service)) {}

 private:
  std::shared_ptr<orders_service> service_;
};

}  // namespace

std::unique_ptr<app::role> make_orders_role(app::role_context& ctx) {
  auto service = std::make_shared<orders_service>(ctx);
  ctx.events.on(bus::event_types::checkout_command,
                [service](bus::delivery& d) { return service->handle_checkout(d); });
  ctx.routes.add(
      http::verb::get, "/api/orders/{id}",
      [service](http::request_context& rc) { return service->get_order(rc); }, http::execution::blocking);
  ctx.routes.add(
      http::verb::get, "/api/orders",
      [service](http::request_context& rc) { return service->list_orders(rc); }, http::execution::blocking);
  ctx.routes.add(
      http::verb::post, "/api/checkout",
      [service](http::request_context& rc) { return service->post_checkout(rc); }, http::execution::blocking);
  ctx.routes.add(
      http::verb::get, "/api/checkouts/{checkoutId}",
      [service](http::request_context& rc) { return service->get_checkout(rc); }, http::execution::blocking);
  return std::make_unique<orders_role>(std::move(service));
}

}  // namespace shopd::roles::orders
