#include "shopd/bus/outbox.hpp"

#include "shopd/db/execute.hpp"

#include "shopd/db/database.hpp"
#include "shopd/db/row.hpp"
#include "shopd/text/utf8.hpp"

#include <soci/soci.h>

namespace shopd::bus {

namespace outbox {

void enqueue(soci::session& tx, std::string_view producer, const outbox_event& ev, std::int64_t now_ms) {
  const std::string producer_s(producer);
  db::execute(
      tx,
      "INSERT INTO outbox (producer, event_id, event_type, destination, body, headers, created_at_ms, "
      "next_attempt_at_ms) VALUES (:producer, :event_id, :event_type, :destination, :body, :headers, :now, "
      ":now2)",
      soci::use(producer_s), soci::use(ev.event_id), soci::use(ev.event_type), soci::use(ev.destination),
      soci::use(ev.body), soci::use(ev.headers), soci::use(now_ms), soci::use(now_ms));
}

void enqueue_sent(soci::session& tx, std::string_view producer, const outbox_event& ev, std::int64_t now_ms,
                  const std::string& message_id) {
  const std::string producer_s(producer);
  db::execute(
      tx,
      "INSERT INTO outbox (producer, event_id, event_type, destination, body, headers, created_at_ms, "
      "next_attempt_at_ms, attempts, sent_at_ms, message_id) VALUES (:producer, :event_id, :event_type, "
      ":destination, :body, :headers, :now, :now2, 1, :now3, :message_id)",
      soci::use(producer_s), soci::use(ev.event_id), soci::use(ev.event_type), soci::use(ev.destination),
      soci::use(ev.body), soci::use(ev.headers), soci::use(now_ms), soci::use(now_ms), soci::use(now_ms),
      soci::use(message_id));
}

namespace {

// The columns pending_at reads, first in a SELECT of outbox rows.
constexpr std::string_view pending_columns =
    "id, event_id, event_type, destination, body, headers, attempts, created_at_ms";

pending_event pending_at(const soci::row& r) {
  pending_event p;
  p.id = db::int_at(r, 0);
  p.event.event_id = r.get<std::string>(1);
  p.event.event_type = r.get<std::string>(2);
  p.event.destination = r.get<std::string>(3);
  p.event.body = r.get<std::string>(4);
  p.event.headers = r.get<std::string>(5);
  p.attempts = static_cast<int>(db::int_at(r, 6));
  p.created_at_ms = db::int_at(r, 7);
  return p;
}

}  // namespace

std::vector<pending_event> next_batch(db::database& db, std::string_view producer, int limit,
                                      std::int64_t now_ms) {
  return db.with_session([&](soci::session& s) {
    const std::string producer_s(producer);
    soci::rowset<soci::row> rows =
        (s.prepare
             << "SELECT " + std::string(pending_columns) +
                    " FROM outbox WHERE producer = :producer AND sent_at_ms IS NULL AND refused_at_ms IS "
                    "NULL AND next_attempt_at_ms <= :now ORDER BY id LIMIT :limit",
         soci::use(producer_s), soci::use(now_ms), soci::use(limit));
    std::vector<pending_event> out;
    for (const auto& r : rows) out.push_back(pending_at(r));
    return out;
  });
}

void mark_sent(db::database& db, const std::vector<sent_row>& rows, std::int64_t now_ms) {
  if (rows.empty()) return;
  db.in_transaction([&](soci::session& tx) {
    std::int64_t id = 0;
    std::string message_id;
    soci::statement st =
        (tx.prepare
             << "UPDATE outbox SET sent_at_ms = :now, message_id = :message_id, attempts = attempts + 1, "
                "last_error = NULL WHERE id = :id",
         soci::use(now_ms), soci::use(message_id), soci::use(id));
    for (const auto& r : rows) {
      id = r.id;
      message_id = r.message_id;
      st.execute(true);
    }
  });
}

void mark_refused(db::database& db, const std::vector<refused_row>& rows, std::int64_t now_ms) {
  if (rows.empty()) return;
  db.in_transaction([&](soci::session& tx) {
    std::int64_t id = 0;
    std::string error;
    soci::statement st = (tx.prepare << "UPDATE outbox SET refused_at_ms = :now, attempts = attempts + 1, "
                                        "last_error = :error WHERE id = :id AND sent_at_ms IS NULL",
                          soci::use(now_ms), soci::use(error), soci::use(id));
    for (const auto& r : rows) {
      id = r.id;
      error = text::utf8_prefix(r.error, 1000);
      st.execute(true);
    }
  });
}

stats pending_stats(db::database& db, std::string_view producer) {
  return db.with_session([&](soci::session& s) {
    const std::string producer_s(producer);
    stats st;
    long long count = 0;
    long long oldest = 0;
    soci::indicator oldest_ind = soci::i_null;
    // Each COUNT reads one partial index: its own rows only, however many rows were sent.
    s << "SELECT COUNT(*), MIN(created_at_ms) FROM outbox WHERE producer = :producer AND sent_at_ms IS NULL "
         "AND refused_at_ms IS NULL",
        soci::into(count), soci::into(oldest, oldest_ind), soci::use(producer_s);
    st.pending = count;
    if (oldest_ind == soci::i_ok) st.oldest_created_at_ms = oldest;
    long long refused = 0;
    s << "SELECT COUNT(*) FROM outbox WHERE producer = :producer AND refused_at_ms IS NOT NULL",
        soci::into(refused), soci::use(producer_s);
    st.refused = refused;
    return st;
  });
}

std::vector<refused_event> list_refused(db::database& db, std::string_view producer, std::int64_t after_id,
                                        int limit) {
  return db.with_session([&](soci::session& s) {
    const std::string producer_s(producer);
    soci::rowset<soci::row> rows =
        (s.prepare
             << "SELECT " + std::string(pending_columns) +
                    ", producer, refused_at_ms, last_error FROM outbox WHERE refused_at_ms IS NOT NULL "
                    "AND (:producer = '' OR producer = :producer2) AND id > :after ORDER BY id LIMIT :limit",
         soci::use(producer_s), soci::use(producer_s), soci::use(after_id), soci::use(limit));
    std::vector<refused_event> out;
    for (const auto& r : rows) {
      auto p = pending_at(r);
      refused_event e{.id = p.id,
                      .producer = r.get<std::string>(8),
                      .event = std::move(p.event),
                      .attempts = p.attempts,
                      .created_at_ms = p.created_at_ms,
                      .refused_at_ms = db::int_at(r, 9),
                      .error = r.get_indicator(10) == soci::i_ok ? r.get<std::string>(10) : std::string()};
      out.push_back(std::move(e));
    }
    return out;
  });
}

std::int64_t requeue(db::database& db, std::string_view producer, const std::vector<std::int64_t>& ids,
                     std::int64_t now_ms) {
  return db.in_transaction([&](soci::session& tx) -> std::int64_t {
    const std::string producer_s(producer);
    constexpr const char* update =
        "UPDATE outbox SET refused_at_ms = NULL, next_attempt_at_ms = :now WHERE refused_at_ms IS NOT NULL "
        "AND (:producer = '' OR producer = :producer2)";
    if (ids.empty()) {
      soci::statement st =
          (tx.prepare << update, soci::use(now_ms), soci::use(producer_s), soci::use(producer_s));
      st.execute(true);
      return st.get_affected_rows();
    }
    std::int64_t id = 0;
    std::int64_t changed = 0;
    soci::statement st = (tx.prepare << std::string(update) + " AND id = :id", soci::use(now_ms),
                          soci::use(producer_s), soci::use(producer_s), soci::use(id));
    for (const auto one : ids) {
      id = one;
      st.execute(true);
      changed += st.get_affected_rows();
    }
    return changed;
  });
}

}  // namespace outbox

namespace inbox {

bool record_once(soci::session& tx, std::string_view consumer, std::string_view event_id,
                 std::string_view event_type, std::int64_t now_ms) {
  const std::string consumer_s(consumer);
  const std::string event_id_s(event_id);
  const std::string event_type_s(event_type);
  // ON CONFLICT DO NOTHING (SQLite >= 3.24 and PostgreSQL alike) keeps the transaction usable on a
  // redelivery, where a failed INSERT would abort it on PostgreSQL.
  return db::execute(tx,
                     "INSERT INTO inbox (consumer, event_id, event_type, received_at_ms) "
                     "VALUES (:consumer, :event_id, :event_type, :now) ON CONFLICT DO NOTHING",
                     soci::use(consumer_s), soci::use(event_id_s), soci::use(event_type_s),
                     soci::use(now_ms)) == 1;
}

}  // namespace inbox

}  // namespace shopd::bus
