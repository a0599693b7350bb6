#pragma once
/// The query parameters of the analytics API (`GET /api/audit`, `GET /api/dlq`), validated, and
/// the opaque keyset cursors of its pages. Pure and thread-safe.
///
/// Errors are bus::validation_error whose `field` is the offending parameter's name (the 400 names
/// it). An empty parameter (`?entityId=`) counts as absent, as forms send them.

#include "shopd/bus/envelope.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace shopd::roles::analytics {

/// How a parser reads the request: the first value of parameter `name`, percent-decoded, or
/// nullopt (http::request_context::query_param fits).
using query_lookup = std::function<std::optional<std::string>(std::string_view name)>;

inline constexpr std::int64_t default_page_size = 20;
inline constexpr std::int64_t max_page_size = 100;

/// Which list a cursor pages through; a cursor of one list is refused by the other.
enum class cursor_kind { audit, dead_letters };

/// One page of a list ordered newest first by id.
struct page_request {
  std::int64_t limit = default_page_size;  ///< 1..max_page_size
  std::optional<std::int64_t> before_id;   ///< from `cursor`: rows with a smaller id only
  friend bool operator==(const page_request&, const page_request&) = default;
};

/// `GET /api/audit` filters, all optional and combined with AND.
struct audit_query {
  std::optional<std::string> entity_id;       ///< `entityId`, exact
  std::optional<std::string> action;          ///< `action`, exact
  std::optional<std::string> correlation_id;  ///< `correlationId`, exact
  std::optional<std::int64_t> since_ms;       ///< `since`: occurred at or after, Unix ms
  page_request page;
  friend bool operator==(const audit_query&, const audit_query&) = default;
};

/// `limit` (an integer 1..max_page_size, default default_page_size) and `cursor` (one made by
/// encode_cursor for `kind`).
[[nodiscard]] bus::result<page_request> parse_page(const query_lookup& get, cursor_kind kind);

/// parse_page(audit) plus the filters: `entityId`, `action` and `correlationId` must be ids
/// (bus::is_valid_id); `since` is parse_since.
[[nodiscard]] bus::result<audit_query> parse_audit_query(const query_lookup& get);

/// An instant as RFC 3339 (bus::parse_timestamp) or as Unix milliseconds (decimal digits, at
/// least 0, at most 253402300799999 = 9999-12-31T23:59:59.999Z). nullopt otherwise.
[[nodiscard]] std::optional<std::int64_t> parse_since(std::string_view text) noexcept;

/// The cursor continuing a `kind` list after the row `last_id` (exclusive): unpadded base64url,
/// opaque to clients.
[[nodiscard]] std::string encode_cursor(cursor_kind kind, std::int64_t last_id);

/// The id a cursor continues after, or nullopt when it was not made by encode_cursor for `kind`
/// (or its id is not positive).
[[nodiscard]] std::optional<std::int64_t> decode_cursor(cursor_kind kind, std::string_view cursor);

}  // namespace shopd::roles::analytics
