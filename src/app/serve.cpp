#include "shopd/app/commands.hpp"

#include "shopd/app/role.hpp"
#include "shopd/app/standard_routes.hpp"
#include "shopd/app/systemd.hpp"
#include "shopd/db/database.hpp"
#include "shopd/db/migrations.hpp"
#include "shopd/http/server.hpp"
#include "shopd/obs/log.hpp"
#include "shopd/obs/metrics.hpp"

#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

namespace shopd {

namespace {

void configure_logging(const config::settings& s) {
  obs::configure(obs::parse_level(s.log_level), obs::parse_format(s.log_format));
}

// SQLite is the one-machine default: bring its schema up to date on start. PostgreSQL is shared by
// many processes and deployments, so schema changes there are an explicit `shopd migrate`.
void ensure_schema(db::database& database) {
  auto st = db::status(database);
  if (st.up_to_date()) return;
  if (database.kind() == db::dialect::sqlite) {
    const auto applied = db::migrate(database);
    obs::info("migrations applied", {{"count", applied.size()}, {"version", db::status(database).current}});
    return;
  }
  throw std::runtime_error("database " + database.url().redacted + " is at schema version " +
                           std::to_string(st.current) + ", this binary needs " + std::to_string(st.latest) +
                           ": run `shopd migrate` first");
}

struct running_role {
  const app::role_entry* entry;
  std::unique_ptr<app::role> instance;
};

}  // namespace

int serve(const serve_options& opts) {
  const auto& s = opts.settings;
  try {
    configure_logging(s);
    const auto entries = app::resolve_roles(opts.roles);
    if (opts.port && entries.size() != 1) {
      throw config::config_error("--port applies to a single role; " + std::to_string(entries.size()) +
                                 " were given (set ORDERS_PORT, RELAY_PORT, ... instead)");
    }
    const auto cors = http::cors_policy::from_config(s.cors_allowed_origins, s.cors_allowed_headers,
                                                     s.cors_allow_credentials, s.cors_max_age_s);

    auto url = db::database_url::parse(s.database_url);
    db::database database(url, {.pool_size = static_cast<std::size_t>(s.database_pool_size),
                                .busy_timeout = std::chrono::milliseconds(s.database_busy_timeout_ms)});
    ensure_schema(database);

    obs::registry metrics;
    metrics.gauge_family("shopd_build_info", "Build information (always 1)", {"version"})
        .with({SHOPD_VERSION})
        .set(1);
    app::process_state state{database, metrics};
    http::server server(http::server_options::from_config(s), metrics);

    std::vector<running_role> running;
    for (const auto* entry : entries) {
      auto routes = std::make_shared<http::router>();
      app::add_standard_routes(*routes, std::string(entry->name), state);
      app::role_context ctx{entry->name, s, database, *routes, server, metrics};
      running.push_back({entry, entry->make(ctx)});
      const auto port = opts.port ? *opts.port : static_cast<std::uint16_t>(s.*(entry->port));
      const auto bound = server.listen({.name = std::string(entry->name),
                                        .address = s.http_bind,
                                        .port = port,
                                        .routes = std::move(routes),
                                        .cors = cors});
      obs::info("listening", {{"role", entry->name}, {"address", s.http_bind}, {"port", bound}});
    }

    server.on_stop([&] {
      state.shutting_down = true;
      app::systemd::notify("STOPPING=1");
      obs::info("shutting down");
      for (auto it = running.rbegin(); it != running.rend(); ++it) it->instance->stop();
    });
    server.stop_on_signals();
    server.start();
    for (auto& r : running) r.instance->start();
    obs::info("ready", {{"roles", entries.size()}, {"database", url.redacted}, {"version", SHOPD_VERSION}});
    app::systemd::notify("READY=1\nSTATUS=serving");
    const app::systemd::watchdog watchdog;
    server.wait();
    obs::info("stopped");
    return 0;
  } catch (const config::config_error& e) {
    std::fprintf(stderr, "shopd: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shopd: %s\n", e.what());
    return 1;
  }
}

}  // namespace shopd
