#include "shopd/db/migrations.hpp"

#include "shopd/db/database.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace shopd::db {
namespace {

// Placeholders: ${ID} auto-increment primary key, ${BLOB} binary, ${DOUBLE} double precision.
// Times are BIGINT Unix milliseconds; JSON documents are TEXT.
constexpr std::string_view initial_schema = R"sql(
CREATE TABLE products (
  sku TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
  currency TEXT NOT NULL,
  stock BIGINT NOT NULL DEFAULT 0 CHECK (stock >= 0),
  active INTEGER NOT NULL DEFAULT 1,
  created_at_ms BIGINT NOT NULL,
  updated_at_ms BIGINT NOT NULL
);

CREATE TABLE stock_movements (
  id ${ID},
  sku TEXT NOT NULL REFERENCES products (sku),
  requested_delta BIGINT NOT NULL,
  applied_delta BIGINT NOT NULL,
  stock_after BIGINT NOT NULL CHECK (stock_after >= 0),
  reason TEXT NOT NULL CHECK (reason IN ('order', 'restock', 'adjustment', 'cancel')),
  status TEXT NOT NULL CHECK (status IN ('applied', 'shortfall')),
  order_id TEXT,
  event_id TEXT,
  correlation_id TEXT,
  created_at_ms BIGINT NOT NULL
);
CREATE INDEX stock_movements_sku_id ON stock_movements (sku, id);
CREATE INDEX stock_movements_order_id ON stock_movements (order_id);

CREATE TABLE checkouts (
  checkout_id TEXT PRIMARY KEY,
  status TEXT NOT NULL CHECK (status IN ('accepted', 'rejected')),
  order_id TEXT,
  reason TEXT,
  event_id TEXT,
  correlation_id TEXT,
  created_at_ms BIGINT NOT NULL
);

CREATE TABLE orders (
  order_id TEXT PRIMARY KEY,
  checkout_id TEXT NOT NULL UNIQUE,
  customer_email TEXT NOT NULL,
  customer_name TEXT NOT NULL,
  currency TEXT NOT NULL,
  subtotal_cents BIGINT NOT NULL,
  status TEXT NOT NULL DEFAULT 'created',
  shipping_address TEXT,
  note TEXT,
  correlation_id TEXT,
  created_at_ms BIGINT NOT NULL
);
CREATE INDEX orders_customer_email ON orders (customer_email, created_at_ms, order_id);

CREATE TABLE order_items (
  order_id TEXT NOT NULL REFERENCES orders (order_id),
  line_no INTEGER NOT NULL,
  sku TEXT NOT NULL,
  name TEXT NOT NULL,
  quantity BIGINT NOT NULL CHECK (quantity > 0),
  unit_price_cents BIGINT NOT NULL,
  line_total_cents BIGINT NOT NULL,
  PRIMARY KEY (order_id, line_no)
);

CREATE TABLE inbox (
  consumer TEXT NOT NULL,
  event_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  received_at_ms BIGINT NOT NULL,
  PRIMARY KEY (consumer, event_id)
);

CREATE TABLE outbox (
  id ${ID},
  producer TEXT NOT NULL,
  event_id TEXT NOT NULL UNIQUE,
  event_type TEXT NOT NULL,
  destination TEXT NOT NULL,
  body TEXT NOT NULL,
  headers TEXT NOT NULL DEFAULT '{}',
  created_at_ms BIGINT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at_ms BIGINT NOT NULL,
  sent_at_ms BIGINT,
  message_id TEXT,
  last_error TEXT
);
CREATE INDEX outbox_unsent ON outbox (producer, next_attempt_at_ms, id) WHERE sent_at_ms IS NULL;

CREATE TABLE emails (
  id ${ID},
  event_id TEXT NOT NULL UNIQUE,
  order_id TEXT,
  to_address TEXT NOT NULL,
  template TEXT NOT NULL,
  subject TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
  message_id TEXT,
  transport TEXT,
  error TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  correlation_id TEXT,
  created_at_ms BIGINT NOT NULL,
  sent_at_ms BIGINT
);
CREATE INDEX emails_order_id ON emails (order_id);

CREATE TABLE audit_log (
  id ${ID},
  event_id TEXT NOT NULL UNIQUE,
  correlation_id TEXT,
  causation_id TEXT,
  action TEXT NOT NULL,
  actor TEXT NOT NULL,
  entity_type TEXT NOT NULL,
  entity_id TEXT NOT NULL,
  outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
  detail TEXT NOT NULL DEFAULT '{}',
  occurred_at_ms BIGINT NOT NULL,
  recorded_at_ms BIGINT NOT NULL
);
CREATE INDEX audit_log_entity_id ON audit_log (entity_id, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_occurred_at ON audit_log (occurred_at_ms);
CREATE INDEX audit_log_correlation_id ON audit_log (correlation_id);

CREATE TABLE metric_points (
  id ${ID},
  event_id TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  value ${DOUBLE} NOT NULL,
  unit TEXT,
  tags TEXT NOT NULL DEFAULT '{}',
  occurred_at_ms BIGINT NOT NULL,
  recorded_at_ms BIGINT NOT NULL
);
CREATE INDEX metric_points_name ON metric_points (name, occurred_at_ms);

CREATE TABLE dead_letters (
  id ${ID},
  event_id TEXT NOT NULL UNIQUE,
  dlq_id TEXT,
  source_message_id TEXT,
  destination TEXT,
  last_status INTEGER,
  last_response TEXT,
  attempts INTEGER,
  body TEXT,
  correlation_id TEXT,
  occurred_at_ms BIGINT NOT NULL,
  recorded_at_ms BIGINT NOT NULL,
  replayed_at_ms BIGINT
);

CREATE TABLE sales (
  order_id TEXT PRIMARY KEY,
  event_id TEXT NOT NULL UNIQUE,
  subtotal_cents BIGINT NOT NULL,
  currency TEXT NOT NULL,
  item_count BIGINT NOT NULL,
  created_at_ms BIGINT NOT NULL
);

CREATE TABLE relay_messages (
  message_id TEXT PRIMARY KEY,
  kind TEXT NOT NULL DEFAULT 'message' CHECK (kind IN ('message', 'callback', 'failure_callback')),
  destination TEXT NOT NULL,
  method TEXT NOT NULL DEFAULT 'POST',
  headers TEXT NOT NULL DEFAULT '{}',
  body ${BLOB} NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('CREATED', 'ACTIVE', 'RETRY', 'DELIVERED', 'FAILED', 'CANCELLED')),
  max_retries INTEGER NOT NULL,
  retried INTEGER NOT NULL DEFAULT 0,
  retry_delay_expr TEXT,
  timeout_ms BIGINT,
  callback TEXT,
  failure_callback TEXT,
  options TEXT NOT NULL DEFAULT '{}',
  dedup_id TEXT,
  caller_ip TEXT,
  not_before_ms BIGINT NOT NULL,
  lease_owner TEXT,
  lease_until_ms BIGINT,
  last_status INTEGER,
  last_response TEXT,
  last_error TEXT,
  created_at_ms BIGINT NOT NULL,
  updated_at_ms BIGINT NOT NULL
);
CREATE INDEX relay_messages_due ON relay_messages (not_before_ms) WHERE state IN ('CREATED', 'RETRY');
CREATE INDEX relay_messages_state_lease ON relay_messages (state, lease_until_ms);

CREATE TABLE relay_dlq (
  dlq_id TEXT PRIMARY KEY,
  message_id TEXT NOT NULL UNIQUE REFERENCES relay_messages (message_id),
  failed_at_ms BIGINT NOT NULL,
  response_status INTEGER,
  response_body TEXT,
  response_headers TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX relay_dlq_failed_at ON relay_dlq (failed_at_ms);

CREATE TABLE relay_dedup (
  dedup_id TEXT PRIMARY KEY,
  message_id TEXT NOT NULL,
  expires_at_ms BIGINT NOT NULL
);
CREATE INDEX relay_dedup_expires_at ON relay_dedup (expires_at_ms);
)sql";

// Each relay message's delivery origin (relay::origin_of its destination), so a claim can find the
// origins with pending work by a loose index scan and read each origin's due messages in order,
// instead of walking the due messages of origins whose slots are full. Rows written before this
// migration, or by an older relay sharing the database, have none.
constexpr std::string_view relay_message_origin = R"sql(
ALTER TABLE relay_messages ADD COLUMN origin TEXT;
CREATE INDEX relay_messages_origin_due ON relay_messages (origin, not_before_ms) WHERE state IN ('CREATED', 'RETRY');
)sql";

