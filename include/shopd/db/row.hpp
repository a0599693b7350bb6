#pragma once
/// Reading columns of a dynamically typed `soci::row` whatever integer type the backend reports:
/// SQLite gives int or long long depending on the declared column type (and double or text for some
/// computed columns), PostgreSQL gives long long for BIGINT. Header-only; no state.

#include <soci/soci.h>

#include <charconv>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>

namespace shopd::db {

/// True when column `i` of `r` is SQL NULL.
[[nodiscard]] inline bool is_null(const soci::row& r, std::size_t i) {
  return r.get_indicator(i) == soci::i_null;
}

/// Column `i` as a 64-bit integer. Throws std::runtime_error naming the column when it holds no
/// integer (a schema mismatch), and soci::soci_error when it is NULL.
[[nodiscard]] inline long long int_at(const soci::row& r, std::size_t i) {
  switch (r.get_properties(i).get_data_type()) {
    case soci::dt_integer:
      return r.get<int>(i);
    case soci::dt_long_long:
      return r.get<long long>(i);
    case soci::dt_unsigned_long_long:
      return static_cast<long long>(r.get<unsigned long long>(i));
    case soci::dt_double:
      return static_cast<long long>(r.get<double>(i));
    case soci::dt_string: {
      const auto text = r.get<std::string>(i);
      long long value = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (ec == std::errc{} && end == text.data() + text.size()) return value;
      break;
    }
    default:
      break;
  }
  throw std::runtime_error("database row: column " + std::to_string(i) + " (" +
                           r.get_properties(i).get_name() + ") is not an integer");
}

/// Column `i` as an integer, or nullopt when it is NULL.
[[nodiscard]] inline std::optional<long long> opt_int_at(const soci::row& r, std::size_t i) {
  if (is_null(r, i)) return std::nullopt;
  return int_at(r, i);
}

/// Column `i` as text; NULL reads as the empty string.
[[nodiscard]] inline std::string text_at(const soci::row& r, std::size_t i) {
  if (is_null(r, i)) return {};
  return r.get<std::string>(i);
}

/// Column `i` as text, or nullopt when it is NULL.
[[nodiscard]] inline std::optional<std::string> opt_text_at(const soci::row& r, std::size_t i) {
  if (is_null(r, i)) return std::nullopt;
  return r.get<std::string>(i);
}

}  // namespace shopd::db
