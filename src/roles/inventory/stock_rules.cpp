#include "shopd/roles/inventory/stock_rules.hpp"

#include "shopd/bus/events.hpp"

#include <stdexcept>
#include <string>

namespace shopd::inventory {

std::string_view to_string(movement_status s) noexcept {
  switch (s) {
    case movement_status::applied:
      return "applied";
    case movement_status::shortfall:
      return "shortfall";
    case movement_status::over_limit:
      return "over_limit";
  }
  return "applied";
}

movement_decision decide_movement(std::int64_t current_stock, std::int64_t delta) {
  if (current_stock < 0) {
    throw std::invalid_argument("stock " + std::to_string(current_stock) + " is negative");
  }
  if (delta == 0 || delta < -bus::max_stock_delta || delta > bus::max_stock_delta) {
    throw std::invalid_argument("stock delta " + std::to_string(delta) + " is zero or beyond ±" +
                                std::to_string(bus::max_stock_delta));
  }
  // Every comparison keeps both sides within range: |delta| <= max_stock_delta < max_stock, so
  // neither `max_stock - delta` nor `-delta` can overflow, and `current_stock + delta` is only
  // computed once it is known to lie in [0, max_stock] (or below current_stock).
  if (delta > 0) {
    if (current_stock > max_stock - delta) {
      return {.status = movement_status::over_limit, .stock_after = current_stock};
    }
    return {.status = movement_status::applied, .applied_delta = delta, .stock_after = current_stock + delta};
  }
  const std::int64_t wanted = -delta;
  if (current_stock < wanted) {
    return {.status = movement_status::shortfall,
            .stock_after = current_stock,
            .missing = wanted - current_stock};
  }
  return {.status = movement_status::applied, .applied_delta = delta, .stock_after = current_stock - wanted};
}

}  // namespace shopd::inventory
