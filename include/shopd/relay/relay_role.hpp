#pragma once
/// The `relay` role: shopd's embedded QStash. It serves the QStash REST API (api.hpp) on its
/// listener and runs the delivery engine (engine.hpp) on the shared server's threads, with its
/// messages in the shared database.
///
/// Start-up fails with config::config_error when QSTASH_TOKEN (the API's bearer token) or
/// QSTASH_CURRENT_SIGNING_KEY (which signs deliveries) is empty, or RELAY_DEFAULT_RETRIES exceeds
/// RELAY_MAX_RETRIES.

#include "shopd/app/role.hpp"

#include <memory>
#include <string>

namespace shopd::relay {

/// The role table's factory for "relay".
[[nodiscard]] std::unique_ptr<app::role> make_relay_role(app::role_context& ctx);

/// RELAY_NODE_ID, or when empty `<hostname>:<RELAY_PORT>` (`<hostname>:pid<N>` when the port is 0,
/// i.e. picked at random, so that two such processes on one host never share a name).
[[nodiscard]] std::string node_id_from(const config::settings& s);

}  // namespace shopd::relay
