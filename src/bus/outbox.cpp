#include "shopd/bus/outbox.hpp"

#include "shopd/db/execute.hpp"

#include "shopd/db/database.hpp"
#include "shopd/db/row.hpp"

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

std::vector<pending_event> next_batch(db::database& db, std::string_view producer, int limit,
                                      std::int64_t now_ms) {
  return db.with_session([&](soci::session& s) {
    const std::string producer_s(producer);
    soci::rowset<soci::row> rows =
        (s.prepare << "SELECT id, event_id, event_type, destination, body, headers, attempts, created_at_ms "
                      "FROM outbox WHERE producer = :producer AND sent_at_ms IS NULL AND next_attempt_at_ms "
                      "<= :now "
                      "ORDER BY id LIMIT :limit",
         soci::use(producer_s), soci::use(now_ms), soci::use(limit));
    std::vector<pending_event> out;
    for (const auto& r : rows) {
      pending_event p;
      p.id = db::int_at(r, 0);
      p.event.event_id = r.get<std::string>(1);
      p.event.event_type = r.get<std::string>(2);
      p.event.destination = r.get<std::string>(3);
      p.event.body = r.get<std::string>(4);
      p.event.headers = r.get<std::string>(5);
      p.attempts = static_cast<int>(db::int_at(r, 6));
      p.created_at_ms = db::int_at(r, 7);
      out.push_back(std::move(p));
    }
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

void mark_failed(db::database& db, std::int64_t id, std::string_view error, std::int64_t retry_at_ms) {
  db.with_session([&](soci::session& s) {
    const std::string error_s(error.substr(0, 1000));
    s << "UPDATE outbox SET attempts = attempts + 1, last_error = :error, next_attempt_at_ms = :retry_at "
         "WHERE id = :id",
        soci::use(error_s), soci::use(retry_at_ms), soci::use(id);
  });
}

stats pending_stats(db::database& db, std::string_view producer) {
  return db.with_session([&](soci::session& s) {
    const std::string producer_s(producer);
    stats st;
    long long count = 0;
    long long oldest = 0;
    soci::indicator oldest_ind = soci::i_null;
    s << "SELECT COUNT(*), MIN(created_at_ms) FROM outbox WHERE producer = :producer AND sent_at_ms IS NULL",
        soci::into(count), soci::into(oldest, oldest_ind), soci::use(producer_s);
    st.pending = count;
    if (oldest_ind == soci::i_ok) st.oldest_created_at_ms = oldest;
    return st;
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
