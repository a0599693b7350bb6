#pragma once
/// The database: a pool of SOCI sessions on SQLite (WAL, busy timeout, foreign keys) or PostgreSQL.
/// All calls block: use them from the worker pool or a dedicated thread, never an I/O thread.
/// Thread-safe: each call leases its own session.

#include "shopd/db/database_url.hpp"

#include <soci/soci.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

namespace shopd::obs {
class registry;
}

namespace shopd::db {

/// A fault that may pass (database locked or busy, connection lost, pool exhausted): callers answer
/// 5xx / retry instead of treating the input as bad.
class transient_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct database_options {
  /// Sessions opened up front (at least 1). An in-memory SQLite database (`sqlite::memory:`) is private
  /// to its connection, so it always gets exactly one session whatever is asked here.
  std::size_t pool_size = 8;
  /// How long a call waits for a locked SQLite database (its busy handler, and the turn among this
  /// process's writers) and for a free pooled session.
  std::chrono::milliseconds busy_timeout{5'000};
  /// DATABASE_SQLITE_SYNCHRONOUS. true (full): in_transaction returns once the WAL holding its commit
  /// is synced, so a committed transaction survives a power loss; the syncs are shared by the groups
  /// committed meanwhile and happen outside the write turn (see in_transaction), and pooled sessions
  /// use PRAGMA synchronous=FULL for whatever they write themselves. false (normal): PRAGMA
  /// synchronous=NORMAL everywhere, the WAL synced at checkpoints only: a crash of the process loses
  /// nothing, a power loss may roll back the last commits.
  bool sqlite_full_sync = true;
  /// When set, the pool reports shopd_db_pool_connections (size), shopd_db_pool_connections_in_use
  /// (both read when scraped), shopd_db_pool_waits_total and shopd_db_pool_wait_duration_seconds
  /// (leases that found no free session, and how long they waited, timed out ones included). The
  /// registry must outlive the database; one database per registry.
  obs::registry* metrics = nullptr;
  /// A SQLite file's group commit (see database::in_transaction) ends a group at this many
  /// transactions, or once its transaction has been open this long, even with more writers waiting:
  /// the bound on what a transaction waits for others' work before its own COMMIT. The holder of the
  /// turn runs at most commit_group_size transactions of other threads before it passes the turn on.
  std::size_t commit_group_size = 64;
  std::chrono::microseconds commit_group_age{2'000};
  /// A SQLite file's WAL starts over from its beginning only when a write finds every frame copied
  /// into the database and no reader left on the WAL, which steady writes never leave time for:
  /// without help it grows for as long as the load lasts (1.7 GB in 25 s of a benchmark). Once a
  /// checkpoint leaves at least this many pages in it, the holder of the write turn, after its
  /// COMMIT, runs a RESTART checkpoint: it copies what is left and waits (at most
  /// wal_restart_wait) for the readers to leave the WAL, so that the next write starts it over.
  std::size_t wal_restart_pages = 10'000;
  std::chrono::milliseconds wal_restart_wait{50};
};

class statement_cache;

class database {
 public:
  /// Opens every pooled session (creating the SQLite file and its directory) and, on a SQLite file,
  /// the writer connection and the checkpointer's. Throws
  /// std::runtime_error naming the redacted URL when the database cannot be opened, and
  /// std::invalid_argument when opts.pool_size is 0.
  /// SQLite sessions run with journal_mode=WAL, synchronous=NORMAL and foreign_keys=ON, and a busy
  /// handler that retries a locked database every millisecond at most until opts.busy_timeout has
  /// passed (SQLite's own, set by `PRAGMA busy_timeout`, sleeps up to 100 ms between tries, long after
  /// the lock is free). A file database's WAL is checkpointed by a thread of its own with a
  /// connection of its own once it holds 1,000 pages (as SQLite's auto-checkpoint would, but not in
  /// the committing writer's turn: the checkpoint's fsync no longer holds up this process's other
  /// writers). A PostgreSQL session whose connection was lost (server restart,
  /// pg_terminate_backend) is reconnected when it is next leased, so the pool heals by itself; the
  /// call that met the broken connection gets a transient_error.
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
    return guard_transient(l.session(), [&]() -> decltype(auto) { return std::forward<F>(f)(l.session()); });
  }

  /// Run f(soci::session&) inside one transaction: committed when f returns, rolled back when it
  /// throws. SQLite transactions start with BEGIN IMMEDIATE (the write lock up front, so two writers
  /// never deadlock on lock upgrade). This process's SQLite transactions take turns on an in-process
  /// lock first, so a writer waiting for another one of this process is woken as soon as that one
  /// ends instead of polling SQLite's lock; waiting longer than the busy timeout for the turn is a
  /// transient_error. Other processes on the same file still meet the busy handler. A transaction
  /// must not start another one (it would wait for its own turn until the busy timeout).
  ///
  /// On a SQLite file they all run on one writer connection outside the pool, whose page cache
  /// therefore stays valid from one transaction to the next, and they are committed in groups: f runs
  /// in a savepoint of a transaction that stays open while other writers of this process wait for
  /// their turn (up to database_options::commit_group_size transactions or commit_group_age), and one COMMIT
  /// makes the group durable. The call returns only once its group is committed, so what f wrote is as
  /// durable and as visible to others as with a COMMIT of its own; f throwing rolls back f's savepoint only.
  /// With sqlite_full_sync the COMMIT writes the WAL without syncing it (the turn goes on to the next
  /// group at once) and the call then waits for a sync of the WAL that started after its COMMIT: the
  /// first caller to find none running syncs for every group committed so far, the others wait for
  /// it (a failed sync is a transient_error; what was committed stays, and is retried idempotently).
  /// If the group's COMMIT fails, every member of the group throws its error, having changed nothing; if
  /// one member's failure makes SQLite roll the whole transaction back (disk full, I/O error), that member
  /// throws its own error and the others a transient_error (to be retried), having changed nothing. One
  /// COMMIT per group instead of per transaction saves its cost and writes each page a group touched once to
  /// the WAL instead of once per transaction.
  ///
  /// On a SQLite file f may run on another thread of this process: the one holding the turn runs
  /// the transactions queued for it (flat combining), while their callers wait. The caller's trace
  /// (obs::current_trace) is current while f runs there; f must rely on no other thread-local
  /// state, and what it throws reaches the caller as thrown.
  template <typename F>
  decltype(auto) in_transaction(F&& f) {
    using result = std::invoke_result_t<F&, soci::session&>;
    static_assert(!std::is_reference_v<result>, "in_transaction returns values, not references");
    if (writer_) {
      if constexpr (std::is_void_v<result>) {
        auto call = [&](soci::session& s) { f(s); };
        run_grouped(&invoke<decltype(call)>, &call);
        return;
      } else {
        std::optional<result> r;
        auto call = [&](soci::session& s) { r.emplace(f(s)); };
        run_grouped(&invoke<decltype(call)>, &call);
        return result(std::move(*r));
      }
    }
    const write_turn turn(*this);
    lease l(*this);
    return run_transaction(l.session(), std::forward<F>(f));
  }

  /// Threads of this process waiting for their turn to write right now (SQLite; 0 on PostgreSQL).
  [[nodiscard]] std::size_t writers_waiting() const noexcept;

  /// True when a trivial query succeeds within the busy timeout. Never throws.
  [[nodiscard]] bool ping() noexcept;

  /// Pooled sessions in use right now and in total (for metrics; a SQLite file's writer connection
  /// is not one of them).
  [[nodiscard]] std::size_t in_use() const noexcept;
  [[nodiscard]] std::size_t size() const noexcept { return opts_.pool_size; }

 private:
  // Whose turn it is to write: a lock taken with a timed wait only (try_lock_for). Not
  // std::timed_mutex: libstdc++ 12 waits in its try_lock_for with pthread_mutex_clocklock, which
  // GCC 12's ThreadSanitizer does not intercept, so it reported every unlock as one of an unlocked
  // mutex; a condition variable's timed wait it does see.
  class turn_lock {
   public:
    template <typename Rep, typename Period>
    bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
      std::unique_lock lock(mutex_);
      if (!free_.wait_for(lock, timeout, [this] { return !held_; })) return false;
      held_ = true;
      return true;
    }
    void unlock() {
      {
        const std::lock_guard lock(mutex_);
        held_ = false;
      }
      free_.notify_one();
    }

   private:
    std::mutex mutex_;
    std::condition_variable free_;
    bool held_ = false;
  };

