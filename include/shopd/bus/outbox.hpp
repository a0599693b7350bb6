#pragma once
/// The transactional outbox and the inbox: the two tables that turn at-least-once delivery into
/// exactly-once effects (DESIGN §3).
///
/// A handler calls `inbox::record_once` and `outbox::enqueue` with the session of the transaction
/// that applies its effects, so the event is marked handled, the effects land and the events it emits
/// are queued all together or not at all. The dispatcher later reads the outbox in id order and
/// marks rows sent. All functions block (SQL); call them from the worker pool.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace soci {
class session;
}
namespace shopd::db {
class database;
}

namespace shopd::bus {

/// An event to publish, as stored in the outbox.
struct outbox_event {
  std::string event_id;  ///< also the deduplication id given to the relay/QStash
  std::string event_type;
  std::string destination;     ///< the URL the relay delivers to (a role's /api/webhook)
  std::string body;            ///< the serialized envelope
  std::string headers = "{}";  ///< JSON object of extra headers to forward (e.g. traceparent)
};

/// A row not sent yet.
struct pending_event {
  std::int64_t id = 0;
  outbox_event event;
  int attempts = 0;
  std::int64_t created_at_ms = 0;
};

namespace outbox {

/// Queue `ev` inside the caller's transaction.
void enqueue(soci::session& tx, std::string_view producer, const outbox_event& ev, std::int64_t now_ms);

/// Record `ev` inside the caller's transaction as sent already, with the id the relay gave it: the
/// same transaction stored it in the queue of the relay of this process (local_relay.hpp).
void enqueue_sent(soci::session& tx, std::string_view producer, const outbox_event& ev, std::int64_t now_ms,
                  const std::string& message_id);

/// Up to `limit` unsent rows of `producer` that are due, oldest first.
[[nodiscard]] std::vector<pending_event> next_batch(db::database& db, std::string_view producer, int limit,
                                                    std::int64_t now_ms);

/// One row the relay or QStash accepted, with the message id it gave.
struct sent_row {
  std::int64_t id = 0;
  std::string message_id;
};

/// Record a batch of successful publishes in one transaction (one commit, rather than one per row).
void mark_sent(db::database& db, const std::vector<sent_row>& rows, std::int64_t now_ms);

/// One row the relay or QStash refused for good, and why.
struct refused_row {
  std::int64_t id = 0;
  std::string error;
};

/// Set refused rows aside in one transaction: they keep their event and their error (`last_error`,
/// cut to 1,000 bytes), and no batch offers them again until requeue().
void mark_refused(db::database& db, const std::vector<refused_row>& rows, std::int64_t now_ms);

struct stats {
  std::int64_t pending = 0;  ///< neither sent nor refused
  std::optional<std::int64_t> oldest_created_at_ms;
  std::int64_t refused = 0;  ///< set aside by mark_refused
};
[[nodiscard]] stats pending_stats(db::database& db, std::string_view producer);

/// A row set aside, as `shopd outbox list` shows it.
struct refused_event {
  std::int64_t id = 0;
  std::string producer;
  outbox_event event;
  int attempts = 0;
  std::int64_t created_at_ms = 0;
  std::int64_t refused_at_ms = 0;
  std::string error;
};

/// Up to `limit` refused rows with an id above `after_id`, in id order; of one producer, or of
/// every producer when `producer` is empty.
[[nodiscard]] std::vector<refused_event> list_refused(db::database& db, std::string_view producer,
                                                      std::int64_t after_id, int limit);

/// Offer refused rows again: those of `ids` (every refused row when `ids` is empty), of `producer`
/// only when it is not empty. They are due at once, in their original place in id order; a running
/// dispatcher finds them within its poll interval. Returns how many were refused and now are not.
std::int64_t requeue(db::database& db, std::string_view producer, const std::vector<std::int64_t>& ids,
                     std::int64_t now_ms);

}  // namespace outbox

namespace inbox {

/// Mark `event_id` handled by `consumer` inside the caller's transaction. Returns false when it was
/// already recorded (a redelivery): the caller then applies no effects.
[[nodiscard]] bool record_once(soci::session& tx, std::string_view consumer, std::string_view event_id,
                               std::string_view event_type, std::int64_t now_ms);

}  // namespace inbox

}  // namespace shopd::bus
