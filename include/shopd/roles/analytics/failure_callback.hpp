#pragma once
/// The failure callback of the relay or Upstash QStash (reference/qstash-protocol.md §4) turned into
/// the `analytics.dlq` event it stands for: the report of a delivery that exhausted its retries.
///
/// Everything here is pure and thread-safe.

#include "shopd/bus/envelope.hpp"
#include "shopd/bus/events.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace shopd::roles::analytics {

/// The correlation id of a dead letter whose original body is not a shopd envelope.
inline constexpr std::string_view uncorrelated = "uncorrelated";

/// The source stamped on the envelopes made from failure callbacks.
inline constexpr std::string_view failure_callback_source = "relay";

/// Bounds for parsing a callback body: its base64 fields carry a whole message and a whole
/// response, so strings may be far longer than in an envelope. The HTTP body limit comes first.
/// Above callback_body_limit of the largest HTTP_BODY_LIMIT allowed (64 MiB: ~86 MiB), so it never
/// cuts a report short.
inline constexpr std::size_t max_callback_bytes = 96 * 1024 * 1024;

/// The request body limit of `POST /api/dlq/callback` when messages are at most
/// `message_body_limit` bytes (HTTP_BODY_LIMIT): a failure callback carries the message's body and
/// the last response's (the relay keeps 64 KiB of it), each in base64, plus the message's headers
/// and the other fields, so a dead letter of the largest message is still reported. At most
/// max_callback_bytes. Pure.
[[nodiscard]] std::size_t callback_body_limit(std::size_t message_body_limit) noexcept;

/// One failure callback, ready to be handled as an `analytics.dlq` event.
struct failure_report {
  /// `sourceMessageId`; `url` as `destination`; `status` as `lastStatus` (none for 0, i.e. no HTTP
  /// answer, or anything outside 100..599); the decoded `body` as `lastResponse`; `retried` + 1 as
  /// `attempts`; the decoded `sourceBody` as `body`; `dlqId`. Decoded bytes are stored as text
  /// (to_stored_text), at most bus::max_text_bytes each.
  bus::dead_letter letter;
  /// Deterministic, so a callback posted twice is one event: `dlq_<dlqId>`, or
  /// `dlqmsg_<sourceMessageId>` when the callback carries no dlqId; an id that would exceed
  /// bus::default_max_id_bytes becomes `dlq_h_<base64url(SHA-256(...))>` of the same text.
  std::string event_id;
  /// The original body's correlationId when that body is a valid envelope, else `uncorrelated`.
  std::string correlation_id;
  /// The original body's eventId when that body is a valid envelope (the event that died).
  std::optional<std::string> causation_id;

  friend bool operator==(const failure_report&, const failure_report&) = default;
};

/// Decode a failure-callback body. It must be one JSON object (parsed strictly, bus::parse_json,
/// within max_callback_bytes) with
///   - `sourceMessageId`: an id (bus::is_valid_id);
///   - `url`: the destination, single-line text of 1..2048 characters;
///   - optional `status` (integer), `retried` (integer >= 0; above 999'999 counts as 999'999),
///     `dlqId` (an id), and `body` / `sourceBody` (base64, standard or URL alphabet, padding
///     optional); absent and `null` are the same.
/// Other fields (`header`, `maxRetries`, `method`, `sourceHeader`, `createdAt`, ...) are ignored.
/// Errors name the callback's field (`sourceMessageId`, `sourceBody`, ...), or nothing when the
/// body is not a JSON object.
[[nodiscard]] bus::result<failure_report> parse_failure_callback(std::string_view body);

/// The `analytics.dlq` envelope of a report, stamped `now`, with source failure_callback_source.
/// It passes bus::parse_envelope.
[[nodiscard]] bus::envelope to_envelope(const failure_report& report, bus::timestamp now);

/// Bytes as storable text: valid UTF-8 (each invalid byte becomes U+FFFD), without NUL (U+FFFD as
/// well: PostgreSQL text cannot hold it), cut to at most `max_bytes` on a code point boundary.
[[nodiscard]] std::string to_stored_text(std::string_view bytes, std::size_t max_bytes = bus::max_text_bytes);

/// Decode base64 leniently, as senders differ: the standard or the URL alphabet, `=` padding
/// optional. nullopt for any other character, misplaced padding or an impossible length.
[[nodiscard]] std::optional<std::string> decode_base64(std::string_view text);

}  // namespace shopd::roles::analytics
