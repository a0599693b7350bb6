#include "shopd/bus/signature.hpp"

#include "shopd/bus/crypto.hpp"

#include <boost/json.hpp>

#include <array>
#include <limits>
#include <string>

namespace shopd::bus {
namespace {

namespace json = boost::json;

constexpr std::string_view header_json = R"({"alg":"HS256","typ":"JWT"})";

std::int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::string body_claim(std::string_view body) {
  return crypto::base64url_encode(crypto::sha256(body), crypto::padding::pad);
}

std::string_view strip_padding(std::string_view s) {
  while (!s.empty() && s.back() == '=') s.remove_suffix(1);
  return s;
}

// A JWT segment parsed strictly: the text must be exactly one JSON object (Boost.JSON's defaults
// refuse comments, trailing commas and invalid UTF-8). Every webhook delivery parses two of these;
// a typical one fits the buffers here and costs no allocation. Not movable: the DOM lives in it.
class small_object {
 public:
  explicit small_object(std::string_view text) {
    json::parser p(json::storage_ptr(), {}, temp_, sizeof temp_);
    p.reset(json::storage_ptr(&resource_));
    boost::system::error_code ec;
    p.write(text, ec);
    if (!ec) value_ = p.release();
  }
  small_object(const small_object&) = delete;
  small_object& operator=(const small_object&) = delete;

  /// The object; nullptr when the text was not one.
  [[nodiscard]] const json::object* get() const noexcept { return value_.if_object(); }

 private:
  unsigned char temp_[512];
  unsigned char storage_[2048];
  json::monotonic_resource resource_{storage_, sizeof storage_};
  json::value value_;  // null until a parse succeeds
};

enum class presence { required, optional };

// Each lookup answers: absent (when optional), present with the right type, or malformed.
bool get_string(const json::object& o, std::string_view name, presence p, std::string& out) {
  const json::value* v = o.if_contains(name);
  if (v == nullptr) return p == presence::optional;
  if (!v->is_string()) return false;
  out.assign(v->get_string().data(), v->get_string().size());
  return true;
}

// NumericDates must be integers: QStash, jose's SignJWT and the other SDKs only emit integers, and
// refusing fractions avoids rounding decisions at the exp/nbf boundaries.
bool get_seconds(const json::object& o, std::string_view name, presence p, std::int64_t& out) {
  const json::value* v = o.if_contains(name);
  if (v == nullptr) return p == presence::optional;
  if (!v->is_int64()) return false;  // uint64 only holds values above INT64_MAX
  out = v->get_int64();
  return true;
}

std::optional<signature_claims> parse_claims(std::string_view text) {
  const small_object parsed(text);
  const json::object* obj = parsed.get();
  if (obj == nullptr) return std::nullopt;
  signature_claims c;
  if (!get_string(*obj, "iss", presence::required, c.issuer) ||
      !get_string(*obj, "sub", presence::required, c.subject) ||
      !get_seconds(*obj, "exp", presence::required, c.expires_at) ||
      !get_seconds(*obj, "nbf", presence::optional, c.not_before) ||
      !get_seconds(*obj, "iat", presence::optional, c.issued_at) ||
      !get_string(*obj, "jti", presence::optional, c.jwt_id) ||
      !get_string(*obj, "body", presence::required, c.body_hash)) {
    return std::nullopt;
  }
  return c;
}

// Saturating, so that absurd exp/nbf values near the int64 limits cannot wrap.
std::int64_t add_saturated(std::int64_t a, std::int64_t b) {
  if (b > 0 && a > std::numeric_limits<std::int64_t>::max() - b)
    return std::numeric_limits<std::int64_t>::max();
  if (b < 0 && a < std::numeric_limits<std::int64_t>::min() - b)
    return std::numeric_limits<std::int64_t>::min();
  return a + b;
}

}  // namespace

std::string sign(std::string_view key, std::string_view url, std::string_view body,
                 std::chrono::system_clock::time_point now) {
  return sign(key, url, body, now, crypto::random_id("jwt_"));
}

std::string sign(std::string_view key, std::string_view url, std::string_view body,
                 std::chrono::system_clock::time_point now, std::string_view jti) {
  if (key.empty()) throw std::invalid_argument("QStash signing key is empty");
  const std::int64_t iat = unix_seconds(now);
  // Member order as QStash emits it (reference §3.5), so tokens are byte-comparable with QStash's.
  json::object claims;
  claims["iss"] = signature_issuer;
  claims["sub"] = url;
  claims["exp"] = iat + signature_lifetime.count();
  claims["nbf"] = 0;
  claims["iat"] = iat;
  claims["jti"] = jti;
  claims["body"] = body_claim(body);

  std::string token = crypto::base64url_encode(header_json);
  token += '.';
  token += crypto::base64url_encode(json::serialize(claims));
  const crypto::digest mac = crypto::hmac_sha256(key, token);
  token += '.';
  token += crypto::base64url_encode(mac);
  return token;
}

verify_result verify(std::string_view token, const signing_keys& keys, std::string_view body,
                     std::chrono::system_clock::time_point now, const verify_options& opts) {
  if (keys.current.empty() && keys.next.empty()) return verify_error::no_signing_key;
  if (token.empty()) return verify_error::missing;
  if (token.size() > max_signature_size) return verify_error::too_large;

  const std::size_t dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return verify_error::malformed;
  const std::size_t dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return verify_error::malformed;
  }
  const auto header_text = crypto::base64url_decode(token.substr(0, dot1));
  const auto claims_text = crypto::base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  const auto mac = crypto::base64url_decode(token.substr(dot2 + 1));
  if (!header_text || !claims_text || !mac) return verify_error::malformed;

