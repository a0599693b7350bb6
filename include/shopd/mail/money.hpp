#pragma once
/// Money as the events carry it: an integer amount of minor units plus an ISO 4217 currency code.

#include <cstdint>
#include <string>
#include <string_view>

namespace shopd::mail {

/// Decimal places of the currency's minor unit (ISO 4217): 0 for JPY, KRW and the other
/// zero-decimal currencies, 3 for BHD, IQD, JOD, KWD, LYD, OMR and TND, 4 for CLF and UYW, and 2 for
/// every other code (including codes the table does not know).
[[nodiscard]] int currency_exponent(std::string_view currency) noexcept;

/// True for three upper-case ASCII letters (the shape of an ISO 4217 alphabetic code).
[[nodiscard]] bool is_currency_code(std::string_view currency) noexcept;

/// `1250, "EUR"` → `"12.50 EUR"`; `1250, "JPY"` → `"1250 JPY"`; `-5, "EUR"` → `"-0.05 EUR"`;
/// `1250, "KWD"` → `"1.250 KWD"`. No grouping separators, '.' as the decimal mark, the code after a
/// space. Defined for every int64 value, INT64_MIN included.
[[nodiscard]] std::string format_money(std::int64_t minor_units, std::string_view currency);

}  // namespace shopd::mail
