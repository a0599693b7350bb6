#include "shopd/bus/envelope.hpp"

#include <openssl/rand.h>
#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <unordered_set>
#include <utility>
#include <vector>

namespace shopd::bus {

namespace json = boost::json;

validation_exception::validation_exception(validation_error e)
    : std::invalid_argument(e.field.empty() ? e.message : e.field + ": " + e.message), error_(std::move(e)) {}

void throw_exception_from_error(const validation_error& e, const boost::source_location& loc) {
  boost::throw_exception(validation_exception(e), loc);
}

namespace {

// ---------------------------------------------------------------------------------------------
// The strict parser: Boost.JSON's basic_parser driving its value_stack, like boost::json::parser,
// plus what that parser cannot do: refuse duplicate keys and infinities, cap strings, keys and value
// counts as they stream (before anything large is built), and know the path of every failure.

class strict_handler {
 public:
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  explicit strict_handler(const parse_limits& limits) : limits_(limits) {}

  json::value_stack st;
  std::optional<validation_error> error;

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }

  bool on_object_begin(json::error_code& ec) {
    if (!count_value(ec)) return false;
    frames_.emplace_back();
    return true;
  }
  bool on_object_end(std::size_t n, json::error_code&) {
    st.push_object(n);
    frames_.pop_back();
    value_done();
    return true;
  }
  bool on_array_begin(json::error_code& ec) {
    if (!count_value(ec)) return false;
    frames_.emplace_back().is_array = true;
    return true;
  }
  bool on_array_end(std::size_t n, json::error_code&) {
    st.push_array(n);
    frames_.pop_back();
    value_done();
    return true;
  }

