#pragma once
/// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header that ties
/// every request and event of one chain to one trace id.
///
///   traceparent: 00-<trace-id: 32 lower-hex>-<parent-id: 16 lower-hex>-<flags: 2 lower-hex>
///
/// Parsing is strict: the trace id and the parent id must not be all zeros, hex digits must be lower
/// case, version `ff` is invalid, and version `00` must be exactly 55 characters. A later version is
/// read by its version-00 prefix when the 56th character is '-', as the recommendation says. A value
/// that does not parse is to be ignored (a new trace starts), never an error of the request.
///
/// Where a trace is current: a `trace_scope` makes a context current on its thread for the scope's
/// lifetime. While one is, every log line the thread writes carries `trace_id` (see log.hpp), and
/// the events a handler emits carry a child of it. The HTTP server opens one around each handler.
///
/// Threading: trace_context is a value; the current context is per thread.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shopd::obs {

class trace_context {
 public:
  /// Parse a traceparent header value; nullopt when it is not a valid one.
  [[nodiscard]] static std::optional<trace_context> parse(std::string_view traceparent);
  /// A new trace: random trace id and parent id (never all zeros), flags 01 (sampled).
  [[nodiscard]] static trace_context start();

  /// The same trace, with a fresh random parent id and the same flags: what to send with a request
  /// or event this one causes.
  [[nodiscard]] trace_context child() const;

  /// 32 lower-hex digits.
  [[nodiscard]] std::string_view trace_id() const noexcept { return {trace_id_.data(), trace_id_.size()}; }
  /// 16 lower-hex digits.
  [[nodiscard]] std::string_view parent_id() const noexcept { return {parent_id_.data(), parent_id_.size()}; }
  [[nodiscard]] std::uint8_t flags() const noexcept { return flags_; }
  [[nodiscard]] bool sampled() const noexcept { return (flags_ & 0x01U) != 0; }

  /// The version-00 header value, e.g. "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".
  [[nodiscard]] std::string traceparent() const;

  friend bool operator==(const trace_context&, const trace_context&) = default;

 private:
  trace_context() = default;

  std::array<char, 32> trace_id_{};
  std::array<char, 16> parent_id_{};
  std::uint8_t flags_ = 0;
};

/// The context made current by the innermost live trace_scope on this thread, or nullptr.
[[nodiscard]] const trace_context* current_trace() noexcept;

/// Makes `ctx` the thread's current trace until destruction, which restores the previous one.
/// Scopes nest; create and destroy one on the same thread, and never keep one across a co_await
/// (another coroutine would run under it).
class trace_scope {
 public:
  explicit trace_scope(const trace_context& ctx) noexcept;
  /// The same for a context that may be nullptr: then no trace is current within the scope.
  explicit trace_scope(const trace_context* ctx) noexcept;
  ~trace_scope();
  trace_scope(const trace_scope&) = delete;
  trace_scope& operator=(const trace_scope&) = delete;

 private:
  const trace_context* previous_;
};

}  // namespace shopd::obs
