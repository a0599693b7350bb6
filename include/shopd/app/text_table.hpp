#pragma once
/// Plain-text output shared by the commands that print tables (`shopd dlq list`, `shopd outbox
/// list`).

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace shopd {

/// Rows of cells in columns, each column as wide as its widest cell plus two spaces (the last
/// column unpadded). The first row is usually the heading.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows);

/// "2026-11-24 13:57:00" (UTC) for Unix milliseconds; "-" when it cannot be shown.
[[nodiscard]] std::string utc_time(std::int64_t unix_ms);

}  // namespace shopd
