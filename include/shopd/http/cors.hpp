#pragma once
/// CORS for one listener, from configuration. Origins are matched exactly (scheme://host[:port]);
/// "*" allows any origin (and is refused together with credentials, as browsers refuse it).

#include "shopd/http/message.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shopd::http {

struct cors_policy {
  std::vector<std::string> allowed_origins;  ///< empty: CORS disabled (no headers added)
  std::string allowed_headers = "Content-Type, Authorization";
  bool allow_credentials = false;
  std::int64_t max_age_s = 600;

  /// From the comma-separated CORS_ALLOWED_ORIGINS etc. Throws std::invalid_argument for "*" with
  /// credentials or an origin that is not scheme://host[:port].
  static cors_policy from_config(std::string_view origins_csv, std::string_view headers, bool credentials,
                                 std::int64_t max_age_s);

  [[nodiscard]] bool enabled() const noexcept { return !allowed_origins.empty(); }
  [[nodiscard]] bool allows(std::string_view origin) const noexcept;
};

/// True for an OPTIONS request with Origin and Access-Control-Request-Method.
[[nodiscard]] bool is_preflight(const request& req);

/// Answer a preflight: 204 with the Access-Control-Allow-* headers when the origin and requested
/// method are allowed, 403 in the JSON error shape otherwise. `methods` are the path's methods.
[[nodiscard]] response preflight_response(const cors_policy& policy, const request& req,
                                          const std::vector<verb>& methods);

/// Add Access-Control-Allow-Origin (+ credentials, Vary: Origin) to an actual response when the
/// request's Origin is allowed. No-op otherwise.
void decorate(const cors_policy& policy, const request& req, response& res);

}  // namespace shopd::http
