#include "shopd/app/standard_routes.hpp"

#include "shopd/app/commands.hpp"
#include "shopd/db/database.hpp"
#include "shopd/db/migrations.hpp"
#include "shopd/http/router.hpp"
#include "shopd/obs/log.hpp"
#include "shopd/obs/metrics.hpp"

#include <boost/json.hpp>

namespace shopd::app {

namespace {

namespace json = boost::json;
using http::execution;
using http::status;
using http::verb;

struct readiness {
  bool ready = true;
  json::object checks;
};

// Database and migrations are checked on every probe (two cheap queries): a probe must see the
// database go away and come back, not a cached answer.
readiness check_readiness(process_state& state) {
  readiness r;
  if (state.shutting_down.load()) {
    r.ready = false;
    r.checks["shutdown"] = "draining";
  }
  if (!state.db.ping()) {
    r.ready = false;
    r.checks["database"] = "unreachable";
    return r;
  }
  r.checks["database"] = "ok";
  try {
    const auto st = db::status(state.db);
    if (st.up_to_date()) {
      r.checks["migrations"] = "ok";
    } else {
      r.ready = false;
      r.checks["migrations"] =
          "pending: at version " + std::to_string(st.current) + ", binary needs " + std::to_string(st.latest);
    }
  } catch (const std::exception& e) {
    r.ready = false;
    r.checks["migrations"] = e.what();
  }
  return r;
}

}  // namespace

void add_standard_routes(http::router& routes, std::string role, process_state& state) {
  routes.add(
      verb::get, "/api/webhook",
      [role](http::request_context&) {
        return http::json_response(
            status::ok,
            json::object{{"status", "ok"}, {"service", "shopd"}, {"role", role}, {"version", SHOPD_VERSION}});
      },
      execution::io);

  routes.add(
      verb::get, "/healthz",
      [](http::request_context&) {
        return http::json_response(status::ok, json::object{{"status", "ok"}});
      },
      execution::io);

  routes.add(
      verb::get, "/readyz",
      [&state](http::request_context&) {
        auto r = check_readiness(state);
        return http::json_response(
            r.ready ? status::ok : status::service_unavailable,
            json::object{{"status", r.ready ? "ready" : "not_ready"}, {"checks", std::move(r.checks)}});
      },
      execution::blocking);

  routes.add(
      verb::get, "/metrics",
      [&state](http::request_context&) {
        http::response res{status::ok, 11};
        res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
        res.body() = state.metrics.render();
        return res;
      },
      execution::io);
}

}  // namespace shopd::app
