#pragma once
/// The QStash v2 publish API client. It speaks to the embedded relay and to Upstash QStash alike:
/// the requests are those the official `@upstash/qstash` SDK sends (reference/qstash-protocol.md
/// §1, §8.2).
///
///   publish(destination, body, options) -> POST {QSTASH_URL}/v2/publish/{destination}
///   batch(entries)                      -> POST {QSTASH_URL}/v2/batch
///
/// The destination (a URL, or a URL-group name) is appended to the path unencoded, as the SDKs do:
/// its query string becomes the outer request's query string. Only bytes no URL may contain
/// (space, `"`, `<`, `>`, `\`, `^`, `` ` ``, `{`, `|`, `}`, controls, non-ASCII) are percent-encoded,
/// as the SDK's `new URL(...)` does; a `#fragment` is not sent.
///
/// Request building and response parsing are pure functions below, so they can be tested without a
/// socket; `publisher` joins them with an http::client.
///
/// Errors: a call never throws for network or HTTP failures; it returns a `publish_error` that says
/// whether trying again later may succeed (`retryable`). Threading: a publisher is immutable after
/// construction and may be used from any number of coroutines at once.

#include "shopd/http/client.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shopd::config {
struct settings;
}

namespace shopd::bus {

struct publisher_config {
  std::string qstash_url;    ///< base URL, e.g. "http://127.0.0.1:8080" or "https://qstash.upstash.io"
  std::string qstash_token;  ///< sent as `Authorization: Bearer <token>`; never logged
  std::chrono::milliseconds timeout{30'000};  ///< per publish/batch HTTP request

  /// QSTASH_URL and QSTASH_TOKEN from the validated settings (a trailing '/' of the URL is dropped).
  [[nodiscard]] static publisher_config from_settings(const config::settings& s);
};

/// How QStash should deliver a message. Every field left at its default sends no header, except
/// `method` (the SDK always sends Upstash-Method) and `content_type`.
struct publish_options {
  std::string content_type = "application/json";       ///< Content-Type; empty sends none
  std::string method = "POST";                         ///< Upstash-Method: GET, POST, PUT, PATCH, DELETE
  std::optional<std::chrono::seconds> delay;           ///< Upstash-Delay: "<n>s"
  std::optional<std::chrono::sys_seconds> not_before;  ///< Upstash-Not-Before: unix seconds
  std::optional<unsigned> retries;                     ///< Upstash-Retries: retries after the first attempt
  /// Upstash-Retry-Delay: an expression giving milliseconds from `retried`, e.g. "1000 * (1 + retried)".
  std::string retry_delay;
  std::optional<std::chrono::seconds> timeout;  ///< Upstash-Timeout: per delivery attempt, "<n>s"
  std::string callback;                         ///< Upstash-Callback: URL
  std::string failure_callback;                 ///< Upstash-Failure-Callback: URL
  std::string deduplication_id;                 ///< Upstash-Deduplication-Id
  bool content_based_deduplication = false;     ///< Upstash-Content-Based-Deduplication: true
  /// Delivered to the destination as `<name>: <value>`; sent as `Upstash-Forward-<name>`.
  std::vector<std::pair<std::string, std::string>> forward_headers;
  std::string label;  ///< Upstash-Label: one label or a comma-separated list
};

/// One message QStash accepted (a URL-group destination yields one per endpoint).
struct published_message {
  std::string message_id;
  std::string url;            ///< the endpoint, when the server says
  bool deduplicated = false;  ///< an earlier message with the same deduplication id was found
};

struct publish_receipt {
  unsigned status = 0;                      ///< 200/201, or 202 for a deduplicated message
  std::vector<published_message> messages;  ///< never empty

