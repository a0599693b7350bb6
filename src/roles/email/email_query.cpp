#include "shopd/roles/email/email_query.hpp"

#include "shopd/bus/crypto.hpp"
#include "shopd/bus/envelope.hpp"

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>

#include <charconv>
#include <chrono>
#include <stdexcept>

namespace shopd::roles::email {

namespace {

namespace json = boost::json;

// Versioned, so the cursor's content can change without old cursors being misread.
constexpr std::string_view cursor_prefix = "e1:";

json::value optional_text(const std::optional<std::string>& s) {
  return s ? json::value(*s) : json::value(nullptr);
}

json::value time_or_null(const std::optional<std::int64_t>& ms) {
  if (!ms) return nullptr;
  return json::value(bus::format_timestamp(bus::timestamp(std::chrono::milliseconds(*ms))));
}

// A positive decimal int64, no sign, no leading zeros, nothing else.
std::optional<std::int64_t> parse_positive(std::string_view text) {
  if (text.empty() || text.front() == '0') return std::nullopt;
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v <= 0) return std::nullopt;
  return v;
}

}  // namespace

std::string_view to_string(email_status s) noexcept {
  switch (s) {
    case email_status::pending:
      return "pending";
    case email_status::sent:
      return "sent";
    case email_status::failed:
      return "failed";
  }
  return "pending";
}

std::optional<email_status> parse_email_status(std::string_view s) noexcept {
  if (s == "pending") return email_status::pending;
  if (s == "sent") return email_status::sent;
  if (s == "failed") return email_status::failed;
  return std::nullopt;
}

json::object to_json(const email_record& r) {
  return json::object{
      {"id", r.id},
      {"eventId", r.event_id},
      {"orderId", optional_text(r.order_id)},
      {"to", r.to},
      {"template", r.template_name},
      {"subject", r.subject},
      {"status", to_string(r.status)},
      {"messageId", optional_text(r.message_id)},
      {"transport", optional_text(r.transport)},
      {"error", optional_text(r.error)},
      {"attempts", r.attempts},
      {"correlationId", optional_text(r.correlation_id)},
      {"createdAt", time_or_null(r.created_at_ms)},
      {"sentAt", time_or_null(r.sent_at_ms)},
  };
}

boost::system::result<list_query, query_error> parse_list_query(const std::optional<std::string>& order_id,
                                                                const std::optional<std::string>& limit,
                                                                const std::optional<std::string>& cursor) {
  list_query q;
  if (order_id) {
    if (!bus::is_valid_id(*order_id)) {
      return query_error{"orderId", "orderId must be 1 to 256 printable ASCII characters without spaces"};
    }
    q.order_id = *order_id;
  }
  if (limit) {
    const auto n = parse_positive(*limit);
    if (!n || *n > static_cast<std::int64_t>(max_page_size)) {
      return query_error{"limit", "limit must be an integer from 1 to " + std::to_string(max_page_size)};
    }
    q.limit = static_cast<std::size_t>(*n);
  }
  if (cursor) {
    const auto id = decode_cursor(*cursor);
    if (!id) return query_error{"cursor", "cursor is not one this endpoint returned"};
    q.before_id = *id;
  }
  return q;
}

void throw_exception_from_error(const query_error& e, const boost::source_location&) {
  throw std::invalid_argument(e.message);
}

boost::system::result<std::int64_t, query_error> parse_email_id(std::string_view text) {
  if (const auto id = parse_positive(text)) return *id;
  return query_error{"id", "id must be a positive integer"};
}

std::string encode_cursor(std::int64_t last_id) {
  return bus::crypto::base64url_encode(std::string(cursor_prefix) + std::to_string(last_id));
}

std::optional<std::int64_t> decode_cursor(std::string_view cursor) {
  const auto text = bus::crypto::base64url_decode(cursor);
  if (!text || !text->starts_with(cursor_prefix)) return std::nullopt;
  return parse_positive(std::string_view(*text).substr(cursor_prefix.size()));
}

json::object page_json(std::span<const email_record> rows, std::size_t limit) {
  const bool more = rows.size() > limit;
  if (more) rows = rows.first(limit);
  json::array emails;
  emails.reserve(rows.size());
  for (const auto& r : rows) emails.push_back(to_json(r));
  json::value next = nullptr;
  if (more && !rows.empty()) next = json::value(encode_cursor(rows.back().id));
  return json::object{{"emails", std::move(emails)}, {"nextCursor", std::move(next)}};
}

}  // namespace shopd::roles::email
