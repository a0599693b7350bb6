#pragma once
/// Structured logging: one line per event on stderr, as JSON (`LOG_FORMAT=json`) or as
/// human-readable `key=value` text. Thread-safe; a line is written with a single write(2) (or, on a
/// batching thread, within one) so lines from several threads never interleave. There is one process-wide
/// sink, configured once at start-up with `configure()`; until then it logs text at `info`. While a
/// `trace_scope` (trace.hpp) is live on the writing thread, write() adds `trace_id` to the line unless it
/// names one itself.

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

namespace shopd::obs {

enum class level : std::uint8_t { debug, info, warn, error };
enum class format : std::uint8_t { text, json };

/// Parse "debug|info|warn|error" / "text|json"; throws std::invalid_argument otherwise.
[[nodiscard]] level parse_level(std::string_view s);
[[nodiscard]] format parse_format(std::string_view s);
[[nodiscard]] std::string_view to_string(level l);

/// A field of a log line. Values are copied into the line when it is formatted.
struct field {
  using value_type = std::variant<std::string_view, std::int64_t, double, bool>;

  field(std::string_view k, std::string_view v) : key(k), value(v) {}
  field(std::string_view k, const char* v) : key(k), value(std::string_view{v}) {}
  field(std::string_view k, const std::string& v) : key(k), value(std::string_view{v}) {}
  field(std::string_view k, bool v) : key(k), value(v) {}
  field(std::string_view k, double v) : key(k), value(v) {}
  template <typename I>
  requires(std::is_integral_v<I> && !std::is_same_v<I, bool>) field(std::string_view k, I v)
      : key(k), value(static_cast<std::int64_t>(v)) {}

  std::string_view key;
  value_type value;
};

/// Set level and format for the whole process. Call before starting threads.
void configure(level min_level, format fmt);

/// True when a line at `l` would be written (skip building expensive fields otherwise).
[[nodiscard]] bool enabled(level l) noexcept;

/// Write one line: timestamp, level, message, then the fields in order.
void write(level l, std::string_view message, std::initializer_list<field> fields = {});
/// The same, for a field list built at run time (some fields present only sometimes).
void write(level l, std::string_view message, std::span<const field> fields);

/// Batching, for threads that answer many short requests (the HTTP server's I/O threads): while
/// batching is on for the calling thread, its `debug` and `info` lines are kept in a per-thread
/// buffer and written together by flush_batch(), one write(2) for many lines. `schedule_flush` is
/// called whenever the buffer goes from empty to non-empty and must arrange for flush_batch() to run
/// on this thread soon (the server posts it to the thread's event loop: it runs once the loop has
/// handled what is ready now). A `warn` or `error` line flushes the buffer and is written at once,
/// so a thread's lines stay in order and problems are never held back; the buffer is also flushed
/// when it passes 64 KiB and by end_batching(). Lines still buffered when the process dies are
/// lost: at most one loop iteration's worth of `info` lines.
void begin_batching(std::function<void()> schedule_flush);
/// Write what this thread has buffered (nothing when batching is off or the buffer is empty).
void flush_batch() noexcept;
/// Flush and stop batching on this thread.
void end_batching() noexcept;

/// Format a line without writing it (used by write() and by tests).
[[nodiscard]] std::string format_line(format fmt, level l, std::string_view message,
                                      std::initializer_list<field> fields);

inline void debug(std::string_view m, std::initializer_list<field> f = {}) {
  write(level::debug, m, f);
}
inline void info(std::string_view m, std::initializer_list<field> f = {}) {
  write(level::info, m, f);
}
inline void warn(std::string_view m, std::initializer_list<field> f = {}) {
  write(level::warn, m, f);
}
inline void error(std::string_view m, std::initializer_list<field> f = {}) {
  write(level::error, m, f);
}

}  // namespace shopd::obs
