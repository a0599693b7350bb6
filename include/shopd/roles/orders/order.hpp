#pragma once
/// The orders role's records: an order as stored (the `orders` and `order_items` tables) and the
/// outcome of a checkout (the `checkouts` table), and how a priced checkout becomes an order and
/// the events announcing it.
///
/// Pure and thread-safe: no I/O, no clock, no shared state (ids and times are passed in).

#include "shopd/bus/events.hpp"
#include "shopd/roles/orders/pricing.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shopd::roles::orders {

/// An order: what order.created announces, plus what only the orders role keeps.
struct stored_order {
  bus::order_created order;
  std::string status = "created";
  std::optional<boost::json::object> shipping_address;  ///< as the checkout sent it (JSON field names)
  std::optional<std::string> note;
  std::string correlation_id;  ///< of the command that created it

  friend bool operator==(const stored_order&, const stored_order&) = default;
};

enum class checkout_status { accepted, rejected };

/// "accepted" or "rejected", as stored.
[[nodiscard]] std::string_view to_string(checkout_status s) noexcept;

/// How a checkoutId was handled, once and for all.
struct checkout_record {
  std::string checkout_id;
  checkout_status status = checkout_status::accepted;
  std::optional<std::string> order_id;  ///< set when accepted
  std::optional<std::string> reason;    ///< the rejection code when rejected ("unknown_sku", ...)
  std::string event_id;                 ///< the command that decided it
  std::string correlation_id;
  std::int64_t created_at_ms = 0;

  friend bool operator==(const checkout_record&, const checkout_record&) = default;
};

/// The order `cmd` becomes once priced: customer, currency, shipping address and note from the
/// command, lines and subtotal from `priced`.
[[nodiscard]] stored_order make_order(const bus::checkout_command& cmd, priced_order priced,
                                      std::string order_id, bus::timestamp created_at,
                                      std::string correlation_id);

/// The `order_confirmation` email to the customer. Variables: orderId, customerName, items (sku,
/// name, quantity, unitPriceCents, lineTotalCents per line), subtotalCents, currency.
[[nodiscard]] bus::email_notification confirmation_email(const bus::order_created& order);

/// The stock the order takes: reason `order`, one movement of -quantity per line.
[[nodiscard]] bus::stock_updated stock_taken(const bus::order_created& order);

/// The detail of the `order.created` audit record: checkoutId, subtotalCents, currency and lines
/// (the number of order lines).
[[nodiscard]] boost::json::object order_audit_detail(const bus::order_created& order);

}  // namespace shopd::roles::orders
