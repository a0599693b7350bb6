#include "shopd/relay/store.hpp"

#include "shopd/bus/crypto.hpp"
#include "shopd/db/database.hpp"
#include "shopd/db/execute.hpp"
#include "shopd/db/row.hpp"
#include "shopd/obs/log.hpp"
#include "shopd/text/hex.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <soci/soci.h>

#include <algorithm>
#include <deque>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>
#include <utility>

namespace shopd::relay {

namespace {

namespace json = boost::json;
using db::int_at;
using db::is_null;
using db::opt_int_at;
using db::opt_text_at;
using db::text_at;

// At most this many saturated origins are excluded by SQL from the queries that cannot select by
// origin (expired leases, messages stored without an origin); messages of the others still never
// take a slot they do not have (the claim checks every candidate), they only cost a candidate.
constexpr std::size_t max_excluded_origins = 100;

constexpr std::string_view pending_states = "('CREATED', 'ACTIVE', 'RETRY')";

// ---------------------------------------------------------------------------------------------
// A statement assembled at run time: SQL text plus the values its placeholders bind, kept alive
// here (SOCI binds by reference) and bound in order of appearance.
class bound_query {
 public:
  explicit bound_query(std::string sql = {}) : sql_(std::move(sql)) {}

  bound_query& sql(std::string_view text) {
    sql_ += text;
    return *this;
  }
  bound_query& text(std::string value) {
    texts_.push_back(std::move(value));
    order_.push_back({true, texts_.size() - 1});
    return placeholder();
  }
  bound_query& integer(long long value) {
    integers_.push_back(value);
    order_.push_back({false, integers_.size() - 1});
    return placeholder();
  }

  /// Run it; returns the rows affected.
  long long execute(soci::session& s) {
    soci::statement st(s);
    bind(st);
    st.alloc();
    st.prepare(sql_, soci::details::st_one_time_query);
    st.define_and_bind();
    st.execute(true);
    return st.get_affected_rows();
  }

  /// Run it and call f(const soci::row&) for each row.
  template <typename F>
  void for_each_row(soci::session& s, F&& f) {
    soci::row r;
    soci::statement st(s);
    st.exchange(soci::into(r));
    bind(st);
    st.alloc();
    st.prepare(sql_, soci::details::st_one_time_query);
    st.define_and_bind();
    if (!st.execute(true)) return;
    do {
      f(static_cast<const soci::row&>(r));
    } while (st.fetch());
  }

 private:
  struct slot {
    bool is_text;
    std::size_t index;
  };

  bound_query& placeholder() {
    sql_ += ":p" + std::to_string(order_.size());
    return *this;
  }
  void bind(soci::statement& st) {
    for (const auto& o : order_) {
      if (o.is_text) {
        st.exchange(soci::use(texts_[o.index]));
      } else {
        st.exchange(soci::use(integers_[o.index]));
      }
    }
  }

  std::string sql_;
  std::deque<std::string> texts_;
  std::deque<long long> integers_;
  std::vector<slot> order_;
};

// ---------------------------------------------------------------------------------------------
// Bodies are bytes: a BLOB on SQLite (bound as is), a BYTEA on PostgreSQL (hex both ways, since
// libpq text parameters cannot carry NUL or invalid UTF-8). Both are read back as hex.

std::string from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) throw std::runtime_error("relay store: odd-length hex body");
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = text::hex_value(hex[i]);
    const int lo = text::hex_value(hex[i + 1]);
    if (hi < 0 || lo < 0) throw std::runtime_error("relay store: invalid hex body");
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

std::string to_hex(std::string_view bytes) {
  return bus::crypto::hex_encode(
      std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()));
}

struct dialect_sql {
  std::string_view body_in;   // the value expression of an inserted body placeholder, around "%"
  std::string_view body_out;  // the select expression of the body column
  bool skip_locked;
  // After "FROM relay_messages" in the queries for waiting messages. SQLite, without statistics,
  // prefers the state index (state = ?) and then reads and sorts every waiting row, body included,
  // inside the write transaction of each claim; the partial indexes on not_before_ms and on (origin,
  // not_before_ms) read the rows in order and stop at the LIMIT.
  std::string_view due_index;
  std::string_view origin_index;
  // Purge's scan of finished messages, pinned as the claims' are: a range of (state, updated_at_ms)
  // per state, which keeps a purge from reading every message kept.
  std::string_view purge_index;
};

dialect_sql sql_for(db::dialect d) {
  if (d == db::dialect::postgresql) return {"decode(%, 'hex')", "encode(body, 'hex')", true, "", "", ""};
  return {"CAST(% AS BLOB)",
          "hex(body)",
          false,
          " INDEXED BY relay_messages_due",
          " INDEXED BY relay_messages_origin_due",
          " INDEXED BY relay_messages_state_changed"};
}

std::string body_value(db::dialect d, std::string_view body) {
  return d == db::dialect::postgresql ? to_hex(body) : std::string(body);
}

// Text columns on PostgreSQL must be valid UTF-8; error texts are made of whatever a socket said.
std::string printable(std::string_view text, std::size_t max = 1000) {
  std::string out;
  out.reserve(std::min(text.size(), max));
  for (char c : text.substr(0, max)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u >= 0x7f) ? '?' : c;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rows of relay_messages.

std::string message_columns(const dialect_sql& d) {
  return "message_id, kind, destination, method, headers, " + std::string(d.body_out) +
         ", state, max_retries, retried, retry_delay_expr, timeout_ms, callback, failure_callback, options, "
         "dedup_id, caller_ip, not_before_ms, lease_owner, lease_until_ms, last_status, last_error, "
         "created_at_ms, updated_at_ms";
}

// The same columns prefixed with a table alias, for joins.
std::string message_columns(const dialect_sql& d, std::string_view alias) {
  const std::string a = std::string(alias) + ".";
  std::string body(d.body_out);
  body.replace(body.find("body"), 4, a + "body");
  return a + "message_id, " + a + "kind, " + a + "destination, " + a + "method, " + a + "headers, " + body +
         ", " + a + "state, " + a + "max_retries, " + a + "retried, " + a + "retry_delay_expr, " + a +
         "timeout_ms, " + a + "callback, " + a + "failure_callback, " + a + "options, " + a + "dedup_id, " +
         a + "caller_ip, " + a + "not_before_ms, " + a + "lease_owner, " + a + "lease_until_ms, " + a +
         "last_status, " + a + "last_error, " + a + "created_at_ms, " + a + "updated_at_ms";
}

constexpr std::size_t message_column_count = 23;

json::value parse_stored_json(const std::string& text, std::string_view column) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec) {
    throw relay_exception(make_error(errc::invalid_stored_value,
                                     std::string(column) + ": not JSON: " + ec.message(),
                                     std::string(column)));
  }
  return v;
}

