#pragma once
/// The orders role (DESIGN §1, §5): turns `command.checkout` into orders.
///
/// Event handler `command.checkout` (one transaction with the inbox record and the outbox rows):
///   - an invalid payload is rejected (`invalid_payload`, naming the field); when its checkoutId is
///     readable the checkout is recorded as rejected;
///   - a checkoutId decided before (accepted or rejected) is acknowledged with no new effects: one
///     order per checkoutId, ever, whatever the eventId;
///   - prices and names come from the `products` table; an unknown sku (`unknown_sku`), an inactive
///     product (`product_unavailable`), another currency (`currency_mismatch`) or an amount beyond
///     bus::max_money_cents (`amount_out_of_range`) rejects the checkout, recorded and audited
///     (`checkout.rejected`, failure);
///   - otherwise the order is stored and `order.created`, `notification.email` (order_confirmation),
///     `inventory.stock.updated` (reason order) and the `order.created` audit are emitted, in this
///     order. Stock is not checked here: the inventory role records shortfalls.
///
/// HTTP API (JSON; private reads need `Authorization: Bearer SHOPD_API_TOKEN`):
///   - `GET /api/orders/{id}` (bearer): the order with its lines, or 404;
///   - `GET /api/orders?email=&limit=&cursor=` (bearer): that customer's orders, newest first,
///     `{"orders": [...], "nextCursor": "..."|null}`;
///   - `POST /api/checkout` (public, browser-facing): validates the cart against the catalogue,
///     queues `command.checkout` to this role's webhook through the outbox and answers 202
///     `{"checkoutId", "status": "accepted"}` with `Location: /api/checkouts/{checkoutId}`;
///   - `GET /api/checkouts/{checkoutId}` (bearer): `{checkoutId, status: accepted|rejected|pending,
///     orderId?, reason?}`.
///
/// Metrics: shopd_orders_created_total, shopd_checkouts_rejected_total{reason},
/// shopd_order_value_cents_total{currency}; counted once the transaction has committed.

#include "shopd/app/role.hpp"

#include <memory>

namespace shopd::roles::orders {

/// Register the handler and the routes on `ctx`. The role has no background work of its own.
[[nodiscard]] std::unique_ptr<app::role> make_orders_role(app::role_context& ctx);

}  // namespace shopd::roles::orders
