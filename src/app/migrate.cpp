#include "shopd/app/commands.hpp"

#include "shopd/db/database.hpp"
#include "shopd/db/migrations.hpp"
#include "shopd/obs/log.hpp"
#include "shopd/roles/inventory/seed.hpp"

#include <cstdio>
#include <exception>

namespace shopd {

int migrate(const migrate_options& opts) {
  try {
    obs::configure(obs::parse_level(opts.settings.log_level), obs::parse_format(opts.settings.log_format));
    auto url = db::database_url::parse(opts.settings.database_url);
    db::database database(
        url,
        {.pool_size = 1, .busy_timeout = std::chrono::milliseconds(opts.settings.database_busy_timeout_ms)});
    if (opts.status_only) {
      const auto st = db::status(database);
      std::printf("database %s: schema version %d of %d%s\n", url.redacted.c_str(), st.current, st.latest,
                  st.up_to_date() ? " (up to date)" : "");
      for (int v : st.pending) std::printf("pending: %d\n", v);
      return st.up_to_date() ? 0 : 3;
    }
    const auto applied = db::migrate(database);
    const auto st = db::status(database);
    std::printf("database %s: applied %zu migration(s), schema version %d\n", url.redacted.c_str(),
                applied.size(), st.current);
    if (!opts.seed_file.empty()) {
      const int added = inventory::seed_catalogue(database, opts.seed_file);
      std::printf("catalogue %s: %d product(s) added\n", opts.seed_file.c_str(), added);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shopd: %s\n", e.what());
    return 1;
  }
}

}  // namespace shopd
