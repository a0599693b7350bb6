#pragma once
/// Bearer-token checks for the role APIs (SHOPD_API_TOKEN guards writes and private reads).

#include "shopd/http/router.hpp"

#include <string_view>

namespace shopd::http {

/// Throws http_error 401 (`unauthorized`, with `WWW-Authenticate: Bearer`) unless the request
/// carries `Authorization: Bearer <expected>`. The comparison is constant-time. An empty `expected`
/// (no token configured) refuses every request with 503 `not_configured`: a private API is never
/// open by accident.
void require_bearer(const request_context& ctx, std::string_view expected);

}  // namespace shopd::http
