#pragma once
/// Roles: the services one shopd binary can run. One explicit table maps each role name to its
/// factory; a factory registers the role's routes and event handlers on the listener it is handed
/// and returns the role's running parts (dispatchers, workers) to start and stop.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shopd::config {
struct settings;
}
namespace shopd::db {
class database;
}
namespace shopd::http {
class router;
class server;
class in_process_listeners;
}  // namespace shopd::http
namespace shopd::obs {
class registry;
}
namespace shopd::bus {
class event_router;
class destinations;
class local_relay;
}  // namespace shopd::bus

namespace shopd::app {

/// Everything a role is handed. All references outlive the role.
struct role_context {
  std::string_view name;
  const config::settings& settings;
  db::database& db;
  http::router& routes;  ///< this role's listener; standard routes (health, metrics) are already there
  http::server& server;
  obs::registry& metrics;
  bus::event_router& events;              ///< register the event types this role consumes
  const bus::destinations& destinations;  ///< webhook URL of each role / event type
  /// Wake this role's outbox dispatcher after committing events outside a webhook delivery
  /// (an API call that emits); deliveries wake it themselves.
  std::function<void()> notify_outbox;
  /// Where the relay role offers its in-process batch publish (bus::local_relay); null when no
  /// dispatcher of this process could use it (tests of one role).
  bus::local_relay* local_relay = nullptr;
  /// This process's listeners, for clients that answer requests to them in-process
  /// (http::client_options::in_process); complete once every role listens. Null in tests of one role.
  std::shared_ptr<const http::in_process_listeners> in_process = nullptr;
};

/// A constructed role. start() runs after the server accepts connections; stop() when shutdown
/// begins, before the listeners close: finish or hand back in-flight work, then return.
class role {
 public:
  virtual ~role() = default;
  virtual void start() {}
  virtual void stop() {}
};

using role_factory = std::unique_ptr<role> (*)(role_context&);

struct role_entry {
  std::string_view name;
  std::int64_t config::settings::*port;  ///< the key holding its default port
  role_factory make;
  /// Its handlers wait on something outside the process (the email role: the SMTP server, or the
  /// mail directory's fsyncs). Served with other roles, it gets a worker pool of its own, so that a
  /// slow SMTP server or disk cannot stall the others' deliveries.
  bool waits_outside = false;
};

/// The table of roles, in start-up order.
[[nodiscard]] std::span<const role_entry> roles();

/// Resolve `--role` values: names, comma-separated lists, or `all`. Duplicates collapse; order
/// follows the table. Throws config::config_error listing the valid names for an unknown role or
/// an empty list.
[[nodiscard]] std::vector<const role_entry*> resolve_roles(std::span<const std::string> values);

}  // namespace shopd::app
