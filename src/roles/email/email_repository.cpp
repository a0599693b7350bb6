#include "roles/email/email_repository.hpp"

#include "shopd/db/execute.hpp"
#include "shopd/text/utf8.hpp"

#include <soci/soci.h>

#include <stdexcept>

namespace shopd::roles::email {

namespace {

constexpr std::string_view columns =
    "id, event_id, order_id, to_address, template, subject, status, message_id, transport, error, attempts, "
    "correlation_id, created_at_ms, sent_at_ms";

// Errors come from SMTP servers and template variables; a bounded column keeps a chatty server from
// bloating the table. Cut at a character boundary: PostgreSQL refuses a split UTF-8 sequence.
constexpr std::size_t max_error_bytes = 1000;

std::string bounded(std::string_view reason) {
  return std::string(text::utf8_prefix(reason, max_error_bytes));
}

// The into() targets of one row of `columns`, reused for every fetched row.
struct row_buffer {
  long long id = 0;
  std::string event_id;
  std::string order_id;
  soci::indicator order_id_ind = soci::i_null;
  std::string to;
  std::string template_name;
  std::string subject;
  std::string status;
  std::string message_id;
  soci::indicator message_id_ind = soci::i_null;
  std::string transport;
  soci::indicator transport_ind = soci::i_null;
  std::string error;
  soci::indicator error_ind = soci::i_null;
  long long attempts = 0;
  std::string correlation_id;
  soci::indicator correlation_id_ind = soci::i_null;
  long long created_at_ms = 0;
  long long sent_at_ms = 0;
  soci::indicator sent_at_ind = soci::i_null;

  void exchange(soci::statement& st) {
    st.exchange(soci::into(id));
    st.exchange(soci::into(event_id));
    st.exchange(soci::into(order_id, order_id_ind));
    st.exchange(soci::into(to));
    st.exchange(soci::into(template_name));
    st.exchange(soci::into(subject));
    st.exchange(soci::into(status));
    st.exchange(soci::into(message_id, message_id_ind));
    st.exchange(soci::into(transport, transport_ind));
    st.exchange(soci::into(error, error_ind));
    st.exchange(soci::into(attempts));
    st.exchange(soci::into(correlation_id, correlation_id_ind));
    st.exchange(soci::into(created_at_ms));
    st.exchange(soci::into(sent_at_ms, sent_at_ind));
  }

  [[nodiscard]] email_record record() const {
    const auto text = [](const std::string& v, soci::indicator ind) {
      return ind == soci::i_ok ? std::optional<std::string>(v) : std::nullopt;
    };
    const auto parsed = parse_email_status(status);
    if (!parsed)
      throw std::runtime_error("emails row " + std::to_string(id) + " has unknown status " + status);
    return email_record{
        .id = id,
        .event_id = event_id,
        .order_id = text(order_id, order_id_ind),
        .to = to,
        .template_name = template_name,
        .subject = subject,
        .status = *parsed,
        .message_id = text(message_id, message_id_ind),
        .transport = text(transport, transport_ind),
        .error = text(error, error_ind),
        .attempts = attempts,
        .correlation_id = text(correlation_id, correlation_id_ind),
        .created_at_ms = created_at_ms,
        .sent_at_ms = sent_at_ind == soci::i_ok ? std::optional<std::int64_t>(sent_at_ms) : std::nullopt,
    };
  }
};

}  // namespace

email_record ensure_email(soci::session& tx, const new_email& e) {
  std::string order_id = e.order_id.value_or("");
  soci::indicator order_id_ind = e.order_id ? soci::i_ok : soci::i_null;
  const std::string pending(to_string(email_status::pending));
  const long long created = e.created_at_ms;
  // ON CONFLICT DO NOTHING keeps a PostgreSQL transaction usable when the row exists already.
  db::execute(
      tx,
      "INSERT INTO emails (event_id, order_id, to_address, template, subject, status, attempts, "
      "correlation_id, created_at_ms) VALUES (:event_id, :order_id, :to_address, :template, :subject, "
      ":status, 0, :correlation_id, :created_at_ms) ON CONFLICT (event_id) DO NOTHING",
      soci::use(e.event_id), soci::use(order_id, order_id_ind), soci::use(e.to), soci::use(e.template_name),
      soci::use(e.subject), soci::use(pending), soci::use(e.correlation_id), soci::use(created));

  row_buffer b;
  if (!db::query_one(tx, "SELECT " + std::string(columns) + " FROM emails WHERE event_id = :event_id",
                     [&](soci::statement& st) {
                       b.exchange(st);
                       st.exchange(soci::use(e.event_id));
                     })) {
    throw std::logic_error("emails row of event " + e.event_id + " vanished");
  }
  return b.record();
}

void record_transient_failure(soci::session& tx, std::int64_t id, std::string_view reason) {
  const std::string error = bounded(reason);
  const long long row = id;
  db::execute(tx, "UPDATE emails SET attempts = attempts + 1, error = :error WHERE id = :id",
              soci::use(error), soci::use(row));
}

void mark_sent(soci::session& tx, std::int64_t id, std::string_view message_id, std::string_view transport,
               std::int64_t sent_at_ms) {
  const std::string status(to_string(email_status::sent));
  const std::string message_id_s(message_id);
  const std::string transport_s(transport);
  const long long at = sent_at_ms;
  const long long row = id;
  db::execute(tx,
              "UPDATE emails SET status = :status, message_id = :message_id, transport = :transport, "
              "sent_at_ms = :sent_at_ms, attempts = attempts + 1, error = NULL WHERE id = :id",
              soci::use(status), soci::use(message_id_s), soci::use(transport_s), soci::use(at),
              soci::use(row));
}

void mark_failed(soci::session& tx, std::int64_t id, std::string_view reason, bool attempted) {
  const std::string status(to_string(email_status::failed));
  const std::string error = bounded(reason);
  const int increment = attempted ? 1 : 0;
  const long long row = id;
  db::execute(
      tx,
      "UPDATE emails SET status = :status, error = :error, attempts = attempts + :increment WHERE id = :id",
      soci::use(status), soci::use(error), soci::use(increment), soci::use(row));
}

std::optional<email_record> find_email(soci::session& s, std::int64_t id) {
  const long long wanted = id;
  row_buffer b;
  soci::statement st(s);
  b.exchange(st);
  st.exchange(soci::use(wanted));
  st.alloc();
  st.prepare("SELECT " + std::string(columns) + " FROM emails WHERE id = :id");
  st.define_and_bind();
  if (!st.execute(true)) return std::nullopt;
  return b.record();
}

std::vector<email_record> list_emails(soci::session& s, const list_query& q) {
  std::string sql = "SELECT " + std::string(columns) + " FROM emails";
  std::string order_id = q.order_id.value_or("");
  const long long before = q.before_id.value_or(0);
  const long long limit = static_cast<long long>(q.limit) + 1;

  row_buffer b;
  soci::statement st(s);
  b.exchange(st);
  const char* joiner = " WHERE ";
  if (q.order_id) {
    sql += joiner;
    sql += "order_id = :order_id";
    st.exchange(soci::use(order_id));
    joiner = " AND ";
  }
  if (q.before_id) {
    sql += joiner;
    sql += "id < :before_id";
    st.exchange(soci::use(before));
  }
  sql += " ORDER BY id DESC LIMIT :limit";
  st.exchange(soci::use(limit));
  st.alloc();
  st.prepare(sql);
  st.define_and_bind();

  std::vector<email_record> out;
  if (st.execute(true)) {
    do {
      out.push_back(b.record());
    } while (st.fetch());
  }
  return out;
}

}  // namespace shopd::roles::email
