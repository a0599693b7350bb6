#include "shopd/app/text_table.hpp"

#include <algorithm>
#include <array>
#include <ctime>
#include <ostream>

namespace shopd {

void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size());
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    out << line << '\n';
  }
}

std::string utc_time(std::int64_t unix_ms) {
  const auto seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  if (gmtime_r(&seconds, &tm) == nullptr) return "-";
  std::array<char, 32> buf{};
  const auto n = std::strftime(buf.data(), buf.size(), "%Y-%m-%d %H:%M:%S", &tm);
  return std::string(buf.data(), n);
}

}  // namespace shopd
