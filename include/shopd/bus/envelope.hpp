#pragma once
/// The event envelope of DESIGN §2: one JSON object around every event, with the hardened JSON parser
/// that reads it from untrusted bytes, its serializer, and the ULID event ids and millisecond UTC
/// timestamps producers stamp on it.
///
/// Everything here is pure (no I/O) and thread-safe: free functions share no state, except the
/// process-wide ULID generator behind make_envelope()/new_event_id(), which is internally locked.

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace shopd::bus {

/// Why a document or a field was refused.
struct validation_error {
  // A constructor, not an aggregate: otherwise C++20 makes validation_error constructible from a
  // lone std::string and boost::system::result<std::string, validation_error> ambiguous.
  validation_error() = default;
  validation_error(std::string field_path, std::string why)
      : field(std::move(field_path)), message(std::move(why)) {}

  /// The offending field as a JSON path: `eventId`, `data.items[1].quantity`, `data.customer`;
  /// empty when the document as a whole is at fault (empty body, not JSON, not an object, too big).
  std::string field;
  /// One sentence for the sender, never containing the offending value when it could be large.
  std::string message;

  friend bool operator==(const validation_error&, const validation_error&) = default;
};

/// What `result<T>::value()` throws when it holds a validation_error.
class validation_exception : public std::invalid_argument {
 public:
  explicit validation_exception(validation_error e);
  [[nodiscard]] const validation_error& error() const noexcept { return error_; }

 private:
  validation_error error_;
};

/// Found by boost::system::result through ADL; throws validation_exception.
[[noreturn]] void throw_exception_from_error(const validation_error& e, const boost::source_location& loc);

/// The outcome of every decoding function of the bus: a value or the first validation_error found.
template <class T>
using result = boost::system::result<T, validation_error>;

/// Instants on the wire: UTC, millisecond precision.
using timestamp = std::chrono::sys_time<std::chrono::milliseconds>;

/// The only envelope version this build reads and writes.
inline constexpr std::int64_t envelope_version = 1;

/// Default cap on ids (eventId, correlationId, causationId and the ids inside payloads), in bytes.
inline constexpr std::size_t default_max_id_bytes = 256;

/// One event. Field names follow the JSON keys (eventId -> event_id).
struct envelope {
  std::string event_id;    ///< unique; consumers deduplicate on it (a ULID when shopd made it)
  std::string event_type;  ///< e.g. "order.created" (see events.hpp, event_types)
  std::int64_t version = envelope_version;
  timestamp time{};            ///< JSON `timestamp`, written as 2026-11-23T10:00:00.000Z
  std::string source;          ///< producing role, or "cli"
  std::string correlation_id;  ///< the checkout that started the chain; carried through every hop
  std::optional<std::string> causation_id;  ///< eventId of the cause; absent on commands
  boost::json::object data;

  friend bool operator==(const envelope&, const envelope&) = default;
};

/// Bounds applied while parsing untrusted JSON. The defaults suit webhook bodies.
struct parse_limits {
  std::size_t max_body_bytes = 1024 * 1024;         ///< the raw document
  std::size_t max_depth = 32;                       ///< nesting of arrays and objects (the root is 1)
  std::size_t max_string_bytes = 64 * 1024;         ///< any string value, anywhere in the document
  std::size_t max_key_bytes = 256;                  ///< any object key
  std::size_t max_values = 100'000;                 ///< values of any kind in the whole document
  std::size_t max_id_bytes = default_max_id_bytes;  ///< eventId, correlationId, causationId
};

/// Parse untrusted bytes into a JSON value, strictly:
/// - RFC 8259 only: no comments, no trailing commas, no byte order mark, nothing after the value;
/// - strings must be valid UTF-8 (lone surrogate escapes included) — Boost.JSON's default;
/// - **duplicate keys are rejected** (the field names the second occurrence), so that no two parsers
///   can disagree on what a signed body says;
/// - numbers that do not fit a double (1e400) are rejected rather than turned into infinities;
/// - every bound of `limits` holds.
/// Errors name the path where parsing stopped (empty at the top level).
[[nodiscard]] result<boost::json::value> parse_json(std::string_view raw, const parse_limits& limits = {});

/// Parse and validate an envelope (parse_json, then the fields):
/// - the top level must be an object; unknown top-level fields are ignored (forward compatibility);
/// - `eventId`, `correlationId`, `causationId`: 1..limits.max_id_bytes of printable ASCII without
///   spaces (is_valid_id); `causationId` may be absent or null;
/// - `eventType`: dot-separated lowercase words (is_valid_event_type); any such type is accepted here,
///   the dispatcher decides whether it knows it;
/// - `version`: the integer 1 (1.0 and "1" are refused; other versions are unsupported);
/// - `timestamp`: RFC 3339 (parse_timestamp);
/// - `source`: 1..64 of [A-Za-z0-9._-];
/// - `data`: an object (its contents are checked by the payload decoders of events.hpp).
[[nodiscard]] result<envelope> parse_envelope(std::string_view raw, const parse_limits& limits = {});

/// The envelope as a JSON object, keys in the order of DESIGN §2 (causationId only when present).
[[nodiscard]] boost::json::object to_json(const envelope& e);

/// Compact JSON text of to_json(e): what goes on the wire.
[[nodiscard]] std::string serialize(const envelope& e);

/// A new envelope stamped now with a fresh ULID from the process-wide generator. Throws
/// std::invalid_argument if `event_type`, `source`, `correlation_id` or `causation_id` would not pass
/// parse_envelope with default limits: shopd never emits an event its own consumers refuse.
[[nodiscard]] envelope make_envelope(std::string_view event_type, std::string_view source,
                                     boost::json::object data, std::string_view correlation_id,
                                     std::optional<std::string_view> causation_id = std::nullopt);

/// The id rule: 1..max_bytes bytes, each printable ASCII (0x21..0x7E).
[[nodiscard]] bool is_valid_id(std::string_view id, std::size_t max_bytes = default_max_id_bytes) noexcept;

/// The event type rule: 1..128 bytes, words of [a-z0-9_-] starting with a letter, joined by '.'.
[[nodiscard]] bool is_valid_event_type(std::string_view type) noexcept;

/// RFC 3339 in UTC with exactly three fractional digits: `2026-11-23T10:00:00.000Z`.
/// Meaningful for years 0000..9999.
[[nodiscard]] std::string format_timestamp(timestamp t);

/// Parse RFC 3339: `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1..9 digits (truncated to
/// milliseconds), then `Z` or a `+HH:MM`/`-HH:MM` offset. Dates and times are range-checked (no
/// February 30th); leap seconds (`:60`) are refused, and so is an instant that the offset moves
/// outside 0000..9999 UTC (which format_timestamp could not write back). nullopt when malformed.
[[nodiscard]] std::optional<timestamp> parse_timestamp(std::string_view text) noexcept;

/// ULIDs (https://github.com/ulid/spec): 48-bit millisecond Unix time then 80 random bits, as 26
/// Crockford base32 characters (`01J...`). Ids from one generator are strictly increasing, as strings
/// too: within one millisecond, or if the clock steps back, the previous id's random part is
/// incremented instead of drawing a new one. Thread-safe. Randomness comes from OpenSSL's CSPRNG;
/// next() throws std::runtime_error if it fails.
class ulid_generator {
 public:
  /// An id for the current system time.
  [[nodiscard]] std::string next();
  /// An id for `now` (clamped to the previous id's time if earlier). Throws std::invalid_argument
  /// if `now` is before 1970 or beyond the 48-bit range.
  [[nodiscard]] std::string next(timestamp now);

 private:
  std::mutex mutex_;
  bool started_ = false;
  std::uint64_t last_ms_ = 0;
  std::uint64_t random_hi_ = 0;  ///< top 16 of the 80 random bits
  std::uint64_t random_lo_ = 0;  ///< low 64 bits
};

/// A fresh ULID from the process-wide generator.
[[nodiscard]] std::string new_event_id();

/// True for 26 Crockford base32 characters (uppercase, no I L O U) whose value fits 128 bits.
[[nodiscard]] bool is_ulid(std::string_view id) noexcept;

/// The time encoded in a ULID, or nullopt when `id` is not one.
[[nodiscard]] std::optional<timestamp> ulid_time(std::string_view id) noexcept;

}  // namespace shopd::bus
