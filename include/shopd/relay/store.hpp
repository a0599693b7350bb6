#pragma once
/// The relay's durable state: the SQL over relay_messages, relay_dlq and relay_dedup (SQLite and
/// PostgreSQL), and nothing else. Every call blocks on the database: run it on the worker pool,
/// never on an I/O thread. Thread-safe: each call leases its own session. Errors: db::transient_error
/// for faults that may pass (busy, connection lost), other exceptions (soci::soci_error,
/// relay_exception for a row that cannot be read back) for the rest.
///
/// Message lifecycle: CREATED → ACTIVE (leased by one node for one attempt) → DELIVERED, RETRY (due
/// again at not_before) or FAILED (with a DLQ entry); CANCELLED on request. A lease names its node
/// (`lease_owner`) and ends at `lease_until_ms`: an ACTIVE message whose lease ran out (its node
/// died) is claimed again by any node. Only the node holding a message's lease records its outcome.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shopd/relay/delivery.hpp"
#include "shopd/relay/ids.hpp"
#include "shopd/relay/message_spec.hpp"
#include "shopd/relay/responses.hpp"

namespace soci {
class session;
}
namespace shopd::db {
class database;
}

namespace shopd::relay {

enum class message_state { created, active, retry, delivered, failed, cancelled };

/// "CREATED", "ACTIVE", ... (the stored spelling).
[[nodiscard]] std::string_view to_string(message_state s) noexcept;
[[nodiscard]] std::optional<message_state> message_state_from_string(std::string_view s) noexcept;

/// A row of relay_messages.
struct stored_message {
  std::string message_id{};
  message_spec spec{};
  message_state state = message_state::created;
  std::int64_t retried = 0;  ///< attempts made so far that failed (Upstash-Retried of the next one)
  std::optional<std::string> lease_owner{};
  std::optional<std::int64_t> lease_until_ms{};
  std::optional<int> last_status{};
  std::optional<std::string> last_error{};
  std::int64_t updated_at_ms = 0;
};

/// A publish as stored: the message's id, or the id of the live message it duplicates.
struct accepted_message {
  std::string message_id{};
  bool deduplicated = false;
};

/// One attempt's result, as recorded with its outcome.
struct attempt_record {
  attempt_response response{};  ///< status 0 when there was no HTTP answer; body already cut
  std::string error{};          ///< what went wrong, for logs and last_error; empty on success
};

/// One finished attempt's outcome, for relay_store::record_outcomes.
struct attempt_outcome {
  std::string message_id{};
  attempt_verdict verdict = attempt_verdict::delivered;
  attempt_record attempt{};
  std::int64_t next_attempt_ms = 0;  ///< retry: when the next attempt is due
  std::int64_t now_ms = 0;           ///< when the attempt finished (updated_at_ms, the DLQ entry's time)
  /// Delivered and failed: the callback messages to insert with the outcome, given the new DLQ id of
  /// a failed one (nullopt for a delivered one). Runs inside the transaction, maybe more than once
  /// when the transaction is retried: pure computation only. Empty: none.
  std::function<std::vector<message_spec>(std::optional<std::string_view> dlq_id)> follow_ups{};
};

/// What record_outcomes did with one outcome.
struct recorded_outcome {
  bool held = false;                    ///< false: the lease was lost and nothing changed
  std::optional<std::string> dlq_id{};  ///< failed and held: the new DLQ entry's id
};

/// What a claim picked.
struct claim_result {
  std::vector<stored_message> messages{};  ///< now ACTIVE and leased to this node
  /// Due messages may have been left behind (a candidate query filled its limit, candidates were
  /// cut to the free slots or did not fit their origin's, or the claim visited its maximum of
  /// origins): claim again at once if slots are free.
  bool more_due = false;
  /// The origins with due messages this claim left behind (among them the saturated origins that
  /// have any), sorted. A message the claim did not see (stored after its read) is not counted.
  std::vector<std::string> waiting_origins{};
  /// Due messages no origin names may have been left behind: stored without an origin, an expired
  /// lease, or at an origin past the claim's maximum.
  bool other_due = false;
  /// The earliest not_before_ms of a CREATED/RETRY message that is not due yet and was scheduled
  /// (a delay, a not-before time, a retry); one published without (due when created, stored after
  /// the claim's `now`) is due already and does not count.
  std::optional<std::int64_t> next_due_ms{};
};

/// Filters and paging of DLQ listings and bulk operations (reference §5). Empty members do not
/// filter. Entries are ordered by failure time (then id); the cursor is the last entry's id.
struct dlq_query {
  std::vector<std::string> dlq_ids{};
  std::optional<std::string> message_id{};
  std::optional<std::string> url{};
  std::optional<int> response_status{};
  std::optional<std::string> caller_ip{};
  std::optional<std::int64_t> from_ms{};  ///< failed at or after (inclusive)
  std::optional<std::int64_t> to_ms{};    ///< failed at or before (inclusive)
  bool latest_first = false;              ///< order; default earliest first
  std::optional<std::string> cursor{};    ///< continue after this DLQ id
  std::size_t count = 100;                ///< page size, 1..100
};

/// A DLQ entry with its failed message.
struct dlq_item {
  dlq_entry entry{};
  stored_message message{};
};

struct dlq_page {
  std::vector<dlq_item> items{};
  std::optional<std::string> cursor{};  ///< set when more entries may follow
};

/// Which messages a bulk cancel selects.
struct cancel_query {
  std::vector<std::string> message_ids{};  ///< empty: every pending message (filtered below)
  std::optional<std::string> url{};
  std::optional<std::int64_t> from_ms{};  ///< created at or after
  std::optional<std::int64_t> to_ms{};    ///< created at or before
};

/// Pending work and DLQ size, for the gauges.
struct relay_counts {
  std::int64_t created = 0;
  std::int64_t active = 0;
  std::int64_t retry = 0;
  std::int64_t dlq = 0;
};

/// The slots of the node a claim is for, which others take from while it reads (the engine's
/// fast path): just before each lease is written, `take` takes the message's slot for real
/// (false: the message is left due, its origin reported waiting); `give_back` returns one whose
/// lease was not written after all, or, when the claim throws, every one it took. Both empty:
/// only the caller's copy of the slots counts.
struct claim_slots {
  std::function<bool(std::string_view origin)> take{};
  std::function<void(std::string_view origin)> give_back{};
};

class relay_store {
 public:
  /// `node_id` names this relay instance in leases; it must differ between instances sharing one
  /// database and stay the same across restarts of one instance (release_leases relies on it).
  relay_store(db::database& db, std::string node_id);

