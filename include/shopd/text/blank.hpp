#pragma once
/// Blanks (space and horizontal tab: HTTP's optional whitespace, and what configuration values, env
/// files and address lists are trimmed of).

#include <string_view>

namespace shopd::text {

[[nodiscard]] constexpr bool is_blank(char c) noexcept {
  return c == ' ' || c == '\t';
}

/// `s` without its leading and trailing blanks.
[[nodiscard]] constexpr std::string_view trim_blanks(std::string_view s) noexcept {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace shopd::text
