#include "shopd/roles/email/compose.hpp"

#include "shopd/bus/crypto.hpp"
#include "shopd/mail/templates.hpp"

#include <boost/json/value.hpp>

#include <utility>

namespace shopd::roles::email {

namespace {

bool is_atext(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-/?^_`{|}~").find(c) != std::string_view::npos;
}

}  // namespace

std::string message_id_for(std::string_view event_id, std::string_view domain) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string left;
  left.reserve(event_id.size());
  // '=' is atext but is the escape character here, and '.' is left out so that no id can produce a
  // leading, trailing or doubled dot: the result is always one atom.
  for (const char c : event_id) {
    if (is_atext(c)) {
      left += c;
    } else {
      const auto b = static_cast<unsigned char>(c);
      left += '=';
      left += hex[b >> 4];
      left += hex[b & 15];
    }
  }
  if (left.size() > max_message_id_left) {
    left = "h-" + bus::crypto::hex_encode(bus::crypto::sha256(event_id));
  }
  return "<" + left + "@" + std::string(domain) + ">";
}

std::optional<std::string> order_id_of(const boost::json::object& variables) {
  const auto* v = variables.if_contains("orderId");
  if (v == nullptr) return std::nullopt;
  if (const auto* s = v->if_string(); s != nullptr && bus::is_valid_id(*s)) return std::string(*s);
  if (const auto* i = v->if_int64()) return std::to_string(*i);
  if (const auto* u = v->if_uint64()) return std::to_string(*u);
  return std::nullopt;
}

mail::mail_result<composed_email> compose(const bus::email_notification& n, const mail::mailbox& from,
                                          std::string_view event_id,
                                          std::chrono::system_clock::time_point date) {
  auto rendered = mail::render_template(n.template_name, n.variables);
  if (!rendered) return std::move(rendered).error();
  auto to = mail::mailbox::parse(n.to);
  if (!to) {
    auto e = std::move(to).error();
    e.field = "To";
    return e;
  }

  mail::message_spec spec;
  spec.from = from;
  spec.to.push_back(std::move(*to));
  spec.subject = n.subject ? *n.subject : std::move(rendered->subject);
  spec.text = std::move(rendered->text);
  spec.html = std::move(rendered->html);
  spec.date = date;
  spec.message_id = message_id_for(event_id, from.domain());
  auto built = mail::build_message(spec);
  if (!built) return std::move(built).error();
  return composed_email{.subject = std::move(spec.subject), .mail = std::move(*built)};
}

bus::rejection rejection_for(const mail::mail_error& e, const bus::email_notification& n) {
  std::string field;
  switch (e.code) {
    case mail::mail_errc::unknown_template:
      field = "data.template";
      break;
    case mail::mail_errc::missing_variable:
    case mail::mail_errc::invalid_variable:
      field = e.field.empty() ? "data.variables" : "data.variables." + e.field;
      break;
    case mail::mail_errc::invalid_body:
      field = "data.variables";
      break;
    case mail::mail_errc::no_recipients:
      field = "data.to";
      break;
    case mail::mail_errc::invalid_header:
    case mail::mail_errc::invalid_address:
      if (e.field == "To") {
        field = "data.to";
      } else if (e.field == "Subject") {
        // The subject is the payload's when it has one, else the template made it from variables.
        field = n.subject ? "data.subject" : "data.variables";
      } else if (e.field == "Message-ID") {
        field = "eventId";
      }
      break;
  }
  return bus::rejection{
      .code = std::string(mail::to_string(e.code)), .field = std::move(field), .message = e.message};
}

}  // namespace shopd::roles::email
