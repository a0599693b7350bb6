#include "shopd/roles/analytics/analytics_repository.hpp"

#include "shopd/db/execute.hpp"

#include <soci/soci.h>

#include <algorithm>
#include <string>
#include <tuple>

namespace shopd::roles::analytics::repository {

namespace {

// A nullable value bound or fetched with its indicator (SOCI 4.0 has no std::optional support).
template <class T>
struct nullable {
  T value{};
  soci::indicator ind = soci::i_null;

  nullable() = default;
  explicit nullable(const std::optional<T>& v) : value(v.value_or(T{})), ind(v ? soci::i_ok : soci::i_null) {}
  [[nodiscard]] std::optional<T> get() const {
    return ind == soci::i_ok ? std::optional<T>(value) : std::nullopt;
  }
};

constexpr const char* dead_letter_columns =
    "SELECT id, event_id, dlq_id, source_message_id, destination, last_status, last_response, attempts, body,"
    " correlation_id, occurred_at_ms, recorded_at_ms, replayed_at_ms FROM dead_letters";

// The fetch buffers of a dead_letters row, bound to a statement once and read after each fetch.
struct dead_letter_buffer {
  std::int64_t id = 0;
  std::string event_id;
  nullable<std::string> dlq_id, source_message_id, destination, last_response, body, correlation_id;
  nullable<std::int64_t> last_status, attempts, replayed_at_ms;
  std::int64_t occurred_at_ms = 0;
  std::int64_t recorded_at_ms = 0;

  void bind(soci::statement& st) {
    st.exchange(soci::into(id));
    st.exchange(soci::into(event_id));
    st.exchange(soci::into(dlq_id.value, dlq_id.ind));
    st.exchange(soci::into(source_message_id.value, source_message_id.ind));
    st.exchange(soci::into(destination.value, destination.ind));
    st.exchange(soci::into(last_status.value, last_status.ind));
    st.exchange(soci::into(last_response.value, last_response.ind));
    st.exchange(soci::into(attempts.value, attempts.ind));
    st.exchange(soci::into(body.value, body.ind));
    st.exchange(soci::into(correlation_id.value, correlation_id.ind));
    st.exchange(soci::into(occurred_at_ms));
    st.exchange(soci::into(recorded_at_ms));
    st.exchange(soci::into(replayed_at_ms.value, replayed_at_ms.ind));
  }

