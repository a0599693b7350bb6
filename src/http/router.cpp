#include "shopd/http/router.hpp"

#include "shopd/text/hex.hpp"

#include <algorithm>
#include <stdexcept>

namespace shopd::http {
namespace {

/// Splits a path or pattern ("/a/b") into its segments. "/" has none; "/a/" ends with an empty one.
class segment_reader {
 public:
  explicit segment_reader(std::string_view path) : rest_(path.substr(1)), done_(rest_.empty()) {}

  /// True when every segment has been read.
  [[nodiscard]] bool at_end() const noexcept { return done_; }

  /// What is left after the segments read so far (for a rest capture): "" once at the end.
  [[nodiscard]] std::string_view rest() const noexcept { return done_ ? std::string_view{} : rest_; }

  bool next(std::string_view& segment) {
    if (done_) return false;
    const auto slash = rest_.find('/');
    if (slash == std::string_view::npos) {
      segment = rest_;
      done_ = true;
    } else {
      segment = rest_.substr(0, slash);
      rest_.remove_prefix(slash + 1);
    }
    return true;
  }

 private:
  std::string_view rest_;
  bool done_;
};

bool is_capture(std::string_view segment) noexcept {
  return segment.starts_with('{');
}

/// `{name...}`: the rest of the path.
bool is_rest_capture(std::string_view segment) noexcept {
  return is_capture(segment) && segment.ends_with("...}");
}

std::string_view capture_name(std::string_view segment) noexcept {
  return segment.substr(1, segment.size() - (is_rest_capture(segment) ? 5 : 2));
}

/// How specific a pattern segment is: a literal beats a capture, which beats a rest capture.
int rank(std::string_view segment) noexcept {
  if (!is_capture(segment)) return 2;
  return is_rest_capture(segment) ? 0 : 1;
}

bool valid_capture_name(std::string_view name) noexcept {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool valid_literal(std::string_view segment) noexcept {
  return !segment.empty() && std::none_of(segment.begin(), segment.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c <= 0x20 || c == 0x7F || c == '{' || c == '}' || c == '?' || c == '#';
  });
}

void validate_pattern(std::string_view pattern) {
  const auto fail = [&](std::string_view why) {
    throw std::invalid_argument("route pattern '" + std::string(pattern) + "': " + std::string(why));
  };
  if (!pattern.starts_with('/')) fail("must start with '/'");
  std::vector<std::string_view> names;
  segment_reader reader(pattern);
  std::string_view segment;
  while (reader.next(segment)) {
    if (segment.empty()) fail("empty segment");
    if (is_capture(segment)) {
      if (!segment.ends_with('}') || segment.size() < 3) fail("a capture is a whole segment '{name}'");
      if (is_rest_capture(segment) && !reader.at_end()) fail("'{name...}' must be the last segment");
      const auto name = capture_name(segment);
      if (!valid_capture_name(name)) fail("capture names are letters, digits and '_'");
      if (std::find(names.begin(), names.end(), name) != names.end()) fail("duplicate capture name");
      names.push_back(name);
    } else if (!valid_literal(segment)) {
      fail("invalid character in a literal segment");
    }
  }
}

/// True when `path` has the pattern's shape: same number of segments, equal literals, a non-empty
/// segment wherever the pattern captures; a rest capture takes whatever is left, if anything.
bool matches(std::string_view pattern, std::string_view path) {
  if (!path.starts_with('/')) return false;
  segment_reader p(pattern);
  segment_reader q(path);
  std::string_view ps;
  std::string_view qs;
  for (;;) {
    const std::string_view rest = q.rest();
    const bool more_p = p.next(ps);
    if (more_p && is_rest_capture(ps)) return !rest.empty();
    const bool more_q = q.next(qs);
    if (more_p != more_q) return false;
    if (!more_p) return true;
    if (is_capture(ps) ? qs.empty() : ps != qs) return false;
  }
}

/// Two patterns matching one path: at the first position where their ranks differ, the higher
/// rank is the more specific.
bool more_specific(std::string_view a, std::string_view b) {
  segment_reader ra(a);
  segment_reader rb(b);
  std::string_view sa;
  std::string_view sb;
  while (ra.next(sa) && rb.next(sb)) {
    if (rank(sa) != rank(sb)) return rank(sa) > rank(sb);
  }
  return false;
}

/// Patterns that match exactly the same paths ("/a/{id}" and "/a/{x}", "/a/{p...}" and "/a/{q...}").
bool same_shape(std::string_view a, std::string_view b) {
  segment_reader ra(a);
  segment_reader rb(b);
  std::string_view sa;
  std::string_view sb;
  for (;;) {
    const bool more_a = ra.next(sa);
    const bool more_b = rb.next(sb);
    if (more_a != more_b) return false;
    if (!more_a) return true;
    if (rank(sa) != rank(sb) || (rank(sa) == 2 && sa != sb)) return false;
  }
}

std::vector<std::pair<std::string, std::string>> captures(std::string_view pattern, std::string_view path) {
  std::vector<std::pair<std::string, std::string>> out;
  segment_reader p(pattern);
  segment_reader q(path);
  std::string_view ps;
  std::string_view qs;
  for (;;) {
    const std::string_view rest = q.rest();
    if (!p.next(ps)) break;
    if (is_rest_capture(ps)) {
      out.emplace_back(std::string(capture_name(ps)), std::string(rest));
      break;
    }
    if (!q.next(qs)) break;
    if (is_capture(ps)) out.emplace_back(std::string(capture_name(ps)), percent_decode(qs, false));
  }
  return out;
}

}  // namespace

std::string_view request_context::param(std::string_view name) const noexcept {
  for (const auto& [key, value] : params) {
    if (key == name) return value;
  }
  return {};
}

std::optional<std::string> request_context::query_param(std::string_view name) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    const std::string_view raw_key = pair.substr(0, eq);
    const std::string_view raw_value =
        eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (percent_decode(raw_key, true) == name) return percent_decode(raw_value, true);
  }
  return std::nullopt;
}

