#pragma once
/// The error type of the relay's pure logic (durations, retry expressions, publish parsing).
/// Every fallible function returns `relay::result<T>`; nothing here throws except on allocation
/// failure or when `.value()` is called on a result holding an error (that throws `relay_exception`).
/// The HTTP boundary turns an `error` into `{"error": message, "code": to_string(code), "field": field}`
/// with status 400: every code is a client error except errc::invalid_stored_value, which means the
/// relay's own storage holds something it did not write (a 500, and a log line).

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace shopd::relay {

/// What went wrong, coarsely; `error::message` says it precisely.
enum class errc {
  invalid_duration = 1,    ///< not a `10s` / `1d10h30m` duration, or out of range
  invalid_expression,      ///< Upstash-Retry-Delay does not parse (syntax, unknown name, too big)
  evaluation_failed,       ///< the expression parsed but gave no finite value (division by zero, NaN)
  invalid_destination,     ///< not an http(s) URL with a host
  url_groups_unsupported,  ///< destination is a URL-group name; this relay has no URL groups
  invalid_target,          ///< the request target is not /v2/publish/... or /v2/enqueue/{queue}/...
  invalid_header,          ///< a header (or its query-parameter form) has a bad value
  invalid_batch,           ///< the /v2/batch body or one of its elements is malformed
  invalid_stored_value,    ///< JSON read back from storage does not have the expected shape
};

/// The machine code for `c`, e.g. "invalid_header" (the `code` of the JSON error shape).
[[nodiscard]] std::string_view to_string(errc c) noexcept;

struct error {
  errc code = errc::invalid_header;
  std::string message{};  ///< one line for the client, names the offending header or field
  std::string field{};    ///< the header or JSON field at fault ("Upstash-Retries"), empty if none
};

/// Thrown only by `result<T>::value()` on an error result.
class relay_exception : public std::runtime_error {
 public:
  explicit relay_exception(error e) : std::runtime_error(e.message), error_(std::move(e)) {}
  [[nodiscard]] const error& err() const noexcept { return error_; }

 private:
  error error_;
};

/// Found by argument-dependent lookup from `boost::system::result<T, error>::value()`.
[[noreturn]] void throw_exception_from_error(const error& e, const boost::source_location& loc);

template <class T>
using result = boost::system::result<T, error>;

/// Shorthand for building the error alternative: `return make_error(errc::..., "...", "Field");`.
[[nodiscard]] inline error make_error(errc code, std::string message, std::string field = {}) {
  return error{code, std::move(message), std::move(field)};
}

}  // namespace shopd::relay
