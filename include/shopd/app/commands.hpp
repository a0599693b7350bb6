#pragma once
/// The subcommands behind `shopd`, called by main() once CLI11 has parsed the command line and the
/// configuration has loaded. Each returns the process exit code and reports its own errors as one
/// line on stderr.

#include "shopd/config/config.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace shopd {

struct serve_options {
  config::settings settings;
  std::vector<std::string> roles;     ///< as given: names, comma lists, "all"
  std::optional<std::uint16_t> port;  ///< only with exactly one role
};

/// Run the roles until SIGTERM/SIGINT; 0 after a clean shutdown.
int serve(const serve_options& opts);

struct migrate_options {
  config::settings settings;
  bool status_only = false;  ///< print applied/pending, change nothing
  std::string seed_file;     ///< after migrating, add the catalogue's products that do not exist yet
};

/// Apply pending migrations (or report them).
int migrate(const migrate_options& opts);

/// The version string, e.g. "shopd 0.1.0".
[[nodiscard]] std::string version_string();

}  // namespace shopd
