#include "shopd/relay/duration.hpp"

#include "shopd/text/blank.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <string>

namespace shopd::relay {

namespace {

constexpr bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

bool all_digits(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_digit(c)) return false;
  return true;
}

std::optional<std::int64_t> to_int64(std::string_view digits) noexcept {
  std::int64_t v = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc{} || ptr != digits.data() + digits.size()) return std::nullopt;
  return v;
}

using text::trim_blanks;

error duration_error(std::string_view text, std::string_view why) {
  return make_error(errc::invalid_duration,
                    "invalid duration '" + std::string(text) + "': " + std::string(why));
}

constexpr std::int64_t one_day_ns = one_day_ms * 1'000'000;
constexpr std::int64_t cap_ns = 2 * one_day_ns;

struct go_unit {
  std::string_view name;
  std::int64_t ns;
};
constexpr std::array<go_unit, 8> go_units{{
    {"ns", 1},
    {"us", 1'000},
    {"\xC2\xB5s", 1'000},  // U+00B5 micro sign
    {"\xCE\xBCs", 1'000},  // U+03BC Greek mu
    {"ms", 1'000'000},
    {"s", 1'000'000'000},
    {"m", 60'000'000'000},
    {"h", 3'600'000'000'000},
}};

// A Go duration (time.ParseDuration's grammar) in nanoseconds, or nullopt when malformed. The
// magnitude saturates at `cap_ns`: callers only need to know it is above one day.
std::optional<std::int64_t> parse_go_duration_ns(std::string_view s) {
  bool negative = false;
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return 0;
  if (s.empty()) return std::nullopt;
  std::int64_t total = 0;
  while (!s.empty()) {
    std::size_t i = 0;
    std::int64_t whole = 0;
    bool digits_before = false;
    while (i < s.size() && is_digit(s[i])) {
      if (whole <= cap_ns) whole = whole * 10 + (s[i] - '0');  // saturates above the cap
      digits_before = true;
      ++i;
    }
    std::int64_t frac = 0;
    double frac_scale = 1;
    bool digits_after = false;
    if (i < s.size() && s[i] == '.') {
      ++i;
      while (i < s.size() && is_digit(s[i])) {
        if (frac_scale < 1e18) {  // digits beyond 10^-18 cannot matter at nanosecond resolution
          frac = frac * 10 + (s[i] - '0');
          frac_scale *= 10;
        }
        digits_after = true;
        ++i;
      }
    }
    if (!digits_before && !digits_after) return std::nullopt;
    std::size_t unit_start = i;
    while (i < s.size() && s[i] != '.' && !is_digit(s[i])) ++i;
    std::string_view unit = s.substr(unit_start, i - unit_start);
    auto u = std::find_if(go_units.begin(), go_units.end(), [&](const go_unit& g) { return g.name == unit; });
    if (u == go_units.end()) return std::nullopt;
    const std::int64_t unit_ns = u->ns;
    if (whole > cap_ns / unit_ns) {
      total = cap_ns;
    } else {
      // As Go does: the fraction goes through floating point and is truncated to whole nanoseconds.
      auto part = whole * unit_ns + static_cast<std::int64_t>(static_cast<double>(frac) *
                                                              (static_cast<double>(unit_ns) / frac_scale));
      total = std::min(cap_ns, total + part);
    }
    s.remove_prefix(i);
  }
  return negative ? -total : total;
}

// A tiny cursor over an HTTP date.
class date_reader {
 public:
  explicit date_reader(std::string_view s) : s_(s) {}

  bool literal(std::string_view lit) {
    if (s_.substr(i_, lit.size()) != lit) return false;
    i_ += lit.size();
    return true;
  }
  // Exactly `n` digits.
  bool digits(std::size_t n, int& out) {
    if (i_ + n > s_.size()) return false;
    int v = 0;
    for (std::size_t k = 0; k < n; ++k) {
      char c = s_[i_ + k];
      if (!is_digit(c)) return false;
      v = v * 10 + (c - '0');
    }
    i_ += n;
    out = v;
    return true;
  }
  // One of `names`; its index in `idx`.
  template <std::size_t N>
  bool one_of(const std::array<std::string_view, N>& names, int& idx) {
    for (std::size_t k = 0; k < N; ++k) {
      if (literal(names[k])) {
        idx = static_cast<int>(k);
        return true;
      }
    }
    return false;
  }
  bool time_of_day(int& h, int& m, int& sec) {
    return digits(2, h) && literal(":") && digits(2, m) && literal(":") && digits(2, sec);
  }
  [[nodiscard]] bool at_end() const { return i_ == s_.size(); }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

constexpr std::array<std::string_view, 7> short_days{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> long_days{"Monday", "Tuesday",  "Wednesday", "Thursday",
                                                    "Friday", "Saturday", "Sunday"};
constexpr std::array<std::string_view, 12> months{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

std::optional<std::int64_t> to_unix_ms(int year, int month_index, int day, int h, int m, int s) {
  using namespace std::chrono;
  year_month_day ymd{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month_index + 1)},
                     std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok() || h > 23 || m > 59 || s > 60) return std::nullopt;  // 60: a leap second
  auto days_since_epoch = sys_days{ymd}.time_since_epoch().count();
  return (static_cast<std::int64_t>(days_since_epoch) * 86'400 + h * 3'600 + m * 60 + s) * 1000;
}

}  // namespace

result<std::int64_t> parse_duration_ms(std::string_view text) {
  if (text.empty()) return duration_error(text, "empty");
  if (all_digits(text)) {
    auto secs = to_int64(text);
    if (!secs || *secs > max_duration_ms / 1000) return duration_error(text, "too long");
    return *secs * 1000;
  }
  std::int64_t total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    while (i < text.size() && is_digit(text[i])) ++i;
    if (i == start)
      return duration_error(text, "expected a number at position " + std::to_string(start) +
                                      " (use <n><unit> groups with unit d, h, m or s, e.g. 10s or 1d10h30m)");
    if (i == text.size()) return duration_error(text, "missing unit after the last number (d, h, m or s)");
    std::int64_t unit_ms = 0;
    switch (text[i]) {
      case 'd':
        unit_ms = one_day_ms;
        break;
      case 'h':
        unit_ms = 3'600'000;
        break;
      case 'm':
        unit_ms = 60'000;
        break;
      case 's':
        unit_ms = 1'000;
        break;
      default:
        return duration_error(text, "unknown unit '" + std::string(1, text[i]) + "' (use d, h, m or s)");
    }
    // "10ms" would otherwise read as 10 minutes followed by a stray 's'.
    if (text[i] == 'm' && i + 1 < text.size() && text[i + 1] == 's')
      return duration_error(text, "unknown unit 'ms' (use d, h, m or s)");
    auto value = to_int64(text.substr(start, i - start));
    if (!value || *value > max_duration_ms / unit_ms) return duration_error(text, "too long");
    total += *value * unit_ms;
    if (total > max_duration_ms) return duration_error(text, "too long");
    ++i;
  }
  return total;
}

std::optional<std::int64_t> parse_http_date_ms(std::string_view text) {
  int wday = 0, day = 0, mon = 0, year = 0, h = 0, m = 0, s = 0;
  {  // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    date_reader r(text);
    if (r.one_of(short_days, wday) && r.literal(", ") && r.digits(2, day) && r.literal(" ") &&
        r.one_of(months, mon) && r.literal(" ") && r.digits(4, year) && r.literal(" ") &&
        r.time_of_day(h, m, s) && r.literal(" GMT") && r.at_end())
      return to_unix_ms(year, mon, day, h, m, s);
  }
  {  // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT (two-digit years: 70-99 -> 19xx, else 20xx)
    date_reader r(text);
    if (r.one_of(long_days, wday) && r.literal(", ") && r.digits(2, day) && r.literal("-") &&
        r.one_of(months, mon) && r.literal("-") && r.digits(2, year) && r.literal(" ") &&
        r.time_of_day(h, m, s) && r.literal(" GMT") && r.at_end())
      return to_unix_ms(year >= 70 ? 1900 + year : 2000 + year, mon, day, h, m, s);
  }
  {  // asctime: Sun Nov  6 08:49:37 1994
    date_reader r(text);
    if (r.one_of(short_days, wday) && r.literal(" ") && r.one_of(months, mon) && r.literal(" ")) {
      bool day_ok = r.literal(" ") ? r.digits(1, day) : r.digits(2, day);
      if (day_ok && r.literal(" ") && r.time_of_day(h, m, s) && r.literal(" ") && r.digits(4, year) &&
          r.at_end())
        return to_unix_ms(year, mon, day, h, m, s);
    }
  }
  return std::nullopt;
}

std::optional<std::int64_t> parse_retry_after_ms(std::string_view value, std::int64_t now_ms) {
  value = trim_blanks(value);
  if (value.empty()) return std::nullopt;
  if (all_digits(value)) {
    auto secs = to_int64(value);
    if (!secs || *secs > one_day_ms / 1000) return std::nullopt;
    return *secs * 1000;
  }
  if ((value.front() >= 'A' && value.front() <= 'Z')) {
    auto at = parse_http_date_ms(value);
    if (!at) return std::nullopt;
    // Compared before subtracting: a far-future date must not overflow.
    if (*at <= now_ms) return 0;
    if (*at - now_ms > one_day_ms) return std::nullopt;
    return *at - now_ms;
  }
  auto ns = parse_go_duration_ns(value);
  if (!ns || *ns < 0 || *ns > one_day_ns) return std::nullopt;
  // Round up: retrying before the time the server named would only fail again.
  return (*ns + 999'999) / 1'000'000;
}

}  // namespace shopd::relay