  /// The first message's id (the only one for a URL destination).
  [[nodiscard]] const std::string& message_id() const noexcept { return messages.front().message_id; }
  /// True when every message was a duplicate of an earlier one.
  [[nodiscard]] bool deduplicated() const noexcept;
};

enum class publish_failure : std::uint8_t {
  transport,     ///< no HTTP response: resolve/connect/TLS/timeout/... (`transport_error` says which)
  rejected,      ///< non-2xx answer (`status`, `body`)
  bad_response,  ///< 2xx answer that is not the JSON QStash sends: the message may have been accepted
  entry_failed,  ///< one batch entry answered `{"error": ...}` while the batch as a whole succeeded
  invalid,       ///< the request could not be built or sent as given (bad URL or header): fix the call
};

struct publish_error {
  publish_failure kind = publish_failure::transport;
  unsigned status = 0;  ///< HTTP status, 0 when there was no response
  std::string body;     ///< response body (QStash: {"error":"..."}) or the failing batch element
  boost::system::error_code transport_error;  ///< for `transport` and `invalid`
  /// Trying the same call again later may succeed: network errors, timeouts, 5xx, 408, 429 and
  /// unreadable 2xx answers. 4xx (bad token, bad destination) are final.
  bool retryable = false;
  /// One line, e.g. "publish http://127.0.0.1:3001/api/webhook: 401: {"error":"invalid token"}".
  std::string message;
};

/// `result.value()` on an error throws std::runtime_error(message).
[[noreturn]] void throw_exception_from_error(const publish_error& e, const boost::source_location& loc);

using publish_result = boost::system::result<publish_receipt, publish_error>;

/// One message of a batch.
struct batch_entry {
  std::string destination;          ///< URL or URL-group name
  std::optional<std::string> body;  ///< the payload as a JSON string (UTF-8 text); absent sends none
  publish_options options;
  std::string queue;  ///< enqueue on this queue instead of publishing; empty for none
};

/// The outer error is the batch request failing as a whole; otherwise one result per entry, in order.
using batch_result = boost::system::result<std::vector<publish_result>, publish_error>;

// -- Pure request building and response parsing ---------------------------------------------------

/// The publish header fields for `opts` (canonical case: "Upstash-Delay"), without Authorization.
[[nodiscard]] http::header_list publish_headers(const publish_options& opts);

/// `{base}/v2/publish/{destination}`, the destination appended as described above.
[[nodiscard]] std::string publish_url(std::string_view qstash_url, std::string_view destination);

/// The full HTTP request of a publish.
[[nodiscard]] http::client_request build_publish_request(const publisher_config& cfg,
                                                         std::string_view destination, std::string body,
                                                         const publish_options& opts);

/// The JSON body of `/v2/batch`: `[{"destination","headers":{lowercase: value},"body"?,"queue"?}]`.
[[nodiscard]] std::string batch_body(std::span<const batch_entry> entries);

/// The full HTTP request of a batch.
[[nodiscard]] http::client_request build_batch_request(const publisher_config& cfg,
                                                       std::span<const batch_entry> entries);

/// A publish answer: `{"messageId","url"?,"deduplicated"?}` or an array of them (URL group).
/// `what` names the call in error messages ("publish <destination>").
[[nodiscard]] publish_result parse_publish_response(const http::client_response& res, std::string_view what);

/// A batch answer: an array with one element per entry (object, array of objects for a URL group,
/// or `{"error": ...}`); a single object is accepted for a one-entry batch, as the SDK does.
[[nodiscard]] batch_result parse_batch_response(const http::client_response& res, std::size_t entries);

/// The error for a request that got no response.
[[nodiscard]] publish_error transport_failure(const http::client_error& e, std::string_view what);

// -- I/O ----------------------------------------------------------------------------------------------

class publisher {
 public:
  /// Uses (a handle to) `client` for every call; the client's pool is shared with other users.
  publisher(http::client client, publisher_config cfg);

  [[nodiscard]] boost::asio::awaitable<publish_result> publish(std::string destination, std::string body,
                                                               publish_options opts = {}) const;

  [[nodiscard]] boost::asio::awaitable<batch_result> batch(std::vector<batch_entry> entries) const;

  [[nodiscard]] const publisher_config& config() const noexcept;

 private:
  http::client client_;
  publisher_config cfg_;
};

/// Blocking forms for CLI commands: a private io_context and client for one call.
[[nodiscard]] publish_result publish_blocking(const publisher_config& cfg, std::string destination,
                                              std::string body, publish_options opts = {},
                                              http::client_options client_opts = {});
[[nodiscard]] batch_result batch_blocking(const publisher_config& cfg, std::vector<batch_entry> entries,
                                          http::client_options client_opts = {});

}  // namespace shopd::bus
