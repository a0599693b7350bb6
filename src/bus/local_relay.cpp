#include "shopd/bus/local_relay.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <initializer_list>
#include <string>

namespace shopd::bus {

namespace {

std::string_view unbracketed(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') return host.substr(1, host.size() - 2);
  return host;
}

bool one_of(std::string_view s, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), s) != names.end();
}

}  // namespace

bool names_local_listener(std::string_view url, std::string_view bind_address, std::uint16_t port) noexcept {
  try {
    const auto parsed = boost::urls::parse_uri(url);
    if (!parsed) return false;
    const auto& u = *parsed;
    if (u.scheme_id() != boost::urls::scheme::http || u.has_userinfo() || u.has_query() || u.has_fragment())
      return false;
    if (!u.encoded_path().empty() && u.encoded_path() != "/") return false;
    const std::uint16_t named_port = u.has_port() ? u.port_number() : 80;
    if (port == 0 || named_port != port) return false;
    std::string host = u.host_address();  // host names are case-insensitive
    std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) {
      return static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    });
    const std::string_view h = unbracketed(host);
    const std::string_view bind = unbracketed(bind_address);
    if (h == bind) return true;
    if (h == "localhost") return one_of(bind, {"127.0.0.1", "::1", "0.0.0.0", "::"});
    if (h == "127.0.0.1") return one_of(bind, {"localhost", "0.0.0.0", "::"});
    if (h == "::1") return one_of(bind, {"localhost", "::"});
    return false;
  } catch (...) {
    return false;  // out of memory: the HTTP way still works
  }
}

}  // namespace shopd::bus
