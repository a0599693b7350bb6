#pragma once
/// Durations as QStash writes them in headers, and the response headers a destination uses to say
/// when to retry (reference §0 and §2.3). Pure functions: no clock is read, `now` is passed in.

#include <cstdint>
#include <optional>
#include <string_view>

#include "shopd/relay/error.hpp"

namespace shopd::relay {

/// One day in milliseconds: the cap of every retry delay.
inline constexpr std::int64_t one_day_ms = 86'400'000;

/// Parse a QStash header duration (Upstash-Delay, Upstash-Timeout, Upstash-Callback-Delay...):
/// one or more `<digits><unit>` groups with unit `d`, `h`, `m` or `s` (lower case), e.g. `10s`,
/// `50s`, `1d10h30m`, `2m30s`. Groups may come in any order (as Go's time.ParseDuration allows).
/// A bare decimal integer is taken as seconds (`"30"` = `30s`) [policy: QStash's SDKs always send
/// a unit; plain numbers come from hand-written webhooks]. No sign, fraction, space or other unit
/// (`ms` included) is accepted.
/// Returns milliseconds. Fails with errc::invalid_duration for the empty string, a bad form, or a
/// total above 100 years (which also keeps every later `now + delay` from overflowing).
[[nodiscard]] result<std::int64_t> parse_duration_ms(std::string_view text);

/// The longest duration parse_duration_ms accepts.
inline constexpr std::int64_t max_duration_ms = 100LL * 365 * one_day_ms;

/// Parse the value of `Retry-After`, `X-RateLimit-Reset`, `X-RateLimit-Reset-Requests` or
/// `X-RateLimit-Reset-Tokens` into how long to wait from `now_ms` (Unix ms). Accepted forms:
///  - integer seconds: `120`, `0` (= retry now);
///  - an HTTP date (IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`; the obsolete RFC 850 and asctime
///    forms too, as RFC 9110 asks of recipients); a date in the past means now;
///  - a Go duration: `6m5s`, `1.5s`, `300ms`, `10us`, `10µs`, `100ns`, `1h`, `0` (units
///    ns us µs μs ms s m h, fractions allowed); sub-millisecond waits round up.
/// Leading and trailing blanks are ignored. Returns nullopt (= not usable, fall back to the default
/// back-off) for anything else, a negative value, or a wait above one day.
[[nodiscard]] std::optional<std::int64_t> parse_retry_after_ms(std::string_view value, std::int64_t now_ms);

/// The Unix-ms time of an HTTP date in any of the three forms above, or nullopt.
[[nodiscard]] std::optional<std::int64_t> parse_http_date_ms(std::string_view text);

}  // namespace shopd::relay