void router::add(verb method, std::string pattern, handler fn, execution exec) {
  if (!fn) throw std::invalid_argument("route " + pattern + ": empty handler");
  add_route(route{method, std::move(pattern), std::move(fn), exec});
}

void router::add_deferring(verb method, std::string pattern, deferring_handler fn) {
  if (!fn) throw std::invalid_argument("route " + pattern + ": empty handler");
  add_route(route{method, std::move(pattern), {}, execution::io, std::move(fn)});
}

void router::limit_body(verb method, std::string_view pattern, std::size_t bytes) {
  if (bytes == 0) throw std::invalid_argument("route " + std::string(pattern) + ": a body limit of 0");
  for (auto& r : routes_) {
    if (r.method == method && r.pattern == pattern) {
      r.body_limit = bytes;
      largest_body_limit_ = std::max(largest_body_limit_, bytes);
      return;
    }
  }
  throw std::invalid_argument("route " + std::string(bhttp::to_string(method)) + " " + std::string(pattern) +
                              ": not registered");
}

void router::add_route(route r) {
  validate_pattern(r.pattern);
  for (const auto& existing : routes_) {
    if (existing.method == r.method && same_shape(existing.pattern, r.pattern)) {
      throw std::invalid_argument("route " + std::string(bhttp::to_string(r.method)) + " " + r.pattern +
                                  " duplicates " + existing.pattern);
    }
  }
  routes_.push_back(std::move(r));
}

response run_inline(const route& r, request_context& ctx) {
  if (!r.deferring) return r.fn(ctx);
  auto first = r.deferring(ctx);
  if (auto* rest = std::get_if<deferred>(&first)) return (*rest)();
  return std::get<response>(std::move(first));
}

router::lookup_result router::lookup(verb method, std::string_view path) const {
  const route* best = nullptr;
  bool path_known = false;
  for (const auto& r : routes_) {
    if (!matches(r.pattern, path)) continue;
    path_known = true;
    if (r.method != method) continue;
    if (best == nullptr || more_specific(r.pattern, best->pattern)) best = &r;
  }
  if (best != nullptr) return found{best, captures(best->pattern, path)};
  if (path_known) return method_not_allowed{methods_for(path)};
  return not_found{};
}

std::vector<verb> router::methods_for(std::string_view path) const {
  std::vector<verb> out;
  for (const auto& r : routes_) {
    if (matches(r.pattern, path) && std::find(out.begin(), out.end(), r.method) == out.end()) {
      out.push_back(r.method);
    }
  }
  return out;
}

std::string percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      const int hi = text::hex_value(s[i + 1]);
      const int lo = text::hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += (plus_is_space && c == '+') ? ' ' : c;
  }
  return out;
}

}  // namespace shopd::http
