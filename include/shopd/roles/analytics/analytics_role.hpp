#pragma once
/// The analytics role (DESIGN §1, §5): the sink of every audit record, metric point, dead letter
/// and order, and the private API that reads them back.
///
/// Events (each handled in one transaction with its inbox record, and stored at most once per
/// eventId, also by the tables' UNIQUE event_id):
///   - `analytics.audit` -> `audit_log`, `analytics.metric` -> `metric_points`,
///     `analytics.dlq` -> `dead_letters`, `order.created` -> `sales`;
///   - an invalid payload is rejected (`invalid_payload`, naming the field) and audited as
///     `event.rejected`. Successful recordings are never audited: that would loop.
///
/// Routes (execution::blocking):
///   - `POST /api/dlq/callback`: the relay's or QStash's failure callback. `Upstash-Signature` is
///     verified like on the webhook (401 otherwise); the body becomes an `analytics.dlq` event with a
///     deterministic eventId and goes through the same handler: 200 processed or duplicate, 400 for
///     a body that is not a failure callback, 503 when the database is busy. Its body limit is
///     callback_body_limit(HTTP_BODY_LIMIT), so the report of the largest message still fits;
///   - with `Authorization: Bearer SHOPD_API_TOKEN` (401 without, 503 when none is configured):
///     `GET /api/audit?entityId=&action=&correlationId=&since=&limit=&cursor=` -> {records, nextCursor};
///     `GET /api/metrics/summary`; `GET /api/dlq?limit=&cursor=` -> {deadLetters, nextCursor};
///     `POST /api/dlq/{id}/replay`: asks QStash (`QSTASH_URL`, `QSTASH_TOKEN`) to retry the dead
///     letter's DLQ entry, then marks it replayed and audits `dlq.replayed`: 200; 404 for an unknown
///     dead letter or one without dlqId; 409 when already replayed; 502 when QStash fails or refuses.
///
/// Metrics: `shopd_analytics_records_total{kind}` (audit|metric|dlq|sale), rows stored;
/// `shopd_dlq_callback_refused_total{reason}`.

#include "shopd/app/role.hpp"

#include <memory>

namespace shopd::roles::analytics {

/// Register the analytics role's event handlers and routes on `ctx`.
[[nodiscard]] std::unique_ptr<app::role> make_analytics_role(app::role_context& ctx);

}  // namespace shopd::roles::analytics
