#pragma once
/// The orders role's SQL, and the only place it lives: the catalogue lookup (`products`), the
/// outcome of each checkout (`checkouts`) and the orders (`orders`, `order_items`).
///
/// Every function runs on the session it is given: a transaction's (in_transaction) for anything
/// that must be atomic with other effects, any leased session (with_session) for reads. They block,
/// and throw what SOCI throws (database::with_session/in_transaction turn busy and lost-connection
/// errors into db::transient_error). The SQL runs on SQLite and PostgreSQL alike.

#include "shopd/roles/orders/order.hpp"
#include "shopd/roles/orders/order_api.hpp"
#include "shopd/roles/orders/pricing.hpp"

#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace soci {
class session;
}

namespace shopd::roles::orders::repository {

/// The catalogue entries of the skus `items` names; skus without a product are simply absent.
[[nodiscard]] catalogue find_products(soci::session& s, std::span<const bus::checkout_item> items);

/// How `checkout_id` was handled, or nullopt when it was not (yet).
[[nodiscard]] std::optional<checkout_record> find_checkout(soci::session& s, std::string_view checkout_id);

/// Record the outcome of a checkout unless one is recorded already (`ON CONFLICT DO NOTHING`).
/// Returns false when the checkoutId was already decided; on PostgreSQL a concurrent transaction
/// deciding the same checkoutId makes this call wait for it, then return false if it committed.
[[nodiscard]] bool insert_checkout(soci::session& tx, const checkout_record& record);

/// Insert the order and its lines (numbered from 1 in order). Throws if the orderId or the
/// checkoutId already has an order.
void insert_order(soci::session& tx, const stored_order& order);

/// The order with its lines, or nullopt.
[[nodiscard]] std::optional<stored_order> find_order(soci::session& s, std::string_view order_id);

/// Up to `limit` orders of `email` (exact match), newest first (created_at_ms DESC, order_id DESC),
/// strictly after `after` in that order when given; each with its lines.
[[nodiscard]] std::vector<stored_order> orders_by_email(soci::session& s, std::string_view email,
                                                        const std::optional<page_key>& after,
                                                        std::size_t limit);

}  // namespace shopd::roles::orders::repository
