#include "shopd/http/auth.hpp"

#include <openssl/crypto.h>

namespace shopd::http {

void require_bearer(const request_context& ctx, std::string_view expected) {
  if (expected.empty()) {
    throw http_error(status::service_unavailable, "not_configured",
                     "this endpoint needs SHOPD_API_TOKEN to be configured on the server");
  }
  const auto header = ctx.req[field::authorization];
  constexpr std::string_view scheme = "Bearer ";
  const bool ok = header.size() == scheme.size() + expected.size() &&
                  header.substr(0, scheme.size()) == scheme &&
                  CRYPTO_memcmp(header.data() + scheme.size(), expected.data(), expected.size()) == 0;
  if (!ok) {
    throw http_error(status::unauthorized, "unauthorized", "missing or invalid bearer token")
        .with_header("WWW-Authenticate", "Bearer");
  }
}

}  // namespace shopd::http
