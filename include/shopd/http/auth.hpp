#pragma once
/// Bearer-token checks for the role APIs (SHOPD_API_TOKEN guards writes and private reads) and the
/// relay's REST API (QSTASH_TOKEN).

#include "shopd/http/router.hpp"

#include <optional>
#include <string_view>

namespace shopd::http {

/// The token of an `Authorization: Bearer <token>` header value (RFC 6750 §2.1), or nullopt when
/// the value is not of that form. The scheme name is case-insensitive (RFC 9110 §11.1: `bearer`
/// and `BEARER` are `Bearer`), one or more spaces separate it from the token, and trailing
/// whitespace is not part of the token. Pure; the result points into `header`.
[[nodiscard]] std::optional<std::string_view> bearer_token(std::string_view header) noexcept;

/// Whether `given` equals `expected`, in time that depends only on their lengths.
[[nodiscard]] bool token_equals(std::string_view given, std::string_view expected) noexcept;

/// Throws http_error 401 (`unauthorized`, with `WWW-Authenticate: Bearer`) unless the request
/// carries `Authorization: Bearer <expected>`. The comparison is constant-time. An empty `expected`
/// (no token configured) refuses every request with 503 `not_configured`: a private API is never
/// open by accident.
void require_bearer(const request_context& ctx, std::string_view expected);

}  // namespace shopd::http
