#pragma once
/// Errors of the mail area's pure functions (template rendering, MIME building). Every one of them
/// is permanent: the same input fails the same way on every attempt, so the email role answers it
/// as a non-retryable failure. Transport failures are not errors of this kind: see transport.hpp.

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <stdexcept>
#include <string>
#include <string_view>

namespace shopd::mail {

enum class mail_errc {
  unknown_template = 1,  ///< no compiled-in template has that name
  missing_variable,      ///< a required template variable is absent
  invalid_variable,      ///< a template variable has the wrong JSON type or an unacceptable value
  invalid_header,        ///< a header value holds CR, LF or NUL (header injection) or invalid UTF-8
  invalid_address,       ///< a mailbox is neither `local@domain` nor `Display Name <local@domain>`
  invalid_body,          ///< a body part is not valid UTF-8
  no_recipients,         ///< a message without any To address
};

/// What went wrong and where. `field` names the variable or header (`items[1].quantity`,
/// `Subject`); `message` is one line that already contains the field name.
struct mail_error {
  mail_errc code = mail_errc::invalid_variable;
  std::string field;
  std::string message;
};

[[nodiscard]] std::string_view to_string(mail_errc code) noexcept;

/// Thrown by `mail_result<T>::value()` on an error (the non-throwing accessors are preferred).
class mail_exception : public std::runtime_error {
 public:
  explicit mail_exception(mail_error error);
  [[nodiscard]] const mail_error& error() const noexcept { return error_; }

 private:
  mail_error error_;
};

/// Found by argument-dependent lookup from boost::system::result<T, mail_error>::value().
[[noreturn]] void throw_exception_from_error(const mail_error& error, const boost::source_location& loc);

template <typename T>
using mail_result = boost::system::result<T, mail_error>;

}  // namespace shopd::mail
