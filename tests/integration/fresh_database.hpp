#pragma once
/// Databases for one test: a SQLite file in its own temporary directory, or a new database on the
/// PostgreSQL the CTest fixture started (SHOPD_TEST_PG_INFO names its conninfo file), dropped again
/// afterwards. A missing fixture is a failure, not a skip.

#include "shopd/db/database.hpp"
#include "shopd/db/migrations.hpp"
#include "temp_dir.hpp"

#include <soci/postgresql/soci-postgresql.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace shopd::test {

inline std::string random_hex() {
  std::random_device rd;
  std::uniform_int_distribution<unsigned long long> dist;
  std::ostringstream out;
  out << std::hex << dist(rd);
  return out.str();
}

/// The conninfo line of the fixture's PostgreSQL ("host=... port=... user=... dbname=...").
inline std::string pg_admin_conninfo() {
  const char* file = std::getenv("SHOPD_TEST_PG_INFO");
  if (file == nullptr || *file == '\0') {
    throw std::runtime_error(
        "SHOPD_TEST_PG_INFO is not set: run these tests through ctest (fixture 'postgres')");
  }
  std::ifstream in(file);
  std::string line;
  if (!in || !std::getline(in, line) || line.empty()) {
    throw std::runtime_error(std::string("cannot read the PostgreSQL conninfo from SHOPD_TEST_PG_INFO=") +
                             file);
  }
  return line;
}

/// A new, empty database on the fixture's PostgreSQL, named `prefix` and a random suffix, dropped
/// (WITH FORCE: sessions still on it are ended) on destruction.
class pg_scratch_database {
 public:
  explicit pg_scratch_database(std::string_view prefix)
      : admin_(pg_admin_conninfo()), name_(std::string(prefix) + random_hex()) {
    std::map<std::string, std::string> info;
    std::istringstream words(admin_);
    for (std::string word; words >> word;) {
      const auto eq = word.find('=');
      if (eq != std::string::npos) info[word.substr(0, eq)] = word.substr(eq + 1);
    }
    url_ = "postgresql://" + info["user"] + "@" + info["host"] + ":" + info["port"] + "/" + name_;
    soci::session admin(*soci::factory_postgresql(), admin_);
    admin << "CREATE DATABASE " + name_;
  }
  ~pg_scratch_database() {
    try {
      soci::session admin(*soci::factory_postgresql(), admin_);
      admin << "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)";
    } catch (const std::exception&) {
      // The server goes away with the fixture; a leftover database there harms nothing.
    }
  }
  pg_scratch_database(const pg_scratch_database&) = delete;
  pg_scratch_database& operator=(const pg_scratch_database&) = delete;

  /// Its DATABASE_URL.
  [[nodiscard]] const std::string& url() const { return url_; }
  /// The conninfo of the server's administrative session (for what a test does from outside).
  [[nodiscard]] const std::string& admin_conninfo() const { return admin_; }

 private:
  std::string admin_;
  std::string name_;
  std::string url_;
};

/// Where a test's database lives, not yet opened: a SQLite file in a temporary directory of its
/// own, or a pg_scratch_database.
class scratch_database {
 public:
  scratch_database(db::dialect d, std::string_view name) : dialect_(d) {
    if (d == db::dialect::sqlite) {
      dir_.emplace();
      url_ = "sqlite:" + (dir_->path() / (std::string(name) + ".db")).string();
    } else {
      pg_.emplace("shopd_" + std::string(name) + "_");
      url_ = pg_->url();
    }
  }

  [[nodiscard]] db::database_url url() const { return db::database_url::parse(url_); }
  /// The DATABASE_URL, as a process under test would be given it.
  [[nodiscard]] const std::string& url_text() const { return url_; }
  [[nodiscard]] db::dialect kind() const { return dialect_; }

 private:
  db::dialect dialect_;
  std::optional<temp_dir> dir_;
  std::optional<pg_scratch_database> pg_;
  std::string url_;
};

/// A scratch_database, opened and migrated.
class fresh_database {
 public:
  explicit fresh_database(db::dialect d, std::size_t pool_size = 4,
                          std::chrono::milliseconds busy_timeout = db::database_options{}.busy_timeout)
      : where_(d, "relay"),
        db_(std::make_unique<db::database>(
            where_.url(), db::database_options{.pool_size = pool_size, .busy_timeout = busy_timeout})) {
    db::migrate(*db_);
  }
  // The database closes before its file or server-side database goes.
  ~fresh_database() { db_.reset(); }

  fresh_database(const fresh_database&) = delete;
  fresh_database& operator=(const fresh_database&) = delete;

  [[nodiscard]] db::database& db() { return *db_; }
  /// The DATABASE_URL of this database (for a second pool, or a process under test).
  [[nodiscard]] const std::string& url() const { return where_.url_text(); }
  [[nodiscard]] db::dialect kind() const { return where_.kind(); }

 private:
  scratch_database where_;
  std::unique_ptr<db::database> db_;
};

inline const char* dialect_name(db::dialect d) {
  return d == db::dialect::sqlite ? "sqlite" : "postgresql";
}

}  // namespace shopd::test
