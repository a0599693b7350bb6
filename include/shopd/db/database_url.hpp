#pragma once
/// DATABASE_URL: `sqlite:PATH` (relative to the working directory; `sqlite::memory:` for tests)
/// or `postgresql://user:password@host:port/dbname?param=value` (`postgres://` too).
///
/// sqlite: PATH is taken literally (no percent-decoding); `sqlite:///abs/path` also means `/abs/path`.
/// postgresql: user, password, host (`[::1]` for IPv6, `%2Fdir` for a socket directory) and dbname
/// are percent-decoded; port defaults to 5432, dbname to `postgres`; query parameters are libpq
/// keywords passed through after the components (so they override them, as in libpq), and
/// `connect_timeout=10` is added when absent so a black-holed host cannot hang a reconnect.

#include <string>
#include <string_view>

namespace shopd::db {

enum class dialect { sqlite, postgresql };

struct database_url {
  dialect kind = dialect::sqlite;
  /// What SOCI's backend takes: `db="PATH"` for sqlite; for postgresql a libpq conninfo with every
  /// value single-quoted (`'` and `\` backslash-escaped).
  std::string connect_string;
  std::string sqlite_path;  ///< sqlite only: the file ("" for in-memory)
  std::string redacted;     ///< the URL with any password (also `?password=`) replaced by "***"

  /// Throws std::invalid_argument with a one-line reason that never contains the password (unknown
  /// scheme, empty path, bad port, missing host, malformed URL or query parameter).
  [[nodiscard]] static database_url parse(std::string_view url);
};

[[nodiscard]] std::string_view to_string(dialect d) noexcept;

}  // namespace shopd::db
