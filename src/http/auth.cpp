#include "shopd/http/auth.hpp"

#include <openssl/crypto.h>
#include <boost/beast/core/string.hpp>

#include <algorithm>

namespace shopd::http {

std::optional<std::string_view> bearer_token(std::string_view header) noexcept {
  constexpr std::string_view scheme = "Bearer";
  if (header.size() <= scheme.size() || !boost::beast::iequals(header.substr(0, scheme.size()), scheme) ||
      header[scheme.size()] != ' ') {
    return std::nullopt;
  }
  auto token = header.substr(scheme.size());
  token.remove_prefix(std::min(token.find_first_not_of(' '), token.size()));
  token.remove_suffix(token.size() - (token.find_last_not_of(" \t") + 1));
  if (token.empty()) return std::nullopt;
  return token;
}

bool token_equals(std::string_view given, std::string_view expected) noexcept {
  return given.size() == expected.size() &&
         CRYPTO_memcmp(given.data(), expected.data(), expected.size()) == 0;
}

void require_bearer(const request_context& ctx, std::string_view expected) {
  if (expected.empty()) {
    throw http_error(status::service_unavailable, "not_configured",
                     "this endpoint needs SHOPD_API_TOKEN to be configured on the server");
  }
  const auto token = bearer_token(ctx.req[field::authorization]);
  if (!token || !token_equals(*token, expected)) {
    throw http_error(status::unauthorized, "unauthorized", "missing or invalid bearer token")
        .with_header("WWW-Authenticate", "Bearer");
  }
}

}  // namespace shopd::http