  bool on_key_part(json::string_view s, std::size_t n, json::error_code& ec) {
    if (n > limits_.max_key_bytes) return key_too_long(ec);
    key_buf_.append(s.data(), s.size());
    st.push_chars(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t n, json::error_code& ec) {
    if (n > limits_.max_key_bytes) return key_too_long(ec);
    key_buf_.append(s.data(), s.size());
    frame& f = frames_.back();
    if (!f.keys.insert(key_buf_).second) {
      return fail(ec, child_path(key_buf_), "duplicate key");
    }
    f.key = std::move(key_buf_);
    f.has_key = true;
    key_buf_.clear();
    st.push_key(s);
    return true;
  }

  bool on_string_part(json::string_view s, std::size_t n, json::error_code& ec) {
    if (n > limits_.max_string_bytes) return string_too_long(ec);
    st.push_chars(s);
    return true;
  }
  bool on_string(json::string_view s, std::size_t n, json::error_code& ec) {
    if (n > limits_.max_string_bytes) return string_too_long(ec);
    if (!count_value(ec)) return false;
    st.push_string(s);
    value_done();
    return true;
  }

  bool on_number_part(json::string_view s, json::error_code&) {
    number_buf_.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t i, json::string_view, json::error_code& ec) {
    number_buf_.clear();
    if (!count_value(ec)) return false;
    st.push_int64(i);
    value_done();
    return true;
  }
  bool on_uint64(std::uint64_t u, json::string_view, json::error_code& ec) {
    number_buf_.clear();
    if (!count_value(ec)) return false;
    st.push_uint64(u);
    value_done();
    return true;
  }
  bool on_double(double d, json::string_view s, json::error_code& ec) {
    // Boost.JSON 1.81 rounds numbers of more than 19 significant digits imprecisely, so a value
    // would not survive serialize/parse (1.2222e22 written back reads as a different double): read
    // the text again, correctly rounded. Underflow keeps Boost's value (0 or a subnormal).
    number_buf_.append(s.data(), s.size());
    const char* end = number_buf_.data() + number_buf_.size();
    double precise = 0;
    if (const auto r = std::from_chars(number_buf_.data(), end, precise);
        r.ec == std::errc{} && r.ptr == end) {
      d = precise;
    }
    number_buf_.clear();
    // Boost.JSON turns 1e400 into infinity, which it would then serialize as the non-JSON word
    // "Infinity": refuse it here so no such value ever enters the system.
    if (!std::isfinite(d)) return fail(ec, path(), "number out of range");
    if (!count_value(ec)) return false;
    st.push_double(d);
    value_done();
    return true;
  }
  bool on_bool(bool b, json::error_code& ec) {
    if (!count_value(ec)) return false;
    st.push_bool(b);
    value_done();
    return true;
  }
  bool on_null(json::error_code& ec) {
    if (!count_value(ec)) return false;
    st.push_null();
    value_done();
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

  /// Where the parser is: the key or index of each open container, e.g. `data.items[1].sku`.
  [[nodiscard]] std::string path() const {
    std::string p;
    for (const frame& f : frames_) {
      if (f.is_array) {
        p += '[';
        p += std::to_string(f.index);
        p += ']';
      } else if (f.has_key) {
        if (!p.empty()) p += '.';
        p += f.key;
      }
    }
    return p;
  }

 private:
  struct frame {
    bool is_array = false;
    std::size_t index = 0;  // arrays: the element being parsed
    bool has_key = false;   // objects: whether `key` names the member being parsed
    std::string key;
    std::unordered_set<std::string> keys;
  };

  std::string child_path(std::string_view key) const {
    std::string p = path();
    if (!p.empty()) p += '.';
    p += key;
    return p;
  }

  void value_done() {
    if (frames_.empty()) return;
    frame& f = frames_.back();
    if (f.is_array) {
      ++f.index;
    } else {
      f.has_key = false;
    }
  }

  bool count_value(json::error_code& ec) {
    if (++values_ <= limits_.max_values) return true;
    return fail(ec, path(), "document has more than " + std::to_string(limits_.max_values) + " values");
  }

  bool key_too_long(json::error_code& ec) {
    return fail(ec, path(), "object key longer than " + std::to_string(limits_.max_key_bytes) + " bytes");
  }

  bool string_too_long(json::error_code& ec) {
    return fail(ec, path(), "string longer than " + std::to_string(limits_.max_string_bytes) + " bytes");
  }

  bool fail(json::error_code& ec, std::string field, std::string message) {
    error = validation_error{std::move(field), std::move(message)};
    ec = boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
    return false;
  }

  const parse_limits& limits_;
  std::vector<frame> frames_;
  std::string key_buf_;
  std::string number_buf_;  // the text of a number split across parser calls
  std::size_t values_ = 0;
};

validation_error describe_parse_error(const json::error_code& ec, std::string_view raw, std::size_t at,
                                      const parse_limits& limits, std::string path) {
  if (ec == json::error::too_deep) {
    return {std::move(path), "nesting deeper than " + std::to_string(limits.max_depth) + " levels"};
  }
  if (ec == json::error::incomplete) return {std::move(path), "truncated JSON document"};
  const std::string where = " at byte " + std::to_string(at);
  if (at < raw.size() && static_cast<unsigned char>(raw[at]) >= 0x80) {
    return {std::move(path), "invalid UTF-8" + where};
  }
  return {std::move(path), "invalid JSON" + where + " (" + ec.message() + ")"};
}

// ---------------------------------------------------------------------------------------------
// Envelope fields

bool is_source_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

bool is_valid_source(std::string_view s) noexcept {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!is_source_char(c)) return false;
  }
  return true;
}

const json::value* member(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() ? nullptr : &it->value();
}

// A required string member, or the error naming it.
result<std::string_view> required_string(const json::object& o, std::string_view key) {
  const json::value* v = member(o, key);
  if (v == nullptr || v->is_null()) return validation_error{std::string(key), "is required"};
  if (!v->is_string()) return validation_error{std::string(key), "must be a string"};
  return std::string_view(v->get_string());
}

std::string id_rule(std::size_t max_bytes) {
  return "must be 1 to " + std::to_string(max_bytes) + " printable ASCII characters without spaces";
}

result<std::string> required_id(const json::object& o, std::string_view key, std::size_t max_bytes) {
  auto s = required_string(o, key);
  if (!s) return s.error();
  if (!is_valid_id(*s, max_bytes)) return validation_error{std::string(key), id_rule(max_bytes)};
  return std::string(*s);
}

// ---------------------------------------------------------------------------------------------
// ULID

constexpr std::string_view crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr std::uint64_t max_ulid_ms = (std::uint64_t{1} << 48) - 1;

int crockford_value(char c) noexcept {
  const auto pos = crockford.find(c);
  return pos == std::string_view::npos ? -1 : static_cast<int>(pos);
}

// The 128-bit id as (hi, lo): hi = 48-bit time << 16 | top 16 random bits, lo = low 64 random bits.
std::string encode_ulid(std::uint64_t hi, std::uint64_t lo) {
  std::string out(26, '0');
  for (int i = 25; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = crockford[lo & 31U];
    lo = (lo >> 5) | (hi << 59);
    hi >>= 5;
  }
  return out;
}

std::optional<std::pair<std::uint64_t, std::uint64_t>> decode_ulid(std::string_view id) noexcept {
  if (id.size() != 26) return std::nullopt;
  // 26 characters carry 130 bits: the first may only hold the top 3 bits of 128.
  if (const int first = crockford_value(id[0]); first < 0 || first > 7) return std::nullopt;
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  for (char c : id) {
    const int v = crockford_value(c);
    if (v < 0) return std::nullopt;
    hi = (hi << 5) | (lo >> 59);
    lo = (lo << 5) | static_cast<std::uint64_t>(v);
  }
  return std::pair{hi, lo};
}

ulid_generator& process_generator() {
  static ulid_generator generator;
  return generator;
}

timestamp now_ms() {
  return std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

// ---------------------------------------------------------------------------------------------
// Timestamps

// Parses exactly `n` ASCII digits at `pos`.
bool read_digits(std::string_view s, std::size_t pos, std::size_t n, int& out) noexcept {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}

}  // namespace

// -------------------------------------------------------------------------------------------------

bool is_valid_id(std::string_view id, std::size_t max_bytes) noexcept {
  if (id.empty() || id.size() > max_bytes) return false;
  for (char c : id) {
    if (c < 0x21 || c > 0x7E) return false;
  }
  return true;
}

bool is_valid_event_type(std::string_view type) noexcept {
  if (type.empty() || type.size() > 128) return false;
  bool word_start = true;
  for (char c : type) {
    if (word_start) {
      if (c < 'a' || c > 'z') return false;
      word_start = false;
    } else if (c == '.') {
      word_start = true;
    } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
      return false;
    }
  }
  return !word_start;
}

