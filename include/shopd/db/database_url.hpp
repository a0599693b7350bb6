#pragma once
/// DATABASE_URL: `sqlite:PATH` (relative to the working directory; `sqlite::memory:` for tests)
/// or `postgresql://user:password@host:port/dbname?param=value` (`postgres://` too).

#include <string>
#include <string_view>

namespace shopd::db {

enum class dialect { sqlite, postgresql };

struct database_url {
  dialect kind = dialect::sqlite;
  std::string connect_string;  ///< what SOCI's backend takes
  std::string sqlite_path;     ///< sqlite only: the file ("" for in-memory)
  std::string redacted;        ///< the URL with any password replaced by "***", for logs

  /// Throws std::invalid_argument with a one-line reason.
  [[nodiscard]] static database_url parse(std::string_view url);
};

[[nodiscard]] std::string_view to_string(dialect d) noexcept;

}  // namespace shopd::db
