#pragma once
/// The HTTP message types every route handler sees, and the one JSON error shape.
/// Only Beast's message headers are pulled in here (no Asio), so this is cheap to include.

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/fwd.hpp>

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shopd::http {

namespace bhttp = boost::beast::http;
using request = bhttp::request<bhttp::string_body>;
using response = bhttp::response<bhttp::string_body>;
using verb = bhttp::verb;
using status = bhttp::status;
using field = bhttp::field;

/// A JSON response (Content-Type: application/json). The session sets version, keep-alive and
/// Content-Length afterwards, so handlers need not.
[[nodiscard]] response json_response(status st, const boost::json::value& body);
[[nodiscard]] response json_response(status st, std::string serialized_json);
/// A literal is serialized JSON too (without this overload the call would be ambiguous).
[[nodiscard]] inline response json_response(status st, const char* serialized_json) {
  return json_response(st, std::string(serialized_json));
}

/// The one error shape of every shopd endpoint (a superset of QStash's `{"error": "..."}`):
///   {"error": "<human message>", "code": "<machine code>"[, "field": "<offending field>"]}
[[nodiscard]] response json_error(status st, std::string_view code, std::string_view message,
                                  std::string_view field_name = {});

/// Thrown by handlers (and anything they call) to answer with the error shape; the HTTP boundary
/// converts it, and turns any other exception into a 500 without leaking its text.
class http_error : public std::runtime_error {
 public:
  http_error(status st, std::string code, const std::string& message, std::string field_name = {})
      : std::runtime_error(message), status_(st), code_(std::move(code)), field_(std::move(field_name)) {}

  /// Extra response headers, e.g. `Upstash-NonRetryable-Error: true` or `Allow`.
  http_error& with_header(std::string name, std::string value) {
    headers_.emplace_back(std::move(name), std::move(value));
    return *this;
  }

  [[nodiscard]] status status_code() const noexcept { return status_; }
  [[nodiscard]] const std::string& code() const noexcept { return code_; }
  [[nodiscard]] const std::string& field_name() const noexcept { return field_; }
  [[nodiscard]] const std::vector<std::pair<std::string, std::string>>& headers() const noexcept {
    return headers_;
  }

  /// The response this error stands for.
  [[nodiscard]] response to_response() const;

 private:
  status status_;
  std::string code_;
  std::string field_;
  std::vector<std::pair<std::string, std::string>> headers_;
};

/// The reason phrase style code for a status: 404 -> "not_found", 413 -> "payload_too_large".
[[nodiscard]] std::string_view default_code(status st) noexcept;

}  // namespace shopd::http
