#include "shopd/mail/error.hpp"

#include <utility>

namespace shopd::mail {

std::string_view to_string(mail_errc code) noexcept {
  switch (code) {
    case mail_errc::unknown_template:
      return "unknown_template";
    case mail_errc::missing_variable:
      return "missing_variable";
    case mail_errc::invalid_variable:
      return "invalid_variable";
    case mail_errc::invalid_header:
      return "invalid_header";
    case mail_errc::invalid_address:
      return "invalid_address";
    case mail_errc::invalid_body:
      return "invalid_body";
    case mail_errc::no_recipients:
      return "no_recipients";
  }
  return "unknown";
}

mail_exception::mail_exception(mail_error error)
    : std::runtime_error(error.message), error_(std::move(error)) {}

void throw_exception_from_error(const mail_error& error, const boost::source_location&) {
  throw mail_exception(error);
}

}  // namespace shopd::mail
