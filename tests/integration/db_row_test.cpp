#include "shopd/db/row.hpp"

#include "shopd/db/database.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <stdexcept>
#include <string>

using shopd::db::database;
using shopd::db::database_url;

TEST_SUITE("db.row") {
  TEST_CASE("integer and text columns read whatever type SQLite reports") {
    database db(database_url::parse("sqlite::memory:"));
    db.with_session([](soci::session& s) {
      s << "CREATE TABLE t (small INTEGER, big BIGINT, real_value REAL, label TEXT, missing INTEGER)";
      s << "INSERT INTO t VALUES (7, 9007199254740993, 42.0, '123', NULL)";
      soci::rowset<soci::row> rows =
          (s.prepare << "SELECT small, big, real_value, label, missing, COUNT(*) FROM t");
      int seen = 0;
      for (const auto& r : rows) {
        ++seen;
        CHECK(shopd::db::int_at(r, 0) == 7);
        CHECK(shopd::db::int_at(r, 1) == 9007199254740993LL);
        CHECK(shopd::db::int_at(r, 2) == 42);
        CHECK(shopd::db::int_at(r, 3) == 123);
        CHECK(shopd::db::int_at(r, 5) == 1);
        CHECK(shopd::db::text_at(r, 3) == "123");
        CHECK(shopd::db::opt_text_at(r, 3) == std::optional<std::string>("123"));
        CHECK_FALSE(shopd::db::is_null(r, 0));
        CHECK(shopd::db::is_null(r, 4));
        CHECK_FALSE(shopd::db::opt_int_at(r, 4).has_value());
        CHECK(shopd::db::opt_int_at(r, 0) == std::optional<long long>(7));
        CHECK(shopd::db::text_at(r, 4).empty());
        CHECK_FALSE(shopd::db::opt_text_at(r, 4).has_value());
      }
      CHECK(seen == 1);
    });
  }

  TEST_CASE("a text column that holds no number is refused") {
    database db(database_url::parse("sqlite::memory:"));
    db.with_session([](soci::session& s) {
      soci::rowset<soci::row> rows = (s.prepare << "SELECT 'abc'");
      for (const auto& r : rows) CHECK_THROWS_AS((void)shopd::db::int_at(r, 0), std::runtime_error);
    });
  }
}
