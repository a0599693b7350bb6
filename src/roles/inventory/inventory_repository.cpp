#include "shopd/roles/inventory/inventory_repository.hpp"

#include "shopd/db/execute.hpp"

#include "shopd/roles/inventory/stock_rules.hpp"

#include <soci/soci.h>

#include <utility>

namespace shopd::inventory {

namespace {

constexpr const char* product_columns =
    "sku, name, price_cents, currency, stock, active, created_at_ms, updated_at_ms";
constexpr const char* ledger_columns =
    "id, sku, requested_delta, applied_delta, stock_after, reason, status, order_id, event_id, "
    "correlation_id, "
    "created_at_ms";

// Receives one products row; bound once to a statement, refilled by each fetch.
struct product_into {
  product p;
  long long price = 0;
  long long stock = 0;
  int active = 0;
  long long created = 0;
  long long updated = 0;

  void bind(soci::statement& st) {
    st.exchange(soci::into(p.sku));
    st.exchange(soci::into(p.name));
    st.exchange(soci::into(price));
    st.exchange(soci::into(p.currency));
    st.exchange(soci::into(stock));
    st.exchange(soci::into(active));
    st.exchange(soci::into(created));
    st.exchange(soci::into(updated));
  }
  [[nodiscard]] product get() const {
    product out = p;
    out.price_cents = price;
    out.stock = stock;
    out.active = active != 0;
    out.created_at_ms = created;
    out.updated_at_ms = updated;
    return out;
  }
};

// Receives one stock_movements row.
struct ledger_into {
  ledger_row r;
  long long id = 0;
  long long requested = 0;
  long long applied = 0;
  long long after = 0;
  long long created = 0;
  std::string order_id;
  std::string event_id;
  std::string correlation_id;
  soci::indicator order_ind = soci::i_null;
  soci::indicator event_ind = soci::i_null;
  soci::indicator correlation_ind = soci::i_null;

