#pragma once
/// The code points that leave a line of human text blank: a name or subject made of nothing else is
/// refused, by the event schemas, the orders role's catalogue check and the inventory API alike.

namespace shopd::text {

/// Unicode's White_Space characters (tab to carriage return, space, NEL, no-break space, ogham
/// space mark, U+2000-U+200A, the line and paragraph separators, the narrow no-break, medium
/// mathematical and ideographic spaces) and the two invisible ones that lay out as nothing: zero
/// width space (U+200B) and zero width no-break space (U+FEFF, the byte-order mark).
[[nodiscard]] constexpr bool is_space(char32_t cp) noexcept {
  return (cp >= 0x09 && cp <= 0x0D) || cp == ' ' || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200B) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000 || cp == 0xFEFF;
}

}  // namespace shopd::text
