#pragma once
/// Handing a built message (mime.hpp) to the outside world: an SMTP server (libcurl) or a directory
/// of `.eml` files. Sending blocks the calling thread (bounded by the transport's timeouts), so it
/// runs on the worker pool, never on an I/O thread.

#include "shopd/mail/mime.hpp"

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

namespace shopd::mail {

/// Handed over: the SMTP server accepted the message, or its file is complete in the directory.
/// `detail` is the server's final reply (`250 2.0.0 Ok: queued as ...`) or the file's path.
struct sent {
  std::string detail;
};

/// Might succeed later with the same message: nothing listening, connection refused or reset,
/// DNS failure, timeouts, TLS handshake broken off, any 4xx reply (greylisting, 421 shutting down,
/// 451 local error, 452 insufficient storage, 454 temporary authentication failure), a local I/O
/// error writing a file. The caller answers 5xx so the relay retries with back-off.
///
/// Also, with `configuration` set, what fails every message alike until an operator fixes this
/// side's settings: authentication refused (530, 534, 535, 538: the user or password in SMTP_URL),
/// the server's TLS certificate not trusted (the CA file), STARTTLS required but not offered, an
/// SMTP_URL this libcurl cannot use. Not the message's fault, so not a reason to give it up: it is
/// retried like the others, and lands in the DLQ (to be replayed after the fix) if the fix comes
/// after the relay's retries.
struct transient_failure {
  std::string reason;
  int smtp_code = 0;           ///< the SMTP reply code that refused the message; 0 when none did
  bool configuration = false;  ///< this side's settings are wrong (see above); the reason says which
};

/// Will fail again with the same message, whatever the configuration: any other 5xx reply (550
/// unknown recipient, 553 bad sender, 552 too big, 554 rejected content), a message without
/// recipients. The caller answers non-retryable (HTTP 489).
struct permanent_failure {
  std::string reason;
  int smtp_code = 0;  ///< the SMTP reply code that refused the message (5xx); 0 when none did
};

using send_result = std::variant<sent, transient_failure, permanent_failure>;

/// A way to send mail. Implementations are thread-safe: several worker threads may call send() on
/// one transport at once.
class transport {
 public:
  virtual ~transport() = default;

  /// Send one message. Blocks; never throws for a delivery failure (only std::bad_alloc).
  /// A message without recipients is a permanent failure.
  [[nodiscard]] virtual send_result send(const outgoing_mail& mail) = 0;

  /// One line for logs and start-up messages; never contains a password.
  [[nodiscard]] virtual std::string describe() const = 0;
};

/// SMTP settings that are not part of SMTP_URL.
struct smtp_options {
  std::chrono::milliseconds connect_timeout{10'000};  ///< TCP connect + TLS handshake
  std::chrono::milliseconds total_timeout{60'000};    ///< the whole conversation
  std::string ca_file;  ///< PEM file of CAs to trust instead of the system's; `?cafile=` wins
};

/// A directory of messages: one `<unix-ms>-<message-id>.eml` per message (the id reduced to
/// `[A-Za-z0-9._@-]`), created as a hidden temporary file, fsync'ed, then renamed into place (and
/// the directory fsync'ed), so a reader listing `*.eml` never sees half a message. The directory is
/// created if missing (here and again on each send). Throws std::invalid_argument when it cannot be
/// created.
[[nodiscard]] std::unique_ptr<transport> make_file_transport(const std::filesystem::path& directory);

/// SMTP through libcurl, one connection per message. URL forms:
/// - `smtp://[user:password@]host[:port][/helo-name][?options]`: plain SMTP (port 25 by default),
///   upgraded with STARTTLS when the server offers it;
/// - `smtps://...` (port 465 by default): TLS from the first byte.
/// User and password are percent-decoded; when given, AUTH is used. Options (query):
/// `starttls=opportunistic` (the default for smtp://) or `starttls=required` (fail unless the
/// server offers STARTTLS), `cafile=PATH`. Peer and host name verification are always on. With a
/// password, prefer smtps:// or starttls=required: opportunistic STARTTLS sends it in clear text to
/// a server that offers AUTH without STARTTLS.
/// Throws std::invalid_argument with one line on a malformed URL or unknown option.
[[nodiscard]] std::unique_ptr<transport> make_smtp_transport(std::string_view smtp_url,
                                                             const smtp_options& options = {});

/// From configuration: MAIL_TRANSPORT is `file:DIR` or `smtp` (then SMTP_URL is required).
/// Throws std::invalid_argument with one line naming the key on anything else.
[[nodiscard]] std::unique_ptr<transport> make_transport(std::string_view mail_transport,
                                                        std::string_view smtp_url,
                                                        const smtp_options& options = {});

/// The reason or detail of any result, for logs and the emails table.
[[nodiscard]] std::string_view describe(const send_result& result) noexcept;

}  // namespace shopd::mail
