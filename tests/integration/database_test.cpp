#include "shopd/db/database.hpp"

#include "fresh_database.hpp"
#include "shopd/bus/outbox.hpp"
#include "shopd/db/execute.hpp"
#include "shopd/db/migrations.hpp"
#include "shopd/obs/metrics.hpp"
#include "shopd/obs/trace.hpp"
#include "test_support.hpp"

#include <doctest/doctest.h>
#include <soci/postgresql/soci-postgresql.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <latch>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using shopd::db::database;
using shopd::db::database_options;
using shopd::db::database_url;
using shopd::db::dialect;
using shopd::db::transient_error;
using namespace std::chrono_literals;

namespace {

using shopd::test::temp_dir;

// A fresh database on the fixture's server, dropped afterwards.
class pg_database {
 public:
  pg_database() : scratch_("shopd_test_") {}

  [[nodiscard]] database_url url() const { return database_url::parse(scratch_.url()); }

  /// Terminate one backend from another session, as a server restart would, and wait until it is gone.
  void terminate_backend(int pid) const {
    soci::session admin(*soci::factory_postgresql(), scratch_.admin_conninfo());
    int terminated = 0;
    admin << "SELECT CASE WHEN pg_terminate_backend(:pid, 10000) THEN 1 ELSE 0 END", soci::use(pid),
        soci::into(terminated);
    REQUIRE(terminated == 1);
  }

