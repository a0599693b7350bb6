#include "shopd/roles/analytics/failure_callback.hpp"

#include "shopd/bus/crypto.hpp"
#include "shopd/relay/delivery.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <utility>

namespace shopd::roles::analytics {

namespace json = boost::json;

namespace {

constexpr std::string_view replacement_character = "\xEF\xBF\xBD";
constexpr std::size_t max_url_bytes = 2048;
constexpr std::int64_t max_retried = 999'999;  // attempts = retried + 1 stays within the payload's cap

// The length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF), or 0.
std::size_t utf8_sequence(std::string_view s, std::size_t i) noexcept {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return 1;
  std::size_t len = 0;
  unsigned char lo = 0x80;  // bounds of the second byte, which rule out overlongs and surrogates
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return len;
}

int base64_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

// The member `key`, treating null like absence.
const json::value* member(const json::object& o, std::string_view key) {
  const auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return nullptr;
  return &it->value();
}

// A JSON integer, saturated to the int64 range; nullopt for any other kind of value.
std::optional<std::int64_t> integer_of(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    return static_cast<std::int64_t>(std::min(v.get_uint64(), max));
  }
  return std::nullopt;
}

std::string report_event_id(std::string_view prefix, std::string_view id) {
  std::string composed = std::string(prefix) + std::string(id);
  if (composed.size() <= bus::default_max_id_bytes) return composed;
  return "dlq_h_" + bus::crypto::base64url_encode(bus::crypto::as_string_view(bus::crypto::sha256(composed)));
}

// The callback field a dead_letter payload field came from, for errors that only the payload's own
// rules catch.
std::string callback_field(std::string_view payload_field) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 7> names{{
      {"data.sourceMessageId", "sourceMessageId"},
      {"data.destination", "url"},
      {"data.lastStatus", "status"},
      {"data.lastResponse", "body"},
      {"data.attempts", "retried"},
      {"data.body", "sourceBody"},
      {"data.dlqId", "dlqId"},
  }};
  for (const auto& [from, to] : names) {
    if (payload_field == from) return std::string(to);
  }
  return std::string(payload_field);
}

}  // namespace

std::string to_stored_text(std::string_view bytes, std::size_t max_bytes) {
  std::string out;
  out.reserve(std::min(bytes.size(), max_bytes));
  for (std::size_t i = 0; i < bytes.size();) {
    const std::size_t len = bytes[i] == '\0' ? 0 : utf8_sequence(bytes, i);
    const std::string_view piece = len == 0 ? replacement_character : bytes.substr(i, len);
    if (out.size() + piece.size() > max_bytes) break;
    out.append(piece);
    i += len == 0 ? 1 : len;
  }
  return out;
}

