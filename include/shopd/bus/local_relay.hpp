#pragma once
/// The way from a role's outbox to the relay when both run in one process (`--role=all`, or any
/// set of roles with the relay) and QSTASH_URL names that relay's own listener. An event handler's
/// transaction stores the events it emits in the relay's queue itself (local_stage_fn), next to
/// their outbox rows, which it writes already sent: one transaction instead of three (outbox row,
/// relay row, row marked sent), and no dispatcher in between. Events the relay would refuse, and
/// those of transactions outside event handlers (the roles' APIs), go through the outbox
/// dispatcher, which hands its batches to the relay's `/v2/batch` logic directly, in the same
/// validation, storage and fast path as over HTTP, without the loopback request. Deliveries are
/// signed requests, as between processes; to a role of this process they are answered in memory
/// (http::client_options::in_process). With Upstash or a relay elsewhere nothing changes:
/// the outbox's batches go over HTTP.
///
/// Lifetime and threading: serve() owns one; the relay role offers its function while roles are
/// built, serve() enables it once the relay listens on the port QSTASH_URL names, and both happen
/// before any dispatcher starts, so the dispatchers' reads need no lock.

#include "shopd/bus/publisher.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace soci {
class session;
}
namespace shopd::db {
class database;
}

namespace shopd::bus {

/// Publishes a batch as the relay's `/v2/batch` route would, and answers what parsing that route's
/// answer gives (parse_batch_response). Blocks on the database; may throw (as a route would fail).
using local_batch_fn = std::function<batch_result(std::span<const batch_entry> entries)>;

/// An event stored in the relay's queue inside the transaction that emits it (local_stage_fn).
struct staged_event {
  std::string message_id;  ///< the relay's id of the new message
  /// Run once the transaction has committed: hands the message to the delivery engine. Dropped
  /// without running (the transaction failed), it gives back what it held (a delivery slot).
  std::function<void()> after_commit;
};

/// Stores `entry` in the relay's queue inside `tx`, the caller's open transaction on the relay's
/// own database, validated and stored as `/v2/batch` would store it, but as a new message, without
/// deduplication (the transaction creates the event it stages): the message exists if and only if
/// the transaction commits. nullopt: the relay would refuse it; it is left to the dispatcher, which
/// reports why. Blocks on the database; throws what the database throws.
using local_stage_fn =
    std::function<std::optional<staged_event>(soci::session& tx, const batch_entry& entry)>;

class local_relay {
 public:
  /// The relay role's batch function (before the dispatchers start).
  void offer(local_batch_fn fn) { fn_ = std::move(fn); }
  /// The relay role's stage function, for handlers whose transactions run on `db`, the relay's
  /// database (before the roles serve).
  void offer_stage(local_stage_fn fn, const db::database& db) {
    stage_ = std::move(fn);
    stage_db_ = &db;
  }
  /// Use it: QSTASH_URL names the relay of this process (before the dispatchers start).
  void enable() noexcept { enabled_ = static_cast<bool>(fn_); }
  /// The function to publish with, or nullptr: publish over HTTP.
  [[nodiscard]] const local_batch_fn* get() const noexcept { return enabled_ ? &fn_ : nullptr; }
  /// The function that stores events in the relay's queue inside a transaction on `db`, or nullptr
  /// (not enabled, or the relay keeps its queue in another database): the outbox dispatcher sends them.
  [[nodiscard]] const local_stage_fn* stage_for(const db::database& db) const noexcept {
    return enabled_ && stage_ && stage_db_ == &db ? &stage_ : nullptr;
  }

 private:
  local_batch_fn fn_;
  local_stage_fn stage_;
  const db::database* stage_db_ = nullptr;
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
