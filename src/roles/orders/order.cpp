#include "shopd/roles/orders/order.hpp"

#include <boost/json.hpp>

namespace shopd::roles::orders {

namespace json = boost::json;

std::string_view to_string(checkout_status s) noexcept {
  return s == checkout_status::accepted ? "accepted" : "rejected";
}

stored_order make_order(const bus::checkout_command& cmd, priced_order priced, std::string order_id,
                        bus::timestamp created_at, std::string correlation_id) {
  stored_order out;
  out.order.order_id = std::move(order_id);
  out.order.checkout_id = cmd.checkout_id;
  out.order.customer = cmd.customer;
  out.order.items = std::move(priced.lines);
  out.order.subtotal_cents = priced.subtotal_cents;
  out.order.currency = cmd.currency;
  out.order.created_at = created_at;
  if (cmd.shipping_address) {
    // The command's own encoder writes the address, so the stored JSON has the wire's field names.
    const json::object wire = bus::to_json(cmd);
    out.shipping_address = wire.at("shippingAddress").as_object();
  }
  out.note = cmd.note;
  out.correlation_id = std::move(correlation_id);
  return out;
}

bus::email_notification confirmation_email(const bus::order_created& order) {
  json::array items;
  items.reserve(order.items.size());
  for (const bus::order_line& l : order.items) {
    items.push_back(json::object{{"sku", l.sku},
                                 {"name", l.name},
                                 {"quantity", l.quantity},
                                 {"unitPriceCents", l.unit_price_cents},
                                 {"lineTotalCents", l.line_total_cents}});
  }
  bus::email_notification n;
  n.to = order.customer.email;
  n.template_name = "order_confirmation";
  n.variables = json::object{{"orderId", order.order_id},
                             {"customerName", order.customer.name},
                             {"items", std::move(items)},
                             {"subtotalCents", order.subtotal_cents},
                             {"currency", order.currency}};
  return n;
}

bus::stock_updated stock_taken(const bus::order_created& order) {
  bus::stock_updated u;
  u.order_id = order.order_id;
  u.reason = bus::stock_reason::order;
  u.movements.reserve(order.items.size());
  for (const bus::order_line& l : order.items) u.movements.push_back({l.sku, -l.quantity});
  return u;
}

json::object order_audit_detail(const bus::order_created& order) {
  return json::object{{"checkoutId", order.checkout_id},
                      {"subtotalCents", order.subtotal_cents},
                      {"currency", order.currency},
                      {"lines", order.items.size()}};
}

}  // namespace shopd::roles::orders