  [[nodiscard]] const std::string& node_id() const noexcept { return node_id_; }

  // -- publishing --------------------------------------------------------------------------------

  /// Store one message, in one transaction: when it has a dedup id and a live relay_dedup row
  /// holds that id, nothing is stored and the existing message id comes back `deduplicated`;
  /// otherwise the dedup row is (re)written to expire at now + `dedup_window_ms` and the message
  /// is inserted as CREATED with a new id. Safe against concurrent publishes of one dedup id on
  /// both databases (one wins, the others see its row). With `lease_until_ms` the new message is
  /// stored ACTIVE instead, leased to this node until then: the engine's fast path, which delivers
  /// it without a claim (a duplicate takes no lease).
  accepted_message insert(const message_spec& m, std::int64_t now_ms, std::int64_t dedup_window_ms,
                          std::optional<std::int64_t> lease_until_ms = std::nullopt);
  /// Store a message known to be new inside `tx`, the caller's open transaction on this store's
  /// database (an event handler's, bus::local_relay): it is stored if and only if that transaction
  /// commits, as CREATED, or ACTIVE under `lease_until_ms` as insert() does; returns its id. Its
  /// dedup id is kept on the message (as insert() keeps it) but neither looked up nor written in
  /// relay_dedup: an event staged by the transaction that creates it has a fresh eventId (its dedup
  /// id), and its outbox row is written sent in that transaction, so no publish of it comes before
  /// or after. That saves a checkout's seven staged events three B-tree inserts each now and as
  /// many deletes when their window ends.
  std::string insert_new_in(soci::session& tx, const message_spec& m, std::int64_t now_ms,
                            std::optional<std::int64_t> lease_until_ms);
  /// The same for several messages in one transaction (a /v2/batch): all are stored or none.
  /// `lease_until_ms` is empty (no leases) or holds one entry per message.
  std::vector<accepted_message> insert_all(std::span<const message_spec> ms, std::int64_t now_ms,
                                           std::int64_t dedup_window_ms,
                                           std::span<const std::optional<std::int64_t>> lease_until_ms = {});

