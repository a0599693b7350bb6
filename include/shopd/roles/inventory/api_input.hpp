#pragma once
/// Validation of what the inventory API accepts (request bodies, query parameters, cursors), as
/// pure functions: no SQL, no HTTP types; thread-safe. Errors are bus::validation_error values whose
/// `field` names the offending JSON field or query parameter, ready for a 400.
///
/// Bodies follow the event payload conventions (bus/events.hpp): integers must be JSON integers
/// (`1.0` and `"1"` are refused), text is single-line UTF-8. Unlike events, an admin body with an
/// unknown field is refused, so a typo (`"actve": false`) never passes silently.

#include "shopd/bus/envelope.hpp"
#include "shopd/bus/events.hpp"

#include <boost/json/fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shopd::inventory {

/// The body of `POST /api/products` (and one entry of a seed catalogue).
struct product_upsert {
  std::string sku;                    ///< `sku`: bus::is_valid_sku
  std::string name;                   ///< `name`: single-line, 1..bus::max_name_chars code points, not blank
  std::int64_t price_cents = 0;       ///< `priceCents`: 0..bus::max_money_cents
  std::string currency;               ///< `currency`: bus::is_valid_currency
  std::optional<bool> active;         ///< `active`: absent means true on creation, unchanged on update
  std::optional<std::int64_t> stock;  ///< `stock`: 0..max_stock; only allowed when creating

  friend bool operator==(const product_upsert&, const product_upsert&) = default;
};

[[nodiscard]] bus::result<product_upsert> parse_product_upsert(const boost::json::value& body);

/// The body of `POST /api/stock/{sku}/adjust`. `order` movements come only from events: the API
/// takes `restock` (delta > 0), `cancel` (delta > 0, orderId required: it returns an order's units)
/// and `adjustment` (either sign: stocktaking, breakage).
struct stock_adjustment {
  std::int64_t delta = 0;  ///< `delta`: non-zero, |delta| <= bus::max_stock_delta
  bus::stock_reason reason = bus::stock_reason::adjustment;  ///< `reason`
  std::optional<std::string> order_id;                       ///< `orderId`: bus::is_valid_id
  std::optional<std::string> note;  ///< `note`: single-line, 1..max_adjust_note_chars code points

  friend bool operator==(const stock_adjustment&, const stock_adjustment&) = default;
};

inline constexpr std::size_t max_adjust_note_chars = 500;

[[nodiscard]] bus::result<stock_adjustment> parse_stock_adjustment(const boost::json::value& body);

/// Paging of list endpoints: `limit` (default_page_size when absent) and an opaque `cursor`.
inline constexpr int default_page_size = 20;
inline constexpr int max_page_size = 100;

/// `limit`: decimal digits only, 1..max_page_size; absent gives default_page_size.
[[nodiscard]] bus::result<int> parse_limit(const std::optional<std::string>& text);

/// `active`: `true` or `false`; absent gives nullopt (no filter).
[[nodiscard]] bus::result<std::optional<bool>> parse_active_filter(const std::optional<std::string>& text);

/// Cursors are base64url of a tagged position, so a cursor of one list is refused by another.
/// The product list is ordered by sku; the position is the last sku served.
[[nodiscard]] std::string product_cursor(std::string_view last_sku);
/// The sku a product cursor stands for, or nullopt for anything product_cursor() cannot produce.
[[nodiscard]] std::optional<std::string> parse_product_cursor(std::string_view cursor);

/// The ledger is listed newest first; the position is the id of the last row served.
[[nodiscard]] std::string movement_cursor(std::int64_t last_id);
/// The id a movement cursor stands for, or nullopt for anything movement_cursor() cannot produce.
[[nodiscard]] std::optional<std::int64_t> parse_movement_cursor(std::string_view cursor);

}  // namespace shopd::inventory
