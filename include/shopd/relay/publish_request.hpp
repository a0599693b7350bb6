#pragma once
/// Turning a publish request (`POST /v2/publish/{destination}`, `POST /v2/enqueue/{queue}/{destination}`,
/// `POST /v2/batch`) into message specs: reference §1. Pure functions of the request's parts; no
/// I/O, no clock (`now_ms` is passed in), no ids (the engine assigns them).
///
/// Headers read (names case-insensitive; each may also be given as a lower-case query parameter of
/// a publish/enqueue target, e.g. `?upstash-retries=3`; a header wins over the same parameter):
///  - Content-Type: kept and delivered.
///  - Upstash-Method: GET POST PUT PATCH DELETE (any case); default POST.
///  - Upstash-Delay (duration) / Upstash-Not-Before (Unix seconds; wins over the delay): when the
///    first attempt is due; at most `limits.max_delay_ms` ahead of now.
///  - Upstash-Retries: integer >= 0, default `limits.default_retries`, capped to `limits.max_retries`.
///  - Upstash-Retry-Delay: a retry_delay_expression (validated here, stored as text).
///  - Upstash-Timeout: duration > 0, default `limits.default_timeout_ms`, capped to `max_timeout_ms`.
///  - Upstash-Callback, Upstash-Failure-Callback: http(s) URLs.
///  - Upstash-Callback-{Method,Timeout,Retries,Retry-Delay,Delay} and Upstash-Callback-Forward-<Name>,
///    and the same with Upstash-Failure-Callback-: the callback_configs.
///  - Upstash-Forward-<Name>: delivered as <Name> (canonical case). Names the relay sets itself or
///    that would break framing (Host, Content-Length, Transfer-Encoding, Connection, Content-Type,
///    Upstash-Signature, Upstash-Message-Id, Upstash-Retried, ...) are refused.
///  - Upstash-Deduplication-Id: no ':' or whitespace, at most 256 characters.
///  - Upstash-Content-Based-Deduplication: `true`/`false`; when true and no explicit id, the dedup
///    id is content_dedup_id(...).
///  - Upstash-Label: comma-separated labels.
/// Never forwarded: Authorization, Upstash-Telemetry-*, any other request header. Other Upstash-*
/// headers (flow control, redaction, header-forward, schedules) are not implemented by this relay
/// and are listed in message_spec::ignored_headers.
/// Header names that repeat where one value is expected are an error. Every error names the header
/// in `error::field` and in the message ("Upstash-Retries: must be a non-negative integer, got 'x'").

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shopd/relay/error.hpp"
#include "shopd/relay/headers.hpp"
#include "shopd/relay/message_spec.hpp"

namespace shopd::relay {

/// QStash's own error text for a destination without an http(s) scheme (reference §0).
inline constexpr std::string_view invalid_scheme_message =
    "invalid destination url: endpoint has invalid scheme, add http:// or https://";

/// A publish or enqueue request, borrowed.
struct publish_input {
  std::string_view target{};               ///< raw request target: "/v2/publish/https://h/p?a=1"
  std::span<const header_view> headers{};  ///< every request header
  std::string_view body{};                 ///< the payload bytes
  std::string_view caller_ip{};            ///< the publisher's address
  std::int64_t now_ms = 0;                 ///< Unix ms: created_at and the base of Upstash-Delay
};

/// What the request target says, before the headers are looked at.
struct publish_target {
  std::string destination{};           ///< the destination URL, QStash's query parameters removed
  std::optional<std::string> queue{};  ///< /v2/enqueue/{queue}/...
  /// The removed `upstash-*` parameters: lower-case, percent-decoded name and value, in order.
  /// (`qstash_token` is removed and not listed: authentication reads it from the raw target.)
  std::vector<header> options{};
};

/// Split a raw publish/enqueue target. The destination is everything after `/v2/publish/` (or
/// `/v2/enqueue/{queue}/`) taken literally (`//` kept), minus the query parameters named
/// `qstash_token` or `upstash-*` (other parameters are kept byte for byte, in order; the `?` goes
/// when none is left). A percent-encoded destination (`http%3A%2F%2F...`, any case) is decoded first
/// (parameters left in the outer query are then appended to it). The destination is checked with
/// validate_destination. Errors: errc::invalid_target (not a publish/enqueue target, bad queue
/// name), errc::invalid_destination, errc::url_groups_unsupported.
[[nodiscard]] result<publish_target> parse_publish_target(std::string_view target);

/// Check a destination: an absolute http:// or https:// URL (scheme in any case) with a non-empty
/// host. A URL-group name (`[A-Za-z0-9._-]+`) fails with errc::url_groups_unsupported; anything
/// else without an http(s) scheme with errc::invalid_destination and invalid_scheme_message.
/// `field` names the place in errors ("destination", "Upstash-Callback", ...).
[[nodiscard]] result<void> validate_destination(std::string_view url, std::string_view field = "destination");

/// The whole publish/enqueue request -> the message to store (see the header list above).
[[nodiscard]] result<message_spec> parse_publish(const publish_input& in, const message_limits& limits);

/// The common part, shared by publish and each batch element: a validated destination plus the
/// headers (and the query-parameter options, which headers override) -> the message.
[[nodiscard]] result<message_spec> build_message_spec(std::string destination,
                                                      std::span<const header_view> headers,
                                                      std::span<const header> query_options,
                                                      std::string_view body, std::string_view caller_ip,
                                                      std::int64_t now_ms, const message_limits& limits);

/// The content-based deduplication id: lower-case hex SHA-256 over the destination, the body, the
/// Content-Type and the forwarded headers (sorted by lower-case name, then value), each field
/// length-prefixed so that no two different inputs share an encoding.
[[nodiscard]] std::string content_dedup_id(std::string_view destination, std::string_view body,
                                           std::string_view content_type,
                                           std::span<const header> forwarded_headers);

/// Parse a `/v2/batch` body: a JSON array of `{"destination": string, "headers"?: {name: string},
/// "body"?: string, "queue"?: string}` (header keys in any case; unknown keys ignored). Each element
/// is built like a publish (build_message_spec; the destination is taken verbatim, no query
/// parameters are stripped) and succeeds or fails on its own; the answer keeps input order.
/// The whole call fails (errc::invalid_batch) only when the body is not a JSON array or has more
/// than `limits.max_batch_messages` elements.
[[nodiscard]] result<std::vector<result<message_spec>>> parse_batch(std::string_view body_json,
                                                                    std::string_view caller_ip,
                                                                    std::int64_t now_ms,
                                                                    const message_limits& limits);

}  // namespace shopd::relay