  // The header is the only part read before the MAC is checked, and only to pin the algorithm.
  const small_object parsed_header(*header_text);
  const json::object* header = parsed_header.get();
  if (header == nullptr) return verify_error::malformed;
  // RFC 7515 §4.1.11: extensions listed in `crit` must be understood; we understand none.
  if (header->contains("crit")) return verify_error::malformed;
  const json::value* alg = header->if_contains("alg");
  if (alg == nullptr || !alg->is_string()) return verify_error::malformed;
  if (alg->get_string() != "HS256") return verify_error::bad_algorithm;

  // The SDK's Receiver tries the current key, then the next one; the claim checks below do not depend
  // on the key, so "first key whose MAC matches" decides the same tokens.
  const std::string_view signing_input = token.substr(0, dot2);
  std::optional<signing_key_slot> slot;
  for (const auto& [key, which] : {std::pair{std::string_view{keys.current}, signing_key_slot::current},
                                   std::pair{std::string_view{keys.next}, signing_key_slot::next}}) {
    if (key.empty()) continue;
    if (crypto::constant_time_equal(crypto::as_string_view(crypto::hmac_sha256(key, signing_input)), *mac)) {
      slot = which;
      break;
    }
  }
  if (!slot) return verify_error::bad_signature;

  auto claims = parse_claims(*claims_text);
  if (!claims) return verify_error::malformed;
  claims->key = *slot;

  if (claims->issuer != signature_issuer) return verify_error::wrong_issuer;
  const std::int64_t now_s = unix_seconds(now);
  const std::int64_t tolerance = std::max<std::int64_t>(0, opts.clock_tolerance.count());
  // The same comparisons as jose: expired when exp <= now - tol; early when nbf > now + tol.
  if (claims->expires_at <= add_saturated(now_s, -tolerance)) return verify_error::expired;
  if (claims->not_before > add_saturated(now_s, tolerance)) return verify_error::not_yet_valid;

  if (opts.expected_url && claims->subject != *opts.expected_url) return verify_error::wrong_subject;

  const std::string expected_hash = body_claim(body);
  if (!crypto::constant_time_equal(strip_padding(claims->body_hash), strip_padding(expected_hash))) {
    return verify_error::body_mismatch;
  }
  return std::move(*claims);
}

std::string_view to_string(verify_error e) noexcept {
  switch (e) {
    case verify_error::no_signing_key:
      return "no_signing_key";
    case verify_error::missing:
      return "missing";
    case verify_error::too_large:
      return "too_large";
    case verify_error::malformed:
      return "malformed";
    case verify_error::bad_algorithm:
      return "bad_algorithm";
    case verify_error::bad_signature:
      return "bad_signature";
    case verify_error::wrong_issuer:
      return "wrong_issuer";
    case verify_error::expired:
      return "expired";
    case verify_error::not_yet_valid:
      return "not_yet_valid";
    case verify_error::wrong_subject:
      return "wrong_subject";
    case verify_error::body_mismatch:
      return "body_mismatch";
  }
  return "unknown";
}

std::string_view describe(verify_error e) noexcept {
  switch (e) {
    case verify_error::no_signing_key:
      return "no QStash signing key is configured (QSTASH_CURRENT_SIGNING_KEY / QSTASH_NEXT_SIGNING_KEY)";
    case verify_error::missing:
      return "the Upstash-Signature header is missing or empty";
    case verify_error::too_large:
      return "the signature is longer than 8 KiB";
    case verify_error::malformed:
      return "the signature is not a well-formed JWT (three base64url segments, JSON object header and "
             "claims, claims iss/sub/exp/body present with the right types)";
    case verify_error::bad_algorithm:
      return "the signature's algorithm is not HS256";
    case verify_error::bad_signature:
      return "the MAC matches neither the current nor the next signing key";
    case verify_error::wrong_issuer:
      return "the token's issuer is not Upstash";
    case verify_error::expired:
      return "the token has expired (exp is in the past beyond the clock tolerance)";
    case verify_error::not_yet_valid:
      return "the token is not valid yet (nbf is in the future beyond the clock tolerance)";
    case verify_error::wrong_subject:
      return "the token was issued for another URL (sub differs)";
    case verify_error::body_mismatch:
      return "the body does not match the token's body hash";
  }
  return "unknown signature verification error";
}

signature_error::signature_error(verify_error reason)
    : std::runtime_error("signature verification failed: " + std::string(describe(reason))),
      reason_(reason) {}

void throw_exception_from_error(verify_error e, const boost::source_location& /*loc*/) {
  throw signature_error(e);
}

}  // namespace shopd::bus
