#pragma once
/// The way from a role's outbox to the relay when both run in one process (`--role=all`, or any
/// set of roles with the relay) and QSTASH_URL names that relay's own listener: the dispatchers
/// then hand their batches to the relay's `/v2/batch` logic directly, in the same validation,
/// storage and fast path as over HTTP, without the loopback request, its parsing and its thread
/// hops. Deliveries still go over HTTP, signed, as between processes. With Upstash or a relay
/// elsewhere nothing changes: the batches go over HTTP.
///
/// Lifetime and threading: serve() owns one; the relay role offers its function while roles are
/// built, serve() enables it once the relay listens on the port QSTASH_URL names, and both happen
/// before any dispatcher starts, so the dispatchers' reads need no lock.

#include "shopd/bus/publisher.hpp"

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

namespace shopd::bus {

/// Publishes a batch as the relay's `/v2/batch` route would, and answers what parsing that route's
/// answer gives (parse_batch_response). Blocks on the database; may throw (as a route would fail).
using local_batch_fn = std::function<batch_result(std::span<const batch_entry> entries)>;

class local_relay {
 public:
  /// The relay role's batch function (before the dispatchers start).
  void offer(local_batch_fn fn) { fn_ = std::move(fn); }
  /// Use it: QSTASH_URL names the relay of this process (before the dispatchers start).
  void enable() noexcept { enabled_ = static_cast<bool>(fn_); }
  /// The function to publish with, or nullptr: publish over HTTP.
  [[nodiscard]] const local_batch_fn* get() const noexcept { return enabled_ ? &fn_ : nullptr; }

 private:
  local_batch_fn fn_;
  bool enabled_ = false;
};

/// Whether `url` (QSTASH_URL) names the plain-HTTP listener of this process on `port`, bound to
/// `bind_address` (HTTP_BIND): scheme `http`, that port (written out, or 80 by default), no path
/// but `/`, no query, and a host that reaches the listener: the bind address itself, or a
/// loopback name (`localhost`, `127.0.0.1`, `[::1]`) when the listener is bound to loopback or to
/// every interface (`0.0.0.0`, `::`). Pure.
[[nodiscard]] bool names_local_listener(std::string_view url, std::string_view bind_address,
                                        std::uint16_t port) noexcept;

}  // namespace shopd::bus
