#include "shopd/roles/analytics/query.hpp"

#include "shopd/bus/crypto.hpp"

#include <algorithm>
#include <charconv>

namespace shopd::roles::analytics {

namespace {

constexpr std::int64_t max_since_ms = 253'402'300'799'999;  // 9999-12-31T23:59:59.999Z

std::string_view cursor_tag(cursor_kind kind) noexcept {
  return kind == cursor_kind::audit ? "audit:" : "dlq:";
}

bool all_digits(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Decimal digits without sign or leading zeros as an int64; nullopt otherwise or on overflow.
std::optional<std::int64_t> canonical_integer(std::string_view s) noexcept {
  if (!all_digits(s) || (s.size() > 1 && s.front() == '0')) return std::nullopt;
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// The parameter's value, or nullopt when absent or empty.
std::optional<std::string> present(const query_lookup& get, std::string_view name) {
  auto v = get(name);
  if (v && v->empty()) return std::nullopt;
  return v;
}

}  // namespace

std::string encode_cursor(cursor_kind kind, std::int64_t last_id) {
  return bus::crypto::base64url_encode(std::string(cursor_tag(kind)) + std::to_string(last_id));
}

std::optional<std::int64_t> decode_cursor(cursor_kind kind, std::string_view cursor) {
  const auto text = bus::crypto::base64url_decode(cursor);
  if (!text || !text->starts_with(cursor_tag(kind))) return std::nullopt;
  const auto id = canonical_integer(std::string_view(*text).substr(cursor_tag(kind).size()));
  if (!id || *id <= 0) return std::nullopt;
  return id;
}

std::optional<std::int64_t> parse_since(std::string_view text) noexcept {
  if (all_digits(text)) {
    std::int64_t ms = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
    if (ec != std::errc{} || end != text.data() + text.size() || ms > max_since_ms) return std::nullopt;
    return ms;
  }
  const auto t = bus::parse_timestamp(text);
  if (!t) return std::nullopt;
  return t->time_since_epoch().count();
}

bus::result<page_request> parse_page(const query_lookup& get, cursor_kind kind) {
  page_request page;
  if (const auto limit = present(get, "limit")) {
    const auto n = canonical_integer(*limit);
    if (!n || *n < 1 || *n > max_page_size) {
      return bus::validation_error{"limit", "must be an integer from 1 to " + std::to_string(max_page_size)};
    }
    page.limit = *n;
  }
  if (const auto cursor = present(get, "cursor")) {
    page.before_id = decode_cursor(kind, *cursor);
    if (!page.before_id) return bus::validation_error{"cursor", "is not a cursor of this list"};
  }
  return page;
}

bus::result<audit_query> parse_audit_query(const query_lookup& get) {
  audit_query q;
  auto page = parse_page(get, cursor_kind::audit);
  if (!page) return page.error();
  q.page = *page;
  const auto id_filter = [&](std::string_view name,
                             std::optional<std::string>& into) -> std::optional<bus::validation_error> {
    into = present(get, name);
    if (into && !bus::is_valid_id(*into)) {
      return bus::validation_error{std::string(name), "must be 1 to " +
                                                          std::to_string(bus::default_max_id_bytes) +
                                                          " printable ASCII characters without spaces"};
    }
    return std::nullopt;
  };
  if (auto e = id_filter("entityId", q.entity_id)) return *e;
  if (auto e = id_filter("action", q.action)) return *e;
  if (auto e = id_filter("correlationId", q.correlation_id)) return *e;
  if (const auto since = present(get, "since")) {
    q.since_ms = parse_since(*since);
    if (!q.since_ms) {
      return bus::validation_error{
          "since", "must be an RFC 3339 date-time (2026-11-23T10:00:00Z) or Unix milliseconds"};
    }
  }
  return q;
}

}  // namespace shopd::roles::analytics
