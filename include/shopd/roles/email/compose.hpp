#pragma once
/// The email role's rules for turning a `notification.email` event into a message: the template
/// rendered with the event's variables, the payload's subject over the template's, the sender from
/// MAIL_FROM, and a Message-ID derived from the event id, so that a message sent again after a
/// crash carries the same id as the first copy and receivers (or people) can recognise it.
/// Pure functions, thread-safe; no I/O.

#include "shopd/bus/dispatch.hpp"
#include "shopd/bus/events.hpp"
#include "shopd/mail/error.hpp"
#include "shopd/mail/mime.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace shopd::roles::email {

/// The longest id-left message_id_for() writes before it switches to a digest.
inline constexpr std::size_t max_message_id_left = 128;
/// The longest MAIL_FROM domain the role accepts: with max_message_id_left it keeps every
/// Message-ID within the 250 characters build_message allows.
inline constexpr std::size_t max_sender_domain = 100;

/// `<left@domain>` for the event `event_id` (non-empty). `left` is the event id with every byte
/// that is not RFC 5322 atext, and every '.' and '=', written as `=XX` (upper-case hex), so that
/// distinct ids give distinct Message-IDs; a ULID is kept as it is. When that would be longer than
/// max_message_id_left, `left` is `h-` and the hex SHA-256 of the event id instead.
[[nodiscard]] std::string message_id_for(std::string_view event_id, std::string_view domain);

/// The order an email is about: `variables.orderId` when it is an id string (bus::is_valid_id) or
/// an integer, as text; nullopt when absent or of another shape.
[[nodiscard]] std::optional<std::string> order_id_of(const boost::json::object& variables);

/// A notification made into a message ready for a transport.
struct composed_email {
  std::string subject;  ///< as sent (the payload's, else the template's)
  mail::outgoing_mail mail;
};

/// Render `n.template_name` with `n.variables` and build the message from `from` to `n.to`, dated
/// `date`, with Message-ID message_id_for(event_id, from.domain()). Errors (all permanent: the
/// same event fails the same way every time) are those of mail::render_template and
/// mail::build_message; a bad recipient is reported on field `To`.
[[nodiscard]] mail::mail_result<composed_email> compose(const bus::email_notification& n,
                                                        const mail::mailbox& from, std::string_view event_id,
                                                        std::chrono::system_clock::time_point date);

/// The non-retryable answer to a compose() error: `code` is the mail_errc name
/// (`unknown_template`, `missing_variable`, `invalid_variable`, ...), `field` the event field at
/// fault (`data.template`, `data.variables.items[1].quantity`, `data.subject`, `data.to`, `eventId`;
/// empty for the sender, which is configuration), `message` the mail error's.
[[nodiscard]] bus::rejection rejection_for(const mail::mail_error& e, const bus::email_notification& n);

}  // namespace shopd::roles::email
