#pragma once
/// db::execute and db::query_one: run a statement that returns no rows, or a lookup of one row, reusing
/// its prepared form where the session keeps one. SOCI prepares a statement afresh for every `session <<
/// ...`; on SQLite that parse and plan is as long as running a small INSERT, and the writes of a busy process
/// all queue for one write turn.

#include <soci/soci.h>

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

namespace shopd::db {

/// Statements prepared on one session, by SQL text, kept for reuse. Not thread-safe: it belongs to a
/// session and is used by whoever holds that session. It must be destroyed before its session closes.
class statement_cache {
 public:
  /// At most this many distinct texts are kept; others are prepared each time (texts built at run
  /// time, such as IN lists, must not grow the cache without bound).
  static constexpr std::size_t capacity = 256;

  explicit statement_cache(soci::session& s) : session_(s) {}

  /// The statement for `sql`, prepared at its first request; nullptr when the cache is full.
  soci::statement* get(const std::string& sql);

 private:
  soci::session& session_;
  std::unordered_map<std::string, std::unique_ptr<soci::statement>> statements_;
};

namespace detail {
/// The session whose cache statements may use on this thread, and that cache (set by
/// database::in_transaction around a transaction on a SQLite file's writer connection).
struct cache_binding {
  soci::session* session = nullptr;
  statement_cache* cache = nullptr;
};
extern thread_local cache_binding current_cache;

/// Sets current_cache for its lifetime, restoring the previous binding after.
class cache_scope {
 public:
  cache_scope(soci::session& s, statement_cache& c) noexcept : saved_(current_cache) {
    current_cache = {&s, &c};
  }
  ~cache_scope() { current_cache = saved_; }
  cache_scope(const cache_scope&) = delete;
  cache_scope& operator=(const cache_scope&) = delete;

 private:
  cache_binding saved_;
};

struct unbind_on_exit {
  soci::statement& st;
  ~unbind_on_exit() { st.bind_clean_up(); }
};
}  // namespace detail

/// Run `sql`, which must return no rows (INSERT, UPDATE, DELETE without RETURNING), with `elements`
/// (soci::use(...), in placeholder order) bound; returns the rows it changed. Inside
/// database::in_transaction on a SQLite file, the statement prepared by an earlier call with the same
/// text on that connection is reused; anywhere else it is prepared for this call. Errors are SOCI's,
/// as with `session << sql`.
template <typename... Elements>
long long execute(soci::session& s, const std::string& sql, Elements&&... elements) {
  if (detail::current_cache.session == &s) {
    if (soci::statement* st = detail::current_cache.cache->get(sql)) {
      // The bindings point at this call's variables: dropped when it ends, thrown or not.
      const detail::unbind_on_exit unbind(*st);
      (st->exchange(std::forward<Elements>(elements)), ...);
      st->define_and_bind();
      st->execute(true);
      return st->get_affected_rows();
    }
  }
  soci::statement st(s);
  (st.exchange(std::forward<Elements>(elements)), ...);
  st.alloc();
  st.prepare(sql, soci::details::st_one_time_query);  // as `session <<`: no server-side prepare
  st.define_and_bind();
  st.execute(true);
  return st.get_affected_rows();
}

/// Run `sql`, a query for at most one row (a lookup by a unique key), with the intos and uses that
/// `bind(soci::statement&)` exchanges (uses in placeholder order); returns true when the row came back,
/// its values then in the intos. Reuses the prepared statement as execute does. A second row is a
/// std::logic_error: the caller's query is not the lookup it claims (and on a kept statement, reading
/// to the end is what lets it go of the rows it read).
template <typename Bind>
bool query_one(soci::session& s, const std::string& sql, Bind&& bind) {
  if (detail::current_cache.session == &s) {
    if (soci::statement* st = detail::current_cache.cache->get(sql)) {
      const detail::unbind_on_exit unbind(*st);
      std::forward<Bind>(bind)(*st);
      st->define_and_bind();
      if (!st->execute(true)) return false;
      if (st->fetch()) throw std::logic_error("query_one: more than one row for: " + sql);
      return true;
    }
  }
  soci::statement st(s);
  std::forward<Bind>(bind)(st);
  st.alloc();
  st.prepare(sql, soci::details::st_one_time_query);  // as `session <<`: no server-side prepare
  st.define_and_bind();
  if (!st.execute(true)) return false;
  if (st.fetch()) throw std::logic_error("query_one: more than one row for: " + sql);
  return true;
}

}  // namespace shopd::db
