#include "shopd/roles/inventory/stock_rules.hpp"

#include "shopd/bus/events.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <stdexcept>

using namespace shopd::inventory;
using shopd::bus::max_stock_delta;

namespace {

constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t int64_min = std::numeric_limits<std::int64_t>::min();

movement_decision applied(std::int64_t delta, std::int64_t after) {
  return {.status = movement_status::applied, .applied_delta = delta, .stock_after = after, .missing = 0};
}

}  // namespace

TEST_SUITE("inventory/stock_rules") {
  TEST_CASE("a decrement the stock covers is applied whole") {
    SUBCASE("part of the stock") {
      CHECK(decide_movement(10, -3) == applied(-3, 7));
    }
    SUBCASE("exactly the whole stock leaves zero") {
      CHECK(decide_movement(5, -5) == applied(-5, 0));
    }
    SUBCASE("the largest decrement on a stock that covers it") {
      CHECK(decide_movement(max_stock_delta, -max_stock_delta) == applied(-max_stock_delta, 0));
    }
  }

  TEST_CASE("a decrement beyond the stock is a shortfall that changes nothing (no partial fill)") {
    const auto d = decide_movement(2, -5);
    CHECK(d.status == movement_status::shortfall);
    CHECK(d.applied_delta == 0);
    CHECK(d.stock_after == 2);
    CHECK(d.missing == 3);

    SUBCASE("from an empty stock") {
      CHECK(decide_movement(0, -1) ==
            movement_decision{
                .status = movement_status::shortfall, .applied_delta = 0, .stock_after = 0, .missing = 1});
    }
    SUBCASE("one unit short") {
      CHECK(decide_movement(99, -100).missing == 1);
      CHECK(decide_movement(99, -100).stock_after == 99);
    }
    SUBCASE("the largest decrement on an empty stock") {
      CHECK(decide_movement(0, -max_stock_delta).missing == max_stock_delta);
    }
  }

  TEST_CASE("increments are applied up to max_stock, and refused beyond it") {
    CHECK(decide_movement(0, 1) == applied(1, 1));
    CHECK(decide_movement(7, max_stock_delta) == applied(max_stock_delta, 7 + max_stock_delta));
    CHECK(decide_movement(max_stock - 5, 5) == applied(5, max_stock));
    const auto over = decide_movement(max_stock - 5, 6);
    CHECK(over.status == movement_status::over_limit);
    CHECK(over.applied_delta == 0);
    CHECK(over.stock_after == max_stock - 5);
    CHECK(over.missing == 0);
    CHECK(decide_movement(max_stock, 1).status == movement_status::over_limit);
  }

  TEST_CASE("no arithmetic overflows, whatever the stock read from the database") {
    SUBCASE("an increment on the largest int64 stock is over the limit, not wrapped around") {
      CHECK(decide_movement(int64_max, max_stock_delta).status == movement_status::over_limit);
      CHECK(decide_movement(int64_max, 1).stock_after == int64_max);
    }
    SUBCASE("a decrement on a stock above max_stock still brings it down") {
      CHECK(decide_movement(int64_max, -max_stock_delta) ==
            applied(-max_stock_delta, int64_max - max_stock_delta));
    }
  }

  TEST_CASE("inputs the callers must have refused are contract violations") {
    CHECK_THROWS_AS((void)decide_movement(10, 0), std::invalid_argument);
    CHECK_THROWS_AS((void)decide_movement(10, max_stock_delta + 1), std::invalid_argument);
    CHECK_THROWS_AS((void)decide_movement(10, -max_stock_delta - 1), std::invalid_argument);
    CHECK_THROWS_AS((void)decide_movement(10, int64_min), std::invalid_argument);
    CHECK_THROWS_AS((void)decide_movement(10, int64_max), std::invalid_argument);
    CHECK_THROWS_AS((void)decide_movement(-1, 1), std::invalid_argument);
    CHECK_THROWS_AS((void)decide_movement(int64_min, -1), std::invalid_argument);
  }

  TEST_CASE("status names are the ledger's") {
    CHECK(to_string(movement_status::applied) == "applied");
    CHECK(to_string(movement_status::shortfall) == "shortfall");
    CHECK(to_string(movement_status::over_limit) == "over_limit");
  }
}
