#include "shopd/bus/crypto.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace shopd::bus::crypto {
namespace {

constexpr std::string_view url_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::string_view std_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr unsigned char invalid = 0xff;

using decode_table = std::array<unsigned char, 256>;

constexpr decode_table make_decode_table(std::string_view alphabet) {
  decode_table table{};
  table.fill(invalid);
  for (std::size_t i = 0; i < alphabet.size(); ++i) {
    table[static_cast<unsigned char>(alphabet[i])] = static_cast<unsigned char>(i);
  }
  return table;
}

constexpr decode_table url_table = make_decode_table(url_alphabet);
constexpr decode_table std_table = make_decode_table(std_alphabet);

std::string encode(std::span<const unsigned char> in, std::string_view alphabet, padding p) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const unsigned v = (unsigned{in[i]} << 16) | (unsigned{in[i + 1]} << 8) | unsigned{in[i + 2]};
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  const std::size_t rest = in.size() - i;
  if (rest == 1) {
    const unsigned v = unsigned{in[i]} << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (p == padding::pad) out += "==";
  } else if (rest == 2) {
    const unsigned v = (unsigned{in[i]} << 16) | (unsigned{in[i + 1]} << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    if (p == padding::pad) out += '=';
  }
  return out;
}

// Decodes unpadded text; the callers have already removed and checked any padding.
std::optional<std::string> decode(std::string_view text, const decode_table& table) {
  if (text.size() % 4 == 1) return std::nullopt;  // no byte count encodes to 4n+1 characters
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  unsigned acc = 0;
  int bits = 0;
  for (const char c : text) {
    const unsigned char v = table[static_cast<unsigned char>(c)];
    if (v == invalid) return std::nullopt;
    acc = ((acc << 6) | v) & 0xffffu;  // at most 10 bits are ever pending
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // Leftover bits must be zero: otherwise two texts would decode to the same bytes, and a token
  // could be altered without changing what is verified.
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

std::span<const unsigned char> as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

[[noreturn]] void throw_openssl(const char* what) {
  const unsigned long code = ERR_get_error();
  std::string message = std::string(what) + " failed";
  if (code != 0) {
    std::array<char, 256> buf{};
    ERR_error_string_n(code, buf.data(), buf.size());
    message += ": ";
    message += buf.data();
  }
  ERR_clear_error();
  throw std::runtime_error(message);
}

}  // namespace

std::string base64url_encode(std::string_view bytes, padding p) {
  return encode(as_bytes(bytes), url_alphabet, p);
}

std::string base64url_encode(std::span<const unsigned char> bytes, padding p) {
  return encode(bytes, url_alphabet, p);
}

std::optional<std::string> base64url_decode(std::string_view text) {
  return decode(text, url_table);
}

std::string base64_encode(std::string_view bytes) {
  return encode(as_bytes(bytes), std_alphabet, padding::pad);
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  // decode() rejects any '=' left inside, including a third one.
  return decode(text.substr(0, text.size() - pad), std_table);
}

digest sha256(std::string_view bytes) {
  digest out{};
  unsigned int len = 0;
  // EVP_Digest wants a non-null pointer even for zero bytes on some builds.
  const void* data = bytes.empty() ? static_cast<const void*>(out.data()) : bytes.data();
  // EVP_sha256() is looked up again by every EVP_Digest call; the fetched one is not.
  static EVP_MD* const algorithm = EVP_MD_fetch(nullptr, "SHA256", nullptr);  // kept for the process
  if (algorithm == nullptr) throw_openssl("EVP_MD_fetch(SHA256)");
  if (EVP_Digest(data, bytes.size(), out.data(), &len, algorithm, nullptr) != 1 || len != out.size()) {
    throw_openssl("EVP_Digest(SHA-256)");
  }
  return out;
}

digest hmac_sha256(std::string_view key, std::string_view message) {
  // EVP_Q_mac looks the algorithm up by name and builds a context on every call, which cost more
  // than the MAC itself. The algorithm is fetched once per process and each thread keeps one
  // context with SHA-256 set; EVP_MAC_init with the key resets it for each message.
  static EVP_MAC* const algorithm = EVP_MAC_fetch(nullptr, "HMAC", nullptr);  // kept for the process
  if (algorithm == nullptr) throw_openssl("EVP_MAC_fetch(HMAC)");
  struct context_free {
    void operator()(EVP_MAC_CTX* c) const noexcept { EVP_MAC_CTX_free(c); }
  };
  thread_local std::unique_ptr<EVP_MAC_CTX, context_free> ctx;
  if (!ctx) {
    std::unique_ptr<EVP_MAC_CTX, context_free> fresh(EVP_MAC_CTX_new(algorithm));
    if (!fresh) throw_openssl("EVP_MAC_CTX_new(HMAC)");
    char sha256[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, sha256, 0),
                                 OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(fresh.get(), params) != 1) throw_openssl("EVP_MAC_CTX_set_params(SHA256)");
    ctx = std::move(fresh);
  }
  digest out{};
  std::size_t len = 0;
  static constexpr unsigned char empty[1] = {0};
  const auto* key_ptr = key.empty() ? empty : reinterpret_cast<const unsigned char*>(key.data());
  const auto* msg_ptr = message.empty() ? empty : reinterpret_cast<const unsigned char*>(message.data());
  if (EVP_MAC_init(ctx.get(), key_ptr, key.size(), nullptr) != 1 ||
      EVP_MAC_update(ctx.get(), msg_ptr, message.size()) != 1 ||
      EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) != 1 || len != out.size()) {
    throw_openssl("HMAC-SHA256");
  }
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  return constant_time_equal(as_bytes(a), as_bytes(b));
}

bool constant_time_equal(std::span<const unsigned char> a, std::span<const unsigned char> b) noexcept {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string hex_encode(std::span<const unsigned char> bytes) {
  constexpr std::string_view digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const unsigned char b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

std::string random_id(std::string_view prefix, std::size_t length) {
  constexpr std::string_view alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  // Bytes >= 248 are dropped so that `b % 62` is uniform (248 = 4 * 62).
  constexpr unsigned limit = 248;
  std::string out{prefix};
  out.reserve(prefix.size() + length);
  std::array<unsigned char, 64> pool{};
  while (out.size() < prefix.size() + length) {
    if (RAND_bytes(pool.data(), static_cast<int>(pool.size())) != 1) throw_openssl("RAND_bytes");
    for (const unsigned char b : pool) {
      if (b >= limit) continue;
      out += alphabet[b % alphabet.size()];
      if (out.size() == prefix.size() + length) break;
    }
  }
  return out;
}

}  // namespace shopd::bus::crypto
