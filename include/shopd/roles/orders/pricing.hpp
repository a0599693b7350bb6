#pragma once
/// Pricing a checkout against the catalogue: the lines and subtotal of an order. Prices and names
/// come from the catalogue (the `products` table), never from the command.
///
/// Pure and thread-safe: no I/O, no clock, no shared state.

#include "shopd/bus/events.hpp"

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace shopd::roles::orders {

/// A catalogue entry as the orders role reads it.
struct product {
  std::string sku;
  std::string name;
  std::int64_t price_cents = 0;
  std::string currency;
  bool active = true;

  friend bool operator==(const product&, const product&) = default;
};

/// Products by sku. Holding only the skus a checkout names is enough.
using catalogue = std::map<std::string, product, std::less<>>;

/// A priced checkout: one line per checkout item, in the command's order.
struct priced_order {
  std::vector<bus::order_line> lines;
  std::int64_t subtotal_cents = 0;  ///< the sum of the lines' totals

  friend bool operator==(const priced_order&, const priced_order&) = default;
};

/// Why a checkout cannot be priced. Every one is final: the same command can never succeed.
enum class pricing_errc {
  unknown_sku,          ///< no product with the item's sku
  product_unavailable,  ///< the product is inactive (or its catalogue entry cannot be sold as is)
  currency_mismatch,    ///< the product is priced in another currency than the checkout's
  amount_out_of_range,  ///< a price, line total or the subtotal exceeds bus::max_money_cents
};

/// The machine code: "unknown_sku", "product_unavailable", "currency_mismatch", "amount_out_of_range".
[[nodiscard]] std::string_view to_string(pricing_errc e) noexcept;

struct pricing_error {
  pricing_errc code = pricing_errc::unknown_sku;
  /// The offending field relative to the payload, without the `data.` prefix: `items[1].sku`,
  /// `items[0].quantity`, `items` (the subtotal) or `currency`.
  std::string field;
  std::string message;  ///< one sentence for the customer; names the sku, never a price

  friend bool operator==(const pricing_error&, const pricing_error&) = default;
};

/// Found by boost::system::result through ADL; throws std::invalid_argument with the message.
[[noreturn]] void throw_exception_from_error(const pricing_error& e, const boost::source_location& loc);

template <class T>
using pricing_result = boost::system::result<T, pricing_error>;

/// Price `cmd`, a command as checkout_command::from_json accepts it, with `products`. Items are checked in
/// order and the first problem is reported; for each item: the sku must be in the catalogue (unknown_sku),
/// the product active and its name a valid order-line name, i.e. single-line text of 1..bus::max_name_chars
/// code points that is not blank (product_unavailable), priced in cmd.currency (currency_mismatch, on
/// `currency`), at a price of 0..bus::max_money_cents (amount_out_of_range, on the sku). A line total is
/// quantity x price and must stay within bus::max_money_cents (amount_out_of_range, on the quantity), as must
/// the subtotal (amount_out_of_range, on `items`). No arithmetic can overflow, whatever the inputs.
[[nodiscard]] pricing_result<priced_order> price_checkout(const bus::checkout_command& cmd,
                                                          const catalogue& products);

}  // namespace shopd::roles::orders
