#pragma once
/// Small byte-level primitives shared by the signature code, the relay and the publisher: strict
/// base64/base64url codecs, SHA-256, HMAC-SHA256 (OpenSSL 3 EVP), constant-time comparison and
/// random identifiers. Bytes are carried in `std::string_view`/`std::string` (as Beast bodies are);
/// digests are fixed-size arrays. Every function is thread-safe and allocation is the only side
/// effect, except `random_id`, which reads the OpenSSL CSPRNG.

#include <array>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace shopd::bus::crypto {

/// A SHA-256 digest or HMAC-SHA256 tag.
using digest = std::array<unsigned char, 32>;

/// Whether an encoder appends `=` so the length is a multiple of 4.
enum class padding : bool { none, pad };

/// RFC 4648 §5 (alphabet `A-Z a-z 0-9 - _`). JWS segments are unpadded; QStash's `body` claim is padded.
[[nodiscard]] std::string base64url_encode(std::string_view bytes, padding p = padding::none);
[[nodiscard]] std::string base64url_encode(std::span<const unsigned char> bytes, padding p = padding::none);

/// Decode unpadded base64url, strictly: only the §5 alphabet, no `=`, no whitespace, no impossible
/// length (4n+1) and no non-zero bits after the last byte, so every byte string has exactly one
/// accepted encoding. std::nullopt on any violation.
[[nodiscard]] std::optional<std::string> base64url_decode(std::string_view text);

/// RFC 4648 §4 (alphabet `A-Z a-z 0-9 + /`), always padded: the form QStash uses for bodies in JSON
/// (`sourceBody`, callback `body`).
[[nodiscard]] std::string base64_encode(std::string_view bytes);

/// Decode padded standard base64, strictly (length a multiple of 4, `=` only as final padding,
/// canonical trailing bits, no whitespace). std::nullopt on any violation.
[[nodiscard]] std::optional<std::string> base64_decode(std::string_view text);

/// SHA-256 of `bytes`.
[[nodiscard]] digest sha256(std::string_view bytes);

/// HMAC-SHA256 (RFC 2104) of `message` under `key`; any key length, including zero.
[[nodiscard]] digest hmac_sha256(std::string_view key, std::string_view message);

/// Equality whose running time depends only on the lengths (CRYPTO_memcmp), for MACs and hashes.
/// Lengths are not secret: different lengths compare unequal at once.
[[nodiscard]] bool constant_time_equal(std::string_view a, std::string_view b) noexcept;
[[nodiscard]] bool constant_time_equal(std::span<const unsigned char> a,
                                       std::span<const unsigned char> b) noexcept;

/// Lowercase hexadecimal, e.g. for logging a digest.
[[nodiscard]] std::string hex_encode(std::span<const unsigned char> bytes);

/// `prefix` followed by `length` characters drawn uniformly from `[0-9A-Za-z]` with the OpenSSL
/// CSPRNG, e.g. `random_id("jwt_")`. 22 characters carry about 131 bits. Throws std::runtime_error
/// only if the CSPRNG fails (it cannot be seeded), which callers treat as fatal.
[[nodiscard]] std::string random_id(std::string_view prefix, std::size_t length = 22);

/// The bytes of a digest as a string view (valid as long as `d`).
[[nodiscard]] inline std::string_view as_string_view(const digest& d) noexcept {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

}  // namespace shopd::bus::crypto