stored_message message_from_row(const soci::row& r, std::size_t first = 0) {
  stored_message m;
  std::size_t i = first;
  m.message_id = text_at(r, i++);
  const auto kind = message_kind_from_string(text_at(r, i++));
  if (!kind) throw relay_exception(make_error(errc::invalid_stored_value, "unknown message kind", "kind"));
  m.spec.kind = *kind;
  m.spec.destination = text_at(r, i++);
  m.spec.method = text_at(r, i++);
  m.spec.headers = headers_from_json(parse_stored_json(text_at(r, i++), "headers")).value();
  m.spec.body = from_hex(text_at(r, i++));
  const auto state = message_state_from_string(text_at(r, i++));
  if (!state) throw relay_exception(make_error(errc::invalid_stored_value, "unknown message state", "state"));
  m.state = *state;
  m.spec.max_retries = int_at(r, i++);
  m.retried = int_at(r, i++);
  m.spec.retry_delay_expr = opt_text_at(r, i++);
  m.spec.timeout_ms = opt_int_at(r, i++).value_or(0);
  m.spec.callback = opt_text_at(r, i++);
  m.spec.failure_callback = opt_text_at(r, i++);
  m.spec.options = message_options::from_json(parse_stored_json(text_at(r, i++), "options")).value();
  m.spec.dedup_id = opt_text_at(r, i++);
  m.spec.caller_ip = text_at(r, i++);
  m.spec.not_before_ms = int_at(r, i++);
  m.lease_owner = opt_text_at(r, i++);
  m.lease_until_ms = opt_int_at(r, i++);
  if (const auto st = opt_int_at(r, i++)) m.last_status = static_cast<int>(*st);
  m.last_error = opt_text_at(r, i++);
  m.spec.created_at_ms = int_at(r, i++);
  m.updated_at_ms = int_at(r, i++);
  return m;
}

// A lease a message takes as it is stored: ACTIVE, leased to `owner` until `until_ms`.
struct initial_lease {
  std::string owner;
  std::int64_t until_ms = 0;
};

std::optional<initial_lease> lease_for(const std::string& node_id, std::optional<std::int64_t> until_ms) {
  if (!until_ms) return std::nullopt;
  return initial_lease{.owner = node_id, .until_ms = *until_ms};
}

// Stores `m` as CREATED, or ACTIVE under `lease`.
void insert_message(soci::session& s, db::dialect d, const std::string& message_id, const message_spec& m,
                    std::int64_t now_ms, bool keep_dedup_id, const std::optional<initial_lease>& lease = {}) {
  const auto sql = sql_for(d);
  std::string body_in(sql.body_in);
  body_in.replace(body_in.find('%'), 1, ":body");

  std::string kind(to_string(m.kind));
  std::string destination = m.destination;
  std::string method = m.method;
  std::string headers = json::serialize(headers_to_json(m.headers));
  std::string body = body_value(d, m.body);
  long long max_retries = m.max_retries;
  std::string retry_delay = m.retry_delay_expr.value_or("");
  soci::indicator retry_delay_ind = m.retry_delay_expr ? soci::i_ok : soci::i_null;
  long long timeout_ms = m.timeout_ms;
  soci::indicator timeout_ind = m.timeout_ms > 0 ? soci::i_ok : soci::i_null;
  std::string callback = m.callback.value_or("");
  soci::indicator callback_ind = m.callback ? soci::i_ok : soci::i_null;
  std::string failure_callback = m.failure_callback.value_or("");
  soci::indicator failure_callback_ind = m.failure_callback ? soci::i_ok : soci::i_null;
  std::string options = json::serialize(m.options.to_json());
  const bool with_dedup = keep_dedup_id && m.dedup_id.has_value();
  std::string dedup_id = with_dedup ? *m.dedup_id : std::string();
  soci::indicator dedup_ind = with_dedup ? soci::i_ok : soci::i_null;
  std::string caller_ip = m.caller_ip;
  long long not_before = m.not_before_ms;
  long long created = m.created_at_ms > 0 ? m.created_at_ms : now_ms;
  long long updated = now_ms;
  std::string id = message_id;
  std::string origin = origin_of(m.destination);
  std::string state(to_string(lease ? message_state::active : message_state::created));
  std::string lease_owner = lease ? lease->owner : std::string();
  soci::indicator lease_owner_ind = lease ? soci::i_ok : soci::i_null;
  long long lease_until = lease ? lease->until_ms : 0;
  soci::indicator lease_until_ind = lease ? soci::i_ok : soci::i_null;

  db::execute(
      s,
      "INSERT INTO relay_messages (message_id, kind, destination, method, headers, body, state, "
      "max_retries, retried, retry_delay_expr, timeout_ms, callback, failure_callback, options, dedup_id, "
      "caller_ip, not_before_ms, created_at_ms, updated_at_ms, origin, lease_owner, lease_until_ms) VALUES "
      "(:id, :kind, :destination, :method, :headers, " +
          body_in +
          ", :state, :max_retries, 0, :retry_delay, :timeout_ms, :callback, :failure_callback, "
          ":options, :dedup_id, :caller_ip, :not_before, :created, :updated, :origin, :lease_owner, "
          ":lease_until)",
      soci::use(id), soci::use(kind), soci::use(destination), soci::use(method), soci::use(headers),
      soci::use(body), soci::use(state), soci::use(max_retries), soci::use(retry_delay, retry_delay_ind),
      soci::use(timeout_ms, timeout_ind), soci::use(callback, callback_ind),
      soci::use(failure_callback, failure_callback_ind), soci::use(options), soci::use(dedup_id, dedup_ind),
      soci::use(caller_ip), soci::use(not_before), soci::use(created), soci::use(updated), soci::use(origin),
      soci::use(lease_owner, lease_owner_ind), soci::use(lease_until, lease_until_ind));
}

