#pragma once
/// Applying stock movements and reporting them: the one path both the `inventory.stock.updated`
/// handler and the admin API (`POST /api/stock/{sku}/adjust`) take, so a movement behaves the same
/// whoever asks for it.
///
/// For each movement, inside the caller's transaction: lock the product row, decide with
/// decide_movement() (stock_rules.hpp), apply it with the repository's guarded update, append the
/// ledger row, and queue in the outbox what analytics must hear about a failure:
///   - shortfall (a decrement larger than the stock): ledger row `shortfall` (applied_delta 0,
///     stock_after = the unchanged stock); audit failure `stock.shortfall` (entityType `product`,
///     detail {orderId, reason, requested, available}); metric `stock.shortfall` (value = the
///     missing units, unit `units`, tags {sku, reason});
///   - unknown sku: no ledger row (the ledger references products); audit failure
///     `stock.unknown_sku` (detail {orderId, reason, delta}); metric `stock.unknown_sku` (value =
///     |delta|, unit `units`, tags {sku, reason});
///   - over the stock ceiling (max_stock): no ledger row (its status is applied or shortfall only);
///     audit failure `stock.over_limit` (detail {orderId, reason, delta, available, limit}).
/// report_update() then queues the success audit and the stock levels of a batch.
///
/// Prometheus counters change only in count(), which the caller calls after its transaction
/// committed, so a rolled-back and retried delivery is not counted twice:
/// `shopd_stock_movements_total{reason,status}` (status: applied, shortfall, unknown_sku,
/// over_limit) and `shopd_stock_shortfalls_total`. The sku is deliberately not a label (unbounded
/// cardinality); the per-sku story is in the ledger and in analytics.
///
/// Thread-safe: a stock_keeper holds only metric references.

#include "shopd/bus/events.hpp"
#include "shopd/roles/inventory/inventory_repository.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shopd::bus {
class unit_of_work;
}
namespace shopd::obs {
class registry;
class counter;
template <typename Metric>
class family;
}  // namespace shopd::obs

namespace shopd::inventory {

/// Emits analytics events from a unit of work under an explicit correlation id (a unit of work that
/// serves an API call has no cause to take one from). The reference must outlive the reporter.
class reporter {
 public:
  reporter(bus::unit_of_work& uow, std::string correlation_id)
      : uow_(uow), correlation_id_(std::move(correlation_id)) {}

  [[nodiscard]] bus::unit_of_work& uow() noexcept { return uow_; }
  [[nodiscard]] const std::string& correlation_id() const noexcept { return correlation_id_; }

  /// `analytics.audit` with the unit of work's role as the actor.
  void audit(std::string_view action, std::string_view entity_type, std::string_view entity_id, bool success,
             boost::json::object detail);
  /// `analytics.metric`.
  void metric(std::string_view name, double value, std::string_view unit,
              std::map<std::string, std::string> tags);

 private:
  bus::unit_of_work& uow_;
  std::string correlation_id_;
};

/// One movement to apply.
struct movement_request {
  std::string sku;
  std::int64_t delta = 0;  ///< non-zero, |delta| <= bus::max_stock_delta
  bus::stock_reason reason = bus::stock_reason::adjustment;
  std::optional<std::string> order_id;
  std::optional<std::string> event_id;  ///< the event asking; none for API calls
};

enum class movement_outcome { applied, shortfall, unknown_sku, over_limit };

/// "applied", "shortfall", "unknown_sku", "over_limit".
[[nodiscard]] std::string_view to_string(movement_outcome o) noexcept;

struct movement_result {
  movement_request request;
  movement_outcome outcome = movement_outcome::applied;
  std::int64_t available = 0;       ///< the stock before the movement (0 for an unknown sku)
  std::int64_t missing = 0;         ///< shortfall: the units that were not there
  std::optional<ledger_row> entry;  ///< the ledger row (applied and shortfall only)
};

class stock_keeper {
 public:
  explicit stock_keeper(obs::registry& metrics);

  /// Apply `movements` in order within rep's transaction, reporting each failure (see above); one
  /// result per movement, in the same order. Before applying anything it locks the rows of every
  /// sku involved in sku order, so two concurrent events touching the same skus in different orders
  /// cannot deadlock on PostgreSQL. A movement that fails never stops the others. Throws only what
  /// the database throws (the caller's transaction then rolls back everything).
  std::vector<movement_result> apply(reporter& rep, std::span<const movement_request> movements);

  /// Queue the outcome of a batch: audit `stock.updated` (success) when at least one movement was
  /// applied — one record for the order (entityType `order`) when `order_id` is given, else one per
  /// applied product (entityType `product`) — whose detail holds `extra`'s fields and, per
  /// movement, {sku, requested, applied, stockAfter, status}; then metric `stock.level` (value = the
  /// stock after, unit `units`, tags {sku}) for every sku with a ledger row. Failures were reported
  /// by apply() already.
  void report_update(reporter& rep, std::span<const movement_result> results,
                     const std::optional<std::string>& order_id, bus::stock_reason reason,
                     const boost::json::object& extra = {});

  /// Count committed results in the Prometheus metrics.
  void count(std::span<const movement_result> results);

 private:
  /// `stock`: the locked row's stock (none for an unknown sku), kept current as movements apply.
  movement_result apply_one(reporter& rep, inventory_repository& repo, const movement_request& m,
                            std::optional<std::int64_t>& stock);

  obs::family<obs::counter>& movements_;
  obs::counter& shortfalls_;
};

}  // namespace shopd::inventory