  void bind(soci::statement& st) {
    st.exchange(soci::into(id));
    st.exchange(soci::into(r.sku));
    st.exchange(soci::into(requested));
    st.exchange(soci::into(applied));
    st.exchange(soci::into(after));
    st.exchange(soci::into(r.reason));
    st.exchange(soci::into(r.status));
    st.exchange(soci::into(order_id, order_ind));
    st.exchange(soci::into(event_id, event_ind));
    st.exchange(soci::into(correlation_id, correlation_ind));
    st.exchange(soci::into(created));
  }
  [[nodiscard]] ledger_row get() const {
    ledger_row out = r;
    out.id = id;
    out.requested_delta = requested;
    out.applied_delta = applied;
    out.stock_after = after;
    out.created_at_ms = created;
    out.order_id = order_ind == soci::i_ok ? std::optional(order_id) : std::nullopt;
    out.event_id = event_ind == soci::i_ok ? std::optional(event_id) : std::nullopt;
    out.correlation_id = correlation_ind == soci::i_ok ? std::optional(correlation_id) : std::nullopt;
    return out;
  }
};

// A nullable text parameter: SOCI binds through an indicator, never a temporary.
struct nullable_text {
  explicit nullable_text(const std::optional<std::string>& v)
      : value(v.value_or(std::string())), ind(v ? soci::i_ok : soci::i_null) {}
  std::string value;
  soci::indicator ind;
};

}  // namespace

inventory_repository::inventory_repository(soci::session& s)
    : s_(s), postgresql_(s.get_backend_name() == "postgresql") {}

std::optional<product> inventory_repository::select_product(std::string_view sku, bool for_update) {
  const std::string key(sku);
  std::string sql = std::string("SELECT ") + product_columns + " FROM products WHERE sku = :sku";
  if (for_update && postgresql_) sql += " FOR UPDATE";
  product_into row;
  if (!db::query_one(s_, sql, [&](soci::statement& st) {
        row.bind(st);
        st.exchange(soci::use(key));
      })) {
    return std::nullopt;
  }
  return row.get();
}

std::optional<product> inventory_repository::find_product(std::string_view sku) {
  return select_product(sku, false);
}

std::optional<product> inventory_repository::lock_product(std::string_view sku) {
  return select_product(sku, true);
}

bool inventory_repository::insert_product(const product& p) {
  const long long price = p.price_cents;
  const long long stock = p.stock;
  const int active = p.active ? 1 : 0;
  const long long created = p.created_at_ms;
  const long long updated = p.updated_at_ms;
  soci::statement st =
      (s_.prepare << "INSERT INTO products (sku, name, price_cents, currency, stock, active, "
                     "created_at_ms, updated_at_ms) VALUES (:sku, :name, :price, :currency, "
                     ":stock, :active, :created, :updated) ON CONFLICT (sku) DO NOTHING",
       soci::use(p.sku), soci::use(p.name), soci::use(price), soci::use(p.currency), soci::use(stock),
       soci::use(active), soci::use(created), soci::use(updated));
  st.execute(true);
  return st.get_affected_rows() == 1;
}

bool inventory_repository::update_details(std::string_view sku, std::string_view name,
                                          std::int64_t price_cents, std::string_view currency, bool active,
                                          std::int64_t now_ms) {
  const std::string key(sku);
  const std::string name_s(name);
  const std::string currency_s(currency);
  const long long price = price_cents;
  const int active_i = active ? 1 : 0;
  const long long now = now_ms;
  soci::statement st =
      (s_.prepare << "UPDATE products SET name = :name, price_cents = :price, currency = :currency, "
                     "active = :active, updated_at_ms = :now WHERE sku = :sku",
       soci::use(name_s), soci::use(price), soci::use(currency_s), soci::use(active_i), soci::use(now),
       soci::use(key));
  st.execute(true);
  return st.get_affected_rows() == 1;
}

bool inventory_repository::add_stock(std::string_view sku, std::int64_t delta, std::int64_t now_ms) {
  const std::string key(sku);
  const long long d = delta;
  const long long now = now_ms;
  const long long ceiling = max_stock;
  // The guard is the last line of defence against oversell: whatever a caller decided, the row
  // never leaves [0, max_stock] (and the CHECK (stock >= 0) constraint backs it once more).
  return db::execute(s_,
                     "UPDATE products SET stock = stock + :delta, updated_at_ms = :now "
                     "WHERE sku = :sku AND stock + :delta2 >= 0 AND stock + :delta3 <= :ceiling",
                     soci::use(d), soci::use(now), soci::use(key), soci::use(d), soci::use(d),
                     soci::use(ceiling)) == 1;
}

ledger_row inventory_repository::append_movement(ledger_row row) {
  const long long requested = row.requested_delta;
  const long long applied = row.applied_delta;
  const long long after = row.stock_after;
  const long long created = row.created_at_ms;
  nullable_text order_id(row.order_id);
  nullable_text event_id(row.event_id);
  nullable_text correlation_id(row.correlation_id);
  long long id = 0;
  // RETURNING is understood by PostgreSQL and by SQLite since 3.35 (Debian 12 ships 3.40).
  s_ << "INSERT INTO stock_movements (sku, requested_delta, applied_delta, stock_after, reason, status, "
        "order_id, "
        "event_id, correlation_id, created_at_ms) VALUES (:sku, :requested, :applied, :after, :reason, "
        ":status, "
        ":order_id, :event_id, :correlation_id, :created) RETURNING id",
      soci::use(row.sku), soci::use(requested), soci::use(applied), soci::use(after), soci::use(row.reason),
      soci::use(row.status), soci::use(order_id.value, order_id.ind), soci::use(event_id.value, event_id.ind),
      soci::use(correlation_id.value, correlation_id.ind), soci::use(created), soci::into(id);
  row.id = id;
  return row;
}

std::vector<product> inventory_repository::list_products(const std::optional<std::string>& after_sku,
                                                         std::optional<bool> active, int limit) {
  const std::string after = after_sku.value_or(std::string());
  const int active_i = active.value_or(true) ? 1 : 0;
  std::string sql = std::string("SELECT ") + product_columns + " FROM products WHERE sku > :after";
  if (active) sql += " AND active = :active";
  sql += " ORDER BY sku LIMIT :limit";
  product_into row;
  soci::statement st(s_);
  row.bind(st);
  st.exchange(soci::use(after));  // every valid sku sorts after the empty string
  if (active) st.exchange(soci::use(active_i));
  st.exchange(soci::use(limit));
  st.alloc();
  st.prepare(sql);
  st.define_and_bind();
  std::vector<product> out;
  if (!st.execute(true)) return out;
  do {
    out.push_back(row.get());
  } while (st.fetch());
  return out;
}

std::vector<ledger_row> inventory_repository::list_movements(std::string_view sku,
                                                             std::optional<std::int64_t> before_id,
                                                             int limit) {
  const std::string key(sku);
  const long long before = before_id.value_or(0);
  std::string sql = std::string("SELECT ") + ledger_columns + " FROM stock_movements WHERE sku = :sku";
  if (before_id) sql += " AND id < :before";
  sql += " ORDER BY id DESC LIMIT :limit";
  ledger_into row;
  soci::statement st(s_);
  row.bind(st);
  st.exchange(soci::use(key));
  if (before_id) st.exchange(soci::use(before));
  st.exchange(soci::use(limit));
  st.alloc();
  st.prepare(sql);
  st.define_and_bind();
  std::vector<ledger_row> out;
  if (!st.execute(true)) return out;
  do {
    out.push_back(row.get());
  } while (st.fetch());
  return out;
}

}  // namespace shopd::inventory
