#pragma once
/// A relay role inside the test process: a real shopd::http::server on a free port, a fresh
/// database (SQLite or PostgreSQL), and back-off and polling fast enough for tests. Requests go
/// through a real HTTP client with the relay's token.

#include "fresh_database.hpp"
#include "test_support.hpp"

#include "shopd/app/role.hpp"
#include "shopd/bus/dispatch.hpp"
#include "shopd/config/config.hpp"
#include "shopd/http/server.hpp"
#include "shopd/obs/metrics.hpp"
#include "shopd/relay/relay_role.hpp"

#include <boost/json.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace shopd::test {

namespace json = boost::json;
using shopd::db::dialect;
using shopd::http::verb;

inline constexpr std::string_view token = "relay-test-token";
inline constexpr std::string_view current_key = "sig_relay_test_current";
inline constexpr std::string_view next_key = "sig_relay_test_next";

/// A relay role in this process: a real server on a free port, a fresh database, fast back-off.
class relay_fixture {
 public:
  /// `busy_timeout`: how long the relay's database calls wait for a locked SQLite file.
  explicit relay_fixture(dialect d = dialect::sqlite, std::map<std::string, std::string> extra = {},
                         std::chrono::milliseconds busy_timeout = db::database_options{}.busy_timeout)
      : fdb_(d, 8, busy_timeout) {
    shopd::config::sources src;
    src.environment = {{"DATABASE_URL", fdb_.url()},
                       {"QSTASH_TOKEN", std::string(token)},
                       {"QSTASH_CURRENT_SIGNING_KEY", std::string(current_key)},
                       {"QSTASH_NEXT_SIGNING_KEY", std::string(next_key)},
                       {"RELAY_NODE_ID", "test-node"},
                       {"RELAY_BACKOFF_SCALE", "1"},
                       {"RELAY_POLL_INTERVAL_MS", "50"},
                       {"RELAY_DELIVERY_TIMEOUT_MS", "20000"},
                       {"SHUTDOWN_TIMEOUT_MS", "3000"}};
    for (auto& [k, v] : extra) src.environment[k] = v;
    settings_ = shopd::config::load(src);
    destinations_ = std::make_unique<shopd::bus::destinations>(settings_);
    server_ = std::make_unique<shopd::http::server>(shopd::test::test_options(), metrics_);
    shopd::app::role_context ctx{"relay",  settings_, fdb_.db(),      *routes_, *server_,
                                 metrics_, events_,   *destinations_, [] {},    nullptr};
    role_ = shopd::relay::make_relay_role(ctx);
    port_ =
        server_->listen({.name = "relay", .address = "127.0.0.1", .port = 0, .routes = routes_, .cors = {}});
    server_->start();
    role_->start();
  }

  ~relay_fixture() {
    role_->stop();
    server_->stop();
  }

  relay_fixture(const relay_fixture&) = delete;
  relay_fixture& operator=(const relay_fixture&) = delete;

  /// A request to the relay with the bearer token (unless `auth` is false).
  shopd::http::response call(verb method, std::string target, std::string body = {},
                             std::vector<std::pair<std::string, std::string>> headers = {},
                             bool auth = true) {
    if (auth) headers.emplace_back("Authorization", "Bearer " + std::string(token));
    shopd::test::http_client client(port_);
    return client.request(method, std::move(target), std::move(body), std::move(headers));
  }

  /// POST /v2/publish/<destination>; returns the answer's JSON object (and checks it is 2xx).
  json::object publish(const std::string& destination, std::string body,
                       std::vector<std::pair<std::string, std::string>> headers = {}, unsigned expect = 201) {
    const auto res = call(verb::post, "/v2/publish/" + destination, std::move(body), std::move(headers));
    REQUIRE_MESSAGE(res.result_int() == expect, res.body());
    return json::parse(res.body()).as_object();
  }

  json::value get_json(const std::string& target) {
    const auto res = call(verb::get, target);
    REQUIRE_MESSAGE(res.result_int() == 200, res.body());
    return json::parse(res.body());
  }

  [[nodiscard]] shopd::obs::registry& metrics() { return metrics_; }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] shopd::db::database& db() { return fdb_.db(); }
  [[nodiscard]] const std::string& database_url() const { return fdb_.url(); }

 private:
  shopd::test::fresh_database fdb_;
  shopd::config::settings settings_;
  shopd::obs::registry metrics_;
  std::unique_ptr<shopd::bus::destinations> destinations_;
  std::unique_ptr<shopd::http::server> server_;
  std::shared_ptr<shopd::http::router> routes_ = std::make_shared<shopd::http::router>();
  shopd::bus::event_router events_;
  std::unique_ptr<shopd::app::role> role_;
  std::uint16_t port_ = 0;
};

}  // namespace shopd::test