// Messages by state and last change, in place of (state, lease_until_ms): the same queries find
// what they need in it (in-flight leases, counts and cancellations by state, which narrow to the
// few pending messages), and relay_store::purge finds the finished messages it deletes, those last
// changed before RELAY_RETENTION_S, as a range. Through (state, lease_until_ms), whose finished
// entries all have a NULL lease, each purge read every delivered message still kept (a week's worth
// by default) in one write transaction: 0.8 s with two million kept on a fast disk, growing with
// the traffic, every ten minutes. A message's entry moves when its state changes, as it did: a
// second index for purging alone cost ~4% of the end-to-end throughput.
constexpr std::string_view relay_messages_state_changed = R"sql(
DROP INDEX relay_messages_state_lease;
CREATE INDEX relay_messages_state_changed ON relay_messages (state, updated_at_ms);
)sql";

// Outbox rows the relay or QStash refused for good (an entry of a batch answered with an error, or a
// one-row batch refused as a bad request or too large) are set aside instead of being offered again
// forever: kept, with their error, out of the dispatcher's way, until `shopd outbox requeue`. Before
// this, one such row held up every later row of its producer. The index of unsent rows leaves them
// out, so the dispatcher's reads and the backlog count never see them.
constexpr std::string_view outbox_refused = R"sql(
ALTER TABLE outbox ADD COLUMN refused_at_ms BIGINT;
DROP INDEX outbox_unsent;
CREATE INDEX outbox_unsent ON outbox (producer, next_attempt_at_ms, id) WHERE sent_at_ms IS NULL AND refused_at_ms IS NULL;
CREATE INDEX outbox_refused ON outbox (producer, id) WHERE refused_at_ms IS NOT NULL;
)sql";

