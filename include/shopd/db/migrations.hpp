#pragma once
/// Versioned schema migrations for SQLite and PostgreSQL. Each migration is one dialect-neutral SQL
/// script with a few placeholders (`${ID}` for an auto-increment primary key, `${BLOB}` for binary
/// data, `${DOUBLE}` for a double) and is applied in its own transaction together with its row in
/// `schema_migrations(version, name, applied_at_ms)`, so a crash mid-way leaves either all of it or
/// none. Times in the schema are BIGINT Unix milliseconds; JSON documents are TEXT.

#include "shopd/db/database_url.hpp"

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shopd::db {

class database;

struct migration {
  int version;
  std::string_view name;
  std::string_view sql;  ///< statements separated by ';' at line ends
};

/// Every migration, ascending by version.
[[nodiscard]] std::span<const migration> migrations();

/// The script for `d`, placeholders substituted, split into statements. Throws std::logic_error on an
/// unknown `${...}` placeholder.
[[nodiscard]] std::vector<std::string> statements_for(const migration& m, dialect d);

struct migration_status {
  int current = 0;           ///< highest applied version (0: none)
  int latest = 0;            ///< highest known version
  std::vector<int> pending;  ///< known, not applied, ascending
  [[nodiscard]] bool up_to_date() const noexcept { return pending.empty(); }
};

/// What is applied. Throws std::runtime_error when the database is newer than this binary knows.
[[nodiscard]] migration_status status(database& db);

/// Apply every pending migration in order; returns the versions applied by this call. Safe to run
/// from several processes at once: on PostgreSQL each migration transaction takes an advisory lock
/// first, on SQLite BEGIN IMMEDIATE serialises them, and the loser of a race sees the version applied
/// and skips it. Throws std::runtime_error like status() when the database is newer than this binary.
std::vector<int> migrate(database& db);

}  // namespace shopd::db