  // Holds this process's turn to write (SQLite only; a no-op on PostgreSQL) for its lifetime.
  class write_turn {
   public:
    explicit write_turn(database& db);
    ~write_turn();
    write_turn(const write_turn&) = delete;
    write_turn& operator=(const write_turn&) = delete;

   private:
    turn_lock* writers_ = nullptr;
  };

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
  static void invoke(void* f, soci::session& s) {
    (*static_cast<F*>(f))(s);
  }
  // in_transaction on the writer connection, with group commit: the transaction runs on this
  // thread when the turn is free, or else on the thread holding the turn (see writer_turn).
  void run_grouped(void (*body)(void*, soci::session&), void* context);
  struct turn_request;
  // With the turn held: run `first`, then the transactions queued meanwhile, then pass the turn on.
  void hold(turn_request& first) noexcept;
  void execute(turn_request& r) noexcept;

  template <typename F>
  decltype(auto) run_transaction(soci::session& s, F&& f) {
    return guard_transient(s, [&]() -> decltype(auto) {
      begin(s);
      try {
        if constexpr (std::is_void_v<decltype(f(s))>) {
          std::forward<F>(f)(s);
          s.commit();
        } else {
          decltype(auto) r = std::forward<F>(f)(s);
          s.commit();
          return r;
        }
      } catch (...) {
        rollback_quietly(s);
        throw;
      }
    });
  }

