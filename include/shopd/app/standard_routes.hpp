#pragma once
/// The routes every role serves on its listener, whatever the role:
///   GET /api/webhook  liveness in the original services' shape: {"status":"ok","role":...}
///   GET /healthz      liveness: the process answers
///   GET /readyz       readiness: database reachable, migrations applied, not shutting down (503 otherwise)
///   GET /metrics      the process's Prometheus registry (text format 0.0.4)

#include <atomic>
#include <string>

namespace shopd::db {
class database;
}
namespace shopd::http {
class router;
}
namespace shopd::obs {
class registry;
}

namespace shopd::app {

/// Shared by the listeners of one process; outlives the server.
struct process_state {
  db::database& db;
  obs::registry& metrics;
  std::atomic<bool> shutting_down{false};  ///< set when shutdown begins: /readyz answers 503 from then on
};

void add_standard_routes(http::router& routes, std::string role, process_state& state);

}  // namespace shopd::app
