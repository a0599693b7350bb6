#pragma once
/// The stock arithmetic of the inventory role (DESIGN §3, "no oversell"), as pure functions: what
/// happens to one movement given the current stock. No SQL, no I/O; thread-safe.
///
/// Policy, shared by events and the admin API:
///   - stock never goes below zero and never above max_stock;
///   - a movement is all-or-nothing: one that would take stock below zero is a *shortfall* and
///     changes nothing (no partial fill: shipping 3 of the 5 units an order line asked for is a
///     business decision the order has to make, not the warehouse);
///   - the movements of one event are independent: a shortfall on one sku does not stop the others.

#include <cstdint>
#include <string_view>

namespace shopd::inventory {

/// The highest stock one product may hold (10^12 units). With |delta| <= bus::max_stock_delta no
/// sum ever comes near the int64 range, in C++ or in SQL.
inline constexpr std::int64_t max_stock = 1'000'000'000'000;

/// What became of one movement.
enum class movement_status {
  applied,    ///< stock changed by the whole delta
  shortfall,  ///< a decrement larger than the stock: nothing changed
  over_limit  ///< an increment that would pass max_stock: nothing changed
};

/// "applied", "shortfall", "over_limit" (the first two are also the ledger's `status` values).
[[nodiscard]] std::string_view to_string(movement_status s) noexcept;

struct movement_decision {
  movement_status status = movement_status::applied;
  std::int64_t applied_delta = 0;  ///< the delta when applied, else 0
  std::int64_t stock_after = 0;    ///< the new stock when applied, else the unchanged current stock
  std::int64_t missing = 0;        ///< shortfall: units that were not there (-delta - stock), else 0

  friend bool operator==(const movement_decision&, const movement_decision&) = default;
};

/// Decide one movement. Preconditions: 0 <= current_stock (any value up to INT64_MAX, even above
/// max_stock, is handled without overflow) and 0 < |delta| <= bus::max_stock_delta; otherwise
/// throws std::invalid_argument, since callers validate deltas before they get here.
[[nodiscard]] movement_decision decide_movement(std::int64_t current_stock, std::int64_t delta);

}  // namespace shopd::inventory
