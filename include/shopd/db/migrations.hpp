#pragma once
/// Versioned schema migrations for SQLite and PostgreSQL. Each migration is one dialect-neutral SQL
/// script with a few placeholders (`${ID}` for an auto-increment primary key, `${BLOB}` for binary
/// data) and is applied in its own transaction together with its row in `schema_migrations`, so a
/// crash mid-way leaves either all of it or none.

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

/// The script for `d`, placeholders substituted, split into statements.
[[nodiscard]] std::vector<std::string> statements_for(const migration& m, dialect d);

struct migration_status {
  int current = 0;            ///< highest applied version (0: none)
  int latest = 0;             ///< highest known version
  std::vector<int> pending;   ///< known, not applied, ascending
  [[nodiscard]] bool up_to_date() const noexcept { return pending.empty(); }
};

/// What is applied. Throws std::runtime_error when the database is newer than this binary knows.
[[nodiscard]] migration_status status(database& db);

/// Apply every pending migration in order; returns the versions applied. Safe to run from several
/// processes at once (the loser of a race sees the version applied and skips it).
std::vector<int> migrate(database& db);

}  // namespace shopd::db
