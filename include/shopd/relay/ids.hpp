#pragma once
/// Opaque ids of the relay (reference §0): messages `msg_<26 base62>`, DLQ entries shaped like Redis
/// stream ids `<unix ms>-<seq>`. Randomness comes from OpenSSL's RAND_bytes (a CSPRNG), so ids are
/// unguessable as well as unique. Every function throws std::runtime_error only if RAND_bytes
/// fails (no entropy), which a server should treat as fatal.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace shopd::relay {

/// `n` characters from [0-9A-Za-z], uniformly (rejection sampling, no modulo bias).
[[nodiscard]] std::string random_base62(std::size_t n);

/// A new message id: "msg_" followed by 26 base62 characters: 8 that spell the creation time (Unix
/// milliseconds, most significant first, so that ids sort by creation time as strings: new rows go
/// to the end of the primary-key index instead of random pages of it) and 18 random ones (about
/// 107 bits of randomness).
[[nodiscard]] std::string new_message_id();
/// The same for a given creation time (times before 1970 count as 1970).
[[nodiscard]] std::string new_message_id(std::chrono::system_clock::time_point at);

/// True for what new_message_id makes (used to answer 404 early for junk path parameters).
[[nodiscard]] bool is_message_id(std::string_view id) noexcept;

/// A DLQ id's parts.
struct dlq_id_parts {
  std::int64_t ms = 0;
  std::uint64_t seq = 0;
  friend bool operator==(const dlq_id_parts&, const dlq_id_parts&) = default;
};

/// "<ms>-<seq>" in decimal, e.g. "1725323658779-0".
[[nodiscard]] std::string format_dlq_id(dlq_id_parts parts);
/// The inverse of format_dlq_id; nullopt for anything else (signs, spaces, leading zeros, overflow).
[[nodiscard]] std::optional<dlq_id_parts> parse_dlq_id(std::string_view id) noexcept;

/// Makes DLQ ids that increase strictly within one generator (a clock going backwards does not
/// produce a smaller id). In each new millisecond the sequence starts at a random value below 2^31
/// so that relay instances sharing one database are very unlikely to produce the same id (the
/// table's primary key catches the rare clash; take another id then). Thread-safe.
class dlq_id_generator {
 public:
  [[nodiscard]] std::string next(std::int64_t now_ms);

 private:
  std::mutex mutex_;
  std::int64_t last_ms_ = -1;
  std::uint64_t seq_ = 0;
};

}  // namespace shopd::relay
