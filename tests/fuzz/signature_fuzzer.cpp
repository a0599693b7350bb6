// Fuzzes bus::verify, the check every webhook runs on `Upstash-Signature` before it reads a body,
// with fixed keys, URL and clock. Input (text, so seeds can be made with `shopd sign`):
//   TOKEN '\n' BODY            the token verbatim; with only two segments (no MAC) the harness
//                              appends the MAC of the current key, so mutations reach the claims;
//   HEADER '\n' CLAIMS '\n' BODY   when the first line starts with '{': header and claims JSON that
//                              the harness base64url-encodes and signs with the current key.
// Properties besides "no crash, leak or UB": verify never throws; an accepted token names the
// expected URL, the issuer and the key that signed it, and is within its time window; the same
// token is refused under keys that do not include the signing key; every segment that decodes
// re-encodes to itself (one accepted spelling per byte string).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "shopd/bus/crypto.hpp"
#include "shopd/bus/signature.hpp"

namespace {

using namespace shopd::bus;
using shopd::fuzz::check;

// The keys, URL and time the checked-in seeds were made with (`shopd sign` at 2026-11-24 16:28 UTC).
constexpr std::string_view current_key = "sig_fuzz_current_7GqJ2mXw";
constexpr std::string_view next_key = "sig_fuzz_next_Lp4sV9cZ";
constexpr std::string_view url = "https://shop.example/api/webhooks/orders";
const std::chrono::system_clock::time_point now{std::chrono::seconds{1'795'537'760}};

std::string mac_of(std::string_view signing_input) {
  return crypto::base64url_encode(crypto::hmac_sha256(current_key, signing_input));
}

void check_canonical_segments(std::string_view token) {
  while (true) {
    const auto dot = token.find('.');
    const std::string_view segment = token.substr(0, dot);
    if (auto bytes = crypto::base64url_decode(segment)) {
      check(crypto::base64url_encode(*bytes) == segment, "a base64url segment has two spellings");
    }
    if (dot == std::string_view::npos) return;
    token.remove_prefix(dot + 1);
  }
}

void check_token(std::string_view token, std::string_view body) {
  check_canonical_segments(token);

  const signing_keys both{std::string(current_key), std::string(next_key)};
  const verify_options strict{.clock_tolerance = std::chrono::seconds{5}, .expected_url = std::string(url)};
  const auto r = verify(token, both, body, now, strict);
  if (!r) {
    check(!to_string(r.error()).empty() && !describe(r.error()).empty(), "an error without a name");
  } else {
    check(r->subject == url, "accepted a token for another URL");
    check(r->issuer == signature_issuer, "accepted a token from another issuer");
    const std::int64_t now_s =
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    check(r->expires_at > now_s - 5, "accepted an expired token");
    check(r->not_before <= now_s + 5, "accepted a token before its nbf");
    // Which key signed it is decided by the MAC alone: swapping the keys swaps the slot.
    const auto swapped = verify(token, {std::string(next_key), std::string(current_key)}, body, now, strict);
    check(swapped.has_value(), "a token verified under one key order only");
    check(swapped->key != r->key, "the key slot does not follow the key");
    const auto other = verify(token, {"sig_not_the_key", ""}, body, now, strict);
    check(!other && other.error() == verify_error::bad_signature, "accepted a token under a wrong key");
  }
  // Without an expected URL, and with a negative tolerance (counts as zero): must not throw either.
  (void)verify(token, {std::string(current_key), ""}, body, now,
               {.clock_tolerance = std::chrono::seconds{-3}});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto nl = in.find('\n');
  const std::string_view first = in.substr(0, nl);
  std::string_view rest = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);

  std::string token;
  if (first.starts_with('{')) {
    const auto nl2 = rest.find('\n');
    const std::string_view claims = rest.substr(0, nl2);
    rest = nl2 == std::string_view::npos ? std::string_view() : rest.substr(nl2 + 1);
    token = crypto::base64url_encode(first) + '.' + crypto::base64url_encode(claims);
    token += '.' + mac_of(token);
  } else {
    token = std::string(first);
    if (const auto dot = token.find('.');
        dot != std::string::npos && token.find('.', dot + 1) == std::string::npos)
      token += '.' + mac_of(token);
  }
  check_token(token, rest);
  return 0;
}
