#include "shopd/http/cors.hpp"

#include "shopd/text/blank.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace shopd::http {
namespace {

constexpr std::string_view wildcard = "*";

using text::trim_blanks;

bool is_alpha(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

/// scheme://host[:port], where host is a name, an IPv4 address or a bracketed IPv6 address.
bool valid_origin(std::string_view origin) {
  const auto sep = origin.find("://");
  if (sep == std::string_view::npos || sep == 0) return false;
  const auto scheme = origin.substr(0, sep);
  if (!is_alpha(scheme.front())) return false;
  if (!std::all_of(scheme.begin(), scheme.end(),
                   [](char c) { return is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.'; })) {
    return false;
  }
  std::string_view rest = origin.substr(sep + 3);
  std::string_view host;
  if (rest.starts_with('[')) {
    const auto close = rest.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    host = rest.substr(1, close - 1);
    if (!std::all_of(host.begin(), host.end(), [](char c) {
          return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
        })) {
      return false;
    }
    rest.remove_prefix(close + 1);
  } else {
    const auto colon = rest.find(':');
    host = rest.substr(0, colon);
    if (host.empty() || !std::all_of(host.begin(), host.end(), [](char c) {
          return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_';
        })) {
      return false;
    }
    rest.remove_prefix(host.size());
  }
  if (rest.empty()) return true;
  if (rest.front() != ':' || rest.size() < 2 || rest.size() > 6) return false;
  const auto digits = rest.substr(1);
  unsigned port = 0;
  const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  return r.ec == std::errc{} && r.ptr == digits.data() + digits.size() && port >= 1 && port <= 65535;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; });
  return out;
}

bool has_wildcard(const cors_policy& policy) {
  return std::find(policy.allowed_origins.begin(), policy.allowed_origins.end(), wildcard) !=
         policy.allowed_origins.end();
}

/// "*" can only be answered when credentials are off; otherwise the origin is echoed, and caches
/// must then key on it.
void set_allow_origin(const cors_policy& policy, std::string_view origin, response& res,
                      std::string_view vary_extra = {}) {
  if (has_wildcard(policy) && !policy.allow_credentials) {
    res.set(field::access_control_allow_origin, wildcard);
  } else {
    res.set(field::access_control_allow_origin, origin);
    std::string vary(res[field::vary]);
    if (vary.empty()) {
      vary = "Origin";
    } else if (vary.find("Origin") == std::string::npos) {
      vary += ", Origin";
    }
    if (!vary_extra.empty()) {
      vary += ", ";
      vary += vary_extra;
    }
    res.set(field::vary, vary);
  }
  if (policy.allow_credentials) res.set(field::access_control_allow_credentials, "true");
}

}  // namespace

cors_policy cors_policy::from_config(std::string_view origins_csv, std::string_view headers, bool credentials,
                                     std::int64_t max_age_s) {
  cors_policy policy;
  policy.allow_credentials = credentials;
  if (max_age_s < 0) throw std::invalid_argument("CORS max age must not be negative");
  policy.max_age_s = max_age_s;
  policy.allowed_headers = std::string(trim_blanks(headers));

  std::string_view rest = origins_csv;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const auto item = trim_blanks(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    if (item.empty()) continue;
    if (item == wildcard) {
      if (credentials) {
        throw std::invalid_argument(
            "CORS origin '*' cannot be combined with credentials (browsers refuse it)");
      }
    } else if (!valid_origin(item)) {
      throw std::invalid_argument("CORS origin '" + std::string(item) + "' is not scheme://host[:port]");
    }
    // Browsers send scheme and host in lower case; the configuration may not.
    auto origin = lowercase(item);
    if (std::find(policy.allowed_origins.begin(), policy.allowed_origins.end(), origin) ==
        policy.allowed_origins.end()) {
      policy.allowed_origins.push_back(std::move(origin));
    }
  }
  return policy;
}

bool cors_policy::allows(std::string_view origin) const noexcept {
  if (origin.empty()) return false;
  return std::any_of(allowed_origins.begin(), allowed_origins.end(),
                     [&](const std::string& allowed) { return allowed == wildcard || allowed == origin; });
}

bool is_preflight(const request& req) {
  return req.method() == verb::options && req.find(field::origin) != req.end() &&
         req.find(field::access_control_request_method) != req.end();
}

response preflight_response(const cors_policy& policy, const request& req, const std::vector<verb>& methods) {
  const auto origin = req[field::origin];
  if (!policy.allows(origin)) {
    return json_error(status::forbidden, "cors_rejected", "origin not allowed");
  }
  const verb requested = bhttp::string_to_verb(req[field::access_control_request_method]);
  const auto has = [&](verb v) { return std::find(methods.begin(), methods.end(), v) != methods.end(); };
  // HEAD is served by the GET route, so it is allowed wherever GET is.
  const bool allowed =
      requested != verb::unknown && (has(requested) || (requested == verb::head && has(verb::get)));
  if (!allowed) {
    return json_error(status::forbidden, "cors_rejected", "method not allowed for this path");
  }

  response res{status::no_content, 11};
  set_allow_origin(policy, origin, res, "Access-Control-Request-Method, Access-Control-Request-Headers");
  std::string list;
  for (const verb v : methods) {
    if (!list.empty()) list += ", ";
    list += bhttp::to_string(v);
  }
  res.set(field::access_control_allow_methods, list);
  if (!policy.allowed_headers.empty()) res.set(field::access_control_allow_headers, policy.allowed_headers);
  res.set(field::access_control_max_age, std::to_string(policy.max_age_s));
  return res;
}

void decorate(const cors_policy& policy, const request& req, response& res) {
  if (!policy.enabled()) return;
  const auto origin = req[field::origin];
  if (!policy.allows(origin)) return;
  set_allow_origin(policy, origin, res);
}

}  // namespace shopd::http
