#pragma once
/// The email templates, compiled into the binary (nothing to deploy). Rendering is a pure function
/// of the template name and its JSON variables, safe to call from any thread.
///
/// Templates and their variables (all required unless marked optional):
/// - `order_confirmation`: `orderId` (string, or integer), `customerName` (string, may be empty),
///   `items` (non-empty array of `{sku: string, name: string, quantity: integer >= 1,
///   unitPriceCents: integer >= 0, lineTotalCents: integer >= 0}`), `subtotalCents` (integer),
///   `currency` (ISO 4217 code, e.g. "EUR"). Money is rendered from minor units (money.hpp).
/// - `plain`: `subject` (non-empty string, one line), `text` (string). The HTML part is the text,
///   escaped, in paragraphs.
///
/// Every variable is HTML-escaped in the HTML part. Variables that end up in the subject must be a
/// single line (no control characters). Unknown extra variables are ignored.

#include "shopd/mail/error.hpp"

#include <boost/json/object.hpp>

#include <span>
#include <string>
#include <string_view>

namespace shopd::mail {

/// The three parts of a rendered message, all UTF-8. `text` and `html` use "\n" line ends (the
/// MIME builder turns them into CRLF).
struct rendered_mail {
  std::string subject;
  std::string text;
  std::string html;
};

/// Render template `name`. Errors (all permanent): `unknown_template` (the message lists the valid
/// names), `missing_variable` and `invalid_variable`, whose `field` is the variable's path, e.g.
/// `items[2].quantity`.
[[nodiscard]] mail_result<rendered_mail> render_template(std::string_view name,
                                                         const boost::json::object& variables);

/// The names of the compiled-in templates.
[[nodiscard]] std::span<const std::string_view> template_names() noexcept;

/// Escape `&`, `<`, `>`, `"` and `'` for HTML text and attribute values.
[[nodiscard]] std::string html_escape(std::string_view text);

}  // namespace shopd::mail
