#include "shopd/relay/ids.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <limits>
#include <stdexcept>

namespace shopd::relay {

namespace {

constexpr std::string_view base62_alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr std::string_view message_prefix = "msg_";
constexpr std::size_t message_random_length = 26;
// The first characters of a message id spell its creation time (Unix ms, fixed width): 62^8 ms is
// about 6,900 years.
constexpr std::size_t message_time_length = 8;

void random_bytes(unsigned char* out, std::size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1) throw std::runtime_error("OpenSSL RAND_bytes failed");
}

bool is_base62(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

std::optional<std::uint64_t> parse_decimal(std::string_view s) {
  // No sign, no leading zero (one canonical spelling per id), no overflow.
  if (s.empty() || (s.size() > 1 && s.front() == '0')) return std::nullopt;
  std::uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

std::string random_base62(std::size_t n) {
  std::string out;
  out.reserve(n);
  std::array<unsigned char, 64> buf{};
  while (out.size() < n) {
    random_bytes(buf.data(), buf.size());
    for (unsigned char b : buf) {
      // 248 = 4 * 62: accepting only bytes below it keeps every character equally likely.
      if (b >= 248) continue;
      out.push_back(base62_alphabet[b % 62]);
      if (out.size() == n) break;
    }
  }
  return out;
}

std::string new_message_id() {
  return new_message_id(std::chrono::system_clock::now());
}

std::string new_message_id(std::chrono::system_clock::time_point at) {
  auto ms = static_cast<std::uint64_t>(std::max<std::int64_t>(
      0, std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count()));
  std::string out(message_prefix);
  out.resize(message_prefix.size() + message_time_length);
  for (std::size_t i = out.size(); i-- > message_prefix.size();) {
    out[i] = base62_alphabet[ms % 62];
    ms /= 62;
  }
  out += random_base62(message_random_length - message_time_length);
  return out;
}

bool is_message_id(std::string_view id) noexcept {
  if (!id.starts_with(message_prefix)) return false;
  id.remove_prefix(message_prefix.size());
  if (id.size() != message_random_length) return false;
  for (char c : id)
    if (!is_base62(c)) return false;
  return true;
}

std::string format_dlq_id(dlq_id_parts parts) {
  return std::to_string(parts.ms) + "-" + std::to_string(parts.seq);
}

std::optional<dlq_id_parts> parse_dlq_id(std::string_view id) noexcept {
  auto dash = id.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto ms = parse_decimal(id.substr(0, dash));
  auto seq = parse_decimal(id.substr(dash + 1));
  if (!ms || !seq || *ms > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    return std::nullopt;
  return dlq_id_parts{static_cast<std::int64_t>(*ms), *seq};
}

std::string dlq_id_generator::next(std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  if (now_ms > last_ms_) {
    std::array<unsigned char, 4> r{};
    random_bytes(r.data(), r.size());
    last_ms_ = now_ms;
    seq_ = ((std::uint64_t{r[0]} << 24) | (std::uint64_t{r[1]} << 16) | (std::uint64_t{r[2]} << 8) | r[3]) &
           0x7fff'ffffu;
  } else {
    ++seq_;  // same millisecond, or the clock went back: stay above the last id
  }
  return format_dlq_id({last_ms_, seq_});
}

}  // namespace shopd::relay
