#pragma once
/// The analytics role's SQL (tables `audit_log`, `metric_points`, `dead_letters`, `sales`), for
/// SQLite and PostgreSQL alike. Every function takes the session it runs on, so that writes join
/// the caller's transaction (an event's inbox record) and reads may run on any leased session.
/// All functions block; SOCI errors propagate (db::database turns busy/locked into transient_error).

#include "shopd/roles/analytics/query.hpp"
#include "shopd/roles/analytics/records.hpp"

#include <cstdint>
#include <optional>
#include <vector>

namespace soci {
class session;
}

namespace shopd::roles::analytics::repository {

/// Insert a row unless one with the same event id (for a sale: or the same order) exists.
/// True when the row was inserted, false when it was already there.
bool insert_audit(soci::session& tx, const audit_row& row);
bool insert_metric(soci::session& tx, const metric_row& row);
bool insert_dead_letter(soci::session& tx, const dead_letter_row& row);
bool insert_sale(soci::session& tx, const sale_row& row);

/// Audit rows matching `q`, newest (highest id) first, at most `q.page.limit + 1` of them: one more
/// than a page, so the caller knows whether another page follows.
[[nodiscard]] std::vector<audit_row> find_audit(soci::session& s, const audit_query& q);

/// Dead letters newest first, at most `page.limit + 1` (as find_audit).
[[nodiscard]] std::vector<dead_letter_row> list_dead_letters(soci::session& s, const page_request& page);

[[nodiscard]] std::optional<dead_letter_row> find_dead_letter(soci::session& s, std::int64_t id);

/// Set `replayed_at_ms` of dead letter `id` if it is not set yet. True when this call set it.
bool mark_replayed(soci::session& tx, std::int64_t id, std::int64_t now_ms);

/// The figures of `GET /api/metrics/summary`.
[[nodiscard]] summary load_summary(soci::session& s);

}  // namespace shopd::roles::analytics::repository
