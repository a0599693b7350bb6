#pragma once
/// Routes of one listener: (method, path pattern) -> handler. Patterns are literal segments,
/// `{name}` captures of one segment ("/api/orders/{id}"), and as the last segment a `{name...}`
/// capture of the rest of the path: one or more segments, empty ones included, taken verbatim (not
/// percent-decoded), e.g. "/v2/publish/{destination...}" matches
/// "/v2/publish/http://host/a" with destination = "http://host/a". At one position a literal wins
/// over a capture, and a capture over a rest capture. Lookup distinguishes "no such path" (404)
/// from "path exists, not with this method" (405, with the allowed methods).
/// A router is filled at start-up and read concurrently afterwards without locking: do not add
/// routes once the server runs.

#include "shopd/http/execution.hpp"
#include "shopd/http/message.hpp"
#include "shopd/obs/trace.hpp"

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace shopd::http {

/// What a handler gets: the request, the parts of its target, the captures, and room to tell the
/// request log about the correlation id.
struct request_context {
  const request& req;
  std::string_view path;   ///< target without the query string, not percent-decoded
  std::string_view query;  ///< after '?', empty when none
  /// `{name}` captures, percent-decoded; a `{name...}` capture verbatim
  std::vector<std::pair<std::string, std::string>> params;
  std::string correlation_id;  ///< set by the session from X-Correlation-Id; handlers may refine it
  /// Set by the session: the request's valid `traceparent`, else a new trace started here. The
  /// handler runs under it (obs::trace_scope): its log lines and emitted events carry it.
  std::optional<obs::trace_context> trace = std::nullopt;

  /// The capture `name`; empty when absent.
  [[nodiscard]] std::string_view param(std::string_view name) const noexcept;
  /// The first query parameter `name`, percent-decoded; nullopt when absent.
  [[nodiscard]] std::optional<std::string> query_param(std::string_view name) const;
};

using handler = std::function<response(request_context&)>;

/// The blocking rest of a request, handed to the worker pool by a deferring handler.
using deferred = std::function<response()>;
/// A handler that runs on the I/O thread and either answers there or, once it knows it has
/// blocking work to do, returns that work: the server runs it on the worker pool (under the
/// request's trace) and sends what it returns. The webhook verifies signatures this way, so that
/// refusing a forged delivery never occupies a worker. A `deferred` may refer to the request
/// context: it runs before the request ends.
using deferring_handler = std::function<std::variant<response, deferred>(request_context&)>;

struct route {
  verb method;
  std::string pattern;  ///< also the `route` label of the request metrics
  handler fn;           ///< empty for a deferring route
  execution exec;       ///< where `fn` runs; `io` for a deferring route
  deferring_handler deferring = {};
  /// The largest request body this route accepts; 0: the server's `body_limit`.
  std::size_t body_limit = 0;
};

/// Everything a route does for one request, on the calling thread: for tests and tools that call
/// handlers without a server. Exceptions propagate.
[[nodiscard]] response run_inline(const route& r, request_context& ctx);

/// `s` percent-decoded, leniently: a '%' not followed by two hex digits stays as it is. With
/// `plus_is_space` (query strings, form data) '+' is a space.
[[nodiscard]] std::string percent_decode(std::string_view s, bool plus_is_space);

class router {
 public:
  /// Register a route. Throws std::invalid_argument for a malformed pattern or a duplicate.
  void add(verb method, std::string pattern, handler fn, execution exec = execution::blocking);
  /// Register a route whose handler starts on the I/O thread and may defer to the worker pool.
  void add_deferring(verb method, std::string pattern, deferring_handler fn);
  /// Let the route registered as `method` `pattern` accept request bodies of up to `bytes`, instead
  /// of the server's `body_limit` (larger or smaller). Throws std::invalid_argument when there is no
  /// such route or `bytes` is 0.
  void limit_body(verb method, std::string_view pattern, std::size_t bytes);
  /// The largest body limit set by limit_body(); 0 when none was.
  [[nodiscard]] std::size_t largest_body_limit() const noexcept { return largest_body_limit_; }

  struct found {
    const route* r;
    std::vector<std::pair<std::string, std::string>> params;
  };
  struct not_found {};
  struct method_not_allowed {
    std::vector<verb> allowed;  ///< for the Allow header, in registration order
  };
  using lookup_result = std::variant<found, not_found, method_not_allowed>;

  /// Match `path` (no query string). Literal segments win over captures at the same position.
  [[nodiscard]] lookup_result lookup(verb method, std::string_view path) const;

  /// The methods registered for `path` (for CORS preflight and Allow); empty when the path is unknown.
  [[nodiscard]] std::vector<verb> methods_for(std::string_view path) const;

  [[nodiscard]] const std::vector<route>& routes() const noexcept { return routes_; }

 private:
  void add_route(route r);

  std::vector<route> routes_;
  std::size_t largest_body_limit_ = 0;
};

}  // namespace shopd::http
