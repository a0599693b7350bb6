#include "shopd/relay/headers.hpp"

#include <boost/json/array.hpp>
#include <boost/json/string.hpp>

#include <algorithm>

namespace shopd::relay {

namespace {

constexpr char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}
constexpr char ascii_upper(char c) noexcept {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
}

// RFC 9110 tchar.
constexpr bool is_tchar(char c) noexcept {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

template <class Header>
boost::json::object to_json_impl(std::span<const Header> headers) {
  boost::json::object out;
  for (const auto& h : headers) {
    auto name = canonical_header_name(h.name);
    auto it = out.find(name);
    if (it == out.end()) it = out.emplace(name, boost::json::array{}).first;
    it->value().as_array().emplace_back(boost::json::string_view(h.value.data(), h.value.size()));
  }
  return out;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

std::optional<std::string_view> find_header(std::span<const header_view> headers,
                                            std::string_view name) noexcept {
  for (const auto& h : headers)
    if (iequals(h.name, name)) return h.value;
  return std::nullopt;
}

bool is_header_name(std::string_view name) noexcept {
  return !name.empty() && std::all_of(name.begin(), name.end(), is_tchar);
}

bool is_header_value(std::string_view value) noexcept {
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

std::string canonical_header_name(std::string_view name) {
  std::string out(name);
  if (!is_header_name(name)) return out;
  bool upper = true;
  for (auto& c : out) {
    c = upper ? ascii_upper(c) : ascii_lower(c);
    upper = c == '-';
  }
  return out;
}

boost::json::object headers_to_json(std::span<const header> headers) {
  return to_json_impl(headers);
}
boost::json::object headers_to_json(std::span<const header_view> headers) {
  return to_json_impl(headers);
}

result<header_list> headers_from_json(const boost::json::value& v) {
  const auto* obj = v.if_object();
  if (obj == nullptr)
    return make_error(errc::invalid_stored_value, "headers: expected a JSON object", "headers");
  header_list out;
  for (const auto& [key, value] : *obj) {
    std::string name(key);
    if (const auto* s = value.if_string()) {
      out.push_back({name, std::string(*s)});
    } else if (const auto* arr = value.if_array()) {
      for (const auto& item : *arr) {
        const auto* is = item.if_string();
        if (is == nullptr)
          return make_error(errc::invalid_stored_value, "headers: values of '" + name + "' must be strings",
                            "headers");
        out.push_back({name, std::string(*is)});
      }
    } else {
      return make_error(errc::invalid_stored_value,
                        "headers: '" + name + "' must be a string or an array of strings", "headers");
    }
  }
  return out;
}

}  // namespace shopd::relay