std::optional<std::string> decode_base64(std::string_view text) {
  std::size_t padding = 0;
  while (!text.empty() && text.back() == '=') {
    text.remove_suffix(1);
    ++padding;
  }
  if (padding > 2 || text.size() % 4 == 1) return std::nullopt;
  if (padding > 0 && (text.size() + padding) % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  std::uint32_t bits = 0;
  int pending = 0;
  for (const char c : text) {
    const int v = base64_value(c);
    if (v < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<std::uint32_t>(v);
    pending += 6;
    if (pending >= 8) {
      pending -= 8;
      out.push_back(static_cast<char>((bits >> pending) & 0xFFU));
    }
  }
  return out;
}

bus::result<failure_report> parse_failure_callback(std::string_view body) {
  auto parsed = bus::parse_json(
      body, bus::parse_limits{.max_body_bytes = max_callback_bytes, .max_string_bytes = max_callback_bytes});
  if (!parsed) return parsed.error();
  if (!parsed->is_object()) return bus::validation_error{"", "a failure callback must be a JSON object"};
  const json::object& cb = parsed->get_object();

  failure_report report;
  bus::dead_letter& letter = report.letter;

  const json::value* source_id = member(cb, "sourceMessageId");
  if (source_id == nullptr || !source_id->is_string() || !bus::is_valid_id(source_id->get_string())) {
    return bus::validation_error{"sourceMessageId", "is required: the id of the message that failed"};
  }
  letter.source_message_id = std::string(source_id->get_string());

  const json::value* url = member(cb, "url");
  if (url == nullptr || !url->is_string() || url->get_string().empty() ||
      url->get_string().size() > max_url_bytes || !bus::is_single_line(url->get_string())) {
    return bus::validation_error{"url", "is required: the destination URL, one line of at most 2048 bytes"};
  }
  letter.destination = std::string(url->get_string());

  if (const json::value* st = member(cb, "status")) {
    const auto code = integer_of(*st);
    if (!code) return bus::validation_error{"status", "must be an integer"};
    // 0 is the relay's "no HTTP answer" (connection refused, timeout).
    if (*code >= 100 && *code <= 599) letter.last_status = *code;
  }

  if (const json::value* response = member(cb, "body")) {
    const auto bytes = response->is_string() ? decode_base64(response->get_string()) : std::nullopt;
    if (!bytes) return bus::validation_error{"body", "must be base64"};
    letter.last_response = to_stored_text(*bytes);
  }

  std::int64_t retried = 0;
  if (const json::value* r = member(cb, "retried")) {
    const auto n = integer_of(*r);
    if (!n || *n < 0) return bus::validation_error{"retried", "must be an integer >= 0"};
    retried = std::min(*n, max_retried);
  }
  letter.attempts = retried + 1;

  std::string original;
  if (const json::value* source_body = member(cb, "sourceBody")) {
    auto bytes = source_body->is_string() ? decode_base64(source_body->get_string()) : std::nullopt;
    if (!bytes) return bus::validation_error{"sourceBody", "must be base64"};
    original = std::move(*bytes);
  }
  letter.body = to_stored_text(original);

  if (const json::value* dlq = member(cb, "dlqId")) {
    if (!dlq->is_string() || !bus::is_valid_id(dlq->get_string())) {
      return bus::validation_error{"dlqId", "must be an id: printable ASCII without spaces"};
    }
    letter.dlq_id = std::string(dlq->get_string());
  }

  // The payload's own rules are the last word: whatever this report says, analytics accepts.
  if (auto checked = bus::dead_letter::from_json(bus::to_json(letter)); !checked) {
    return bus::validation_error{callback_field(checked.error().field), checked.error().message};
  }

  report.event_id = letter.dlq_id ? report_event_id("dlq_", *letter.dlq_id)
                                  : report_event_id("dlqmsg_", letter.source_message_id);
  // The whole original body, not its stored prefix: a long envelope still names its chain.
  if (auto original_event = bus::parse_envelope(original)) {
    report.correlation_id = std::move(original_event->correlation_id);
    report.causation_id = std::move(original_event->event_id);
  } else {
    report.correlation_id = std::string(uncorrelated);
  }
  return report;
}

bus::envelope to_envelope(const failure_report& report, bus::timestamp now) {
  bus::envelope ev;
  ev.event_id = report.event_id;
  ev.event_type = std::string(bus::event_types::dead_letter);
  ev.time = now;
  ev.source = std::string(failure_callback_source);
  ev.correlation_id = report.correlation_id;
  ev.causation_id = report.causation_id;
  ev.data = bus::to_json(report.letter);
  return ev;
}

std::size_t callback_body_limit(std::size_t message_body_limit) noexcept {
  const auto base64_size = [](std::size_t n) { return (n / 3 + 1) * 4; };
  // The message's headers (within the server's 8 KiB header limit, escaped in JSON) and the other
  // fields fit in the last term.
  constexpr std::size_t rest = 64 * 1024;
  const std::size_t message = std::min(message_body_limit, max_callback_bytes);
  return std::min(base64_size(message) + base64_size(relay::max_recorded_response_bytes) + rest,
                  max_callback_bytes);
}

}  // namespace shopd::roles::analytics
