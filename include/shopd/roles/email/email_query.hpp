#pragma once
/// What the email role records about each message (one row of `emails` per notification event)
/// and how its API reads them: the record's JSON, the query parameters of `GET /api/emails` and
/// the opaque keyset cursor that pages through it, newest first. Pure functions, thread-safe.

#include <boost/assert/source_location.hpp>
#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace shopd::roles::email {

/// Where a message is: `pending` until handed over (or while a transient failure is retried),
/// then `sent` or `failed` for good.
enum class email_status { pending, sent, failed };

[[nodiscard]] std::string_view to_string(email_status s) noexcept;
/// The status named `s`; nullopt for any other text.
[[nodiscard]] std::optional<email_status> parse_email_status(std::string_view s) noexcept;

/// One row of `emails`.
struct email_record {
  std::int64_t id = 0;
  std::string event_id;  ///< the notification.email event; one row per event
  std::optional<std::string> order_id;
  std::string to;
  std::string template_name;
  std::string subject;
  email_status status = email_status::pending;
  std::optional<std::string> message_id;  ///< set once sent
  std::optional<std::string> transport;   ///< `smtp` or `file`, set once sent
  std::optional<std::string> error;       ///< the last failure, transient or permanent
  std::int64_t attempts = 0;              ///< hand-over attempts (a template error makes none)
  std::optional<std::string> correlation_id;
  std::int64_t created_at_ms = 0;
  std::optional<std::int64_t> sent_at_ms;
};

/// `{id, eventId, orderId, to, template, subject, status, messageId, transport, error, attempts,
/// correlationId, createdAt, sentAt}`; absent optional values are `null`, times RFC 3339 UTC.
[[nodiscard]] boost::json::object to_json(const email_record& r);

inline constexpr std::size_t default_page_size = 20;
inline constexpr std::size_t max_page_size = 100;

/// A page of `GET /api/emails`.
struct list_query {
  std::optional<std::string> order_id;    ///< only this order's emails
  std::size_t limit = default_page_size;  ///< 1..max_page_size
  std::optional<std::int64_t> before_id;  ///< from the cursor: rows with a smaller id only
};

/// A query parameter that cannot be used; answered 400 naming it.
struct query_error {
  std::string field;  ///< `orderId`, `limit`, `cursor`, `id`
  std::string message;
};

/// Found by argument-dependent lookup from `result<T, query_error>::value()`: throws
/// std::invalid_argument with the message (the non-throwing accessors are preferred).
[[noreturn]] void throw_exception_from_error(const query_error& e, const boost::source_location& loc);

/// Parse the raw (percent-decoded) parameters; absent ones take their defaults. `orderId` must
/// be an id (bus::is_valid_id); `limit` a decimal integer 1..max_page_size; `cursor` one that
/// page_json() produced.
[[nodiscard]] boost::system::result<list_query, query_error> parse_list_query(
    const std::optional<std::string>& order_id, const std::optional<std::string>& limit,
    const std::optional<std::string>& cursor);

/// The `{id}` of `GET /api/emails/{id}`: a positive decimal int64 without sign or leading zeros.
[[nodiscard]] boost::system::result<std::int64_t, query_error> parse_email_id(std::string_view text);

/// The opaque cursor continuing after the row `last_id`: base64url of a versioned text, so that
/// clients cannot mistake it for an id.
[[nodiscard]] std::string encode_cursor(std::int64_t last_id);
/// The row id in a cursor from encode_cursor(); nullopt for anything else.
[[nodiscard]] std::optional<std::int64_t> decode_cursor(std::string_view cursor);

/// `{"emails": [...], "nextCursor": "..."|null}` for `rows`, fetched newest first with up to
/// `limit + 1` rows: the extra row only says that another page exists.
[[nodiscard]] boost::json::object page_json(std::span<const email_record> rows, std::size_t limit);

}  // namespace shopd::roles::email