  [[nodiscard]] dead_letter_row row() const {
    return dead_letter_row{.id = id,
                           .event_id = event_id,
                           .dlq_id = dlq_id.get(),
                           .source_message_id = source_message_id.get(),
                           .destination = destination.get(),
                           .last_status = last_status.get(),
                           .last_response = last_response.get(),
                           .attempts = attempts.get(),
                           .body = body.get(),
                           .correlation_id = correlation_id.get(),
                           .occurred_at_ms = occurred_at_ms,
                           .recorded_at_ms = recorded_at_ms,
                           .replayed_at_ms = replayed_at_ms.get()};
  }
};

}  // namespace

bool insert_audit(soci::session& tx, const audit_row& row) {
  nullable<std::string> correlation(row.correlation_id);
  nullable<std::string> causation(row.causation_id);
  return db::execute(
             tx,
             "INSERT INTO audit_log (event_id, correlation_id, causation_id, action, actor, entity_type,"
             " entity_id, outcome, detail, occurred_at_ms, recorded_at_ms)"
             " VALUES (:event_id, :correlation_id, :causation_id, :action, :actor, :entity_type,"
             " :entity_id, :outcome, :detail, :occurred_at_ms, :recorded_at_ms)"
             " ON CONFLICT DO NOTHING",
             soci::use(row.event_id), soci::use(correlation.value, correlation.ind),
             soci::use(causation.value, causation.ind), soci::use(row.action), soci::use(row.actor),
             soci::use(row.entity_type), soci::use(row.entity_id), soci::use(row.outcome),
             soci::use(row.detail), soci::use(row.occurred_at_ms), soci::use(row.recorded_at_ms)) > 0;
}

bool insert_metric(soci::session& tx, const metric_row& row) {
  nullable<std::string> unit(row.unit);
  return db::execute(
             tx,
             "INSERT INTO metric_points (event_id, name, value, unit, tags, occurred_at_ms, recorded_at_ms)"
             " VALUES (:event_id, :name, :value, :unit, :tags, :occurred_at_ms, :recorded_at_ms)"
             " ON CONFLICT DO NOTHING",
             soci::use(row.event_id), soci::use(row.name), soci::use(row.value),
             soci::use(unit.value, unit.ind), soci::use(row.tags), soci::use(row.occurred_at_ms),
             soci::use(row.recorded_at_ms)) > 0;
}

bool insert_dead_letter(soci::session& tx, const dead_letter_row& row) {
  nullable<std::string> dlq_id(row.dlq_id);
  nullable<std::string> source_message_id(row.source_message_id);
  nullable<std::string> destination(row.destination);
  nullable<std::int64_t> last_status(row.last_status);
  nullable<std::string> last_response(row.last_response);
  nullable<std::int64_t> attempts(row.attempts);
  nullable<std::string> body(row.body);
  nullable<std::string> correlation(row.correlation_id);
  return db::execute(
             tx,
             "INSERT INTO dead_letters (event_id, dlq_id, source_message_id, destination, last_status,"
             " last_response, attempts, body, correlation_id, occurred_at_ms, recorded_at_ms)"
             " VALUES (:event_id, :dlq_id, :source_message_id, :destination, :last_status,"
             " :last_response, :attempts, :body, :correlation_id, :occurred_at_ms, :recorded_at_ms)"
             " ON CONFLICT DO NOTHING",
             soci::use(row.event_id), soci::use(dlq_id.value, dlq_id.ind),
             soci::use(source_message_id.value, source_message_id.ind),
             soci::use(destination.value, destination.ind), soci::use(last_status.value, last_status.ind),
             soci::use(last_response.value, last_response.ind), soci::use(attempts.value, attempts.ind),
             soci::use(body.value, body.ind), soci::use(correlation.value, correlation.ind),
             soci::use(row.occurred_at_ms), soci::use(row.recorded_at_ms)) > 0;
}

bool insert_sale(soci::session& tx, const sale_row& row) {
  // No conflict target: a second event for the same order (order_id) is as much a duplicate as a
  // redelivered one (event_id).
  return db::execute(
             tx,
             "INSERT INTO sales (order_id, event_id, subtotal_cents, currency, item_count, created_at_ms)"
             " VALUES (:order_id, :event_id, :subtotal_cents, :currency, :item_count, :created_at_ms)"
             " ON CONFLICT DO NOTHING",
             soci::use(row.order_id), soci::use(row.event_id), soci::use(row.subtotal_cents),
             soci::use(row.currency), soci::use(row.item_count), soci::use(row.created_at_ms)) > 0;
}

std::vector<audit_row> find_audit(soci::session& s, const audit_query& q) {
  audit_row r;
  nullable<std::string> correlation;
  nullable<std::string> causation;
  soci::statement st(s);
  st.exchange(soci::into(r.id));
  st.exchange(soci::into(r.event_id));
  st.exchange(soci::into(correlation.value, correlation.ind));
  st.exchange(soci::into(causation.value, causation.ind));
  st.exchange(soci::into(r.action));
  st.exchange(soci::into(r.actor));
  st.exchange(soci::into(r.entity_type));
  st.exchange(soci::into(r.entity_id));
  st.exchange(soci::into(r.outcome));
  st.exchange(soci::into(r.detail));
  st.exchange(soci::into(r.occurred_at_ms));
  st.exchange(soci::into(r.recorded_at_ms));

  // Only the filters given become conditions (and binds), so each query can use its index.
  std::string where;
  const auto condition = [&](const char* sql) {
    where += where.empty() ? " WHERE " : " AND ";
    where += sql;
  };
  if (q.entity_id) {
    condition("entity_id = :entity_id");
    st.exchange(soci::use(*q.entity_id, "entity_id"));
  }
  if (q.action) {
    condition("action = :action");
    st.exchange(soci::use(*q.action, "action"));
  }
  if (q.correlation_id) {
    condition("correlation_id = :correlation_id");
    st.exchange(soci::use(*q.correlation_id, "correlation_id"));
  }
  if (q.since_ms) {
    condition("occurred_at_ms >= :since_ms");
    st.exchange(soci::use(*q.since_ms, "since_ms"));
  }
  if (q.page.before_id) {
    condition("id < :before_id");
    st.exchange(soci::use(*q.page.before_id, "before_id"));
  }
  const std::int64_t fetch = q.page.limit + 1;
  st.exchange(soci::use(fetch, "fetch"));

  st.alloc();
  st.prepare(
      "SELECT id, event_id, correlation_id, causation_id, action, actor, entity_type, entity_id, outcome, "
      "detail,"
      " occurred_at_ms, recorded_at_ms FROM audit_log" +
      where + " ORDER BY id DESC LIMIT :fetch");
  st.define_and_bind();
  st.execute(false);
  std::vector<audit_row> rows;
  while (st.fetch()) {
    rows.push_back(r);
    rows.back().correlation_id = correlation.get();
    rows.back().causation_id = causation.get();
  }
  return rows;
}

std::vector<dead_letter_row> list_dead_letters(soci::session& s, const page_request& page) {
  dead_letter_buffer buf;
  soci::statement st(s);
  buf.bind(st);
  std::string where;
  if (page.before_id) {
    where = " WHERE id < :before_id";
    st.exchange(soci::use(*page.before_id, "before_id"));
  }
  const std::int64_t fetch = page.limit + 1;
  st.exchange(soci::use(fetch, "fetch"));
  st.alloc();
  st.prepare(std::string(dead_letter_columns) + where + " ORDER BY id DESC LIMIT :fetch");
  st.define_and_bind();
  st.execute(false);
  std::vector<dead_letter_row> rows;
  while (st.fetch()) rows.push_back(buf.row());
  return rows;
}

std::optional<dead_letter_row> find_dead_letter(soci::session& s, std::int64_t id) {
  dead_letter_buffer buf;
  soci::statement st(s);
  buf.bind(st);
  st.exchange(soci::use(id, "id"));
  st.alloc();
  st.prepare(std::string(dead_letter_columns) + " WHERE id = :id");
  st.define_and_bind();
  st.execute(false);
  if (!st.fetch()) return std::nullopt;
  return buf.row();
}

bool mark_replayed(soci::session& tx, std::int64_t id, std::int64_t now_ms) {
  soci::statement st =
      (tx.prepare
           << "UPDATE dead_letters SET replayed_at_ms = :now_ms WHERE id = :id AND replayed_at_ms IS NULL",
       soci::use(now_ms), soci::use(id));
  st.execute(true);
  return st.get_affected_rows() > 0;
}

summary load_summary(soci::session& s) {
  summary out;
  s << "SELECT COUNT(*) FROM sales", soci::into(out.orders);
  {
    summary::revenue r;
    // CAST: PostgreSQL sums BIGINT as NUMERIC; both engines raise an error rather than wrap on overflow.
    soci::statement st = (s.prepare << "SELECT currency, CAST(SUM(subtotal_cents) AS BIGINT) FROM sales"
                                       " GROUP BY currency",
                          soci::into(r.currency), soci::into(r.total_cents));
    st.execute(false);
    while (st.fetch()) out.revenues.push_back(r);
  }
  {
    summary::event_count e;
    soci::statement st =
        (s.prepare << "SELECT action, outcome, COUNT(*) FROM audit_log GROUP BY action, outcome",
         soci::into(e.action), soci::into(e.outcome), soci::into(e.count));
    st.execute(false);
    while (st.fetch()) out.events.push_back(e);
  }
  std::int64_t replayed = 0;
  s << "SELECT COUNT(*), COUNT(replayed_at_ms) FROM dead_letters", soci::into(out.dead_letters),
      soci::into(replayed);
  out.unreplayed_dead_letters = out.dead_letters - replayed;
  const std::string shortfall(shortfall_metric);
  s << "SELECT COUNT(*) FROM metric_points WHERE name = :name", soci::into(out.shortfalls),
      soci::use(shortfall);

  // Sorted here rather than by ORDER BY: database collations disagree on '.', '_' and case.
  std::sort(out.revenues.begin(), out.revenues.end(),
            [](const auto& a, const auto& b) { return a.currency < b.currency; });
  std::sort(out.events.begin(), out.events.end(), [](const auto& a, const auto& b) {
    return std::tie(a.action, a.outcome) < std::tie(b.action, b.outcome);
  });
  return out;
}

}  // namespace shopd::roles::analytics::repository