  template <typename F>
  decltype(auto) guard_transient(soci::session& s, F&& f) {
    try {
      return std::forward<F>(f)();
    } catch (const soci::soci_error& e) {
      rethrow_if_transient(e, s);
      throw;
    }
  }
  void begin(soci::session& s);
  // Waits for this process's turn to write, counted in writers_waiting(); false after the busy timeout.
  bool take_turn();
  [[nodiscard]] transient_error no_turn_error() const;
  void open_sqlite(soci::session& s, bool in_memory);
  static void rollback_quietly(soci::session& s) noexcept;
  /// Throws transient_error (with e's message) when e means busy/locked/connection lost; `s` is the
  /// session e came from, whose connection state tells a lost connection from a failed statement.
  void rethrow_if_transient(const soci::soci_error& e, soci::session& s) const;

  database_url url_;
  database_options opts_;
  turn_lock writers_;  // whose turn it is to write (SQLite)
  // One per SQLite session: the state of its busy handler, which must outlive the connection.
  struct busy_wait;
  std::vector<std::unique_ptr<busy_wait>> busy_waits_;
  // Set by the checkpointer when the WAL should start over; see database_options::wal_restart_pages.
  // Declared before the checkpointer, whose thread sets it, so that it outlives that thread.
  std::atomic<bool> wal_restart_wanted_{false};
  // SQLite file databases: checkpoints the WAL when a commit tells it to; outlives the pool.
  class checkpointer;
  std::unique_ptr<checkpointer> checkpointer_;
  std::unique_ptr<soci::connection_pool> pool_;
  std::unique_ptr<soci::session> writer_;  // SQLite files: every in_transaction, in turn
  // The writer connection's group commit: the open group, its prepared statements, who waits.
  class group_commit;
  std::unique_ptr<group_commit> group_;
  // The writer connection's turn and the transactions queued for it (flat combining).
  class writer_turn;
  std::unique_ptr<writer_turn> turn_;
  // DATABASE_SQLITE_SYNCHRONOUS=full on a file: the WAL syncs shared by the committed groups.
  class wal_sync;
  std::unique_ptr<wal_sync> wal_sync_;
  std::unique_ptr<statement_cache> statements_;  // the writer connection's, for db::execute
  busy_wait* writer_wait_ = nullptr;             // the writer connection's busy handler state
  void restart_wal() noexcept;
  struct counters;
  std::unique_ptr<counters> counters_;
};

}  // namespace shopd::db