accepted_message insert_one(soci::session& s, db::dialect d, const message_spec& m, std::int64_t now_ms,
                            std::int64_t dedup_window_ms, const std::optional<initial_lease>& lease) {
  std::string message_id = new_message_id();
  if (m.dedup_id) {
    // One statement decides who owns the id: a live row is left alone (no row changes), an expired
    // one is taken over. On PostgreSQL a concurrent publisher of the same id waits for our commit
    // here and then finds our live row.
    std::string dedup_id = *m.dedup_id;
    long long expires = now_ms + dedup_window_ms;
    long long now = now_ms;
    const auto taken = db::execute(
        s,
        "INSERT INTO relay_dedup (dedup_id, message_id, expires_at_ms) VALUES (:dedup_id, :message_id, "
        ":expires) ON CONFLICT (dedup_id) DO UPDATE SET message_id = excluded.message_id, "
        "expires_at_ms = excluded.expires_at_ms WHERE relay_dedup.expires_at_ms <= :now",
        soci::use(dedup_id), soci::use(message_id), soci::use(expires), soci::use(now));
    if (taken == 0) {
      std::string existing;
      s << "SELECT message_id FROM relay_dedup WHERE dedup_id = :dedup_id", soci::into(existing),
          soci::use(dedup_id);
      return {existing, true};
    }
  }
  insert_message(s, d, message_id, m, now_ms, true, lease);
  return {message_id, false};
}

// Applies the lease condition; returns true when this node held the lease and the row changed.
bool update_leased(soci::session& s, bound_query& q, std::string_view message_id, const std::string& node) {
  q.sql(" WHERE message_id = ")
      .text(std::string(message_id))
      .sql(" AND state = 'ACTIVE' AND lease_owner = ")
      .text(node);
  return q.execute(s) == 1;
}

// ---------------------------------------------------------------------------------------------
// Recording outcomes: a batch's statements repeat per message, so they go through db::execute and
// db::query_one, which keep them prepared on a SQLite file's writer connection.

// The outcome's state change, under the lease condition; true when this node held the lease.
bool record_state(soci::session& s, const std::string& node, const attempt_outcome& o) {
  const auto& a = o.attempt;
  const int status = a.response.status;
  soci::indicator status_ind = status > 0 ? soci::i_ok : soci::i_null;
  const std::string error = a.error.empty() ? std::string() : printable(a.error);
  soci::indicator error_ind = a.error.empty() ? soci::i_null : soci::i_ok;
  const std::string response = status > 0 ? base64_encode(a.response.body) : std::string();
  soci::indicator response_ind = status_ind;
  const long long now = o.now_ms;
  const std::string rest =
      ", last_status = :status, last_error = :error, last_response = :response, lease_owner = NULL, "
      "lease_until_ms = NULL, updated_at_ms = :now WHERE message_id = :id AND state = 'ACTIVE' AND "
      "lease_owner = :node";
  if (o.verdict == attempt_verdict::retry) {
    const long long next = o.next_attempt_ms;
    return db::execute(
               s,
               "UPDATE relay_messages SET state = 'RETRY', retried = retried + 1, not_before_ms = :next" +
                   rest,
               soci::use(next), soci::use(status, status_ind), soci::use(error, error_ind),
               soci::use(response, response_ind), soci::use(now), soci::use(o.message_id),
               soci::use(node)) == 1;
  }
  const std::string state = o.verdict == attempt_verdict::delivered ? "DELIVERED" : "FAILED";
  return db::execute(s, "UPDATE relay_messages SET state = :state" + rest, soci::use(state),
                     soci::use(status, status_ind), soci::use(error, error_ind),
                     soci::use(response, response_ind), soci::use(now), soci::use(o.message_id),
                     soci::use(node)) == 1;
}

bool dlq_id_taken(soci::session& s, const std::string& dlq_id) {
  long long taken = 0;
  db::query_one(s, "SELECT COUNT(*) FROM relay_dlq WHERE dlq_id = :id", [&](soci::statement& st) {
    st.exchange(soci::into(taken));
    st.exchange(soci::use(dlq_id));
  });
  return taken != 0;
}

// The DLQ row of `o`, whose message row record_state has just marked FAILED.
void insert_dlq(soci::session& s, const attempt_outcome& o, const std::string& dlq_id,
                std::int64_t failed_at_ms) {
  const long long failed_at = failed_at_ms;
  const int status = o.attempt.response.status;
  soci::indicator status_ind = status > 0 ? soci::i_ok : soci::i_null;
  soci::indicator body_ind = status_ind;
  const std::string body = base64_encode(o.attempt.response.body);
  const std::string headers = json::serialize(headers_to_json(o.attempt.response.headers));
  db::execute(s,
              "INSERT INTO relay_dlq (dlq_id, message_id, failed_at_ms, response_status, response_body, "
              "response_headers) VALUES (:dlq_id, :message_id, :failed_at, :status, :body, :headers)",
              soci::use(dlq_id), soci::use(o.message_id), soci::use(failed_at), soci::use(status, status_ind),
              soci::use(body, body_ind), soci::use(headers));
}

