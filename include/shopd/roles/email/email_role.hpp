#pragma once
/// The email role (DESIGN §1, §5): consumes `notification.email`, renders the template, sends the
/// message through the configured transport and records it in `emails`; publishes
/// `analytics.audit`. API: `GET /api/emails?orderId=&limit=&cursor=` and `GET /api/emails/{id}`
/// (bearer SHOPD_API_TOKEN). Metrics: `shopd_emails_sent_total`,
/// `shopd_emails_failed_total{kind=transient|permanent}`.
///
/// Delivery is exactly-once as far as SMTP allows. A redelivered event that was handled is a
/// duplicate, and one whose message was sent but whose delivery was not recorded (the inbox row
/// came later, e.g. a concurrent delivery of the same event) is not sent again. What cannot be
/// closed: a crash (or a lost database) between the SMTP server accepting the message and the
/// commit that records it makes the redelivery send it again, and two deliveries of one event
/// running at the same moment may both send it. Toward SMTP the role is at-least-once; the copies
/// carry the same Message-ID (`<eventId@domain-of-MAIL_FROM>`), so a receiving MTA or a person
/// can recognise them.
///
/// Start-up fails with config::config_error (one line naming the key) for a MAIL_FROM that is not a
/// usable mailbox and for MAIL_TRANSPORT / SMTP_URL values the transport refuses.

#include "shopd/app/role.hpp"

#include <memory>

namespace shopd::roles::email {

[[nodiscard]] std::unique_ptr<app::role> make_email_role(app::role_context& ctx);

}  // namespace shopd::roles::email