constexpr std::array<migration, 4> all_migrations{{
    {1, "initial_schema", initial_schema},
    {2, "relay_message_origin", relay_message_origin},
    {3, "relay_messages_state_changed", relay_messages_state_changed},
    {4, "outbox_refused", outbox_refused},
}};

// Any constant unique to shopd: every migrator of one database serialises on it ('shopdmig').
constexpr long long migration_lock_key = 0x73686f70646d6967;

struct placeholder {
  std::string_view name;
  std::string_view sqlite;
  std::string_view postgresql;
};

constexpr std::array<placeholder, 3> placeholders{{
    {"${ID}", "INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"},
    {"${BLOB}", "BLOB", "BYTEA"},
    {"${DOUBLE}", "REAL", "DOUBLE PRECISION"},
}};

std::string substitute(std::string_view sql, dialect d) {
  std::string out;
  out.reserve(sql.size() + sql.size() / 8);
  std::size_t pos = 0;
  while (pos < sql.size()) {
    auto start = sql.find("${", pos);
    if (start == std::string_view::npos) {
      out.append(sql.substr(pos));
      break;
    }
    out.append(sql.substr(pos, start - pos));
    auto it = std::find_if(placeholders.begin(), placeholders.end(),
                           [&](const placeholder& p) { return sql.substr(start).starts_with(p.name); });
    if (it == placeholders.end()) {
      auto end = sql.find('}', start);
      throw std::logic_error(
          "unknown migration placeholder " +
          std::string(sql.substr(start, end == std::string_view::npos ? 2 : end - start + 1)));
    }
    out.append(d == dialect::sqlite ? it->sqlite : it->postgresql);
    pos = start + it->name.size();
  }
  return out;
}

