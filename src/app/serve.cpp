#include "shopd/app/commands.hpp"

#include "shopd/app/role.hpp"
#include "shopd/app/standard_routes.hpp"
#include "shopd/app/systemd.hpp"
#include "shopd/bus/dispatch.hpp"
#include "shopd/bus/local_relay.hpp"
#include "shopd/bus/outbox_dispatcher.hpp"
#include "shopd/bus/outbox_publish.hpp"
#include "shopd/bus/publisher.hpp"
#include "shopd/bus/webhook.hpp"
#include "shopd/db/database.hpp"
#include "shopd/db/migrations.hpp"
#include "shopd/http/server.hpp"
#include "shopd/obs/log.hpp"
#include "shopd/obs/metrics.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <stdexcept>
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

// Everything one role runs on: its listener's routes, the event types it consumes behind its
// webhook, and the dispatcher publishing its outbox.
struct running_role {
  const app::role_entry* entry = nullptr;
  std::shared_ptr<http::router> routes = std::make_shared<http::router>();
  bus::event_router events;
  std::unique_ptr<bus::outbox_dispatcher> dispatcher;
  std::unique_ptr<bus::webhook> hook;
  std::unique_ptr<app::role> instance;
};

}  // namespace

int serve(const serve_options& opts) {
  try {
    configure_logging(opts.settings);
    const auto entries = app::resolve_roles(opts.roles);
    if (opts.port && entries.size() != 1) {
      throw config::config_error("--port applies to a single role; " + std::to_string(entries.size()) +
                                 " were given (set ORDERS_PORT, RELAY_PORT, ... instead)");
    }
    // `--port N` is that role's port setting (RELAY_PORT, ...) for everything that reads it: the
    // relay's default node id as well as the listener.
    config::settings effective = opts.settings;
    if (opts.port) effective.*(entries.front()->port) = *opts.port;
    const auto& s = effective;
    const auto cors = [&] {
      try {
        return http::cors_policy::from_config(s.cors_allowed_origins, s.cors_allowed_headers,
                                              s.cors_allow_credentials, s.cors_max_age_s);
      } catch (const std::invalid_argument& e) {  // settings that are fine alone, not together
        throw config::config_error(std::string("CORS_ALLOWED_ORIGINS, CORS_ALLOW_CREDENTIALS: ") + e.what());
      }
    }();

    obs::registry metrics;
    metrics.gauge_family("shopd_build_info", "Build information (always 1)", {"version"})
        .with({SHOPD_VERSION})
        .set(1);

    auto url = db::database_url::parse(s.database_url);
    db::database database(url, {.pool_size = static_cast<std::size_t>(s.database_pool_size),
                                .busy_timeout = std::chrono::milliseconds(s.database_busy_timeout_ms),
                                .sqlite_full_sync = s.database_sqlite_synchronous == "full",
                                .metrics = &metrics});
    ensure_schema(database);
    app::process_state state{database, metrics};
    http::server server(http::server_options::from_config(s), metrics);

    const bus::destinations destinations(s);
    // This process's listeners, answered in-process by its clients (the relay's deliveries and
    // callbacks to the roles beside it), signed and verified as over a socket.
    const auto in_process = std::make_shared<http::in_process_listeners>();
    http::client_options client_opts;
    client_opts.in_process = in_process;
    const http::client client(server.io_context(), client_opts);
    const bus::publisher publisher(client, bus::publisher_config::from_settings(s));
    const auto failure_callback = destinations.failure_callback_url();
    bus::local_relay local_relay;  // the relay role offers it; enabled below when QSTASH_URL names it

    // Built in place and never moved: routes and handlers keep references into each element.
    std::vector<std::unique_ptr<running_role>> running;
    for (const auto* entry : entries) {
      auto& r = *running.emplace_back(std::make_unique<running_role>());
      r.entry = entry;
      const std::string name(entry->name);
      r.dispatcher = std::make_unique<bus::outbox_dispatcher>(
          database,
          bus::outbox_dispatcher::options{.producer = name,
                                          .stop_timeout = std::chrono::milliseconds(s.shutdown_timeout_ms)},
          bus::make_outbox_publisher(server.io_context(), publisher, failure_callback, &local_relay),
          metrics);
      app::add_standard_routes(*r.routes, name, state);
      app::role_context ctx{entry->name,
                            s,
                            database,
                            *r.routes,
                            server,
                            metrics,
                            r.events,
                            destinations,
                            [d = r.dispatcher.get()] { d->notify(); },
                            &local_relay,
                            in_process};
      r.instance = entry->make(ctx);
      if (!r.events.types().empty()) {
        bus::webhook_config hook_cfg{.role = name,
                                     .keys = {s.qstash_current_signing_key, s.qstash_next_signing_key},
                                     .clock_tolerance = std::chrono::seconds(s.signature_clock_tolerance_s),
                                     .expected_url = destinations.webhook_url(name)};
        if (hook_cfg.keys.current.empty() && hook_cfg.keys.next.empty()) {
          throw config::config_error(
              "role " + name +
              " verifies deliveries: set QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY");
        }
        r.hook = std::make_unique<bus::webhook>(
            std::move(hook_cfg), database, destinations, r.events, metrics,
            [d = r.dispatcher.get()] { d->notify(); }, &local_relay,
            [d = r.dispatcher.get()](std::size_t n) { d->count_in_transaction(n); });
        r.hook->add_route(*r.routes);
      }
      const auto port = static_cast<std::uint16_t>(s.*(entry->port));
      // Alone in its process, a role has nothing to be isolated from: it uses the shared pool.
      const unsigned own_workers =
          entries.size() > 1 && entry->waits_outside ? static_cast<unsigned>(s.worker_threads) : 0;
      const auto bound = server.listen({.name = name,
                                        .address = s.http_bind,
                                        .port = port,
                                        .routes = r.routes,
                                        .cors = cors,
                                        .own_workers = own_workers});
      in_process->add(s.http_bind, bound, [&server, bound](http::request req) {
        return server.serve_in_process(bound, std::move(req));
      });
      obs::info(
          "listening",
          {{"role", entry->name}, {"address", s.http_bind}, {"port", bound}, {"own_workers", own_workers}});
      if (entry->name == "relay" &&
          bus::names_local_listener(publisher.config().qstash_url, s.http_bind, bound)) {
        // Outboxes hand their batches to this relay directly (bus/local_relay.hpp).
        local_relay.enable();
        obs::info("outboxes publish to the relay in this process",
                  {{"qstash_url", publisher.config().qstash_url}});
      }
    }

    server.on_drain([&] {
      state.shutting_down = true;  // /readyz answers 503 from now on
      app::systemd::notify("STOPPING=1\nSTATUS=draining");
      obs::info("shutting down");
    });
    server.on_stop([&] {
      // The listeners still serve here, so work in flight between roles of this process can finish.
      for (auto& r : running) r->dispatcher->request_stop();  // one stop timeout for all of them
      for (auto it = running.rbegin(); it != running.rend(); ++it) {
        (*it)->instance->stop();    // the relay finishes its deliveries or hands back their leases
        (*it)->dispatcher->stop();  // finishes the batch in flight; the rest waits in the outbox
      }
      client.close_idle();
    });
    server.stop_on_signals();
    server.start();
    for (auto& r : running) {
      r->dispatcher->start();
      r->instance->start();
    }
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
