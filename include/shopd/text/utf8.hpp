#pragma once
/// UTF-8 as RFC 3629 defines it: no overlong forms, no surrogates (U+D800-U+DFFF), nothing above
/// U+10FFFF. The one implementation behind every check of text in shopd: event fields, mail
/// headers and bodies, relay headers and response bodies, log escaping.

#include <cstddef>
#include <optional>
#include <string_view>

namespace shopd::text {

/// The length (1-4) of the well-formed sequence that starts at s[i], or 0 when none does (a
/// continuation byte, a truncated, overlong or out-of-range sequence, a surrogate).
/// Requires i < s.size().
[[nodiscard]] std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept;

/// The code point of the well-formed sequence at s[i], with i moved past it; nullopt when none
/// starts there, with i moved past that one byte (so a loop over any bytes ends).
/// Requires i < s.size().
[[nodiscard]] std::optional<char32_t> next_code_point(std::string_view s, std::size_t& i) noexcept;

/// True when all of `s` is well-formed UTF-8 (the empty string is).
[[nodiscard]] bool is_valid_utf8(std::string_view s) noexcept;

/// The longest prefix of `s` of at most `max_bytes` bytes that does not end inside a multi-byte
/// sequence: text cut to fit a column or a log line stays as valid as it was.
[[nodiscard]] std::string_view utf8_prefix(std::string_view s, std::size_t max_bytes) noexcept;

}  // namespace shopd::text
