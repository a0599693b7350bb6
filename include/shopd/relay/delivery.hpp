#pragma once
/// The pure parts of delivering a relay message (reference §2): which origin a destination belongs
/// to, the concurrency slots of one relay node, the request of one attempt, and what an attempt's
/// answer means for the message. No I/O and no clock: times are passed in.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shopd/relay/error.hpp"
#include "shopd/relay/headers.hpp"
#include "shopd/relay/message_spec.hpp"
#include "shopd/relay/responses.hpp"
#include "shopd/relay/retry_delay.hpp"

namespace shopd::relay {

/// The User-Agent of every delivery, as QStash sends it.
inline constexpr std::string_view delivery_user_agent = "Upstash-QStash";

/// Response bodies kept per attempt (for the DLQ and callback bodies); longer ones are cut here.
inline constexpr std::size_t max_recorded_response_bytes = 64 * 1024;

/// The concurrency key of a destination URL: its `scheme://authority` prefix, lower-cased, exactly
/// as written ("http://127.0.0.1:3001" for "http://127.0.0.1:3001/api/webhook?a=1";
/// "HTTP://Shop.Example" for "https://shop.example" stays distinct from "http://shop.example:80" —
/// two spellings of one server count separately). The prefix ends at the first '/', '?' or '#'
/// after "://"; a string without "://" is its own (lower-cased) origin.
[[nodiscard]] std::string origin_of(std::string_view url);

/// The delivery slots of one relay node: at most `global` attempts in flight, and at most
/// `per_origin` of them to any one destination origin, so one slow service cannot take every slot.
/// A value type without locking: the engine keeps one on its strand, and a claim works on a copy
/// to pick only messages that fit.
class delivery_slots {
 public:
  /// Both limits are at least 1 (smaller values are raised to 1).
  delivery_slots(std::size_t global, std::size_t per_origin);

  [[nodiscard]] std::size_t global_limit() const noexcept { return global_; }
  [[nodiscard]] std::size_t per_origin_limit() const noexcept { return per_origin_; }
  /// Attempts in flight, in total and to `origin`.
  [[nodiscard]] std::size_t in_flight() const noexcept { return total_; }
  [[nodiscard]] std::size_t in_flight(std::string_view origin) const;
  /// Free slots in total.
  [[nodiscard]] std::size_t free() const noexcept { return global_ - total_; }
  /// True when an attempt to `origin` may start now.
  [[nodiscard]] bool can_take(std::string_view origin) const;
  /// Take a slot for `origin`; false, and nothing taken, when no slot is free for it.
  bool try_take(std::string_view origin);
  /// Give back a slot taken for `origin`. Giving back a slot never taken is a no-op.
  void give_back(std::string_view origin);
  /// The origins without a free slot, sorted (the claim query skips their messages).
  [[nodiscard]] std::vector<std::string> saturated_origins() const;

 private:
  std::size_t global_;
  std::size_t per_origin_;
  std::size_t total_ = 0;
  std::map<std::string, std::size_t, std::less<>> by_origin_;
};

/// One attempt's HTTP request, before it is handed to the HTTP client.
struct delivery_request {
  std::string method{};  ///< GET POST PUT PATCH DELETE
  std::string url{};
  header_list headers{};
  std::string body{};
  std::int64_t timeout_ms = 0;
};

/// The request of one attempt at message `message_id` (reference §2.1, §3): the stored method, URL
/// and body; the stored headers (Content-Type and the forwarded ones; any that would collide with
/// the relay's own are dropped), then `Upstash-Signature` (a fresh token signed with
/// `signing_key` at `now`, `sub` = the destination URL), `Upstash-Message-Id`, `Upstash-Retried`
/// (= `retried`, the attempts made before this one), `User-Agent: Upstash-QStash` and
/// `Upstash-Caller-Ip` (when the publisher's address is known). The timeout is the message's, or
/// `default_timeout_ms` when it has none. Throws std::invalid_argument for an empty signing key.
[[nodiscard]] delivery_request make_delivery_request(std::string_view message_id, const message_spec& m,
                                                     std::int64_t retried, std::string_view signing_key,
                                                     std::chrono::system_clock::time_point now,
                                                     std::int64_t default_timeout_ms);

/// What an attempt's result means for its message.
enum class attempt_verdict {
  delivered,  ///< a 2xx answer
  retry,      ///< failed; another attempt is due after `retry_delay_ms`
  failed,     ///< failed for good: retries exhausted, or the destination refused it (489)
};

[[nodiscard]] std::string_view to_string(attempt_verdict v) noexcept;

struct attempt_decision {
  attempt_verdict verdict = attempt_verdict::failed;
  std::int64_t retry_delay_ms = 0;                                ///< for `retry`
  retry_delay_source delay_source = retry_delay_source::backoff;  ///< for `retry`
  /// For `failed`: the destination answered 489 with `Upstash-NonRetryable-Error: true`.
  bool non_retryable = false;
  /// The message's Upstash-Retry-Delay did not parse or evaluate; the default back-off was used.
  std::optional<error> expression_error{};
};

struct attempt_input {
  const attempt_response& response;                    ///< status 0: no HTTP answer (connect error, timeout)
  std::int64_t retried = 0;                            ///< attempts made before this one
  std::int64_t max_retries = 0;                        ///< retries allowed after the first attempt
  std::optional<std::string_view> retry_delay_expr{};  ///< the message's Upstash-Retry-Delay
  double backoff_scale = 1.0;                          ///< scales the default back-off only
  std::int64_t now_ms = 0;
};

/// Decide (reference §2.2, §2.3): any 2xx is delivered; 489 with `Upstash-NonRetryable-Error: true`
/// fails at once; any other result is retried while `retried < max_retries`, after
/// next_retry_delay (response headers, then the expression with `retried`, then the default
/// back-off for retry number `retried + 1`), and fails after that.
[[nodiscard]] attempt_decision decide(const attempt_input& in);

/// `body` cut to max_recorded_response_bytes.
[[nodiscard]] std::string recorded_body(std::string_view body);

}  // namespace shopd::relay