result<json::value> parse_json(std::string_view raw, const parse_limits& limits) {
  if (raw.empty()) return validation_error{"", "empty body: expected a JSON document"};
  if (raw.size() > limits.max_body_bytes) {
    return validation_error{"", "body of " + std::to_string(raw.size()) + " bytes exceeds the limit of " +
                                    std::to_string(limits.max_body_bytes) + " bytes"};
  }
  if (raw.starts_with("\xEF\xBB\xBF")) {
    return validation_error{"", "byte order mark before the JSON document is not allowed"};
  }

  json::parse_options options;
  options.max_depth = limits.max_depth;
  json::basic_parser<strict_handler> parser(options, limits);
  strict_handler& handler = parser.handler();
  handler.st.reset();

  json::error_code ec;
  const std::size_t consumed = parser.write_some(false, raw.data(), raw.size(), ec);
  if (handler.error) return std::move(*handler.error);
  if (ec) return describe_parse_error(ec, raw, consumed, limits, handler.path());
  if (consumed != raw.size()) {
    return validation_error{"",
                            "unexpected data after the JSON document at byte " + std::to_string(consumed)};
  }
  return handler.st.release();
}

result<envelope> parse_envelope(std::string_view raw, const parse_limits& limits) {
  auto doc = parse_json(raw, limits);
  if (!doc) return doc.error();
  if (!doc->is_object()) {
    return validation_error{
        "", std::string("expected a JSON object, got ") + json::to_string(doc->kind()).data()};
  }
  json::object& o = doc->get_object();
  envelope e;

  auto event_id = required_id(o, "eventId", limits.max_id_bytes);
  if (!event_id) return event_id.error();
  e.event_id = std::move(*event_id);

  auto type = required_string(o, "eventType");
  if (!type) return type.error();
  if (!is_valid_event_type(*type)) {
    return validation_error{"eventType", "must be lowercase words joined by '.', e.g. order.created"};
  }
  e.event_type = std::string(*type);

  const json::value* version = member(o, "version");
  if (version == nullptr || version->is_null()) return validation_error{"version", "is required"};
  if (!version->is_int64()) return validation_error{"version", "must be the integer 1"};
  if (version->get_int64() != envelope_version) {
    return validation_error{"version", "unsupported version " + std::to_string(version->get_int64()) +
                                           "; this build understands version 1"};
  }
  e.version = envelope_version;

  auto time_text = required_string(o, "timestamp");
  if (!time_text) return time_text.error();
  auto time = parse_timestamp(*time_text);
  if (!time) {
    return validation_error{"timestamp", "must be an RFC 3339 date-time such as 2026-11-23T10:00:00.000Z"};
  }
  e.time = *time;

  auto source = required_string(o, "source");
  if (!source) return source.error();
  if (!is_valid_source(*source)) return validation_error{"source", "must be 1 to 64 of A-Z a-z 0-9 . _ -"};
  e.source = std::string(*source);

  auto correlation = required_id(o, "correlationId", limits.max_id_bytes);
  if (!correlation) return correlation.error();
  e.correlation_id = std::move(*correlation);

  if (const json::value* cause = member(o, "causationId"); cause != nullptr && !cause->is_null()) {
    auto causation = required_id(o, "causationId", limits.max_id_bytes);
    if (!causation) return causation.error();
    e.causation_id = std::move(*causation);
  }

  json::value* data = o.if_contains("data");
  if (data == nullptr || data->is_null()) return validation_error{"data", "is required"};
  if (!data->is_object()) return validation_error{"data", "must be an object"};
  e.data = std::move(data->get_object());
  return e;
}