std::string_view trim(std::string_view s) noexcept {
  constexpr std::string_view blanks = " \t\r\n";
  auto first = s.find_first_not_of(blanks);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(blanks) - first + 1);
}

long long now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool migrations_table_exists(soci::session& s, dialect d) {
  long long n = 0;
  if (d == dialect::sqlite) {
    s << "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        soci::into(n);
  } else {
    s << "SELECT count(*) FROM information_schema.tables"
         " WHERE table_schema = current_schema() AND table_name = 'schema_migrations'",
        soci::into(n);
  }
  return n > 0;
}

std::vector<int> applied_versions(soci::session& s) {
  std::vector<int> versions;
  soci::rowset<int> rows = (s.prepare << "SELECT version FROM schema_migrations ORDER BY version");
  for (int v : rows) versions.push_back(v);
  return versions;
}

migration_status status_from(const std::vector<int>& applied) {
  migration_status st;
  st.latest = all_migrations.back().version;
  st.current = applied.empty() ? 0 : applied.back();
  if (st.current > st.latest) {
    throw std::runtime_error("database schema is at version " + std::to_string(st.current) +
                             ", newer than this binary knows (" + std::to_string(st.latest) +
                             "): upgrade shopd before using this database");
  }
  for (const migration& m : all_migrations) {
    if (!std::binary_search(applied.begin(), applied.end(), m.version)) st.pending.push_back(m.version);
  }
  return st;
}

}  // namespace

std::span<const migration> migrations() {
  return all_migrations;
}

std::vector<std::string> statements_for(const migration& m, dialect d) {
  const std::string sql = substitute(m.sql, d);
  std::vector<std::string> out;
  std::string_view rest = sql;
  std::size_t start = 0;
  std::size_t pos = 0;
  // A statement ends at a ';' that ends its line; ';' inside a line (a string literal) does not split.
  while (pos < rest.size()) {
    auto eol = rest.find('\n', pos);
    if (eol == std::string_view::npos) eol = rest.size();
    std::string_view line = trim(rest.substr(pos, eol - pos));
    if (line.ends_with(';')) {
      auto stmt = trim(rest.substr(start, eol - start));
      stmt.remove_suffix(1);
      stmt = trim(stmt);
      if (!stmt.empty()) out.emplace_back(stmt);
      start = eol + 1;
    }
    pos = eol + 1;
  }
  if (start < rest.size()) {
    auto stmt = trim(rest.substr(start));
    if (!stmt.empty()) out.emplace_back(stmt);
  }
  return out;
}

migration_status status(database& db) {
  return db.with_session([&](soci::session& s) {
    if (!migrations_table_exists(s, db.kind())) return status_from({});
    return status_from(applied_versions(s));
  });
}

std::vector<int> migrate(database& db) {
  std::vector<int> applied_here;
  for (;;) {
    // One transaction per migration. Every migrator re-reads what is applied after taking the lock, so
    // the loser of a race sees the winner's row and moves on.
    const int applied = db.in_transaction([&](soci::session& s) -> int {
      if (db.kind() == dialect::postgresql) {
        long long key = migration_lock_key;
        s << "SELECT pg_advisory_xact_lock(:key)", soci::use(key);
      }
      if (!migrations_table_exists(s, db.kind())) {
        s << "CREATE TABLE schema_migrations ("
             " version INTEGER PRIMARY KEY,"
             " name TEXT NOT NULL,"
             " applied_at_ms BIGINT NOT NULL)";
      }
      const migration_status st = status_from(applied_versions(s));
      if (st.up_to_date()) return 0;
      const auto m = std::find_if(all_migrations.begin(), all_migrations.end(),
                                  [&](const migration& x) { return x.version == st.pending.front(); });
      for (const std::string& stmt : statements_for(*m, db.kind())) s << stmt;
      int version = m->version;
      std::string name(m->name);
      long long at = now_ms();
      s << "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (:version, :name, :at)",
          soci::use(version), soci::use(name), soci::use(at);
      return version;
    });
    if (applied == 0) return applied_here;
    applied_here.push_back(applied);
  }
}

}  // namespace shopd::db
