#pragma once
/// The pure parts of the orders API: the `POST /api/checkout` body, paging of
/// `GET /api/orders` (limit and opaque keyset cursor), and the JSON views of orders and checkouts.
///
/// Pure and thread-safe. Errors are bus::validation_error values whose `field` names what the
/// client sent: a query parameter (`limit`, `cursor`) or a body field without the `data.` prefix
/// of the event it becomes (`items[0].sku`); empty when the body as a whole is at fault.

#include "shopd/bus/envelope.hpp"
#include "shopd/bus/events.hpp"
#include "shopd/roles/orders/order.hpp"

#include <boost/json/object.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace shopd::roles::orders {

/// A position in the newest-first list of one customer's orders: the last order of a page.
struct page_key {
  std::int64_t created_at_ms = 0;
  std::string order_id;

  friend bool operator==(const page_key&, const page_key&) = default;
};

inline constexpr std::size_t default_page_limit = 20;
inline constexpr std::size_t max_page_limit = 100;

/// The `limit` query parameter: absent means default_page_limit; otherwise 1..max_page_limit
/// written in decimal digits only. Errors name `limit`.
[[nodiscard]] bus::result<std::size_t> parse_limit(const std::optional<std::string>& value);

/// The opaque cursor for the page after `key`: unpadded base64url of `<createdAtMs>:<orderId>`.
[[nodiscard]] std::string encode_cursor(const page_key& key);

/// The key encode_cursor() wrote. Anything else (other alphabets, padding, a negative or
/// non-decimal time, an invalid order id) is an error naming `cursor`.
[[nodiscard]] bus::result<page_key> decode_cursor(std::string_view cursor);

/// `body` of `POST /api/checkout`, `{checkoutId?, customer, items, currency, shippingAddress?,
/// note?}`, parsed with bus::parse_json's default limits and decoded with
/// bus::checkout_command::from_json. `new_checkout_id` is called only when `checkoutId` is absent
/// or null; a given one must pass the id rule. Unknown fields (prices among them) are ignored.
[[nodiscard]] bus::result<bus::checkout_command> decode_checkout_request(
    std::string_view body, const std::function<std::string()>& new_checkout_id);

/// `data.items[0].sku` -> `items[0].sku`, `data` -> `` (the body); other paths are returned as they are.
[[nodiscard]] std::string request_field(std::string_view event_field);

/// An order as the API shows it: the order.created fields (orderId, checkoutId, customer, items,
/// subtotalCents, currency, createdAt), then status, and shippingAddress and note when present.
[[nodiscard]] boost::json::object order_view(const stored_order& order);

/// `{checkoutId, status, orderId?, reason?}`; status `pending` when there is no record yet.
[[nodiscard]] boost::json::object checkout_view(std::string_view checkout_id,
                                                const std::optional<checkout_record>& record);

/// Where a client polls a checkout: `/api/checkouts/` + the id, percent-encoded as a path segment
/// (everything but RFC 3986 unreserved characters).
[[nodiscard]] std::string checkout_location(std::string_view checkout_id);

}  // namespace shopd::roles::orders
