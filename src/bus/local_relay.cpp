#include "shopd/bus/local_relay.hpp"

#include "shopd/http/client.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <string>

namespace shopd::bus {

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
    return http::reaches_bind_address(host, bind_address);
  } catch (...) {
    return false;  // out of memory: the HTTP way still works
  }
}

}  // namespace shopd::bus
