#pragma once
/// Building RFC 5322 / MIME messages: headers (From, To, Subject, Date, Message-ID), a
/// multipart/alternative body with text/plain and text/html parts in UTF-8, quoted-printable
/// transfer encoding, CRLF line ends, no line longer than 998 octets (headers are folded to 78 where
/// they can be). Header injection is impossible: every header value containing CR, LF or NUL is
/// rejected. Pure functions apart from the clock and the random boundary and Message-ID (OpenSSL's
/// RAND_bytes; a caller may choose the Message-ID instead); thread-safe.

#include "shopd/mail/error.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shopd::mail {

/// One mailbox: an ASCII addr-spec and an optional UTF-8 display name.
struct mailbox {
  std::string display_name;  ///< may be empty
  std::string address;       ///< `local@domain`: dot-atom local part, domain name or [literal]

  /// Parse `local@domain`, `<local@domain>`, `Display Name <local@domain>` or
  /// `"Quoted, Name" <local@domain>` (MAIL_FROM, the `to` of notification.email).
  /// Errors: `invalid_address` (quoted local parts and non-ASCII addresses are not supported),
  /// `invalid_header` for CR/LF/NUL anywhere.
  [[nodiscard]] static mail_result<mailbox> parse(std::string_view text);

  /// The part after '@'.
  [[nodiscard]] std::string_view domain() const noexcept;
};

/// What a message says. `text` and `html` may use "\n" or "\r\n" line ends.
struct message_spec {
  mailbox from;
  std::vector<mailbox> to;  ///< at least one
  std::string subject;      ///< UTF-8, one line
  std::string text;         ///< UTF-8 text/plain part
  std::string html;         ///< UTF-8 text/html part; empty: the message is text/plain only
  std::optional<std::chrono::system_clock::time_point> date;  ///< the Date header; now if unset
  /// The Message-ID header, `<id-left@id-right>` (RFC 5322 §3.6.4: dot-atom-text on the left, a
  /// domain or a `[literal]` on the right, at most 250 characters). A sender that may send the same
  /// message again (after a crash) passes a stable id so that receivers can recognise the copy.
  /// Empty: a random `<hex@domain-of-from>`.
  std::string message_id;
};

/// A message ready for a transport: the envelope and the bytes.
struct outgoing_mail {
  std::string envelope_from;            ///< addr-spec for SMTP MAIL FROM
  std::vector<std::string> recipients;  ///< addr-specs for SMTP RCPT TO
  std::string message_id;               ///< the Message-ID header's value, brackets included
  std::string data;                     ///< the whole message, CRLF line ends, ends with CRLF
};

/// Build the message. Errors: `invalid_header` (CR/LF/NUL in the subject or a display name, or
/// invalid UTF-8 there; a malformed `message_id`, field `Message-ID`), `invalid_body` (invalid
/// UTF-8 in a part), `invalid_address`, `no_recipients`.
[[nodiscard]] mail_result<outgoing_mail> build_message(const message_spec& spec);

/// `Mon, 23 Nov 2026 10:00:00 +0000` (RFC 5322 §3.3, always UTC).
[[nodiscard]] std::string format_rfc5322_date(std::chrono::system_clock::time_point t);

/// A complete `Name: value` header field (without the final CRLF) for an unstructured value such as
/// Subject: printable ASCII is folded at spaces; anything else (non-ASCII, control characters,
/// "=?", words too long to fold) becomes RFC 2047 `=?UTF-8?B?...?=` encoded-words of whole
/// characters, at most 76 characters per line. Errors: `invalid_header` for CR, LF, NUL or invalid
/// UTF-8.
[[nodiscard]] mail_result<std::string> encode_unstructured_header(std::string_view name,
                                                                  std::string_view value);

/// Quoted-printable (RFC 2045 §6.7) for text: line ends ("\n" or "\r\n") become CRLF hard breaks,
/// lines are soft-broken at 76 characters, trailing white space, '=', non-ASCII and control bytes
/// are encoded, and so are a '.' starting a line and the 'F' of a line starting "From ".
[[nodiscard]] std::string quoted_printable_encode(std::string_view text);

}  // namespace shopd::mail
