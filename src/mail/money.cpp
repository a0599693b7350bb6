#include "shopd/mail/money.hpp"

#include <algorithm>
#include <array>

namespace shopd::mail {

namespace {

struct exponent_entry {
  std::string_view code;
  int exponent;
};

// ISO 4217 minor units that differ from the common 2. Sorted by code for the binary search.
constexpr std::array<exponent_entry, 26> exponents{{
    {"BHD", 3}, {"BIF", 0}, {"CLF", 4}, {"CLP", 0}, {"DJF", 0}, {"GNF", 0}, {"IQD", 3},
    {"ISK", 0}, {"JOD", 3}, {"JPY", 0}, {"KMF", 0}, {"KRW", 0}, {"KWD", 3}, {"LYD", 3},
    {"OMR", 3}, {"PYG", 0}, {"RWF", 0}, {"TND", 3}, {"UGX", 0}, {"UYI", 0}, {"UYW", 4},
    {"VND", 0}, {"VUV", 0}, {"XAF", 0}, {"XOF", 0}, {"XPF", 0},
}};

static_assert(std::is_sorted(exponents.begin(), exponents.end(),
                             [](const auto& a, const auto& b) { return a.code < b.code; }));

}  // namespace

int currency_exponent(std::string_view currency) noexcept {
  const auto it = std::lower_bound(exponents.begin(), exponents.end(), currency,
                                   [](const exponent_entry& e, std::string_view c) { return e.code < c; });
  return it != exponents.end() && it->code == currency ? it->exponent : 2;
}

bool is_currency_code(std::string_view currency) noexcept {
  return currency.size() == 3 &&
         std::all_of(currency.begin(), currency.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

std::string format_money(std::int64_t minor_units, std::string_view currency) {
  // The magnitude as unsigned so that INT64_MIN has one too.
  const bool negative = minor_units < 0;
  const std::uint64_t magnitude = negative ? std::uint64_t{0} - static_cast<std::uint64_t>(minor_units)
                                           : static_cast<std::uint64_t>(minor_units);
  const int exponent = currency_exponent(currency);

  std::string digits = std::to_string(magnitude);
  if (exponent > 0) {
    const auto places = static_cast<std::size_t>(exponent);
    if (digits.size() <= places) digits.insert(0, places + 1 - digits.size(), '0');
    digits.insert(digits.size() - places, 1, '.');
  }

  std::string out;
  out.reserve(digits.size() + currency.size() + 2);
  if (negative) out += '-';
  out += digits;
  out += ' ';
  out += currency;
  return out;
}

}  // namespace shopd::mail
