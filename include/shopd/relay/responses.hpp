#pragma once
/// The JSON bodies of the relay's REST answers and of the callback requests it sends, with QStash's
/// field names and types (reference §1.3, §4, §5, §6.1). Builders only: statuses, routing and
/// storage belong to the engine. Timestamps are Unix ms numbers. Header maps have the
/// headers_to_json shape (`{"Name": ["v"]}`). Byte strings that may not be text (`body`) go out as
/// the text when valid UTF-8 and as `...Base64` (standard alphabet, padded) otherwise; an empty
/// body is left out.

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "shopd/relay/headers.hpp"
#include "shopd/relay/message_spec.hpp"

namespace shopd::relay {

/// Publish / enqueue answer: `{"messageId": id, "url": destination}` plus `"deduplicated": true`
/// when the message was a duplicate (the engine answers 202 then, with the existing id).
[[nodiscard]] boost::json::object publish_response(std::string_view message_id, std::string_view url,
                                                   bool deduplicated = false);

/// One element of a /v2/batch answer: an accepted message, or the error of that element.
struct batch_outcome {
  std::string message_id{};
  std::string url{};
  bool deduplicated = false;
  std::optional<std::string> error{};  ///< when set, the element is `{"error": text}`
};

/// The /v2/batch answer: one element per input, in input order.
[[nodiscard]] boost::json::array batch_response(std::span<const batch_outcome> outcomes);

/// `GET /v2/messages/{id}` (reference §6.1): `messageId`, `url`, `method`, `header`,
/// `body`|`bodyBase64`, `maxRetries`, `retryDelayExpression`?, `notBefore`, `createdAt`,
/// `callback`?, `failureCallback`?, `queueName`?, `callerIP`, `label` + `labels` (when labelled).
[[nodiscard]] boost::json::object message_json(std::string_view message_id, const message_spec& m);

/// What relay_dlq holds for a message that failed for good.
struct dlq_entry {
  std::string dlq_id{};
  std::string message_id{};
  std::int64_t failed_at_ms = 0;
  int response_status = 0;  ///< last attempt's HTTP status; 0 when there was no response
  header_list response_headers{};
  std::string response_body{};
};

/// A DLQ message (reference §5): message_json(entry.message_id, source) plus `dlqId`,
/// `responseStatus`, `responseHeader`, `responseBody`|`responseBodyBase64`.
[[nodiscard]] boost::json::object dlq_message_json(const dlq_entry& entry, const message_spec& source);

/// `GET /v2/dlq`: `{"messages": [...], "cursor": "..."}`; the cursor is left out on the last page
/// (nullopt or empty).
[[nodiscard]] boost::json::object dlq_list_response(boost::json::array messages,
                                                    std::optional<std::string_view> cursor);

/// `POST /v2/dlq/retry/{id}`: `{"messageId": id}` (the new message).
[[nodiscard]] boost::json::object dlq_retry_response(std::string_view new_message_id);

/// `POST /v2/dlq/retry` (bulk): `{"responses": [{"messageId": ...}...], "cursor"?: ...}`.
[[nodiscard]] boost::json::object dlq_retry_bulk_response(std::span<const std::string> new_message_ids,
                                                          std::optional<std::string_view> cursor);

/// `DELETE /v2/dlq` (bulk): `{"deleted": n, "cursor"?: ...}`.
[[nodiscard]] boost::json::object dlq_delete_response(std::int64_t deleted,
                                                      std::optional<std::string_view> cursor);

/// `DELETE /v2/messages[/{id}]`: `{"cancelled": n}` (the JS SDK parses the answer as JSON).
[[nodiscard]] boost::json::object cancel_response(std::int64_t cancelled);

/// The destination's answer to one delivery attempt.
struct attempt_response {
  int status = 0;  ///< 0 when there was no HTTP response (connect error, timeout)
  header_list headers{};
  std::string body{};
};

/// The body of a callback request (reference §4): `status`, `header`, `body` (standard base64 of
/// the response body, always present), `retried`, `maxRetries`, `sourceMessageId`, `url`,
/// `method`, `sourceHeader`, `sourceBody` (standard base64), `notBefore`, `createdAt`, `callerIP`.
/// `retried` is the number of retries done before the attempt that produced `response`.
[[nodiscard]] boost::json::object callback_body(std::string_view source_message_id,
                                                const message_spec& source, const attempt_response& response,
                                                std::int64_t retried);

/// The body of a failure-callback request: callback_body plus `dlqId`.
[[nodiscard]] boost::json::object failure_callback_body(std::string_view source_message_id,
                                                        const message_spec& source,
                                                        const attempt_response& response,
                                                        std::int64_t retried, std::string_view dlq_id);

/// Standard base64 (RFC 4648 §4, `+/`, padded), as QStash encodes bodies in JSON.
[[nodiscard]] std::string base64_encode(std::string_view bytes);

}  // namespace shopd::relay
