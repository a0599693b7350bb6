#pragma once
/// `Upstash-Signature`: the JWT QStash puts on every delivery, made and checked exactly as QStash and
/// its SDKs do (reference/qstash-protocol.md §3). Shared by the relay (which signs deliveries), the
/// publisher's `--direct` mode, `shopd sign`, and every role's webhook (which verifies them).
///
/// Token format: compact JWS `b64url(header).b64url(claims).b64url(mac)`, segments unpadded, header
/// `{"alg":"HS256","typ":"JWT"}`, MAC = HMAC-SHA256 keyed with the signing-key string's own UTF-8
/// bytes (the console string, never base64-decoded). Claims: `iss` "Upstash", `sub` the destination
/// URL, `exp` = `iat` + 300 s, `nbf` 0, `iat`, `jti` "jwt_<random>", and `body` = base64url of
/// SHA-256 over the raw body bytes, with `=` padding.
///
/// All functions are pure apart from reading the CSPRNG for `jti`, and thread-safe.

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace shopd::bus {

/// A QStash account's two signing keys, as shown in the console (`sig_...`). QStash signs with
/// `current`; receivers also accept `next` so that they survive one key roll. An empty string means
/// "not configured": an empty key never signs and never verifies anything.
struct signing_keys {
  std::string current;
  std::string next;
};

/// The issuer every QStash token names.
inline constexpr std::string_view signature_issuer = "Upstash";
/// How long a token QStash (and `sign`) makes stays valid.
inline constexpr std::chrono::seconds signature_lifetime{300};
/// Longer `Upstash-Signature` values are refused before any decoding. A QStash token is ~400 bytes
/// plus the URL, so this leaves room for URLs of several KiB while bounding the work per request.
inline constexpr std::size_t max_signature_size = 8 * 1024;

/// Make the token QStash would send for a request of `body` bytes to `url` at `now`, signed with
/// `key`. `jti` is `jwt_` plus 22 random characters. Throws std::invalid_argument if `key` is empty,
/// and std::runtime_error only if the CSPRNG or OpenSSL fails.
[[nodiscard]] std::string sign(std::string_view key, std::string_view url, std::string_view body,
                               std::chrono::system_clock::time_point now);

/// Same, with a caller-chosen `jti` (for reproducible tokens in tests and tools).
[[nodiscard]] std::string sign(std::string_view key, std::string_view url, std::string_view body,
                               std::chrono::system_clock::time_point now, std::string_view jti);

/// Why a token was refused. Listed in the order `verify` checks them.
enum class verify_error {
  no_signing_key,  ///< both configured keys are empty: the receiver is misconfigured
  missing,         ///< no token (empty header value)
  too_large,       ///< longer than max_signature_size
  malformed,       ///< not three strict base64url segments; header or claims not a JSON object;
                   ///< a required claim (iss, sub, exp, body) missing or of the wrong type
  bad_algorithm,   ///< header `alg` is not "HS256"
  bad_signature,   ///< the MAC matches neither the current nor the next key
  wrong_issuer,    ///< `iss` is not "Upstash"
  expired,         ///< `exp` <= now - clock tolerance
  not_yet_valid,   ///< `nbf` > now + clock tolerance
  wrong_subject,   ///< `sub` differs from the expected URL
  body_mismatch,   ///< `body` is not the SHA-256 of the received bytes
};

/// A stable snake_case name for logs and metrics labels, e.g. "bad_signature".
[[nodiscard]] std::string_view to_string(verify_error e) noexcept;
/// One sentence for a log line or a CLI message, e.g. "the token has expired (exp is in the past ...)".
[[nodiscard]] std::string_view describe(verify_error e) noexcept;

/// Which configured key verified a token (a sender on `next` means someone rolled the keys).
enum class signing_key_slot { current, next };

/// The claims of a token that passed verification.
struct signature_claims {
  std::string issuer;           ///< always "Upstash"
  std::string subject;          ///< `sub`: the URL the sender addressed
  std::int64_t expires_at = 0;  ///< `exp`, Unix seconds
  std::int64_t not_before = 0;  ///< `nbf`, Unix seconds; 0 when absent
  std::int64_t issued_at = 0;   ///< `iat`, Unix seconds; 0 when absent
  std::string jwt_id;           ///< `jti`; empty when absent
  std::string body_hash;        ///< `body` as sent (base64url SHA-256, padded or not)
  signing_key_slot key = signing_key_slot::current;
};

struct verify_options {
  /// Slack for clocks that disagree, applied to `exp` and `nbf` (the SDK's `clockTolerance`).
  /// Negative values count as zero.
  std::chrono::seconds clock_tolerance{5};
  /// When set, `sub` must equal it byte for byte. Take it from configuration (the URL this service
  /// is published under), never from `Host`: proxies change scheme and host.
  std::optional<std::string> expected_url;
};

using verify_result = boost::system::result<signature_claims, verify_error>;

/// Check an `Upstash-Signature` value against the raw request body, as the SDK's `Receiver` does but
/// reporting which check failed: size; three strict base64url segments; header a JSON object with
/// `alg` "HS256" (QStash only emits HS256; jose's acceptance of HS384/HS512 for any HMAC key is not
/// copied); MAC under `keys.current`, else `keys.next`; claims a JSON object with the required claims
/// (integer NumericDates; QStash never sends fractions); `iss`; `exp`/`nbf` against `now` with the
/// tolerance; then `sub` if `expected_url` is set; then `body` against SHA-256(`body`), ignoring
/// trailing `=` on both sides. MACs and hashes are compared in constant time. `iat`, `typ` and `jti`
/// are not checked (QStash gives no replay guarantee; dedupe on `Upstash-Message-Id`).
///
/// Returns the claims, or the first failed check. No input makes it throw; only std::bad_alloc or an
/// internal OpenSSL failure (std::runtime_error) can escape.
[[nodiscard]] verify_result verify(std::string_view token, const signing_keys& keys, std::string_view body,
                                   std::chrono::system_clock::time_point now,
                                   const verify_options& opts = {});

/// Thrown by `verify_result::value()` on a failed verification (via the hook below).
class signature_error : public std::runtime_error {
 public:
  explicit signature_error(verify_error reason);
  [[nodiscard]] verify_error reason() const noexcept { return reason_; }

 private:
  verify_error reason_;
};

/// Boost.System's hook for `result<T, verify_error>::value()`; found by argument-dependent lookup.
[[noreturn]] void throw_exception_from_error(verify_error e, const boost::source_location& loc);

}  // namespace shopd::bus
