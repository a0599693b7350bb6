#include "shopd/relay/relay_role.hpp"

#include "shopd/config/config.hpp"
#include "shopd/http/client.hpp"
#include "shopd/http/server.hpp"
#include "shopd/obs/log.hpp"
#include "shopd/relay/api.hpp"
#include "shopd/relay/engine.hpp"
#include "shopd/relay/relay_metrics.hpp"
#include "shopd/relay/store.hpp"

#include <boost/asio/io_context.hpp>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>

namespace shopd::relay {

namespace {

// Messages may be scheduled up to a year ahead (QStash's pay-as-you-go limit).
constexpr std::int64_t max_delay_ms = 365 * one_day_ms;

class relay_role final : public app::role {
 public:
  explicit relay_role(app::role_context& ctx) : metrics_(ctx.metrics) {
    const auto& s = ctx.settings;
    if (s.qstash_token.empty()) {
      throw config::config_error("role relay serves the QStash API: set QSTASH_TOKEN (its bearer token)");
    }
    if (s.qstash_current_signing_key.empty()) {
      throw config::config_error("role relay signs deliveries: set QSTASH_CURRENT_SIGNING_KEY");
    }
    if (s.relay_default_retries > s.relay_max_retries) {
      throw config::config_error("RELAY_DEFAULT_RETRIES (" + std::to_string(s.relay_default_retries) +
                                 ") must not exceed RELAY_MAX_RETRIES (" +
                                 std::to_string(s.relay_max_retries) + ")");
    }

    message_limits limits;
    limits.default_retries = s.relay_default_retries;
    limits.max_retries = s.relay_max_retries;
    limits.default_timeout_ms = s.relay_delivery_timeout_ms;
    limits.max_timeout_ms = s.relay_delivery_timeout_ms;
    limits.max_delay_ms = max_delay_ms;

    store_ = std::make_shared<relay_store>(ctx.db, node_id_from(s));

    http::client_options client_opts;
    client_opts.max_idle_per_origin = static_cast<std::size_t>(s.relay_per_destination_concurrency);
    client_opts.user_agent = "Upstash-QStash";
    client_opts.in_process = ctx.in_process;  // deliveries to the roles of this process
    const http::client client(ctx.server.io_context(), client_opts);

    engine_options eo;
    eo.concurrency = static_cast<std::size_t>(s.relay_concurrency);
    eo.per_destination_concurrency = static_cast<std::size_t>(s.relay_per_destination_concurrency);
    eo.poll_interval = std::chrono::milliseconds(s.relay_poll_interval_ms);
    // The gauges follow the poll rate (a fast-polling test relay reports promptly), within bounds
    // that keep their COUNT queries cheap.
    eo.metrics_interval =
        std::clamp(eo.poll_interval * 25, std::chrono::milliseconds(1'000), std::chrono::milliseconds(5'000));
    eo.default_timeout = std::chrono::milliseconds(s.relay_delivery_timeout_ms);
    eo.shutdown_timeout = std::chrono::milliseconds(s.shutdown_timeout_ms);
    eo.retention = std::chrono::seconds(s.relay_retention_s);
    eo.backoff_scale = static_cast<double>(s.relay_backoff_scale) / 1000.0;
    eo.signing_key = s.qstash_current_signing_key;
    eo.limits = limits;
    engine_ = std::make_shared<engine>(std::move(eo), store_, client, ctx.server.io_context(),
                                       ctx.server.workers(), metrics_);

    api_options ao;
    ao.token = s.qstash_token;
    ao.keys = {s.qstash_current_signing_key, s.qstash_next_signing_key};
    ao.limits = limits;
    ao.dedup_window_ms = s.relay_dedup_window_s * 1000;
    auto local = add_api_routes(ctx.routes, store_, std::move(ao), engine_, metrics_);
    if (ctx.local_relay != nullptr) {
      ctx.local_relay->offer(std::move(local.batch));
      ctx.local_relay->offer_stage(std::move(local.stage), ctx.db);
    }
    obs::info("relay configured", {{"node", store_->node_id()},
                                   {"concurrency", s.relay_concurrency},
                                   {"per_destination_concurrency", s.relay_per_destination_concurrency}});
  }

  void start() override { engine_->start(); }
  void stop() override { engine_->stop(); }

 private:
  relay_metrics metrics_;
  std::shared_ptr<relay_store> store_;
  std::shared_ptr<engine> engine_;
};

}  // namespace

std::unique_ptr<app::role> make_relay_role(app::role_context& ctx) {
  return std::make_unique<relay_role>(ctx);
}

std::string node_id_from(const config::settings& s) {
  if (!s.relay_node_id.empty()) return s.relay_node_id;
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0 || host[0] == '\0')
    host = {'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't'};
  const std::string name(host.data());
  if (s.relay_port == 0) return name + ":pid" + std::to_string(::getpid());
  return name + ":" + std::to_string(s.relay_port);
}

}  // namespace shopd::relay