json::object to_json(const envelope& e) {
  json::object o;
  o.reserve(8);
  o.emplace("eventId", e.event_id);
  o.emplace("eventType", e.event_type);
  o.emplace("version", e.version);
  o.emplace("timestamp", format_timestamp(e.time));
  o.emplace("source", e.source);
  o.emplace("correlationId", e.correlation_id);
  if (e.causation_id) o.emplace("causationId", *e.causation_id);
  o.emplace("data", e.data);
  return o;
}

std::string serialize(const envelope& e) {
  return json::serialize(to_json(e));
}

envelope make_envelope(std::string_view event_type, std::string_view source, json::object data,
                       std::string_view correlation_id, std::optional<std::string_view> causation_id) {
  if (!is_valid_event_type(event_type)) {
    throw std::invalid_argument("make_envelope: invalid event type \"" + std::string(event_type) + "\"");
  }
  if (!is_valid_source(source)) {
    throw std::invalid_argument("make_envelope: invalid source \"" + std::string(source) + "\"");
  }
  if (!is_valid_id(correlation_id)) throw std::invalid_argument("make_envelope: invalid correlation id");
  if (causation_id && !is_valid_id(*causation_id)) {
    throw std::invalid_argument("make_envelope: invalid causation id");
  }
  const timestamp now = now_ms();
  envelope e;
  e.event_id = process_generator().next(now);
  e.event_type = std::string(event_type);
  e.time = now;
  e.source = std::string(source);
  e.correlation_id = std::string(correlation_id);
  if (causation_id) e.causation_id = std::string(*causation_id);
  e.data = std::move(data);
  return e;
}

std::string format_timestamp(timestamp t) {
  const auto day = std::chrono::floor<std::chrono::days>(t);
  const std::chrono::year_month_day ymd{day};
  const std::chrono::hh_mm_ss hms{t - day};
  std::array<char, 64> buf{};
  const int n = std::snprintf(
      buf.data(), buf.size(), "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<int>(ymd.year()),
      static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
      static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
      static_cast<int>(hms.seconds().count()), static_cast<int>(hms.subseconds().count()));
  return std::string(buf.data(), static_cast<std::size_t>(n));
}

