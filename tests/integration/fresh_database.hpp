#pragma once
/// A fresh, migrated database for one test: a SQLite file in its own temporary directory, or a new
/// database on the PostgreSQL the CTest fixture started (SHOPD_TEST_PG_INFO names its conninfo
/// file), dropped again afterwards. A missing fixture is a failure, not a skip.

#include "shopd/db/database.hpp"
#include "shopd/db/migrations.hpp"

#include <soci/postgresql/soci-postgresql.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>

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

class fresh_database {
 public:
  explicit fresh_database(db::dialect d, std::size_t pool_size = 4,
                          std::chrono::milliseconds busy_timeout = db::database_options{}.busy_timeout)
      : dialect_(d) {
    if (d == db::dialect::sqlite) {
      dir_ = std::filesystem::temp_directory_path() / ("shopd-relay-test-" + random_hex());
      std::filesystem::create_directories(dir_);
      url_ = "sqlite:" + (dir_ / "relay.db").string();
    } else {
      admin_ = pg_admin_conninfo();
      name_ = "shopd_relay_" + random_hex();
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
    db_ = std::make_unique<db::database>(
        db::database_url::parse(url_),
        db::database_options{.pool_size = pool_size, .busy_timeout = busy_timeout});
    db::migrate(*db_);
  }

  ~fresh_database() {
    db_.reset();
    if (dialect_ == db::dialect::sqlite) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      return;
    }
    try {
      soci::session admin(*soci::factory_postgresql(), admin_);
      admin << "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)";
    } catch (const std::exception&) {
      // The server goes away with the fixture; a leftover database there harms nothing.
    }
  }

  fresh_database(const fresh_database&) = delete;
  fresh_database& operator=(const fresh_database&) = delete;

  [[nodiscard]] db::database& db() { return *db_; }
  /// The DATABASE_URL of this database (for a second pool, or a process under test).
  [[nodiscard]] const std::string& url() const { return url_; }
  [[nodiscard]] db::dialect kind() const { return dialect_; }

 private:
  db::dialect dialect_;
  std::filesystem::path dir_;
  std::string admin_;
  std::string name_;
  std::string url_;
  std::unique_ptr<db::database> db_;
};

inline const char* dialect_name(db::dialect d) {
  return d == db::dialect::sqlite ? "sqlite" : "postgresql";
}

}  // namespace shopd::test
