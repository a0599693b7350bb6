#pragma once
/// Replaying a dead letter: the QStash DLQ request (reference/qstash-protocol.md §5,
/// `POST /v2/dlq/retry/{dlqId}` answering 201 `{"messageId": ...}`) and the reading of its answer.
/// Pure and thread-safe.

#include <optional>
#include <string>
#include <string_view>

namespace shopd::roles::analytics {

/// `qstash_url` (trailing slashes dropped) + `/v2/dlq/retry/` + `dlq_id` percent-encoded (every
/// byte but the RFC 3986 unreserved characters), so that any id stays one path segment.
[[nodiscard]] std::string replay_url(std::string_view qstash_url, std::string_view dlq_id);

/// The new message id of a successful retry answer, when its body says one.
[[nodiscard]] std::optional<std::string> replayed_message_id(std::string_view body);

/// One line for a failed retry answer, `QStash answered <status>: <text>`, where the text is the
/// `error` of QStash's error shape (`{"error": "..."}`) or else the body itself, made valid UTF-8,
/// cut to 512 bytes and with control characters replaced by spaces (it ends up in logs).
[[nodiscard]] std::string upstream_error(unsigned status, std::string_view body);

}  // namespace shopd::roles::analytics