  // -- delivery ----------------------------------------------------------------------------------

  /// Origins a claim visits at most; more are served in turn by successive claims.
  static constexpr std::size_t max_origins_per_claim = 256;

  /// A claim looks for expired leases only if none of this store's claims did in the last this many
  /// milliseconds (of the `now_ms` they were given): a lease runs out only when its node died or
  /// lost an attempt's outcome, and the lookup is not free on PostgreSQL (see claim()).
  static constexpr std::int64_t expired_lease_check_ms = 1'000;

  /// Lease due work to this node: candidates are `(CREATED or RETRY) and not_before_ms <= now` or
  /// `ACTIVE and lease_until_ms < now` (see expired_lease_check_ms), oldest not_before first, at
  /// most `slots.free()` of them, skipping the origins `slots` has saturated; each candidate that
  /// still fits its origin takes a slot in `slots` and becomes ACTIVE, leased to this node until
  /// now + its timeout (`default_timeout_ms` when it has none) + `lease_margin_ms`, with its origin
  /// stored. `slots` is the caller's copy: on return it counts the picks; `owner` takes them from
  /// the node's real slots as well (see claim_slots). On PostgreSQL this is one transaction, with
  /// FOR UPDATE SKIP LOCKED, so concurrent claimers get disjoint sets. On SQLite the choice is read
  /// on a pooled connection, outside the write transaction, which then takes each lease only if the
  /// message is still claimable (not cancelled, not recorded meanwhile); one that is not is left
  /// out, its slot given back and `more_due` set.
  ///
  /// Cost: O(origins × log n) plus the rows picked, not the backlog: due messages are read per
  /// origin with pending work (at most `max_origins_per_claim` origins per claim, resuming after
  /// the last one the previous claim of this store visited), each origin's oldest first and no
  /// more than its free slots; of a saturated origin's messages one due id at most is read, to
  /// report the origin in `waiting_origins`. Messages stored
  /// without an origin (by an older relay) and expired leases are found by destination instead,
  /// which reads the saturated origins' ones among them.
  ///
  /// A picked row this relay cannot read (a stored value edited by hand, damaged, or written by
  /// another version) is left out of the claim, logged at error level and put off by
  /// `unreadable_retry_ms` (its due time, or its expired lease), changed in nothing else: it no
  /// longer fails every claim after it, and once it is readable again it is delivered.
  claim_result claim(std::int64_t now_ms, delivery_slots& slots, std::int64_t lease_margin_ms,
                     std::int64_t default_timeout_ms, const claim_slots& owner = {});
  static constexpr std::int64_t unreadable_retry_ms = 60'000;

  /// Outcomes. Each applies only while this node holds the message's lease (ACTIVE, lease_owner =
  /// this node) and otherwise changes nothing (the message was cancelled, or its lease expired and
  /// another node took it). Per outcome: delivered → DELIVERED; retry → RETRY, retried + 1, due at
  /// `next_attempt_ms`; failed → FAILED plus a relay_dlq row with a new DLQ id. Its follow-ups
  /// (callback messages) are inserted with it. All of `outcomes` are recorded in one transaction,
  /// in order, each distinct statement prepared once: one result per outcome, in the same order.
  /// On any error nothing is recorded (a message's outcome that the database refuses fails the
  /// whole batch: record the others again without it).
  std::vector<recorded_outcome> record_outcomes(std::span<const attempt_outcome> outcomes);

  /// The same for one outcome: true when the lease was held. `follow_ups` are inserted with it.
  bool record_delivered(std::string_view message_id, const attempt_record& attempt,
                        std::span<const message_spec> follow_ups, std::int64_t now_ms);
  /// RETRY: retried + 1, due at `next_attempt_ms`.
  bool record_retry(std::string_view message_id, const attempt_record& attempt, std::int64_t next_attempt_ms,
                    std::int64_t now_ms);
  /// FAILED plus a relay_dlq row with a new DLQ id; `follow_ups(dlq_id)` builds the callback and
  /// failure-callback messages (it runs inside the transaction: pure computation only). Returns
  /// the DLQ id, or nullopt when the lease was lost.
  std::optional<std::string> record_failed(
      std::string_view message_id, const attempt_record& attempt,
      const std::function<std::vector<message_spec>(std::string_view dlq_id)>& follow_ups,
      std::int64_t now_ms);

