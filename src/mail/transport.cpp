#include "shopd/mail/transport.hpp"

#include <stdexcept>

namespace shopd::mail {

std::unique_ptr<transport> make_transport(std::string_view mail_transport, std::string_view smtp_url,
                                          const smtp_options& options) {
  if (mail_transport == "smtp") {
    if (smtp_url.empty()) throw std::invalid_argument("SMTP_URL is required when MAIL_TRANSPORT=smtp");
    return make_smtp_transport(smtp_url, options);
  }
  if (mail_transport.starts_with("file:")) {
    const auto directory = mail_transport.substr(5);
    if (directory.empty()) throw std::invalid_argument("MAIL_TRANSPORT=file: needs a directory (file:DIR)");
    return make_file_transport(std::filesystem::path(directory));
  }
  throw std::invalid_argument("MAIL_TRANSPORT must be 'smtp' or 'file:DIR', not '" +
                              std::string(mail_transport) + "'");
}

std::string_view describe(const send_result& result) noexcept {
  if (const auto* s = std::get_if<sent>(&result)) return s->detail;
  if (const auto* t = std::get_if<transient_failure>(&result)) return t->reason;
  return std::get<permanent_failure>(result).reason;
}

}  // namespace shopd::mail
