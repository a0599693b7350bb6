#pragma once
/// The database: a pool of SOCI sessions on SQLite (WAL, busy timeout, foreign keys) or PostgreSQL.
/// All calls block: use them from the worker pool or a dedicated thread, never an I/O thread.
/// Thread-safe: each call leases its own session.

#include "shopd/db/database_url.hpp"

#include <soci/soci.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <utility>

namespace shopd::db {

/// A fault that may pass (database locked or busy, connection lost, pool exhausted): callers answer
/// 5xx / retry instead of treating the input as bad.
class transient_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct database_options {
  std::size_t pool_size = 8;
  std::chrono::milliseconds busy_timeout{5'000};   ///< SQLite busy handler; pool lease wait
};

class database {
 public:
  /// Opens every pooled session (creating the SQLite file and its directory). Throws
  /// std::runtime_error naming the redacted URL when the database cannot be opened.
  database(database_url url, database_options opts = {});
  ~database();
  database(const database&) = delete;
  database& operator=(const database&) = delete;

  [[nodiscard]] dialect kind() const noexcept { return url_.kind; }
  [[nodiscard]] const database_url& url() const noexcept { return url_; }

  /// Run f(soci::session&) on a leased session. Throws transient_error if no session frees up
  /// within the busy timeout; SOCI errors that mean "busy/locked/connection lost" are rethrown as
  /// transient_error, others propagate as they are.
  template <typename F>
  decltype(auto) with_session(F&& f) {
    lease l(*this);
    return guard_transient([&]() -> decltype(auto) { return std::forward<F>(f)(l.session()); });
  }

  /// Run f(soci::session&) inside one transaction: committed when f returns, rolled back when it
  /// throws. SQLite transactions start with BEGIN IMMEDIATE (the write lock up front, so two writers
  /// never deadlock on lock upgrade).
  template <typename F>
  decltype(auto) in_transaction(F&& f) {
    lease l(*this);
    return guard_transient([&]() -> decltype(auto) {
      begin(l.session());
      try {
        if constexpr (std::is_void_v<decltype(f(l.session()))>) {
          std::forward<F>(f)(l.session());
          l.session().commit();
        } else {
          decltype(auto) r = std::forward<F>(f)(l.session());
          l.session().commit();
          return r;
        }
      } catch (...) {
        rollback_quietly(l.session());
        throw;
      }
    });
  }

  /// True when a trivial query succeeds within the busy timeout. Never throws.
  [[nodiscard]] bool ping() noexcept;

  /// Sessions in use right now and in total (for metrics).
  [[nodiscard]] std::size_t in_use() const noexcept;
  [[nodiscard]] std::size_t size() const noexcept { return opts_.pool_size; }

 private:
  class lease {
   public:
    explicit lease(database& db);
    ~lease();
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    soci::session& session() noexcept;

   private:
    database& db_;
    std::size_t pos_;
  };

  template <typename F>
  decltype(auto) guard_transient(F&& f) {
    try {
      return std::forward<F>(f)();
    } catch (const soci::soci_error& e) {
      rethrow_if_transient(e);
      throw;
    }
  }
  void begin(soci::session& s);
  static void rollback_quietly(soci::session& s) noexcept;
  [[noreturn]] void rethrow_transient(const soci::soci_error& e) const;
  void rethrow_if_transient(const soci::soci_error& e) const;

  database_url url_;
  database_options opts_;
  std::unique_ptr<soci::connection_pool> pool_;
  struct counters;
  std::unique_ptr<counters> counters_;
};

}  // namespace shopd::db