std::optional<timestamp> parse_timestamp(std::string_view s) noexcept {
  int year = 0;
  int month = 0;
  int day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
  if (!read_digits(s, 0, 4, year) || s.size() < 20 || s[4] != '-' || !read_digits(s, 5, 2, month) ||
      s[7] != '-' || !read_digits(s, 8, 2, day) || s[10] != 'T' || !read_digits(s, 11, 2, hour) ||
      s[13] != ':' || !read_digits(s, 14, 2, minute) || s[16] != ':' || !read_digits(s, 17, 2, second)) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  int millis = 0;
  if (s[pos] == '.') {
    const std::size_t start = ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (pos - start < 3) millis = millis * 10 + (s[pos] - '0');
      ++pos;
    }
    const std::size_t digits = pos - start;
    if (digits == 0 || digits > 9) return std::nullopt;
    for (std::size_t i = digits; i < 3; ++i) millis *= 10;
  }
  if (pos >= s.size()) return std::nullopt;
  int offset_minutes = 0;
  if (s[pos] == 'Z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int off_h = 0;
    int off_m = 0;
    if (!read_digits(s, pos + 1, 2, off_h) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !read_digits(s, pos + 4, 2, off_m) || off_h > 23 || off_m > 59) {
      return std::nullopt;
    }
    offset_minutes = (off_h * 60 + off_m) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  if (hour > 23 || minute > 59 || second > 59) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year{year},
                                        std::chrono::month{static_cast<unsigned>(month)},
                                        std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok()) return std::nullopt;
  const timestamp t = timestamp{std::chrono::sys_days{ymd}} + std::chrono::hours{hour} +
                      std::chrono::minutes{minute} + std::chrono::seconds{second} +
                      std::chrono::milliseconds{millis} - std::chrono::minutes{offset_minutes};
  // An offset can carry 0000-01-01 or 9999-12-31 into year -1 or 10000, which format_timestamp
  // cannot write as RFC 3339: such an envelope, once re-serialized, would be refused by its own
  // parser (found by fuzz/envelope).
  constexpr auto first = std::chrono::sys_days{std::chrono::year{0} / 1 / 1};
  constexpr auto end = std::chrono::sys_days{std::chrono::year{10000} / 1 / 1};
  if (t < first || t >= end) return std::nullopt;
  return t;
}

// -------------------------------------------------------------------------------------------------

std::string ulid_generator::next() {
  return next(now_ms());
}

std::string ulid_generator::next(timestamp now) {
  const auto count = now.time_since_epoch().count();
  if (count < 0 || static_cast<std::uint64_t>(count) > max_ulid_ms) {
    throw std::invalid_argument("ulid_generator: time outside the 48-bit millisecond range");
  }
  auto ms = static_cast<std::uint64_t>(count);

  std::lock_guard lock(mutex_);
  bool fresh = true;
  if (started_ && ms <= last_ms_) {
    // Same millisecond, or the clock stepped back: stay on the last time and count up, so ids
    // remain strictly increasing. Overflowing 80 bits moves to the next millisecond instead.
    ms = last_ms_;
    fresh = false;
    if (++random_lo_ == 0 && ++random_hi_ > 0xFFFF) {
      if (ms == max_ulid_ms) throw std::runtime_error("ulid_generator: id space exhausted");
      ++ms;
      fresh = true;
    }
  }
  if (fresh) {
    std::array<unsigned char, 10> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
      throw std::runtime_error("ulid_generator: RAND_bytes failed");
    }
    random_hi_ = (std::uint64_t{bytes[0]} << 8) | bytes[1];
    random_lo_ = 0;
    for (std::size_t i = 2; i < bytes.size(); ++i) random_lo_ = (random_lo_ << 8) | bytes[i];
  }
  started_ = true;
  last_ms_ = ms;
  return encode_ulid((ms << 16) | random_hi_, random_lo_);
}

std::string new_event_id() {
  return process_generator().next();
}

bool is_ulid(std::string_view id) noexcept {
  return decode_ulid(id).has_value();
}

std::optional<timestamp> ulid_time(std::string_view id) noexcept {
  const auto decoded = decode_ulid(id);
  if (!decoded) return std::nullopt;
  return timestamp{std::chrono::milliseconds{static_cast<std::int64_t>(decoded->first >> 16)}};
}

}  // namespace shopd::bus
