#pragma once
/// What the relay stores about a message when it accepts it: one `message_spec` per row of
/// relay_messages (columns noted on each member), built by parse_publish / parse_batch
/// (publish_request.hpp) or by make_callback_spec for callback messages. Delivery state (state,
/// retried, lease, last_*) is not part of it: that belongs to the engine.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shopd/relay/duration.hpp"
#include "shopd/relay/error.hpp"
#include "shopd/relay/headers.hpp"

namespace shopd::relay {

/// relay_messages.kind: a published message, or one the relay created to call a (failure) callback.
enum class message_kind { message, callback, failure_callback };

/// "message", "callback", "failure_callback" (the stored spelling).
[[nodiscard]] std::string_view to_string(message_kind k) noexcept;
[[nodiscard]] std::optional<message_kind> message_kind_from_string(std::string_view s) noexcept;

/// The limits of "the plan": defaults and caps applied to what publishers ask for. The relay's
/// configuration supplies them; the defaults here are QStash's free-plan values.
struct message_limits {
  std::int64_t default_retries = 3;            ///< when Upstash-Retries is absent
  std::int64_t max_retries = 20;               ///< larger Upstash-Retries values are capped to it
  std::int64_t default_timeout_ms = 900'000;   ///< per-attempt timeout when Upstash-Timeout is absent
  std::int64_t max_timeout_ms = 900'000;       ///< longer Upstash-Timeout values are capped to it
  std::int64_t max_delay_ms = 7 * one_day_ms;  ///< a longer Upstash-Delay / Not-Before is an error
  std::size_t max_batch_messages = 1000;       ///< a longer /v2/batch array is an error
};

/// How the callback (or failure callback) message of a message is sent, from the
/// Upstash-Callback-* (Upstash-Failure-Callback-*) headers. Unset members take the defaults of
/// make_callback_spec.
struct callback_config {
  std::optional<std::string> method{};            ///< -Method, upper case
  std::optional<std::int64_t> timeout_ms{};       ///< -Timeout, already capped
  std::optional<std::int64_t> retries{};          ///< -Retries, already capped
  std::optional<std::string> retry_delay_expr{};  ///< -Retry-Delay, already validated
  std::optional<std::int64_t> delay_ms{};         ///< -Delay
  header_list forward_headers{};                  ///< -Forward-<Name>: canonical <Name> and value

  [[nodiscard]] bool empty() const noexcept;
  friend bool operator==(const callback_config&, const callback_config&) = default;
};

/// Everything without a column of its own: the relay_messages.options JSON.
struct message_options {
  callback_config callback{};
  callback_config failure_callback{};
  std::vector<std::string> labels{};               ///< Upstash-Label, in order, trimmed
  std::optional<std::string> queue{};              ///< /v2/enqueue/{queue}/ or batch "queue"
  std::optional<std::string> source_message_id{};  ///< callback kinds: the message called back about

  friend bool operator==(const message_options&, const message_options&) = default;

  /// `{"callback":{...},"failureCallback":{...},"labels":[...],"queue":"...","sourceMessageId":"..."}`;
  /// empty members are left out. Callback configs: `method`, `timeoutMs`, `retries`,
  /// `retryDelay`, `delayMs`, `headers` (headers_to_json shape).
  [[nodiscard]] boost::json::object to_json() const;
  /// The inverse of to_json; unknown keys are ignored (forward compatibility). Fails with
  /// errc::invalid_stored_value when a known key has the wrong type.
  [[nodiscard]] static result<message_options> from_json(const boost::json::value& v);
};

/// A message as accepted: everything the relay stores when it creates a relay_messages row (the
/// column each member maps to is named first in its comment).
struct message_spec {
  message_kind kind = message_kind::message;  ///< kind
  std::string destination{};                  ///< destination: http(s) URL, as published
  std::string method = "POST";                ///< method: GET POST PUT PATCH DELETE
  /// headers (as headers_to_json): what is delivered besides the relay's own Upstash-* headers:
  /// Content-Type and every Upstash-Forward-<Name> as <Name>; names canonical (Go style).
  header_list headers{};
  std::string body{};                             ///< body: raw bytes, never parsed
  std::int64_t max_retries = 0;                   ///< max_retries: attempts = 1 + max_retries
  std::optional<std::string> retry_delay_expr{};  ///< retry_delay_expr: validated Upstash-Retry-Delay
  std::int64_t timeout_ms = 0;                    ///< timeout_ms: per attempt, effective value
  std::optional<std::string> callback{};          ///< callback URL
  std::optional<std::string> failure_callback{};  ///< failure_callback URL
  message_options options{};                      ///< options
  std::optional<std::string> dedup_id{};          ///< dedup_id: explicit or content-based
  std::string caller_ip{};                        ///< caller_ip
  std::int64_t not_before_ms = 0;                 ///< not_before_ms: first attempt due (Unix ms)
  std::int64_t created_at_ms = 0;                 ///< created_at_ms

  /// Not stored: Upstash-* headers this relay does not implement (flow control, redaction, ...),
  /// lower case, for a log line. Telemetry headers are not listed.
  std::vector<std::string> ignored_headers{};
};

/// The message that calls `source`'s callback (kind callback) or failure callback (kind
/// failure_callback) with `body_json` (see callback_body / failure_callback_body in
/// responses.hpp), per reference §4: destination = the callback URL, method = the config's or
/// POST, headers = `Content-Type: application/json` plus the config's forwarded headers, retries =
/// the config's or the source's max_retries, retry delay expression = the config's, timeout = the
/// config's or `limits.default_timeout_ms`, due at `now_ms` + the config's delay. It has no
/// callbacks and no dedup id of its own; it keeps the source's labels and caller IP;
/// options.source_message_id = `source_message_id`.
/// Returns nullopt when `source` has no such callback URL, or `kind` is message_kind::message.
[[nodiscard]] std::optional<message_spec> make_callback_spec(const message_spec& source,
                                                             std::string_view source_message_id,
                                                             message_kind kind, std::string body_json,
                                                             std::int64_t now_ms,
                                                             const message_limits& limits);

}  // namespace shopd::relay
