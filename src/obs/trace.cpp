#include "shopd/obs/trace.hpp"

#include "shopd/text/hex.hpp"

#include <openssl/rand.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <span>
#include <stdexcept>

namespace shopd::obs {

namespace {

thread_local const trace_context* t_current = nullptr;

constexpr std::string_view hex_digits = "0123456789abcdef";
constexpr std::size_t v00_length = 55;  // 2 + 1 + 32 + 1 + 16 + 1 + 2

bool is_lower_hex(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool all_lower_hex(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(), is_lower_hex);
}

bool all_zeros(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == '0'; });
}

// Bytes from the OpenSSL generator, drawn a few kilobytes at a time: one RAND_bytes call per id
// (it locks and runs the DRBG) cost more than the rest of a request's trace handling. The pool is
// per thread and refilled in a child after fork, so no two processes or threads hand out the same
// bytes.
std::atomic<unsigned> fork_generation{0};

void random_bytes(std::span<unsigned char> out) {
  static const bool registered = [] {
    ::pthread_atfork(nullptr, nullptr, [] { fork_generation.fetch_add(1, std::memory_order_relaxed); });
    return true;
  }();
  (void)registered;
  struct pool {
    std::array<unsigned char, 4096> bytes{};
    std::size_t used = 4096;
    unsigned generation = 0;
  };
  thread_local pool p;
  if (const auto g = fork_generation.load(std::memory_order_relaxed); p.generation != g) {
    p.generation = g;
    p.used = p.bytes.size();
  }
  for (auto& b : out) {
    if (p.used == p.bytes.size()) {
      if (RAND_bytes(p.bytes.data(), static_cast<int>(p.bytes.size())) != 1) {
        throw std::runtime_error("OpenSSL RAND_bytes failed");
      }
      p.used = 0;
    }
    b = p.bytes[p.used];
    p.bytes[p.used++] = 0;  // handed out once
  }
}

// Random lower-hex digits, never all zeros (the spec's invalid value). Trace ids need to be
// unpredictable enough not to collide, which the OpenSSL generator is.
template <std::size_t N>
void fill_random_hex(std::array<char, N>& out) {
  std::array<unsigned char, N / 2> bytes{};
  do {
    random_bytes(bytes);
  } while (std::all_of(bytes.begin(), bytes.end(), [](unsigned char b) { return b == 0; }));
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = hex_digits[bytes[i] >> 4];
    out[2 * i + 1] = hex_digits[bytes[i] & 0x0F];
  }
}

}  // namespace

std::optional<trace_context> trace_context::parse(std::string_view v) {
  if (v.size() < v00_length) return std::nullopt;
  const std::string_view version = v.substr(0, 2);
  if (!all_lower_hex(version) || version == "ff") return std::nullopt;
  // Version 00 is exactly 55 characters; a later version may append fields after a '-'.
  if (version == "00" ? v.size() != v00_length : (v.size() > v00_length && v[v00_length] != '-')) {
    return std::nullopt;
  }
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  const std::string_view trace_id = v.substr(3, 32);
  const std::string_view parent_id = v.substr(36, 16);
  const std::string_view flags = v.substr(53, 2);
  if (!all_lower_hex(trace_id) || !all_lower_hex(parent_id) || !all_lower_hex(flags)) return std::nullopt;
  if (all_zeros(trace_id) || all_zeros(parent_id)) return std::nullopt;
  trace_context ctx;
  std::copy(trace_id.begin(), trace_id.end(), ctx.trace_id_.begin());
  std::copy(parent_id.begin(), parent_id.end(), ctx.parent_id_.begin());
  ctx.flags_ = static_cast<std::uint8_t>(text::hex_value(flags[0]) * 16 + text::hex_value(flags[1]));
  return ctx;
}

trace_context trace_context::start() {
  trace_context ctx;
  fill_random_hex(ctx.trace_id_);
  fill_random_hex(ctx.parent_id_);
  ctx.flags_ = 0x01;
  return ctx;
}

trace_context trace_context::child() const {
  trace_context ctx = *this;
  // Only the sampled flag is defined; unknown bits are not passed on (the spec says so for 00).
  ctx.flags_ = flags_ & 0x01U;
  do {
    fill_random_hex(ctx.parent_id_);
  } while (ctx.parent_id_ == parent_id_);
  return ctx;
}

std::string trace_context::traceparent() const {
  std::string out;
  out.reserve(v00_length);
  out += "00-";
  out.append(trace_id_.data(), trace_id_.size());
  out += '-';
  out.append(parent_id_.data(), parent_id_.size());
  out += '-';
  out += hex_digits[flags_ >> 4];
  out += hex_digits[flags_ & 0x0F];
  return out;
}

const trace_context* current_trace() noexcept {
  return t_current;
}

trace_scope::trace_scope(const trace_context& ctx) noexcept : previous_(t_current) {
  t_current = &ctx;
}

trace_scope::trace_scope(const trace_context* ctx) noexcept : previous_(t_current) {
  t_current = ctx;
}

trace_scope::~trace_scope() {
  t_current = previous_;
}

}  // namespace shopd::obs