  /// Hand back this node's leases: every message ACTIVE under this node (all of them, or only
  /// `message_ids`) becomes RETRY, due at `now_ms`, retried unchanged. At start-up this re-sends at
  /// once what a killed predecessor had in flight. Returns how many were released.
  std::size_t release_leases(std::int64_t now_ms);
  std::size_t release_leases(std::span<const std::string> message_ids, std::int64_t now_ms);

  // -- messages API ------------------------------------------------------------------------------

  /// The message, in any state; nullopt when unknown.
  [[nodiscard]] std::optional<stored_message> get(std::string_view message_id);

  enum class cancel_outcome { cancelled, not_found, finished };
  /// CREATED/RETRY/ACTIVE → CANCELLED (an attempt in flight may still reach the destination; its
  /// outcome is then not recorded).
  cancel_outcome cancel(std::string_view message_id, std::int64_t now_ms);
  /// Cancel every pending message `q` selects; returns how many.
  std::size_t cancel_many(const cancel_query& q, std::int64_t now_ms);

  // -- DLQ API -----------------------------------------------------------------------------------

  [[nodiscard]] dlq_page dlq_list(const dlq_query& q);
  [[nodiscard]] std::optional<dlq_item> dlq_get(std::string_view dlq_id);
  /// Remove the entry (and its failed message); false when unknown.
  bool dlq_delete(std::string_view dlq_id);
  /// Remove one page of what `q` selects; returns how many and the cursor of the next page.
  std::pair<std::size_t, std::optional<std::string>> dlq_delete_many(const dlq_query& q);
  /// Re-publish the entry's message with its settings under a new id (CREATED, due now, retried 0,
  /// no dedup id) and remove the entry, in one transaction. nullopt when the entry is unknown.
  std::optional<std::string> dlq_retry(std::string_view dlq_id, std::int64_t now_ms);
  /// The same for one page of what `q` selects: the new ids, and the cursor of the next page.
  std::pair<std::vector<std::string>, std::optional<std::string>> dlq_retry_many(const dlq_query& q,
                                                                                 std::int64_t now_ms);

  // -- housekeeping ------------------------------------------------------------------------------

  [[nodiscard]] relay_counts counts();
  /// Delete expired dedup rows, and DELIVERED/CANCELLED messages (and FAILED ones no longer in the
  /// DLQ) last changed before `now_ms - retention_ms`, `batch` per transaction, at most
  /// `max_batches` transactions of each (a backlog of expired messages, after an upgrade or a long
  /// retention cut, is spread over calls instead of stalling the caller, e.g. a shutdown).
  struct purge_result {
    std::size_t messages = 0;   ///< messages deleted
    std::size_t dedup_ids = 0;  ///< expired deduplication ids deleted
    bool more = false;          ///< either stopped at max_batches: more may have expired
  };
  purge_result purge(std::int64_t now_ms, std::int64_t retention_ms, std::size_t batch = purge_batch,
                     std::size_t max_batches = purge_max_batches);
  static constexpr std::size_t purge_batch = 1'000;
  static constexpr std::size_t purge_max_batches = 100;

 private:
  // Puts off the rows a claim could not read (see claim()) and logs each. A database error is
  // logged, not thrown: the claim's leases are taken by then, and the next claim meets the rows again.
  void put_off_unreadable(std::span<const std::pair<std::string, std::string>> rows,
                          std::int64_t now_ms) noexcept;

  db::database& db_;
  std::string node_id_;
  dlq_id_generator dlq_ids_;
  std::mutex cursor_mutex_;
  std::string origin_cursor_;  ///< the last origin a claim visited when it hit its maximum, or empty
  std::atomic<std::int64_t> next_expired_check_ms_{0};  ///< the first `now_ms` to look for expired leases at
};

}  // namespace shopd::relay
