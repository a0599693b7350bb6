#pragma once
// The email role's SQL, all of it: the `emails` table (migration 1). Every function runs on the
// session it is handed, inside the caller's transaction when there is one; SQL errors propagate
// (the database layer turns busy/locked/lost into db::transient_error).

#include "shopd/roles/email/email_query.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace soci {
class session;
}

namespace shopd::roles::email {

// What is known about a message before it is sent.
struct new_email {
  std::string event_id;
  std::optional<std::string> order_id;
  std::string to;
  std::string template_name;
  std::string subject;
  std::string correlation_id;
  std::int64_t created_at_ms = 0;
};

// The row of `e.event_id`, inserted as `pending` when there is none yet (a redelivery finds the
// row of its earlier attempts).
[[nodiscard]] email_record ensure_email(soci::session& tx, const new_email& e);

// A failed attempt that may succeed later: attempts + 1, the reason kept; still pending.
void record_transient_failure(soci::session& tx, std::int64_t id, std::string_view reason);

// Handed over: sent, with its Message-ID and transport; attempts + 1, error cleared.
void mark_sent(soci::session& tx, std::int64_t id, std::string_view message_id, std::string_view transport,
               std::int64_t sent_at_ms);

// Failed for good. `attempted`: a hand-over was tried (attempts + 1); false for a message that
// could not even be built.
void mark_failed(soci::session& tx, std::int64_t id, std::string_view reason, bool attempted);

[[nodiscard]] std::optional<email_record> find_email(soci::session& s, std::int64_t id);

// Up to q.limit + 1 rows, newest (highest id) first, so the caller can tell whether a next page exists.
[[nodiscard]] std::vector<email_record> list_emails(soci::session& s, const list_query& q);

}  // namespace shopd::roles::email
