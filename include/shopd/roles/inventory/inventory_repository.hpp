#pragma once
/// Every SQL statement of the inventory role: the catalogue (`products`) and the stock ledger
/// (`stock_movements`). The same statements run on SQLite and PostgreSQL.
///
/// A repository wraps a session the caller leased (db::database::with_session or in_transaction)
/// and lives no longer than it. Functions that write expect to run inside a transaction, which the
/// caller commits. Errors are SOCI's exceptions (db::database turns the transient ones into
/// db::transient_error at the transaction boundary).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace soci {
class session;
}

namespace shopd::inventory {

/// One row of `products`.
struct product {
  std::string sku;
  std::string name;
  std::int64_t price_cents = 0;
  std::string currency;
  std::int64_t stock = 0;
  bool active = true;
  std::int64_t created_at_ms = 0;
  std::int64_t updated_at_ms = 0;

  friend bool operator==(const product&, const product&) = default;
};

/// One row of `stock_movements`: the ledger of every movement asked for, applied or not.
struct ledger_row {
  std::int64_t id = 0;  ///< assigned by append_movement(); increases with time
  std::string sku;
  std::int64_t requested_delta = 0;
  std::int64_t applied_delta = 0;  ///< requested_delta when applied, 0 for a shortfall
  std::int64_t stock_after = 0;    ///< the stock once this row was written
  std::string reason;              ///< order, restock, adjustment, cancel
  std::string status;              ///< applied, shortfall
  std::optional<std::string> order_id;
  std::optional<std::string> event_id;  ///< the event that asked for it; none for API calls and seeding
  std::optional<std::string> correlation_id;
  std::int64_t created_at_ms = 0;

  friend bool operator==(const ledger_row&, const ledger_row&) = default;
};

class inventory_repository {
 public:
  explicit inventory_repository(soci::session& s);

  [[nodiscard]] std::optional<product> find_product(std::string_view sku);

  /// find_product(), and the row stays locked against other writers until the transaction ends:
  /// `SELECT ... FOR UPDATE` on PostgreSQL; on SQLite the transaction's write lock (BEGIN
  /// IMMEDIATE) already excludes every other writer.
  [[nodiscard]] std::optional<product> lock_product(std::string_view sku);

  /// Insert `p` unless its sku exists (`ON CONFLICT (sku) DO NOTHING`, so a concurrent insert of the
  /// same sku is not an error). True when this call inserted it.
  bool insert_product(const product& p);

  /// Set the catalogue fields of an existing product (stock is left alone). True when the sku exists.
  bool update_details(std::string_view sku, std::string_view name, std::int64_t price_cents,
                      std::string_view currency, bool active, std::int64_t now_ms);

  /// The guarded update: `stock += delta` only when the result stays within [0, max_stock]. True when
  /// the row changed; false leaves it as it was (unknown sku, or the guard refused).
  bool add_stock(std::string_view sku, std::int64_t delta, std::int64_t now_ms);

  /// Append `row` (its id is ignored) to the ledger; returns it with the id assigned.
  ledger_row append_movement(ledger_row row);

  /// Products ordered by sku, strictly after `after_sku` when given, optionally only (in)active ones;
  /// at most `limit` rows.
  [[nodiscard]] std::vector<product> list_products(const std::optional<std::string>& after_sku,
                                                   std::optional<bool> active, int limit);

  /// The ledger of `sku`, newest first (by id), strictly older than `before_id` when given; at most
  /// `limit` rows.
  [[nodiscard]] std::vector<ledger_row> list_movements(std::string_view sku,
                                                       std::optional<std::int64_t> before_id, int limit);

 private:
  std::optional<product> select_product(std::string_view sku, bool for_update);

  soci::session& s_;
  bool postgresql_;
};

}  // namespace shopd::inventory