recorded_outcome record_one(soci::session& s, db::dialect d, const std::string& node,
                            dlq_id_generator& dlq_ids, const attempt_outcome& o) {
  recorded_outcome out;
  if (!record_state(s, node, o)) return out;
  out.held = true;
  std::optional<std::string_view> follow_up_dlq_id;
  if (o.verdict == attempt_verdict::failed) {
    // Instances sharing a database draw DLQ ids independently; a clash is improbable but cheap to
    // rule out inside the transaction.
    std::string dlq_id;
    do {
      dlq_id = dlq_ids.next(o.now_ms);
    } while (dlq_id_taken(s, dlq_id));
    insert_dlq(s, o, dlq_id, parse_dlq_id(dlq_id)->ms);
    out.dlq_id = std::move(dlq_id);
    follow_up_dlq_id = *out.dlq_id;
  }
  if (o.follow_ups && o.verdict != attempt_verdict::retry) {
    for (const auto& m : o.follow_ups(follow_up_dlq_id))
      insert_message(s, d, new_message_id(), m, o.now_ms, false);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// DLQ rows: relay_dlq joined with its message.

constexpr std::size_t dlq_column_count = 6;

std::string dlq_select(const dialect_sql& d) {
  return "SELECT q.dlq_id, q.message_id, q.failed_at_ms, q.response_status, q.response_body, "
         "q.response_headers, " +
         message_columns(d, "m") + " FROM relay_dlq q JOIN relay_messages m ON m.message_id = q.message_id";
}

dlq_item dlq_from_row(const soci::row& r) {
  dlq_item item;
  item.entry.dlq_id = text_at(r, 0);
  item.entry.message_id = text_at(r, 1);
  item.entry.failed_at_ms = int_at(r, 2);
  item.entry.response_status = static_cast<int>(opt_int_at(r, 3).value_or(0));
  if (const auto body = opt_text_at(r, 4)) {
    auto decoded = bus::crypto::base64_decode(*body);
    if (!decoded)
      throw relay_exception(
          make_error(errc::invalid_stored_value, "response_body: not base64", "response_body"));
    item.entry.response_body = std::move(*decoded);
  }
  item.entry.response_headers =
      headers_from_json(parse_stored_json(text_at(r, 5), "response_headers")).value();
  item.message = message_from_row(r, dlq_column_count);
  return item;
}

// WHERE and ORDER BY of a DLQ query, with `count + 1` rows asked for so the caller knows whether
// a next page exists.
void add_dlq_filter(bound_query& q, const dlq_query& f) {
  q.sql(" WHERE 1 = 1");
  if (!f.dlq_ids.empty()) {
    q.sql(" AND q.dlq_id IN (");
    for (std::size_t i = 0; i < f.dlq_ids.size(); ++i) {
      if (i > 0) q.sql(", ");
      q.text(f.dlq_ids[i]);
    }
    q.sql(")");
  }
  if (f.message_id) q.sql(" AND q.message_id = ").text(*f.message_id);
  if (f.url) q.sql(" AND m.destination = ").text(*f.url);
  if (f.response_status) q.sql(" AND q.response_status = ").integer(*f.response_status);
  if (f.caller_ip) q.sql(" AND m.caller_ip = ").text(*f.caller_ip);
  if (f.from_ms) q.sql(" AND q.failed_at_ms >= ").integer(*f.from_ms);
  if (f.to_ms) q.sql(" AND q.failed_at_ms <= ").integer(*f.to_ms);
  if (f.cursor) {
    const auto parts = parse_dlq_id(*f.cursor);
    if (!parts) throw std::invalid_argument("invalid cursor");
    const char* cmp = f.latest_first ? "<" : ">";
    q.sql(" AND (q.failed_at_ms ").sql(cmp).sql(" ").integer(parts->ms);
    q.sql(" OR (q.failed_at_ms = ")
        .integer(parts->ms)
        .sql(" AND q.dlq_id ")
        .sql(cmp)
        .sql(" ")
        .text(*f.cursor)
        .sql("))");
  }
  const char* dir = f.latest_first ? " DESC" : " ASC";
  q.sql(" ORDER BY q.failed_at_ms").sql(dir).sql(", q.dlq_id").sql(dir);
  q.sql(" LIMIT ").integer(static_cast<long long>(std::clamp<std::size_t>(f.count, 1, 100)) + 1);
}

dlq_page select_dlq_page(soci::session& s, db::dialect d, const dlq_query& f) {
  bound_query q(dlq_select(sql_for(d)));
  add_dlq_filter(q, f);
  dlq_page page;
  q.for_each_row(s, [&](const soci::row& r) { page.items.push_back(dlq_from_row(r)); });
  const std::size_t count = std::clamp<std::size_t>(f.count, 1, 100);
  if (page.items.size() > count) {
    page.items.resize(count);
    page.cursor = page.items.back().entry.dlq_id;
  }
  return page;
}

void delete_dlq_entry(soci::session& s, const std::string& dlq_id, const std::string& message_id) {
  s << "DELETE FROM relay_dlq WHERE dlq_id = :dlq_id", soci::use(dlq_id);
  s << "DELETE FROM relay_messages WHERE message_id = :message_id AND state = 'FAILED'",
      soci::use(message_id);
}

// ---------------------------------------------------------------------------------------------
// Claims.

// Excludes the messages of `saturated` origins, recognised by their destination: the origin of a
// destination is its lower-cased prefix up to the first '/', '?' or '#' after "://" (origin_of);
// destinations are ASCII URLs, so lengths in characters are lengths in bytes.
void exclude_origins(bound_query& q, const std::vector<std::string>& saturated) {
  for (std::size_t i = 0; i < saturated.size() && i < max_excluded_origins; ++i) {
    const auto& origin = saturated[i];
    const auto len = static_cast<long long>(origin.size());
    q.sql(" AND NOT (lower(substr(destination, 1, ").integer(len).sql(")) = ").text(origin);
    q.sql(" AND (length(destination) = ").integer(len).sql(" OR substr(destination, ").integer(len + 1);
    q.sql(", 1) IN ('/', '?', '#')))");
  }
}

// The origins with CREATED or RETRY messages (due or not) greater than `after` (and at most
// `up_to`, when given), ascending, at most `max` of them: a loose index scan of
// relay_messages_origin_due, one index seek per origin however many messages each has.
std::vector<std::string> pending_origins(soci::session& s, const dialect_sql& d, const std::string& after,
                                         const std::optional<std::string>& up_to, std::size_t max) {
  std::vector<std::string> out;
  if (max == 0) return out;
  bound_query q("WITH RECURSIVE o (origin, n) AS (SELECT ");
  // The first pending origin greater than what `greater_than` appends (a value or a column).
  const auto next_origin = [&](const auto& greater_than) {
    q.sql("(SELECT origin FROM relay_messages").sql(d.origin_index);
    q.sql(" WHERE state IN ('CREATED', 'RETRY') AND origin > ");
    greater_than();
    if (up_to) q.sql(" AND origin <= ").text(*up_to);
    q.sql(" ORDER BY origin LIMIT 1)");
  };
  next_origin([&] { q.text(after); });
  q.sql(", 1 UNION ALL SELECT ");
  next_origin([&] { q.sql("o.origin"); });
  q.sql(", o.n + 1 FROM o WHERE o.origin IS NOT NULL AND o.n < ").integer(static_cast<long long>(max));
  q.sql(") SELECT origin FROM o WHERE origin IS NOT NULL");
  q.for_each_row(s, [&](const soci::row& r) { out.push_back(text_at(r, 0)); });
  return out;
}

std::string retry_entry(soci::session& s, db::dialect d, const dlq_item& item, std::int64_t now_ms) {
  message_spec m = item.message.spec;
  m.not_before_ms = now_ms;
  m.created_at_ms = now_ms;
  std::string id = new_message_id();
  insert_message(s, d, id, m, now_ms, false);
  s << "DELETE FROM relay_dlq WHERE dlq_id = :dlq_id", soci::use(item.entry.dlq_id);
  return id;
}

}  // namespace

// -------------------------------------------------------------------------------------------------

std::string_view to_string(message_state s) noexcept {
  switch (s) {
    case message_state::created:
      return "CREATED";
    case message_state::active:
      return "ACTIVE";
    case message_state::retry:
      return "RETRY";
    case message_state::delivered:
      return "DELIVERED";
    case message_state::failed:
      return "FAILED";
    case message_state::cancelled:
      return "CANCELLED";
  }
  return "CREATED";
}

std::optional<message_state> message_state_from_string(std::string_view s) noexcept {
  for (auto st : {message_state::created, message_state::active, message_state::retry,
                  message_state::delivered, message_state::failed, message_state::cancelled}) {
    if (to_string(st) == s) return st;
  }
  return std::nullopt;
}

relay_store::relay_store(db::database& db, std::string node_id) : db_(db), node_id_(std::move(node_id)) {
  if (node_id_.empty()) throw std::invalid_argument("relay node id must not be empty");
}

accepted_message relay_store::insert(const message_spec& m, std::int64_t now_ms, std::int64_t dedup_window_ms,
                                     std::optional<std::int64_t> lease_until_ms) {
  return insert_all(std::span(&m, 1), now_ms, dedup_window_ms, std::span(&lease_until_ms, 1)).front();
}

std::string relay_store::insert_new_in(soci::session& tx, const message_spec& m, std::int64_t now_ms,
                                       std::optional<std::int64_t> lease_until_ms) {
  std::string message_id = new_message_id();
  insert_message(tx, db_.kind(), message_id, m, now_ms, true, lease_for(node_id_, lease_until_ms));
  return message_id;
}

std::vector<accepted_message> relay_store::insert_all(
    std::span<const message_spec> ms, std::int64_t now_ms, std::int64_t dedup_window_ms,
    std::span<const std::optional<std::int64_t>> lease_until_ms) {
  if (ms.empty()) return {};
  if (!lease_until_ms.empty() && lease_until_ms.size() != ms.size())
    throw std::invalid_argument("relay insert: one lease (or none) per message");
  return db_.in_transaction([&](soci::session& s) {
    std::vector<accepted_message> out;
    out.reserve(ms.size());
    for (std::size_t i = 0; i < ms.size(); ++i) {
      out.push_back(
          insert_one(s, db_.kind(), ms[i], now_ms, dedup_window_ms,
                     lease_for(node_id_, lease_until_ms.empty() ? std::nullopt : lease_until_ms[i])));
    }
    return out;
  });
}

claim_result relay_store::claim(std::int64_t now_ms, delivery_slots& slots, std::int64_t lease_margin_ms,
                                std::int64_t default_timeout_ms, const claim_slots& owner) {
  claim_result out;
  const std::size_t limit = slots.free();
  if (limit == 0) return out;
  const auto d = sql_for(db_.kind());
  const auto saturated = slots.saturated_origins();
  const std::string cursor = [&] {
    std::lock_guard lock(cursor_mutex_);
    return origin_cursor_;
  }();
  std::string next_cursor;
  // Expired leases are looked for at most every expired_lease_check_ms. On PostgreSQL the state
  // index keeps an entry for every ACTIVE version a message ever had until VACUUM removes it, and a
  // bitmap scan never marks them dead: once the leases of the first deliveries have run out, that
  // lookup reads every message delivered since the last vacuum (after a 5,000-checkout run: 40,000
  // index entries and 6,000 heap pages, 15 ms), on every claim.
  const bool look_for_expired = now_ms >= next_expired_check_ms_.load(std::memory_order_relaxed);
  // What a claim picks, before its leases are taken: the messages (with the origin each took a slot
  // of) and the rest of the result.
  struct plan {
    claim_result result;
    std::vector<std::string> origins;
    std::vector<std::pair<std::string, std::string>> unreadable;  // message id, why
  };
  const auto choose = [&](soci::session& s) {
    plan p;
    claim_result& r = p.result;
    // Due messages are read origin by origin through relay_messages_origin_due, each origin's
    // oldest first and no more than its free slots, so the backlog of a saturated origin is never
    // read at all. The origins come from a loose index scan that resumes after the last origin the
    // previous claim visited, so that beyond max_origins_per_claim all are served in turn.
    auto origins = pending_origins(s, d, cursor, std::nullopt, max_origins_per_claim);
    if (!cursor.empty() && origins.size() < max_origins_per_claim) {
      auto wrapped = pending_origins(s, d, "", cursor, max_origins_per_claim - origins.size());
      origins.insert(origins.end(), std::make_move_iterator(wrapped.begin()),
                     std::make_move_iterator(wrapped.end()));
    }
    if (origins.size() == max_origins_per_claim) {
      next_cursor = origins.back();
      r.more_due = true;  // origins past the cursor were not looked at
      r.other_due = true;
    }

    // All candidate queries go in one statement (preparing a statement costs more than its index
    // seeks here), each selecting ids only: one part per origin, one for the messages stored
    // without an origin (by an older relay; found by destination, and their origin is written when
    // claimed), one for expired leases (the state index). A saturated origin's part
    // is a probe: it only tells whether the origin has a due message (LIMIT 1, not locked, not a
    // candidate), to report it waiting. Each row carries its part's number (at most
    // max_origins_per_claim + 2 parts, within SQLite's limit of 500 compound terms). Only the
    // picked messages are then read in full.
    struct part {
      std::size_t limit;
      const std::string* origin;  // null: the parts by destination
      bool probe;
    };
    std::vector<part> parts;
    bound_query q;
    const auto add_part = [&](std::string_view index, part next) {
      if (!parts.empty()) q.sql(" UNION ALL ");
      q.sql("SELECT * FROM (SELECT message_id, not_before_ms, destination, " + std::to_string(parts.size()) +
            " AS part FROM relay_messages");
      q.sql(index).sql(" WHERE ");
      parts.push_back(next);
    };
    const auto end_part = [&] {
      // In the order of relay_messages_origin_due within an origin, so that each part reads no more
      // rows than its LIMIT: with message_id as a tie-break PostgreSQL read all of an origin's due
      // messages and sorted them, every claim (16,000 rows in a 13 ms claim behind a backlog of
      // analytics deliveries). Equal times are ordered below, by message_id, among the candidates.
      q.sql(" ORDER BY not_before_ms LIMIT ").integer(static_cast<long long>(parts.back().limit));
      if (d.skip_locked && !parts.back().probe) q.sql(" FOR UPDATE SKIP LOCKED");
      q.sql(") AS c" + std::to_string(parts.size() - 1));
    };
    for (const auto& origin : origins) {
      const std::size_t in_flight = slots.in_flight(origin);
      const bool saturated_origin = in_flight >= slots.per_origin_limit();
      add_part(d.origin_index,
               {.limit = saturated_origin ? 1 : std::min(limit, slots.per_origin_limit() - in_flight),
                .origin = &origin,
                .probe = saturated_origin});
      q.sql("state IN ('CREATED', 'RETRY') AND origin = ").text(origin);
      q.sql(" AND not_before_ms <= ").integer(now_ms);
      end_part();
    }
    add_part(d.origin_index, {.limit = limit, .origin = nullptr, .probe = false});
    q.sql("state IN ('CREATED', 'RETRY') AND origin IS NULL AND not_before_ms <= ").integer(now_ms);
    exclude_origins(q, saturated);
    end_part();
    if (look_for_expired) {
      add_part("", {.limit = limit, .origin = nullptr, .probe = false});
      q.sql("state = 'ACTIVE' AND lease_until_ms < ").integer(now_ms);
      exclude_origins(q, saturated);
      end_part();
    }
    std::set<std::string, std::less<>> waiting;  // origins with due messages left behind

    struct candidate {
      std::string message_id;
      std::int64_t not_before_ms;
      std::string origin;
    };
    std::vector<candidate> candidates;
    std::vector<std::size_t> got(parts.size(), 0);
    q.for_each_row(s, [&](const soci::row& row) {
      const auto i = static_cast<std::size_t>(int_at(row, 3));
      if (i >= parts.size()) return;
      ++got[i];
      if (!parts[i].probe)
        candidates.push_back({text_at(row, 0), int_at(row, 1), origin_of(text_at(row, 2))});
    });
    for (std::size_t i = 0; i < parts.size(); ++i) {
      if (got[i] < parts[i].limit) continue;
      // That part may have left due rows behind.
      if (parts[i].origin == nullptr) {
        r.more_due = true;
        r.other_due = true;
      } else {
        if (!parts[i].probe) r.more_due = true;
        waiting.insert(*parts[i].origin);
      }
    }
    std::sort(candidates.begin(), candidates.end(), [](const candidate& a, const candidate& b) {
      return std::tie(a.not_before_ms, a.message_id) < std::tie(b.not_before_ms, b.message_id);
    });
    if (candidates.size() > limit) {
      for (std::size_t i = limit; i < candidates.size(); ++i) waiting.insert(candidates[i].origin);
      candidates.resize(limit);
      r.more_due = true;
    }
    std::vector<const candidate*> picked;
    for (const auto& c : candidates) {
      if (slots.try_take(c.origin)) {
        picked.push_back(&c);
      } else {
        waiting.insert(c.origin);
        r.more_due = true;
      }
    }
    r.waiting_origins.assign(waiting.begin(), waiting.end());
    if (!picked.empty()) {
      bound_query rows("SELECT " + message_columns(d) + " FROM relay_messages WHERE message_id IN (");
      for (std::size_t i = 0; i < picked.size(); ++i) {
        if (i > 0) rows.sql(", ");
        rows.text(picked[i]->message_id);
      }
      rows.sql(")");
      std::map<std::string, stored_message, std::less<>> by_id;
      rows.for_each_row(s, [&](const soci::row& row) {
        // A row this relay cannot read (edited by hand, damaged, written by another version) must
        // not fail every claim after it: it is left out and put off (claim's end).
        try {
          auto m = message_from_row(row);
          auto id = m.message_id;
          by_id.emplace(std::move(id), std::move(m));
        } catch (const std::exception& e) {
          p.unreadable.emplace_back(text_at(row, 0), e.what());
        }
      });
      for (const candidate* c : picked) {
        const auto it = by_id.find(c->message_id);
        if (it == by_id.end()) {  // gone between the two reads (purged), or unreadable: nothing to deliver
          slots.give_back(c->origin);
          continue;
        }
        r.messages.push_back(std::move(it->second));
        p.origins.push_back(c->origin);
      }
    }

    // The next scheduled message: a delay or a retry. A message published without one (due when it
    // was created) committed after this claim's `now` is due already, and was reported by its
    // publish; it would only make the fast path close at once. The index is read in order from
    // `now`, past such messages only.
    long long next = 0;
    soci::indicator next_ind = soci::i_null;
    long long now = now_ms;
    s << "SELECT not_before_ms FROM relay_messages" + std::string(d.due_index) +
             " WHERE state IN ('CREATED', 'RETRY') AND not_before_ms > :now AND (state = 'RETRY' OR "
             "not_before_ms > created_at_ms) ORDER BY not_before_ms LIMIT 1",
        soci::into(next, next_ind), soci::use(now);
    if (s.got_data() && next_ind == soci::i_ok) r.next_due_ms = next;
    return p;
  };
  // The owner's slots this claim took (given back if it fails).
  std::vector<std::string> owned;
  // Takes the leases of what `choose` picked. The UPDATE checks the message is still claimable: on
  // SQLite the choice was read outside the write transaction, and meanwhile the message may have
  // been cancelled, or its expired lease's node may have recorded the outcome after all; such a
  // message is left alone (and its slot given back). A message whose slot the owner no longer has
  // free is left due, its origin reported waiting.
  const auto lease = [&](soci::session& s, plan& p) {
    claim_result r;
    r.more_due = p.result.more_due;
    r.other_due = p.result.other_due;
    r.waiting_origins = std::move(p.result.waiting_origins);
    r.next_due_ms = p.result.next_due_ms;
    for (std::size_t i = 0; i < p.result.messages.size(); ++i) {
      auto& m = p.result.messages[i];
      if (owner.take) {
        if (!owner.take(p.origins[i])) {
          slots.give_back(p.origins[i]);
          r.more_due = true;
          r.waiting_origins.push_back(p.origins[i]);
          continue;
        }
        owned.push_back(p.origins[i]);
      }
      const long long until =
          now_ms + (m.spec.timeout_ms > 0 ? m.spec.timeout_ms : default_timeout_ms) + lease_margin_ms;
      long long now = now_ms;
      long long until_v = until;
      const auto taken = db::execute(
          s,
          "UPDATE relay_messages SET state = 'ACTIVE', lease_owner = :node, lease_until_ms = :until, "
          "updated_at_ms = :now, origin = :origin WHERE message_id = :id AND ((state IN ('CREATED', 'RETRY') "
          "AND not_before_ms <= :now2) OR (state = 'ACTIVE' AND lease_until_ms < :now3))",
          soci::use(node_id_), soci::use(until_v), soci::use(now), soci::use(p.origins[i]),
          soci::use(m.message_id), soci::use(now), soci::use(now));
      if (taken == 0) {
        slots.give_back(p.origins[i]);
        if (owner.take) {
          owner.give_back(p.origins[i]);
          owned.pop_back();
        }
        r.more_due = true;
        continue;
      }
      m.state = message_state::active;
      m.lease_owner = node_id_;
      m.lease_until_ms = until;
      r.messages.push_back(std::move(m));
    }
    std::sort(r.waiting_origins.begin(), r.waiting_origins.end());
    r.waiting_origins.erase(std::unique(r.waiting_origins.begin(), r.waiting_origins.end()),
                            r.waiting_origins.end());
    return r;
  };
  std::vector<std::pair<std::string, std::string>> unreadable;
  try {
    if (d.skip_locked) {
      // PostgreSQL: one transaction, the picked rows locked (FOR UPDATE SKIP LOCKED) until it commits,
      // so concurrent claimers get disjoint sets.
      out = db_.in_transaction([&](soci::session& s) {
        auto p = choose(s);
        unreadable = p.unreadable;
        return lease(s, p);
      });
    } else {
      // SQLite: one writer at a time, so the choice (index seeks and reading the picked rows, most of
      // a claim's work) is read on a pooled connection, outside the write turn every transaction of
      // this process queues for; only the leases are taken in it.
      auto p = db_.with_session(choose);
      unreadable = p.unreadable;
      out = p.result.messages.empty() ? std::move(p.result)
                                      : db_.in_transaction([&](soci::session& s) { return lease(s, p); });
    }
  } catch (...) {
    for (const auto& origin : owned) owner.give_back(origin);
    throw;
  }
  if (!unreadable.empty()) put_off_unreadable(unreadable, now_ms);
  {
    std::lock_guard lock(cursor_mutex_);
    origin_cursor_ = std::move(next_cursor);
  }
  if (look_for_expired)
    next_expired_check_ms_.store(now_ms + expired_lease_check_ms, std::memory_order_relaxed);
  return out;
}

std::vector<recorded_outcome> relay_store::record_outcomes(std::span<const attempt_outcome> outcomes) {
  if (outcomes.empty()) return {};
  return db_.in_transaction([&](soci::session& s) {
    std::vector<recorded_outcome> out;
    out.reserve(outcomes.size());
    for (const auto& o : outcomes) out.push_back(record_one(s, db_.kind(), node_id_, dlq_ids_, o));
    return out;
  });
}

bool relay_store::record_delivered(std::string_view message_id, const attempt_record& attempt,
                                   std::span<const message_spec> follow_ups, std::int64_t now_ms) {
  attempt_outcome o{.message_id = std::string(message_id),
                    .verdict = attempt_verdict::delivered,
                    .attempt = attempt,
                    .now_ms = now_ms};
  if (!follow_ups.empty()) {
    o.follow_ups = [follow_ups](std::optional<std::string_view>) {
      return std::vector<message_spec>(follow_ups.begin(), follow_ups.end());
    };
  }
  return record_outcomes(std::span(&o, 1)).front().held;
}

bool relay_store::record_retry(std::string_view message_id, const attempt_record& attempt,
                               std::int64_t next_attempt_ms, std::int64_t now_ms) {
  const attempt_outcome o{.message_id = std::string(message_id),
                          .verdict = attempt_verdict::retry,
                          .attempt = attempt,
                          .next_attempt_ms = next_attempt_ms,
                          .now_ms = now_ms};
  return record_outcomes(std::span(&o, 1)).front().held;
}

std::optional<std::string> relay_store::record_failed(
    std::string_view message_id, const attempt_record& attempt,
    const std::function<std::vector<message_spec>(std::string_view dlq_id)>& follow_ups,
    std::int64_t now_ms) {
  attempt_outcome o{.message_id = std::string(message_id),
                    .verdict = attempt_verdict::failed,
                    .attempt = attempt,
                    .now_ms = now_ms};
  if (follow_ups) {
    o.follow_ups = [&follow_ups](std::optional<std::string_view> dlq_id) { return follow_ups(*dlq_id); };
  }
  return std::move(record_outcomes(std::span(&o, 1)).front().dlq_id);
}

std::size_t relay_store::release_leases(std::int64_t now_ms) {
  return db_.in_transaction([&](soci::session& s) {
    bound_query q(
        "UPDATE relay_messages SET state = 'RETRY', lease_owner = NULL, lease_until_ms = NULL, not_before_ms "
        "= ");
    q.integer(now_ms).sql(", updated_at_ms = ").integer(now_ms);
    q.sql(" WHERE state = 'ACTIVE' AND lease_owner = ").text(node_id_);
    return static_cast<std::size_t>(q.execute(s));
  });
}

std::size_t relay_store::release_leases(std::span<const std::string> message_ids, std::int64_t now_ms) {
  if (message_ids.empty()) return 0;
  return db_.in_transaction([&](soci::session& s) {
    std::size_t released = 0;
    for (const auto& id : message_ids) {
      bound_query q(
          "UPDATE relay_messages SET state = 'RETRY', lease_owner = NULL, lease_until_ms = NULL, "
          "not_before_ms = ");
      q.integer(now_ms).sql(", updated_at_ms = ").integer(now_ms);
      released += update_leased(s, q, id, node_id_) ? 1 : 0;
    }
    return released;
  });
}

void relay_store::put_off_unreadable(std::span<const std::pair<std::string, std::string>> rows,
                                     std::int64_t now_ms) noexcept {
  const std::int64_t later = now_ms + unreadable_retry_ms;
  try {
    db_.in_transaction([&](soci::session& s) {
      for (const auto& [id, why] : rows) {
        bound_query q(
            "UPDATE relay_messages SET not_before_ms = CASE WHEN state = 'ACTIVE' THEN not_before_ms ELSE ");
        q.integer(later).sql(" END, lease_until_ms = CASE WHEN state = 'ACTIVE' THEN ").integer(later);
        q.sql(" ELSE lease_until_ms END WHERE message_id = ").text(id);
        q.sql(" AND (state IN ('CREATED', 'RETRY') OR (state = 'ACTIVE' AND lease_until_ms < ")
            .integer(now_ms);
        q.sql("))");
        q.execute(s);
      }
    });
  } catch (const std::exception& e) {
    // The claim itself stands (its leases are taken); the next claim meets these rows again.
    obs::warn("relay could not put off unreadable messages", {{"error", e.what()}});
  }
  for (const auto& [id, why] : rows) {
    obs::error("relay message cannot be read from the database; left as it is and put off for a minute",
               {{"message_id", id}, {"error", why}, {"retry_in_ms", unreadable_retry_ms}});
  }
}

std::optional<stored_message> relay_store::get(std::string_view message_id) {
  return db_.with_session([&](soci::session& s) -> std::optional<stored_message> {
    bound_query q("SELECT " + message_columns(sql_for(db_.kind())) +
                  " FROM relay_messages WHERE message_id = ");
    q.text(std::string(message_id));
    std::optional<stored_message> out;
    q.for_each_row(s, [&](const soci::row& r) { out = message_from_row(r); });
    return out;
  });
}

relay_store::cancel_outcome relay_store::cancel(std::string_view message_id, std::int64_t now_ms) {
  return db_.in_transaction([&](soci::session& s) {
    std::string id(message_id);
    std::string state;
    soci::indicator ind = soci::i_null;
    s << "SELECT state FROM relay_messages WHERE message_id = :id", soci::into(state, ind), soci::use(id);
    if (ind != soci::i_ok) return cancel_outcome::not_found;
    if (state != "CREATED" && state != "ACTIVE" && state != "RETRY") return cancel_outcome::finished;
    long long now = now_ms;
    s << "UPDATE relay_messages SET state = 'CANCELLED', lease_owner = NULL, lease_until_ms = NULL, "
         "updated_at_ms = :now WHERE message_id = :id",
        soci::use(now), soci::use(id);
    return cancel_outcome::cancelled;
  });
}

std::size_t relay_store::cancel_many(const cancel_query& f, std::int64_t now_ms) {
  return db_.in_transaction([&](soci::session& s) {
    bound_query q(
        "UPDATE relay_messages SET state = 'CANCELLED', lease_owner = NULL, lease_until_ms = NULL, "
        "updated_at_ms = ");
    q.integer(now_ms).sql(" WHERE state IN ").sql(pending_states);
    if (!f.message_ids.empty()) {
      q.sql(" AND message_id IN (");
      for (std::size_t i = 0; i < f.message_ids.size(); ++i) {
        if (i > 0) q.sql(", ");
        q.text(f.message_ids[i]);
      }
      q.sql(")");
    }
    if (f.url) q.sql(" AND destination = ").text(*f.url);
    if (f.from_ms) q.sql(" AND created_at_ms >= ").integer(*f.from_ms);
    if (f.to_ms) q.sql(" AND created_at_ms <= ").integer(*f.to_ms);
    return static_cast<std::size_t>(q.execute(s));
  });
}

dlq_page relay_store::dlq_list(const dlq_query& q) {
  return db_.with_session([&](soci::session& s) { return select_dlq_page(s, db_.kind(), q); });
}

std::optional<dlq_item> relay_store::dlq_get(std::string_view dlq_id) {
  dlq_query q;
  q.dlq_ids.emplace_back(dlq_id);
  q.count = 1;
  auto page = dlq_list(q);
  if (page.items.empty()) return std::nullopt;
  return std::move(page.items.front());
}

bool relay_store::dlq_delete(std::string_view dlq_id) {
  return db_.in_transaction([&](soci::session& s) {
    std::string id(dlq_id);
    std::string message_id;
    soci::indicator ind = soci::i_null;
    s << "SELECT message_id FROM relay_dlq WHERE dlq_id = :id", soci::into(message_id, ind), soci::use(id);
    if (ind != soci::i_ok) return false;
    delete_dlq_entry(s, id, message_id);
    return true;
  });
}

std::pair<std::size_t, std::optional<std::string>> relay_store::dlq_delete_many(const dlq_query& q) {
  return db_.in_transaction([&](soci::session& s) {
    auto page = select_dlq_page(s, db_.kind(), q);
    for (const auto& item : page.items) delete_dlq_entry(s, item.entry.dlq_id, item.entry.message_id);
    return std::make_pair(page.items.size(), std::move(page.cursor));
  });
}

std::optional<std::string> relay_store::dlq_retry(std::string_view dlq_id, std::int64_t now_ms) {
  return db_.in_transaction([&](soci::session& s) -> std::optional<std::string> {
    dlq_query q;
    q.dlq_ids.emplace_back(dlq_id);
    q.count = 1;
    auto page = select_dlq_page(s, db_.kind(), q);
    if (page.items.empty()) return std::nullopt;
    return retry_entry(s, db_.kind(), page.items.front(), now_ms);
  });
}

std::pair<std::vector<std::string>, std::optional<std::string>> relay_store::dlq_retry_many(
    const dlq_query& q, std::int64_t now_ms) {
  return db_.in_transaction([&](soci::session& s) {
    auto page = select_dlq_page(s, db_.kind(), q);
    std::vector<std::string> ids;
    ids.reserve(page.items.size());
    for (const auto& item : page.items) ids.push_back(retry_entry(s, db_.kind(), item, now_ms));
    return std::make_pair(std::move(ids), std::move(page.cursor));
  });
}

relay_counts relay_store::counts() {
  return db_.with_session([&](soci::session& s) {
    relay_counts c;
    soci::rowset<soci::row> rows = (s.prepare << "SELECT state, COUNT(*) FROM relay_messages WHERE state IN "
                                                 "('CREATED', 'ACTIVE', 'RETRY') GROUP BY state");
    for (const auto& r : rows) {
      const auto state = text_at(r, 0);
      const auto n = int_at(r, 1);
      if (state == "CREATED") c.created = n;
      if (state == "ACTIVE") c.active = n;
      if (state == "RETRY") c.retry = n;
    }
    long long dlq = 0;
    s << "SELECT COUNT(*) FROM relay_dlq", soci::into(dlq);
    c.dlq = dlq;
    return c;
  });
}

relay_store::purge_result relay_store::purge(std::int64_t now_ms, std::int64_t retention_ms,
                                             std::size_t batch, std::size_t max_batches) {
  batch = std::max<std::size_t>(batch, 1);
  const auto limit = static_cast<long long>(batch);
  // A batch per transaction: each holds the write lock (SQLite: the process's write turn) for one
  // batch only, however much expired since the last purge. Returns the rows deleted.
  purge_result result;
  const auto in_batches = [&](const std::string& sql, long long bound) {
    std::size_t deleted = 0;
    for (std::size_t i = 0; i < max_batches; ++i) {
      const auto n = db_.in_transaction([&](soci::session& s) {
        soci::statement st = (s.prepare << sql, soci::use(bound), soci::use(limit));
        st.execute(true);
        return static_cast<std::size_t>(st.get_affected_rows());
      });
      deleted += n;
      if (n < batch) return deleted;
    }
    result.more = true;
    return deleted;
  };
  // Every publish with a deduplication id (all of the outboxes') leaves a row: ten minutes of them
  // expire between two purges.
  result.dedup_ids = in_batches(
      "DELETE FROM relay_dedup WHERE dedup_id IN (SELECT dedup_id FROM relay_dedup WHERE "
      "expires_at_ms <= :now LIMIT :batch)",
      now_ms);
  // No ORDER BY: across three states it would sort every expired message for each batch; each
  // state's range is read in order anyway.
  const std::string sql =
      "DELETE FROM relay_messages WHERE message_id IN (SELECT message_id FROM relay_messages" +
      std::string(sql_for(db_.kind()).purge_index) +
      " WHERE state IN ('DELIVERED', 'CANCELLED', 'FAILED') AND updated_at_ms < :before AND "
      "(state <> 'FAILED' OR NOT EXISTS (SELECT 1 FROM relay_dlq q WHERE q.message_id = "
      "relay_messages.message_id)) LIMIT :batch)";
  result.messages = in_batches(sql, now_ms - retention_ms);
  return result;
}

}  // namespace shopd::relay
