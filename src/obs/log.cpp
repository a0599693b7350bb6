#include "shopd/obs/log.hpp"

#include "shopd/obs/trace.hpp"
#include "shopd/text/utf8.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <ctime>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace shopd::obs {
namespace {

std::atomic<level> g_level{level::info};
std::atomic<format> g_format{format::text};

constexpr std::string_view replacement_char = "\xEF\xBF\xBD";  // U+FFFD

/// Appends `s` with the JSON string escapes (without the surrounding quotes): quotes, backslash and
/// control characters escaped, invalid UTF-8 replaced by U+FFFD. The text format uses the same
/// escapes so that a value can never break a line in two.
void append_escaped(std::string& out, std::string_view s) {
  static constexpr std::array<char, 16> hex{'0', '1', '2', '3', '4', '5', '6', '7',
                                            '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'};
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = shopd::text::utf8_sequence_length(s, i);
      if (n == 0) {
        out += replacement_char;
        ++i;
      } else {
        out.append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xF];
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
}

void append_quoted(std::string& out, std::string_view s) {
  out += '"';
  append_escaped(out, s);
  out += '"';
}

/// A text value goes bare when it reads unambiguously as one token.
bool needs_quotes(std::string_view s) noexcept {
  if (s.empty()) return true;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7F || c == '"' || c == '=' || c == '\\') return true;
  }
  return false;
}

void append_int(std::string& out, std::int64_t v) {
  std::array<char, 24> buf{};
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), r.ptr);
}

void append_double(std::string& out, double v, format fmt) {
  if (!std::isfinite(v)) {
    // JSON has no literal for these; null keeps the line parseable.
    if (fmt == format::json) {
      out += "null";
    } else if (std::isnan(v)) {
      out += "NaN";
    } else {
      out += v > 0 ? "+Inf" : "-Inf";
    }
    return;
  }
  std::array<char, 32> buf{};
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), r.ptr);
}

void append_timestamp(std::string& out) {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  std::array<char, 32> buf{};
  const std::size_t n = std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%S", &tm);
  out.append(buf.data(), n);
  const auto frac = static_cast<int>(ms % 1000);
  out += '.';
  out += static_cast<char>('0' + frac / 100);
  out += static_cast<char>('0' + frac / 10 % 10);
  out += static_cast<char>('0' + frac % 10);
  out += 'Z';
}

std::string_view text_level(level l) noexcept {
  switch (l) {
    case level::debug:
      return "DEBUG";
    case level::info:
      return "INFO ";
    case level::warn:
      return "WARN ";
    case level::error:
      return "ERROR";
  }
  return "?????";
}

struct value_appender {
  std::string& out;
  format fmt;

  void operator()(std::string_view v) const {
    if (fmt == format::json || needs_quotes(v)) {
      append_quoted(out, v);
    } else {
      out += v;
    }
  }
  void operator()(std::int64_t v) const { append_int(out, v); }
  void operator()(double v) const { append_double(out, v, fmt); }
  void operator()(bool v) const { out += v ? "true" : "false"; }
};

}  // namespace

level parse_level(std::string_view s) {
  if (s == "debug") return level::debug;
  if (s == "info") return level::info;
  if (s == "warn") return level::warn;
  if (s == "error") return level::error;
  throw std::invalid_argument("unknown log level '" + std::string(s) + "' (expected debug|info|warn|error)");
}

format parse_format(std::string_view s) {
  if (s == "text") return format::text;
  if (s == "json") return format::json;
  throw std::invalid_argument("unknown log format '" + std::string(s) + "' (expected text|json)");
}

std::string_view to_string(level l) {
  switch (l) {
    case level::debug:
      return "debug";
    case level::info:
      return "info";
    case level::warn:
      return "warn";
    case level::error:
      return "error";
  }
  return "unknown";
}

void configure(level min_level, format fmt) {
  g_level.store(min_level, std::memory_order_relaxed);
  g_format.store(fmt, std::memory_order_relaxed);
}

bool enabled(level l) noexcept {
  return l >= g_level.load(std::memory_order_relaxed);
}

namespace {

std::string format_fields(format fmt, level l, std::string_view message, std::span<const field> fields) {
  std::string out;
  out.reserve(96 + message.size() + fields.size() * 24);
  if (fmt == format::json) {
    out += R"({"ts":")";
    append_timestamp(out);
    out += R"(","level":")";
    out += to_string(l);
    out += R"(","msg":)";
    append_quoted(out, message);
    for (const auto& f : fields) {
      out += ',';
      append_quoted(out, f.key);
      out += ':';
      std::visit(value_appender{out, fmt}, f.value);
    }
    out += '}';
  } else {
    append_timestamp(out);
    out += ' ';
    out += text_level(l);
    out += ' ';
    append_escaped(out, message);
    for (const auto& f : fields) {
      out += ' ';
      append_escaped(out, f.key);
      out += '=';
      std::visit(value_appender{out, fmt}, f.value);
    }
  }
  return out;
}

}  // namespace

std::string format_line(format fmt, level l, std::string_view message, std::initializer_list<field> fields) {
  return format_fields(fmt, l, message, std::span<const field>(fields.begin(), fields.size()));
}

namespace {

// Whole buffer out, retrying partial writes: pipes are atomic only up to PIPE_BUF, and a batch or
// a very long line may be accepted in parts.
void write_all(std::string_view text) noexcept {
  const char* p = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere left to report a failing stderr
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

constexpr std::size_t batch_limit = 64 * 1024;

struct batch {
  bool active = false;
  std::string buffer;
  std::function<void()> schedule_flush;
};

thread_local batch t_batch;

}  // namespace

void begin_batching(std::function<void()> schedule_flush) {
  flush_batch();
  t_batch.schedule_flush = std::move(schedule_flush);
  t_batch.buffer.reserve(batch_limit);
  t_batch.active = true;
}

void flush_batch() noexcept {
  if (t_batch.buffer.empty()) return;
  write_all(t_batch.buffer);
  t_batch.buffer.clear();
}

void end_batching() noexcept {
  flush_batch();
  t_batch.active = false;
  t_batch.schedule_flush = nullptr;
}

void write(level l, std::string_view message, std::initializer_list<field> fields) {
  write(l, message, std::span<const field>(fields.begin(), fields.size()));
}

void write(level l, std::string_view message, std::span<const field> fields) {
  if (!enabled(l)) return;
  const auto fmt = g_format.load(std::memory_order_relaxed);
  std::string line;
  const trace_context* trace = current_trace();
  if (trace != nullptr &&
      std::none_of(fields.begin(), fields.end(), [](const field& f) { return f.key == "trace_id"; })) {
    // A line written while a request or event is handled names its trace, as the request line does.
    std::vector<field> with_trace(fields.begin(), fields.end());
    with_trace.emplace_back("trace_id", trace->trace_id());
    line = format_fields(fmt, l, message, with_trace);
  } else {
    line = format_fields(fmt, l, message, fields);
  }
  line += '\n';
  if (t_batch.active) {
    if (l <= level::info) {
      const bool was_empty = t_batch.buffer.empty();
      t_batch.buffer += line;
      if (t_batch.buffer.size() >= batch_limit) {
        flush_batch();
      } else if (was_empty && t_batch.schedule_flush) {
        t_batch.schedule_flush();
      }
      return;
    }
    flush_batch();  // what came before goes first
  }
  write_all(line);
}

}  // namespace shopd::obs