 private:
  shopd::test::pg_scratch_database scratch_;
};

const std::set<std::string> expected_tables{
    "schema_migrations", "products",     "stock_movements", "checkouts",      "orders",
    "order_items",       "inbox",        "outbox",          "emails",         "audit_log",
    "metric_points",     "dead_letters", "sales",           "relay_messages", "relay_dlq",
    "relay_dedup",
};

std::set<std::string> names_of(database& db, const std::string& sqlite_query, const std::string& pg_query) {
  return db.with_session([&](soci::session& s) {
    std::set<std::string> names;
    soci::rowset<std::string> rows = (s.prepare << (db.kind() == dialect::sqlite ? sqlite_query : pg_query));
    for (const std::string& n : rows) names.insert(n);
    return names;
  });
}

std::set<std::string> table_names(database& db) {
  return names_of(db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                  "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()");
}

std::set<std::string> index_names(database& db) {
  return names_of(db, "SELECT name FROM sqlite_master WHERE type = 'index'",
                  "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()");
}

long long scalar(database& db, const std::string& sql) {
  return db.with_session([&](soci::session& s) {
    long long n = 0;
    s << sql, soci::into(n);
    return n;
  });
}

void insert_product(soci::session& s, const std::string& sku, long long stock) {
  const std::string name = "Widget " + sku;
  const std::string currency = "EUR";
  const long long price = 1250;
  const long long now = 1'700'000'000'000;
  s << "INSERT INTO products (sku, name, price_cents, currency, stock, created_at_ms, updated_at_ms)"
       " VALUES (:sku, :name, :price, :currency, :stock, :created, :updated)",
      soci::use(sku), soci::use(name), soci::use(price), soci::use(currency), soci::use(stock),
      soci::use(now), soci::use(now);
}

std::vector<int> all_versions() {
  std::vector<int> v;
  for (const auto& m : shopd::db::migrations()) v.push_back(m.version);
  return v;
}

// What SQLite and PostgreSQL must both do; every SUBCASE starts from a fresh, empty database.
void common_contract(const database_url& url) {
  SUBCASE("status reports every migration pending on a fresh database") {
    database db(url);
    auto st = shopd::db::status(db);
    CHECK(st.current == 0);
    CHECK(st.latest == shopd::db::migrations().back().version);
    CHECK(st.pending == all_versions());
    CHECK_FALSE(st.up_to_date());
    CHECK(table_names(db).empty());  // status() only reads
  }

  SUBCASE("migrate from empty creates every table; migrating again is a no-op") {
    database db(url);
    CHECK(shopd::db::migrate(db) == all_versions());
    CHECK(table_names(db) == expected_tables);
    const auto indexes = index_names(db);
    for (const char* idx : {"stock_movements_sku_id", "orders_customer_email", "outbox_unsent",
                            "audit_log_entity_id", "relay_messages_due", "relay_messages_state_changed",
                            "relay_messages_origin_due", "outbox_refused"}) {
      CAPTURE(idx);
      CHECK(indexes.count(idx) == 1);
    }
    CHECK(indexes.count("relay_messages_state_lease") == 0);  // replaced by migration 3
    auto st = shopd::db::status(db);
    CHECK(st.up_to_date());
    CHECK(st.current == st.latest);
    const auto name = db.with_session([](soci::session& s) {
      std::string n;
      s << "SELECT name FROM schema_migrations WHERE version = 1", soci::into(n);
      return n;
    });
    CHECK(name == "initial_schema");
    CHECK(scalar(db, "SELECT min(applied_at_ms) FROM schema_migrations") > 1'600'000'000'000);

    CHECK(shopd::db::migrate(db).empty());
    CHECK(scalar(db, "SELECT count(*) FROM schema_migrations") ==
          static_cast<long long>(all_versions().size()));
    CHECK(db.in_use() == 0);
  }

  SUBCASE("upgrading from version 1 keeps relay messages, without an origin, and unsent outbox rows") {
    database db(url);
    const auto& initial = shopd::db::migrations().front();
    db.in_transaction([&](soci::session& s) {
      s << "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
           "applied_at_ms BIGINT NOT NULL)";
      for (const auto& stmt : shopd::db::statements_for(initial, db.kind())) s << stmt;
      s << "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (1, 'initial_schema', 0)";
      s << "INSERT INTO relay_messages (message_id, destination, body, state, max_retries, not_before_ms, "
           "created_at_ms, updated_at_ms) VALUES ('msg_old', 'http://h:1/x', '', 'CREATED', 3, 0, 0, 0)";
      s << "INSERT INTO outbox (producer, event_id, event_type, destination, body, created_at_ms, "
           "next_attempt_at_ms) VALUES ('orders', 'ev-old', 'order.created', 'http://h:1/x', '{}', 0, 0)";
    });
    CHECK(shopd::db::status(db).current == 1);
    CHECK(shopd::db::migrate(db) == std::vector<int>{2, 3, 4});
    CHECK(index_names(db).count("relay_messages_origin_due") == 1);
    CHECK(scalar(db, "SELECT count(*) FROM relay_messages WHERE origin IS NULL") == 1);
    // Migration 4: the row written before it is still waiting to be sent, not set aside.
    const auto waiting = shopd::bus::outbox::next_batch(db, "orders", 10, 1);
    REQUIRE(waiting.size() == 1);
    CHECK(waiting[0].event.event_id == "ev-old");
    CHECK(shopd::bus::outbox::pending_stats(db, "orders").pending == 1);
    CHECK(shopd::bus::outbox::pending_stats(db, "orders").refused == 0);
  }

  SUBCASE("a database newer than this binary is refused") {
    database db(url);
    shopd::db::migrate(db);
    db.in_transaction([](soci::session& s) {
      int future = shopd::db::migrations().back().version + 1;
      s << "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (:v, 'from_the_future', 0)",
          soci::use(future);
    });
    CHECK_THROWS_WITH_AS(shopd::db::status(db), doctest::Contains("newer than this binary"),
                         std::runtime_error);
    CHECK_THROWS_WITH_AS(shopd::db::migrate(db), doctest::Contains("newer than this binary"),
                         std::runtime_error);
  }

  SUBCASE("two migrators racing apply each migration once") {
    // Two pools stand for two processes.
    database a(url);
    database b(url);
    std::vector<int> applied_a;
    std::vector<int> applied_b;
    std::exception_ptr error_a;
    std::exception_ptr error_b;
    std::latch start(2);
    auto run = [&start](database& db, std::vector<int>& applied, std::exception_ptr& error) {
      start.arrive_and_wait();
      try {
        applied = shopd::db::migrate(db);
      } catch (...) {
        error = std::current_exception();
      }
    };
    std::thread ta(run, std::ref(a), std::ref(applied_a), std::ref(error_a));
    std::thread tb(run, std::ref(b), std::ref(applied_b), std::ref(error_b));
    ta.join();
    tb.join();
    REQUIRE_FALSE(error_a);
    REQUIRE_FALSE(error_b);
    std::vector<int> both = applied_a;
    both.insert(both.end(), applied_b.begin(), applied_b.end());
    std::sort(both.begin(), both.end());
    CHECK(both == all_versions());
    CHECK(scalar(a, "SELECT count(*) FROM schema_migrations") ==
          static_cast<long long>(all_versions().size()));
    CHECK(shopd::db::status(b).up_to_date());
  }

  SUBCASE("in_transaction commits when f returns and hands back its result") {
    database db(url);
    shopd::db::migrate(db);
    const int r = db.in_transaction([](soci::session& s) {
      insert_product(s, "SKU-1", 5);
      return 42;
    });
    CHECK(r == 42);
    CHECK(scalar(db, "SELECT stock FROM products WHERE sku = 'SKU-1'") == 5);
    CHECK(db.in_use() == 0);
  }

  SUBCASE("in_transaction rolls back when f throws") {
    database db(url);
    shopd::db::migrate(db);
    CHECK_THROWS_WITH_AS(db.in_transaction([](soci::session& s) {
      insert_product(s, "SKU-1", 5);
      throw std::runtime_error("handler failed");
    }),
                         "handler failed", std::runtime_error);
    CHECK(scalar(db, "SELECT count(*) FROM products") == 0);
    CHECK(db.in_use() == 0);
    // The session is clean for the next caller.
    db.in_transaction([](soci::session& s) { insert_product(s, "SKU-2", 1); });
    CHECK(scalar(db, "SELECT count(*) FROM products") == 1);
  }

  SUBCASE("db::execute runs a statement, in a transaction or not, and returns the rows it changed") {
    database db(url);
    shopd::db::migrate(db);
    const auto add = [](soci::session& s, long long delta) {
      const std::string sku = "SKU-1";
      return shopd::db::execute(s, "UPDATE products SET stock = stock + :delta WHERE sku = :sku",
                                soci::use(delta), soci::use(sku));
    };
    db.in_transaction([](soci::session& s) { insert_product(s, "SKU-1", 5); });
    CHECK(db.in_transaction([&](soci::session& s) { return add(s, 2); }) == 1);
    CHECK(db.in_transaction([&](soci::session& s) { return add(s, 3); }) == 1);
    CHECK(db.with_session([&](soci::session& s) { return add(s, 4); }) == 1);
    CHECK(scalar(db, "SELECT stock FROM products WHERE sku = 'SKU-1'") == 14);
    // A statement that fails (stock below zero) leaves the next call unharmed.
    CHECK_THROWS_AS(db.in_transaction([&](soci::session& s) { return add(s, -100); }), soci::soci_error);
    CHECK(db.in_transaction([&](soci::session& s) { return add(s, -4); }) == 1);
    CHECK(db.in_transaction([](soci::session& s) {
      return shopd::db::execute(s, "DELETE FROM products WHERE sku = 'SKU-NONE'");
    }) == 0);
    CHECK(scalar(db, "SELECT stock FROM products WHERE sku = 'SKU-1'") == 10);
  }

  SUBCASE("db::query_one reads one row, or none, in a transaction or not; a second row is an error") {
    database db(url);
    shopd::db::migrate(db);
    db.in_transaction([](soci::session& s) {
      insert_product(s, "SKU-1", 5);
      insert_product(s, "SKU-2", 7);
    });
    const auto stock_of = [](soci::session& s, const std::string& sku) -> std::optional<long long> {
      long long stock = 0;
      if (!shopd::db::query_one(s, "SELECT stock FROM products WHERE sku = :sku", [&](soci::statement& st) {
            st.exchange(soci::into(stock));
            st.exchange(soci::use(sku));
          })) {
        return std::nullopt;
      }
      return stock;
    };
    CHECK(db.in_transaction([&](soci::session& s) { return stock_of(s, "SKU-1"); }) == 5);
    CHECK(db.in_transaction([&](soci::session& s) { return stock_of(s, "SKU-2"); }) == 7);
    CHECK(db.in_transaction([&](soci::session& s) { return stock_of(s, "SKU-NONE"); }) == std::nullopt);
    CHECK(db.with_session([&](soci::session& s) { return stock_of(s, "SKU-2"); }) == 7);
    const auto any_stock = [](soci::session& s) {
      long long stock = 0;
      return shopd::db::query_one(s, "SELECT stock FROM products ORDER BY sku",
                                  [&](soci::statement& st) { st.exchange(soci::into(stock)); });
    };
    CHECK_THROWS_AS(db.in_transaction(any_stock), std::logic_error);
    CHECK_THROWS_AS(db.with_session(any_stock), std::logic_error);
    CHECK(db.in_transaction([&](soci::session& s) { return stock_of(s, "SKU-1"); }) == 5);
  }

  SUBCASE("constraints hold: stock never below zero, known reasons, real SKUs") {
    database db(url);
    shopd::db::migrate(db);
    CHECK_THROWS_AS(db.in_transaction([](soci::session& s) { insert_product(s, "SKU-NEG", -1); }),
                    soci::soci_error);
    db.in_transaction([](soci::session& s) { insert_product(s, "SKU-1", 5); });
    CHECK_THROWS_AS(db.in_transaction([](soci::session& s) { s << "UPDATE products SET stock = stock - 6"; }),
                    soci::soci_error);
    CHECK(scalar(db, "SELECT stock FROM products WHERE sku = 'SKU-1'") == 5);
    auto movement = [](const std::string& sku, const std::string& reason) {
      return [sku, reason](soci::session& s) {
        s << "INSERT INTO stock_movements (sku, requested_delta, applied_delta, stock_after, reason, status,"
             " created_at_ms) VALUES (:sku, -1, -1, 4, :reason, 'applied', 0)",
            soci::use(sku), soci::use(reason);
      };
    };
    CHECK_THROWS_AS(db.in_transaction(movement("SKU-1", "theft")), soci::soci_error);
    CHECK_THROWS_AS(db.in_transaction(movement("NO-SUCH-SKU", "order")), soci::soci_error);
    db.in_transaction(movement("SKU-1", "order"));
    CHECK(scalar(db, "SELECT count(*) FROM stock_movements") == 1);
  }

  SUBCASE("ping answers true, and false when no session frees up") {
    database db(url, {.pool_size = 1, .busy_timeout = 50ms});
    CHECK(db.ping());
    db.with_session([&](soci::session&) { CHECK_FALSE(db.ping()); });
    CHECK(db.ping());
  }

  SUBCASE("an exhausted pool is a transient_error") {
    database db(url, {.pool_size = 2, .busy_timeout = 50ms});
    CHECK(db.size() == 2);
    db.with_session([&](soci::session&) {
      db.with_session([&](soci::session&) {
        CHECK(db.in_use() == 2);
        CHECK_THROWS_WITH_AS(db.with_session([](soci::session&) {}), doctest::Contains("pool exhausted"),
                             transient_error);
        if (db.kind() == dialect::sqlite) {
          // A SQLite file's transactions run on its writer connection, outside the pool.
          CHECK_NOTHROW(db.in_transaction([](soci::session&) {}));
        } else {
          CHECK_THROWS_AS(db.in_transaction([](soci::session&) {}), transient_error);
        }
        CHECK(db.in_use() == 2);
      });
    });
    CHECK(db.in_use() == 0);
  }
}

// A 127.0.0.1 port where nothing listens: bound (so nobody else takes it) but never listening.
class closed_port {
 public:
  closed_port() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~closed_port() { ::close(fd_); }
  closed_port(const closed_port&) = delete;
  closed_port& operator=(const closed_port&) = delete;
  [[nodiscard]] int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

int backend_pid(database& db) {
  return db.with_session([](soci::session& s) {
    int pid = 0;
    s << "SELECT pg_backend_pid()", soci::into(pid);
    return pid;
  });
}

}  // namespace

TEST_SUITE("db.database") {
  TEST_CASE("database sqlite: the common contract") {
    temp_dir dir;
    common_contract(database_url::parse("sqlite:" + (dir.path() / "shop.db").string()));
  }

  TEST_CASE("database postgresql: the common contract") {
    pg_database pg;
    common_contract(pg.url());
  }

  TEST_CASE("database sqlite: file and WAL in a new directory, pragmas on every session") {
    temp_dir dir;
    const auto file = dir.path() / "nested" / "deeper" / "shop.db";
    database db(database_url::parse("sqlite:" + file.string()), {.pool_size = 2, .busy_timeout = 1234ms});
    CHECK(std::filesystem::exists(file));
    shopd::db::migrate(db);
    CHECK(std::filesystem::exists(file.string() + "-wal"));
    auto pragmas = [](soci::session& s, int want_synchronous) {
      std::string journal;
      int foreign_keys = 0;
      int synchronous = 0;
      s << "PRAGMA journal_mode", soci::into(journal);
      s << "PRAGMA foreign_keys", soci::into(foreign_keys);
      s << "PRAGMA synchronous", soci::into(synchronous);
      CHECK(journal == "wal");
      CHECK(foreign_keys == 1);
      CHECK(synchronous == want_synchronous);
    };
    // Nested leases hold both pooled sessions, so both are checked.
    db.with_session([&](soci::session& first) {
      db.with_session([&](soci::session& second) {
        CHECK(&first != &second);
        pragmas(first, 2);  // FULL: what a pooled session writes itself is on disk when it returns
        pragmas(second, 2);
      });
    });
    // The writer connection keeps its savepoint journals in memory (see the commit groups).
    // The writer connection's COMMITs leave the WAL to the shared syncs (wal_sync).
    db.in_transaction([&](soci::session& s) {
      pragmas(s, 1);
      int temp_store = 0;
      s << "PRAGMA temp_store", soci::into(temp_store);
      CHECK(temp_store == 2);  // MEMORY
    });
  }

  TEST_CASE(
      "database sqlite: with full sync a transaction returns after a WAL sync, shared by concurrent ones") {
    for (const bool full : {true, false}) {
      CAPTURE(full);
      temp_dir dir;
      shopd::obs::registry metrics;
      database db(database_url::parse("sqlite:" + (dir.path() / "shop.db").string()),
                  {.pool_size = 2, .sqlite_full_sync = full, .metrics = &metrics});
      db.in_transaction([](soci::session& s) { s << "CREATE TABLE t (n INTEGER)"; });
      const auto syncs = [&] {
        const auto value = shopd::test::sample(metrics, "shopd_db_wal_syncs_total");
        REQUIRE(value.has_value());
        return *value;
      };
      const double before = syncs();
      CHECK(before == (full ? 1 : 0));  // the CREATE TABLE's
      // One transaction: one sync of its own.
      db.in_transaction([](soci::session& s) { s << "INSERT INTO t VALUES (0)"; });
      CHECK(syncs() == before + (full ? 1 : 0));
      // Concurrent ones: each waits for a sync that began after its COMMIT, often another's.
      std::vector<std::thread> threads;
      for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&db, t] {
          for (int i = 1; i <= 25; ++i) {
            const int n = t * 100 + i;
            db.in_transaction([&](soci::session& s) { s << "INSERT INTO t VALUES (:n)", soci::use(n); });
          }
        });
      }
      for (auto& th : threads) th.join();
      const double concurrent = syncs() - before - (full ? 1 : 0);
      if (full) {
        CHECK(concurrent >= 1);
        CHECK(concurrent <= 200);
      } else {
        CHECK(concurrent == 0);
      }
      CHECK(db.with_session([](soci::session& s) {
        long long n = 0;
        s << "SELECT COUNT(*) FROM t", soci::into(n);
        return n;
      }) == 201);
    }
  }

  TEST_CASE(
      "database sqlite: DATABASE_SQLITE_SYNCHRONOUS=normal syncs at checkpoints only, on every connection") {
    temp_dir dir;
    database db(database_url::parse("sqlite:" + (dir.path() / "shop.db").string()),
                {.pool_size = 1, .sqlite_full_sync = false});
    const auto synchronous = [](soci::session& s) {
      int value = -1;
      s << "PRAGMA synchronous", soci::into(value);
      return value;
    };
    CHECK(db.with_session(synchronous) == 1);    // NORMAL
    CHECK(db.in_transaction(synchronous) == 1);  // the writer connection too
  }

  TEST_CASE("database sqlite: SQLite keeps no memory statistics (their mutex serialised allocations)") {
    temp_dir dir;
    database db(database_url::parse("sqlite:" + (dir.path() / "shop.db").string()), {.pool_size = 2});
    shopd::db::migrate(db);
    CHECK(scalar(db, "SELECT count(*) FROM products") == 0);
    // With statistics on, every allocation of the work above is counted here.
    CHECK(sqlite_api::sqlite3_memory_used() == 0);
  }

  TEST_CASE("database sqlite: a second writer meets SQLITE_BUSY as a transient_error") {
    temp_dir dir;
    const auto url = database_url::parse("sqlite:" + (dir.path() / "shop.db").string());
    database db(url, {.pool_size = 2, .busy_timeout = 0ms});
    database other_process(url, {.pool_size = 1, .busy_timeout = 0ms});
    shopd::db::migrate(db);
    db.in_transaction([&](soci::session& s) {
      insert_product(s, "SKU-1", 1);
      // BEGIN IMMEDIATE wants the write lock this transaction holds.
      CHECK_THROWS_AS(db.in_transaction([](soci::session& t) { insert_product(t, "SKU-2", 1); }),
                      transient_error);
      CHECK_THROWS_AS(other_process.in_transaction([](soci::session& t) { insert_product(t, "SKU-3", 1); }),
                      transient_error);
      // Reading is fine in WAL mode.
      CHECK(scalar(other_process, "SELECT count(*) FROM products") == 0);
    });
    CHECK(scalar(other_process, "SELECT count(*) FROM products") == 1);
    other_process.in_transaction([](soci::session& t) { insert_product(t, "SKU-3", 1); });
    CHECK(scalar(db, "SELECT count(*) FROM products") == 2);
  }

  TEST_CASE("database sqlite: writers wait for the lock within the busy timeout") {
    temp_dir dir;
    const auto url = database_url::parse("sqlite:" + (dir.path() / "shop.db").string());
    database db(url, {.pool_size = 4, .busy_timeout = 30s});
    database other_process(url, {.pool_size = 1, .busy_timeout = 30s});
    shopd::db::migrate(db);
    std::latch holding(1);
    std::thread first([&] {
      db.in_transaction([&](soci::session& s) {
        insert_product(s, "SKU-1", 1);
        holding.count_down();
        // Long enough for both writers below to find the lock taken; they must wait, not fail.
        std::this_thread::sleep_for(100ms);
      });
    });
    holding.wait();
    std::thread same_process(
        [&] { db.in_transaction([](soci::session& t) { insert_product(t, "SKU-2", 1); }); });
    other_process.in_transaction([](soci::session& t) { insert_product(t, "SKU-3", 1); });
    first.join();
    same_process.join();
    CHECK(scalar(db, "SELECT count(*) FROM products") == 3);
  }

  // Group commit: `holder` keeps its turn until `writers` more transactions wait for theirs, so they
  // all land in its group (the group's age and size limits are out of reach here).
  void hold_until_waiting(database & db, std::size_t writers) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (db.writers_waiting() < writers && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    REQUIRE(db.writers_waiting() == writers);
  }

  TEST_CASE("database sqlite: transactions waiting for their turn share one COMMIT") {
    temp_dir dir;
    const auto url = database_url::parse("sqlite:" + (dir.path() / "shop.db").string());
    shopd::obs::registry metrics;
    database db(url, {.pool_size = 2, .busy_timeout = 30s, .metrics = &metrics, .commit_group_age = 60s});
    database other_process(url, {.pool_size = 1});
    shopd::db::migrate(db);
    // A sample's value; the migrations' commits came before the subcases, so they compare differences.
    const auto sample = [&](const std::string& name) {
      const auto value = shopd::test::sample(metrics, name);
      REQUIRE(value.has_value());
      return *value;
    };
    const auto commits0 = sample("shopd_db_commit_group_transactions_count");
    const auto transactions0 = sample("shopd_db_commit_group_transactions_sum");
    const auto commits = [&] { return sample("shopd_db_commit_group_transactions_count") - commits0; };
    const auto transactions = [&] {
      return sample("shopd_db_commit_group_transactions_sum") - transactions0;
    };
    const auto count = [&](const std::string& sku) {
      return scalar(other_process, "SELECT count(*) FROM products WHERE sku = '" + sku + "'");
    };
    const auto before = scalar(db, "SELECT count(*) FROM products");

    SUBCASE("each call returns once the group is committed, and not before") {
      std::vector<std::thread> writers;
      std::vector<long long> seen(2, -1);
      db.in_transaction([&](soci::session& s) {
        insert_product(s, "SKU-H", 1);
        for (std::size_t i = 0; i < 2; ++i) {
          writers.emplace_back([&, i] {
            const auto sku = "SKU-" + std::to_string(i);
            db.in_transaction([&](soci::session& t) { insert_product(t, sku, 1); });
            seen[i] = count(sku);  // read by another connection right after the call returned
          });
        }
        hold_until_waiting(db, 2);
        CHECK(count("SKU-H") == 0);  // not committed while the group is open
      });
      CHECK(count("SKU-H") == 1);
      for (auto& w : writers) w.join();
      CHECK(seen == std::vector<long long>{1, 1});
      CHECK(scalar(other_process, "SELECT count(*) FROM products") == before + 3);
      CHECK(commits() == 1);
      CHECK(transactions() == 3);
      CHECK(sample("shopd_db_writers_waiting") == 0);
    }

    SUBCASE("the holder of the turn runs the queued transactions, in order, under their callers' traces") {
      // Each writer queues only once the one before it waits, so the queue's order is known.
      struct seen_by {
        std::thread::id thread;
        bool own_trace = false;
        int position = -1;
      };
      std::vector<seen_by> seen(3);
      std::vector<int> trace_kept(3, 0);  // not vector<bool>: its bits share words between threads
      std::atomic<int> ran{0};
      std::vector<std::thread> writers;
      std::thread::id holder;
      const auto holder_trace = shopd::obs::trace_context::start();
      {
        const shopd::obs::trace_scope traced(holder_trace);
        db.in_transaction([&](soci::session& s) {
          holder = std::this_thread::get_id();
          insert_product(s, "SKU-H", 1);
          for (std::size_t i = 0; i < 3; ++i) {
            writers.emplace_back([&, i] {
              // Writer 1 has no trace: none may be current while its transaction runs.
              const auto own = shopd::obs::trace_context::start();
              std::optional<shopd::obs::trace_scope> traced_writer;
              if (i != 1) traced_writer.emplace(own);
              const auto* expected = i != 1 ? &own : nullptr;
              db.in_transaction([&](soci::session& t) {
                seen[i] = {std::this_thread::get_id(), shopd::obs::current_trace() == expected, ran++};
                insert_product(t, "SKU-" + std::to_string(i), 1);
              });
              trace_kept[i] = shopd::obs::current_trace() == expected ? 1 : 0;
            });
            hold_until_waiting(db, i + 1);
          }
        });
      }
      for (auto& w : writers) w.join();
      for (std::size_t i = 0; i < 3; ++i) {
        CAPTURE(i);
        CHECK(seen[i].thread == holder);
        CHECK(seen[i].own_trace);
        CHECK(seen[i].position == static_cast<int>(i));
        CHECK(trace_kept[i]);
        CHECK(count("SKU-" + std::to_string(i)) == 1);
      }
      CHECK(commits() == 1);
      CHECK(transactions() == 4);
      CHECK(sample("shopd_db_writers_waiting") == 0);
    }

    SUBCASE("a member that throws is rolled back alone; the others commit") {
      std::thread failing;
      std::thread passing;
      db.in_transaction([&](soci::session& s) {
        insert_product(s, "SKU-H", 1);
        failing = std::thread([&] {
          CHECK_THROWS_WITH_AS(db.in_transaction([](soci::session& t) {
            insert_product(t, "SKU-F", 1);
            throw std::invalid_argument("no such customer");
          }),
                               "no such customer", std::invalid_argument);
        });
        passing =
            std::thread([&] { db.in_transaction([](soci::session& t) { insert_product(t, "SKU-P", 1); }); });
        hold_until_waiting(db, 2);
      });
      failing.join();
      passing.join();
      CHECK(count("SKU-H") == 1);
      CHECK(count("SKU-F") == 0);
      CHECK(count("SKU-P") == 1);
      CHECK(commits() == 1);
      CHECK(transactions() == 2);
    }

    SUBCASE("a COMMIT that fails fails every member, and none of their writes remain") {
      // A deferred foreign key is checked at COMMIT: one member's dangling reference fails the group.
      db.in_transaction([](soci::session& s) {
        s << "CREATE TABLE notes (id INTEGER PRIMARY KEY, sku TEXT REFERENCES products (sku) "
             "DEFERRABLE INITIALLY DEFERRED)";
      });
      std::thread dangling;
      std::thread fine;
      CHECK_THROWS_WITH_AS(db.in_transaction([&](soci::session& s) {
        insert_product(s, "SKU-H", 1);
        dangling = std::thread([&] {
          CHECK_THROWS_AS(
              db.in_transaction([](soci::session& t) { t << "INSERT INTO notes (sku) VALUES ('SKU-NONE')"; }),
              std::runtime_error);
        });
        fine = std::thread([&] {
          CHECK_THROWS_AS(db.in_transaction([](soci::session& t) { insert_product(t, "SKU-P", 1); }),
                          std::runtime_error);
        });
        hold_until_waiting(db, 2);
      }),
                           doctest::Contains("FOREIGN KEY"), std::runtime_error);
      dangling.join();
      fine.join();
      CHECK(count("SKU-H") == 0);
      CHECK(count("SKU-P") == 0);
      CHECK(scalar(other_process, "SELECT count(*) FROM notes") == 0);
      CHECK(commits() == 1);  // the CREATE TABLE's; the failed group is not counted
      // The connection is usable again.
      db.in_transaction([](soci::session& s) { insert_product(s, "SKU-AFTER", 1); });
      CHECK(count("SKU-AFTER") == 1);
    }
  }

  TEST_CASE(
      "database sqlite: a holder runs a commit group's worth of queued transactions, then passes the turn") {
    temp_dir dir;
    const auto url = database_url::parse("sqlite:" + (dir.path() / "shop.db").string());
    database db(url, {.pool_size = 2, .busy_timeout = 30s, .commit_group_size = 2, .commit_group_age = 60s});
    shopd::db::migrate(db);
    std::vector<std::thread::id> ran_on(3);
    std::vector<std::thread::id> callers(3);
    std::vector<std::thread> writers;
    std::thread::id holder;
    db.in_transaction([&](soci::session& s) {
      holder = std::this_thread::get_id();
      insert_product(s, "SKU-H", 1);
      for (std::size_t i = 0; i < 3; ++i) {
        writers.emplace_back([&, i] {
          callers[i] = std::this_thread::get_id();
          db.in_transaction([&](soci::session& t) {
            ran_on[i] = std::this_thread::get_id();
            insert_product(t, "SKU-" + std::to_string(i), 1);
          });
        });
        hold_until_waiting(db, i + 1);
      }
    });
    for (auto& w : writers) w.join();
    // The holder's own call returned after two others ran; the third caller then held the turn.
    CHECK(ran_on[0] == holder);
    CHECK(ran_on[1] == holder);
    CHECK(ran_on[2] == callers[2]);
    CHECK(scalar(db, "SELECT count(*) FROM products") == 4);
  }

  // The live prepared statements of the connection `s` runs on whose text is `sql`.
  int live_statements(soci::session & s, const std::string& sql) {
    auto* conn = static_cast<soci::sqlite3_session_backend*>(s.get_backend())->conn_;
    int n = 0;
    for (auto* st = sqlite_api::sqlite3_next_stmt(conn, nullptr); st != nullptr;
         st = sqlite_api::sqlite3_next_stmt(conn, st)) {
      if (sql == sqlite_api::sqlite3_sql(st)) ++n;
    }
    return n;
  }

  TEST_CASE("database sqlite: db::execute and db::query_one prepare a statement once per writer connection") {
    temp_dir dir;
    database db(database_url::parse("sqlite:" + (dir.path() / "shop.db").string()), {.pool_size = 2});
    shopd::db::migrate(db);
    const std::string sql =
        "INSERT INTO checkouts (checkout_id, status, event_id, correlation_id, created_at_ms) "
        "VALUES (:id, 'accepted', :event, :correlation, 0)";
    const auto insert = [&](soci::session& s, const std::string& id) {
      const std::string event = "evt-" + id;
      const std::string correlation = "chk-" + id;
      return shopd::db::execute(s, sql, soci::use(id), soci::use(event), soci::use(correlation));
    };
    for (int i = 0; i < 3; ++i) {
      db.in_transaction([&](soci::session& s) {
        CHECK(insert(s, std::to_string(i)) == 1);
        CHECK(live_statements(s, sql) == 1);  // the same one each time, kept between transactions
      });
    }
    // A duplicate key fails that call only; the kept statement serves the next one.
    CHECK_THROWS_AS(db.in_transaction([&](soci::session& s) { insert(s, "1"); }), soci::soci_error);
    db.in_transaction([&](soci::session& s) { CHECK(insert(s, "3") == 1); });
    CHECK(scalar(db, "SELECT count(*) FROM checkouts") == 4);
    CHECK(scalar(db,
                 "SELECT count(*) FROM checkouts WHERE event_id = 'evt-' || checkout_id AND "
                 "correlation_id = 'chk-' || checkout_id") == 4);
    // Outside a transaction (a pooled session) the statement is prepared for the call and finalized.
    db.with_session([&](soci::session& s) {
      CHECK(insert(s, "4") == 1);
      CHECK(live_statements(s, sql) == 0);
    });

    // A kept query is read to its end: not left running (which would hold a read snapshot).
    const std::string lookup = "SELECT correlation_id FROM checkouts WHERE checkout_id = :id";
    for (const std::string id : {"2", "3", "none"}) {
      db.in_transaction([&](soci::session& s) {
        std::string correlation;
        const bool found = shopd::db::query_one(s, lookup, [&](soci::statement& st) {
          st.exchange(soci::into(correlation));
          st.exchange(soci::use(id));
        });
        CHECK(found == (id != "none"));
        if (found) CHECK(correlation == "chk-" + id);
        CHECK(live_statements(s, lookup) == 1);
        auto* conn = static_cast<soci::sqlite3_session_backend*>(s.get_backend())->conn_;
        for (auto* st = sqlite_api::sqlite3_next_stmt(conn, nullptr); st != nullptr;
             st = sqlite_api::sqlite3_next_stmt(conn, st)) {
          if (lookup == sqlite_api::sqlite3_sql(st)) CHECK(sqlite_api::sqlite3_stmt_busy(st) == 0);
        }
      });
    }
  }

  TEST_CASE("database sqlite: a WAL past 1,000 pages is checkpointed into the database file") {
    temp_dir dir;
    const auto file = dir.path() / "shop.db";
    database db(database_url::parse("sqlite:" + file.string()), {.pool_size = 2});
    db.in_transaction([](soci::session& s) {
      s << "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)";
      // ~6 MB in 1,500 rows: well over 1,000 pages of 4 KiB in the WAL.
      for (int i = 0; i < 1500; ++i) s << "INSERT INTO blobs (data) VALUES (randomblob(4000))";
    });
    // The pages reach the database file only through a checkpoint; nothing here runs one.
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::filesystem::file_size(file) < 5'000'000 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    CHECK(std::filesystem::file_size(file) >= 5'000'000);
    CHECK(scalar(db, "SELECT count(*) FROM blobs") == 1500);

    // Checkpoints are spaced; a commit that asks for one meanwhile still gets it, afterwards.
    db.in_transaction([](soci::session& s) {
      for (int i = 0; i < 1500; ++i) s << "INSERT INTO blobs (data) VALUES (randomblob(4000))";
    });
    while (std::filesystem::file_size(file) < 10'000'000 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    CHECK(std::filesystem::file_size(file) >= 10'000'000);
  }

  // The voluntary context switches of this process's thread named `name` (nullopt: none).
  std::optional<long long> voluntary_switches(const std::string& name) {
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
      std::ifstream comm(task.path() / "comm");
      std::string n;
      if (!std::getline(comm, n) || n != name) continue;
      std::ifstream status(task.path() / "status");
      for (std::string line; std::getline(status, line);) {
        if (line.starts_with("voluntary_ctxt_switches:")) return std::stoll(line.substr(24));
      }
    }
    return std::nullopt;
  }

  TEST_CASE("database sqlite: the checkpointer wakes once per checkpoint, not once per commit") {
    temp_dir dir;
    const auto file = dir.path() / "shop.db";
    database db(database_url::parse("sqlite:" + file.string()), {.pool_size = 2});
    db.in_transaction(
        [](soci::session& s) { s << "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)"; });
    // A reader holding a snapshot from before the WAL grew keeps every frame after it in the WAL:
    // each commit below finds it past 1,000 pages and asks for a checkpoint.
    soci::session reader(*soci::factory_sqlite3(), file.string());
    long long n = 0;
    reader << "BEGIN";
    reader << "SELECT count(*) FROM blobs", soci::into(n);
    db.in_transaction([](soci::session& s) {
      for (int i = 0; i < 1200; ++i) s << "INSERT INTO blobs (data) VALUES (randomblob(4000))";
    });
    const auto before = voluntary_switches("sqlite-ckpt");
    REQUIRE(before.has_value());
    const auto started = std::chrono::steady_clock::now();
    constexpr int commits = 1000;
    for (int i = 0; i < commits; ++i)
      db.in_transaction([](soci::session& s) { s << "INSERT INTO blobs (data) VALUES (x'00')"; });
    const auto elapsed = std::chrono::steady_clock::now() - started;
    const auto woken = *voluntary_switches("sqlite-ckpt") - *before;
    reader << "COMMIT";
    // A checkpoint round (one per 100 ms) costs a few switches: its waits for a request and for its
    // spacing, its fdatasync, SQLite's shared-memory mutex when a commit holds it. That is 5-7 for
    // these commits here (~20 ms) and was 20 on a loaded CI machine. Waking per commit cost 580-880.
    CAPTURE(woken);
    CAPTURE(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count());
    CHECK(woken < commits / 4);
  }

  TEST_CASE("database sqlite: under steady writes and reads the WAL starts over instead of growing") {
    temp_dir dir;
    const auto file = dir.path() / "shop.db";
    const auto wal = file.string() + "-wal";
    database db(database_url::parse("sqlite:" + file.string()),
                {.pool_size = 2, .wal_restart_pages = 500});  // ~2 MB
    db.in_transaction(
        [](soci::session& s) { s << "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)"; });
    // Readers always about, as in a serving process: each holds its snapshot 10 ms, which pins the
    // WAL frames written since, so the background checkpoints never copy them all and the WAL
    // never starts over by itself.
    std::atomic<bool> done{false};
    std::thread reader([&] {
      while (!done.load()) {
        db.with_session([](soci::session& s) {
          long long n = 0;
          s << "BEGIN";
          s << "SELECT coalesce(max(id), 0) FROM blobs", soci::into(n);
          std::this_thread::sleep_for(10ms);
          s << "COMMIT";
        });
      }
    });
    // The WAL header's checkpoint sequence number (bytes 12-15, big-endian) counts its restarts.
    const auto restarts = [&] {
      std::ifstream in(wal, std::ios::binary);
      unsigned char header[16] = {};
      in.read(reinterpret_cast<char*>(header), sizeof header);
      return (std::uint32_t{header[12]} << 24) | (std::uint32_t{header[13]} << 16) |
             (std::uint32_t{header[14]} << 8) | std::uint32_t{header[15]};
    };
    // Steady writes, 16 KB per transaction, until the WAL has started over twice (or 256 MB or
    // 30 s have gone by): over 500 pages, the writer that commits next runs a RESTART checkpoint,
    // which waits out the 10 ms readers. Two restarts take a few MB. A restart follows a
    // checkpoint round, whose fdatasync a busy disk can slow to hundreds of ms (right after many
    // files were deleted, as a test suite does): a writer that outruns the disk grows any WAL, so
    // this one waits a little whenever the WAL is past 8 MB, as a writer with real work to do would.
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    long long written = 0;
    while (restarts() < 2 && written < 65'536 && std::chrono::steady_clock::now() < deadline) {
      db.in_transaction([](soci::session& s) {
        for (int j = 0; j < 4; ++j) s << "INSERT INTO blobs (data) VALUES (randomblob(4000))";
      });
      written += 4;
      std::error_code ec;
      if (std::filesystem::file_size(wal, ec) > 8u << 20) std::this_thread::sleep_for(2ms);
    }
    done = true;
    reader.join();
    CAPTURE(written);
    CHECK(restarts() >= 2);
    CHECK(scalar(db, "SELECT count(*) FROM blobs") == written);
  }

  TEST_CASE("database sqlite: in-memory uses one session") {
    database db(database_url::parse("sqlite::memory:"), {.pool_size = 8});
    CHECK(db.size() == 1);
    CHECK(shopd::db::migrate(db) == all_versions());
    CHECK(shopd::db::status(db).up_to_date());
    CHECK(table_names(db) == expected_tables);
  }

  TEST_CASE("database: pool metrics show its size, the sessions in use and the leases that waited") {
    shopd::obs::registry metrics;
    database db(database_url::parse("sqlite::memory:"),
                {.pool_size = 1, .busy_timeout = 10s, .metrics = &metrics});
    const auto has = [&](const std::string& line) {
      return metrics.render().find(line + "\n") != std::string::npos;
    };
    CHECK(has("shopd_db_pool_connections 1"));
    CHECK(has("shopd_db_pool_connections_in_use 0"));
    CHECK(has("shopd_db_pool_waits_total 0"));
    CHECK(has("shopd_db_pool_wait_duration_seconds_count 0"));

    SUBCASE("a lease that finds the pool exhausted waits for the session to come back") {
      std::thread waiter;
      db.with_session([&](soci::session&) {
        CHECK(has("shopd_db_pool_connections_in_use 1"));
        waiter = std::thread([&] { db.with_session([](soci::session& s) { s << "SELECT 1"; }); });
        // The wait is counted when it starts: hold the only session until then.
        for (int i = 0; i < 5000 && !has("shopd_db_pool_waits_total 1"); ++i)
          std::this_thread::sleep_for(1ms);
        CHECK(has("shopd_db_pool_waits_total 1"));
      });
      waiter.join();
      CHECK(has("shopd_db_pool_wait_duration_seconds_count 1"));
      CHECK(has("shopd_db_pool_connections_in_use 0"));
    }
    SUBCASE("a lease that gives up is counted as a wait too") {
      database quick(database_url::parse("sqlite::memory:"), {.pool_size = 1, .busy_timeout = 1ms});
      CHECK_NOTHROW(quick.with_session([](soci::session&) {}));  // no registry: no metrics, no harm
      shopd::obs::registry other;
      database timed(database_url::parse("sqlite::memory:"),
                     {.pool_size = 1, .busy_timeout = 1ms, .metrics = &other});
      timed.with_session([&](soci::session&) {
        CHECK_THROWS_AS(timed.with_session([](soci::session&) {}), transient_error);
      });
      const auto text = other.render();
      CHECK(text.find("shopd_db_pool_waits_total 1\n") != std::string::npos);
      CHECK(text.find("shopd_db_pool_wait_duration_seconds_count 1\n") != std::string::npos);
    }
  }

  TEST_CASE("database: a pool of zero sessions is refused") {
    CHECK_THROWS_AS(database(database_url::parse("sqlite::memory:"), {.pool_size = 0}),
                    std::invalid_argument);
  }

  TEST_CASE("database sqlite: an unusable path fails naming the URL") {
    temp_dir dir;
    const auto blocker = dir.path() / "not-a-directory";
    std::ofstream(blocker) << "x";
    const std::string url = "sqlite:" + (blocker / "shop.db").string();
    CHECK_THROWS_WITH_AS(database(database_url::parse(url)), doctest::Contains(url.c_str()),
                         std::runtime_error);
  }

  TEST_CASE("database postgresql: no server means a one-line error naming the redacted URL") {
    closed_port port;
    const std::string url = "postgresql://shop:topsecret@127.0.0.1:" + std::to_string(port.port()) + "/shopd";
    try {
      database db(database_url::parse(url), {.pool_size = 1});
      FAIL("connected to a port where nothing listens");
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      CAPTURE(msg);
      CHECK(msg.find("postgresql://shop:***@127.0.0.1:" + std::to_string(port.port()) + "/shopd") !=
            std::string::npos);
      CHECK(msg.find("topsecret") == std::string::npos);
      CHECK(msg.find('\n') == std::string::npos);
    }
  }

  TEST_CASE("database postgresql: a terminated idle connection heals on the next lease") {
    pg_database pg;
    database db(pg.url(), {.pool_size = 1});
    shopd::db::migrate(db);
    const int before = backend_pid(db);
    pg.terminate_backend(before);
    // The server is gone from under the session; the next call reconnects first or, at worst, fails
    // as transient; the one after must work on a new backend.
    try {
      db.in_transaction([](soci::session& s) { insert_product(s, "SKU-1", 1); });
    } catch (const transient_error& e) {
      MESSAGE("first call after the termination: " << std::string(e.what()));
    }
    db.in_transaction([](soci::session& s) { insert_product(s, "SKU-2", 1); });
    CHECK(backend_pid(db) != before);
    CHECK(scalar(db, "SELECT count(*) FROM products WHERE sku = 'SKU-2'") == 1);
    CHECK(db.ping());
  }

  TEST_CASE("database postgresql: server notices become log lines, not raw stderr") {
    pg_database pg;
    database db(pg.url(), {.pool_size = 1});
    const auto file = std::filesystem::temp_directory_path() / ("shopd-notice-" + std::to_string(::getpid()));
    std::fflush(stderr);
    const int saved = ::dup(STDERR_FILENO);
    const int fd = ::open(file.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
    REQUIRE(saved >= 0);
    REQUIRE(fd >= 0);
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
    db.with_session([](soci::session& s) { s << "DO $$ BEGIN RAISE NOTICE 'stock is low'; END $$"; });
    std::fflush(stderr);
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    std::ifstream in(file);
    const std::string captured((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::filesystem::remove(file);
    CAPTURE(captured);
    CHECK(captured.find("postgresql notice") != std::string::npos);
    CHECK(captured.find("stock is low") != std::string::npos);
    CHECK(captured.find("NOTICE:") == std::string::npos);  // libpq's own default printer
  }

  TEST_CASE("database postgresql: a connection lost mid-transaction is transient, then heals") {
    pg_database pg;
    database db(pg.url(), {.pool_size = 1});
    shopd::db::migrate(db);
    CHECK_THROWS_AS(db.in_transaction([&](soci::session& s) {
      insert_product(s, "SKU-1", 1);
      int pid = 0;
      s << "SELECT pg_backend_pid()", soci::into(pid);
      pg.terminate_backend(pid);
      insert_product(s, "SKU-2", 1);
    }),
                    transient_error);
    CHECK(db.in_use() == 0);
    db.in_transaction([](soci::session& s) { insert_product(s, "SKU-3", 1); });
    CHECK(scalar(db, "SELECT count(*) FROM products") == 1);  // SKU-1 went with the lost transaction
  }
}

TEST_SUITE("db.migrations") {
  TEST_CASE("database migrations: statements_for substitutes placeholders per dialect") {
    const auto& initial = shopd::db::migrations().front();
    CHECK(initial.version == 1);
    CHECK(initial.name == "initial_schema");
    const auto lite = shopd::db::statements_for(initial, dialect::sqlite);
    const auto pg = shopd::db::statements_for(initial, dialect::postgresql);
    CHECK(lite.size() == pg.size());
    auto any_contains = [](const std::vector<std::string>& stmts, std::string_view what) {
      return std::any_of(stmts.begin(), stmts.end(),
                         [&](const std::string& s) { return s.find(what) != s.npos; });
    };
    CHECK(any_contains(lite, "id INTEGER PRIMARY KEY AUTOINCREMENT"));
    CHECK(any_contains(lite, "body BLOB NOT NULL"));
    CHECK(any_contains(lite, "value REAL NOT NULL"));
    CHECK(any_contains(pg, "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"));
    CHECK(any_contains(pg, "body BYTEA NOT NULL"));
    CHECK(any_contains(pg, "value DOUBLE PRECISION NOT NULL"));
    for (const auto* stmts : {&lite, &pg}) {
      CHECK_FALSE(any_contains(*stmts, "${"));
      for (const auto& s : *stmts) {
        CAPTURE(s);
        CHECK_FALSE(s.empty());
        CHECK(s.back() != ';');
      }
    }
  }

  TEST_CASE("database migrations: statements split only at a semicolon that ends its line") {
    const shopd::db::migration m{
        7, "split", "CREATE TABLE a (x TEXT DEFAULT ';');\n  \nINSERT INTO a VALUES ('p;q')  ;  \nSELECT 1"};
    CHECK(shopd::db::statements_for(m, dialect::sqlite) ==
          std::vector<std::string>{"CREATE TABLE a (x TEXT DEFAULT ';')", "INSERT INTO a VALUES ('p;q')",
                                   "SELECT 1"});
    const shopd::db::migration bad{8, "bad", "CREATE TABLE b (x ${NOPE});\n"};
    CHECK_THROWS_WITH_AS(shopd::db::statements_for(bad, dialect::postgresql), doctest::Contains("${NOPE}"),
                         std::logic_error);
  }
}
