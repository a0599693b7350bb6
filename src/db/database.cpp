#include "shopd/db/database.hpp"

#include "shopd/db/execute.hpp"

#include "shopd/obs/log.hpp"
#include "shopd/obs/metrics.hpp"
#include "shopd/obs/thread_name.hpp"
#include "shopd/obs/trace.hpp"

#include <soci/postgresql/soci-postgresql.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <limits>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

namespace shopd::db {

namespace detail {
thread_local cache_binding current_cache;
}

soci::statement* statement_cache::get(const std::string& sql) {
  if (const auto it = statements_.find(sql); it != statements_.end()) return it->second.get();
  if (statements_.size() >= capacity) return nullptr;
  auto st = std::make_unique<soci::statement>(session_);
  st->alloc();
  st->prepare(sql);
  return statements_.emplace(sql, std::move(st)).first->second.get();
}

struct database::counters {
  std::atomic<std::size_t> in_use{0};
  std::atomic<std::size_t> writers_waiting{0};
  // Set when the database reports metrics (database_options::metrics).
  obs::registry* registry = nullptr;
  obs::registry::collector_id collector = 0;
  obs::counter* waits = nullptr;
  obs::histogram* wait_duration = nullptr;
  obs::histogram* group_size = nullptr;

  ~counters() {
    if (registry != nullptr) registry->remove_collector(collector);
  }

  // Counted when the wait starts, so that a pool stuck exhausted shows before the waits end.
  void wait_started() const noexcept {
    if (waits != nullptr) waits->inc();
  }
  void wait_ended(std::chrono::steady_clock::duration d) const noexcept {
    if (wait_duration != nullptr) wait_duration->observe(std::chrono::duration<double>(d).count());
  }
  void committed(std::size_t transactions) const noexcept {
    if (group_size != nullptr && transactions > 0) group_size->observe(static_cast<double>(transactions));
  }
};

// SQLite's default busy handler (set by PRAGMA busy_timeout) sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25,
// 50, 50 and then 100 ms between tries: with many writers, each holding the lock for well under a
// millisecond, a waiter sleeps long after the lock is free, and the lock sits idle while work waits.
// This one retries every 50 us at first, doubling up to 1 ms, until the timeout has passed.
struct database::busy_wait {
  std::chrono::milliseconds timeout;
  std::chrono::steady_clock::time_point first_try;

  static int retry(void* self, int tries) noexcept {
    auto& w = *static_cast<busy_wait*>(self);
    const auto now = std::chrono::steady_clock::now();
    if (tries == 0) w.first_try = now;  // a new lock attempt (SQLite counts per attempt)
    const auto left = w.first_try + w.timeout - now;
    if (left <= std::chrono::steady_clock::duration::zero()) return 0;  // SQLITE_BUSY to the caller
    const auto pause = std::chrono::microseconds(50 << std::min(tries, 5));
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(pause, left));
    return 1;
  }
};

namespace {

// SQLite keeps memory statistics by default, under one process-wide mutex taken by every allocation
// and free: with a dozen threads on their connections, that mutex was contended (futex wake-ups
// from sqlite3Malloc in the profile). shopd reads none of them. sqlite3_config works only before
// SQLite initialises, so it runs at program start; if something initialised SQLite even earlier,
// the statistics stay on (SQLITE_MISUSE), which costs speed, not correctness.
[[maybe_unused]] const bool sqlite_memory_statistics_off =
    sqlite_api::sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK;

sqlite_api::sqlite3* sqlite_connection(soci::session& s) noexcept {
  auto* backend = s.get_backend();
  return backend == nullptr ? nullptr : static_cast<soci::sqlite3_session_backend*>(backend)->conn_;
}

}  // namespace

// SQLite's auto-checkpoint runs inside the COMMIT that pushes the WAL past 1,000 pages, fsync
// included (milliseconds), while that writer still holds its turn; one e2e run spent a fifth of the
// write lock's time there. Commits here only signal this thread, which checkpoints on a connection
// of its own. A PASSIVE checkpoint never waits for the writer, so writers go on meanwhile.
//
// Under steady writes with readers about, a PASSIVE checkpoint seldom lets the WAL start over, so
// every later commit finds it past the threshold. Checkpoints are therefore spaced: the pages
// written again and again meanwhile (each table's and index's last page) are copied once, not once
// per commit, and the WAL is synced once per checkpoint. That same starvation keeps the WAL from
// ever starting over: past database_options::wal_restart_pages this thread asks the writers for a
// RESTART checkpoint (database::restart_wal).
class database::checkpointer {
 public:
  static constexpr int wal_pages = 1000;  // SQLite's default auto-checkpoint threshold
  static constexpr std::chrono::milliseconds spacing{100};

  checkpointer(const database_url& url, std::chrono::milliseconds busy_timeout, std::size_t restart_pages,
               std::atomic<bool>& restart_wanted)
      : wait_{busy_timeout, {}}, restart_pages_(restart_pages), restart_wanted_(restart_wanted) {
    session_.open(*soci::factory_sqlite3(), url.connect_string);
    sqlite_api::sqlite3_busy_handler(sqlite_connection(session_), &busy_wait::retry, &wait_);
    // A connection opens the WAL at its first read; until then a checkpoint on it does nothing.
    std::string mode;
    session_ << "PRAGMA journal_mode", soci::into(mode);
    thread_ = std::thread([this] {
      obs::name_this_thread("sqlite-ckpt");
      run();
    });
  }
  ~checkpointer() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  checkpointer(const checkpointer&) = delete;
  checkpointer& operator=(const checkpointer&) = delete;

  /// Installed on each pooled connection with sqlite3_wal_hook (which also turns its auto-checkpoint
  /// off); called by SQLite after each commit, in the committing thread.
  static int on_commit(void* self, sqlite_api::sqlite3* /*db*/, const char* /*name*/, int pages) noexcept {
    if (pages >= wal_pages) static_cast<checkpointer*>(self)->request();
    return SQLITE_OK;
  }

 private:
  // Every commit past the threshold asks; only the first since the last checkpoint takes the lock,
  // and it wakes the thread only when that waits for a request (not while it spaces checkpoints):
  // a wake-up per commit was thousands of context switches a second under load.
  void request() noexcept {
    if (requested_.exchange(true, std::memory_order_relaxed)) return;
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      wake = idle_;
    }
    if (wake) wake_.notify_one();
  }

  void run() {
    std::unique_lock lock(mutex_);
    while (true) {
      idle_ = true;
      wake_.wait(lock, [this] { return requested_.load(std::memory_order_relaxed) || stopping_; });
      idle_ = false;
      if (stopping_) return;
      requested_.store(false, std::memory_order_relaxed);
      lock.unlock();
      int wal_frames = 0;
      const int rc = sqlite_api::sqlite3_wal_checkpoint_v2(sqlite_connection(session_), nullptr,
                                                           SQLITE_CHECKPOINT_PASSIVE, &wal_frames, nullptr);
      // SQLITE_BUSY: another process is checkpointing; the next commit over the threshold asks again.
      if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        obs::warn("sqlite checkpoint failed; the WAL grows until one succeeds",
                  {{"error", sqlite_api::sqlite3_errstr(rc)}});
      }
      if (rc == SQLITE_OK && wal_frames >= 0 && static_cast<std::size_t>(wal_frames) >= restart_pages_) {
        restart_wanted_.store(true, std::memory_order_relaxed);
      }
      lock.lock();
      wake_.wait_for(lock, spacing, [this] { return stopping_; });
    }
  }

  busy_wait wait_;
  std::size_t restart_pages_;
  std::atomic<bool>& restart_wanted_;
  soci::session session_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<bool> requested_{false};
  bool idle_ = false;  // waiting for a request (under mutex_)
  bool stopping_ = false;
  std::thread thread_;  // last: started once everything it uses is built
};

namespace {

// SOCI and libpq messages span several lines; logs and exceptions here are one line each.
std::string one_line(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending_break = false;
  for (char c : text) {
    if (c == '\n' || c == '\r') {
      pending_break = !out.empty();
      continue;
    }
    if (pending_break) {
      out += "; ";
      pending_break = false;
      if (c == '\t' || c == ' ') continue;
    }
    out += c == '\t' ? ' ' : c;
  }
  return out;
}

int to_timeout_ms(std::chrono::milliseconds t) noexcept {
  return static_cast<int>(
      std::clamp<std::chrono::milliseconds::rep>(t.count(), 0, std::numeric_limits<int>::max()));
}

PGconn* pg_connection(soci::session& s) noexcept {
  // The backend's typeinfo is not exported by Debian's SOCI, so no dynamic_cast; the dialect decided
  // which factory opened the session.
  auto* backend = s.get_backend();
  return backend == nullptr ? nullptr : static_cast<soci::postgresql_session_backend*>(backend)->conn_;
}

// Cheap enough for every lease: a poll() on the socket, and a round trip only when the server has
// spoken first. An idle connection hears from the server only for a notice or when it is about to go
// away (a FATAL message, then EOF, after pg_terminate_backend or a shutdown).
bool pg_connection_usable(soci::session& s) noexcept {
  PGconn* conn = pg_connection(s);
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) return false;
  pollfd pfd{};
  pfd.fd = PQsocket(conn);
  pfd.events = POLLIN;
  if (pfd.fd < 0) return false;
  if (::poll(&pfd, 1, 0) == 0) return true;
  return s.is_connected();
}

// libpq prints NOTICE and WARNING messages on stderr by default, which would break
// one-event-per-line logs.
void log_pg_notice(void* /*arg*/, const PGresult* res) {
  const char* severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  const char* primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  const std::string_view sev = severity != nullptr ? severity : "NOTICE";
  const std::initializer_list<obs::field> fields{{"severity", sev},
                                                 {"message", primary != nullptr ? primary : ""}};
  obs::write(sev == "WARNING" ? obs::level::warn : obs::level::info, "postgresql notice", fields);
}

void route_pg_notices(soci::session& s) noexcept {
  if (PGconn* conn = pg_connection(s); conn != nullptr) PQsetNoticeReceiver(conn, log_pg_notice, nullptr);
}

bool is_transient_sqlstate(std::string_view state) noexcept {
  return state.starts_with("08")     // connection exception
         || state.starts_with("53")  // insufficient resources (too many connections, out of memory)
         || state == "40001"         // serialization failure
         || state == "40P01"         // deadlock detected
         || state == "57P01"         // admin shutdown
         || state == "57P02"         // crash shutdown
         || state == "57P03";        // cannot connect now (starting up, in recovery)
}

void configure_sqlite(soci::session& s, bool in_memory, bool full_sync) {
  std::string mode;
  s << "PRAGMA journal_mode = WAL", soci::into(mode);
  std::transform(mode.begin(), mode.end(), mode.begin(), [](unsigned char c) { return std::tolower(c); });
  if (mode != (in_memory ? "memory" : "wal")) {
    throw std::runtime_error("SQLite refused journal_mode=WAL (journal_mode is '" + mode + "')");
  }
  s << (full_sync ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
  s << "PRAGMA foreign_keys = ON";
  // When the WAL starts over, a file grown past this (by a burst the restarts could not keep up
  // with) is truncated back, so its disk space comes back.
  s << "PRAGMA journal_size_limit = 67108864";
}

}  // namespace

// The shared WAL syncs of DATABASE_SQLITE_SYNCHRONOUS=full (see in_transaction). The holder of the
// write turn numbers each committed group; a caller waits until a sync that began after its group's
// COMMIT has finished. One caller at a time syncs (fdatasync of the -wal file, which flushes what
// every connection wrote to it), for all the groups committed before it began; the others wait for
// it and for the next one if theirs came later. The write turn is never held across the flush.
class database::wal_sync {
 public:
  explicit wal_sync(std::string path) : path_(std::move(path)) {}
  ~wal_sync() {
    if (fd_ >= 0) ::close(fd_);
  }
  wal_sync(const wal_sync&) = delete;
  wal_sync& operator=(const wal_sync&) = delete;

  /// Set before any transaction runs; counts the syncs done.
  void count_in(obs::counter* syncs) noexcept { syncs_ = syncs; }

  /// By the holder of the write turn, after a COMMIT that succeeded: the number its members wait for.
  std::uint64_t committed() {
    const std::lock_guard lock(mutex_);
    return ++committed_;
  }

  /// Returns once commit `seq` is on disk; throws transient_error when the sync failed.
  void wait_durable(std::uint64_t seq) {
    std::unique_lock lock(mutex_);
    while (synced_ < seq) {
      if (syncing_) {
        done_.wait(lock);
        continue;
      }
      syncing_ = true;
      const std::uint64_t target = committed_;
      lock.unlock();
      const int error = sync();  // fd_ is this thread's alone while syncing_ is set
      lock.lock();
      syncing_ = false;
      if (error == 0) synced_ = std::max(synced_, target);
      done_.notify_all();
      if (error != 0) {
        throw transient_error("cannot sync the SQLite WAL " + path_ + ": " + std::strerror(error));
      }
    }
  }

 private:
  int sync() noexcept {
    if (fd_ < 0) {
      fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);  // exists: a COMMIT has written to it
      if (fd_ < 0) return errno;
    }
    if (::fdatasync(fd_) != 0) return errno;
    if (syncs_ != nullptr) syncs_->inc();
    return 0;
  }

  const std::string path_;
  int fd_ = -1;
  obs::counter* syncs_ = nullptr;
  std::mutex mutex_;
  std::condition_variable done_;
  std::uint64_t committed_ = 0;  // groups committed
  std::uint64_t synced_ = 0;     // groups known to be on disk
  bool syncing_ = false;
};

// The writer connection's group commit (see in_transaction). The members of the open group are the
// transactions whose savepoints were released into it; they wait for its COMMIT on `done`. Everything
// but `mutex`, `done` and the groups' outcome fields is touched only by the holder of the write turn.
class database::group_commit {
 public:
  struct group {
    std::chrono::steady_clock::time_point opened;
    std::size_t members = 0;
    // Set under group_commit::mutex. A failed group's error, which each member throws as an
    // exception of its own: one exception object rethrown in several threads would be shared by
    // them (and its message with it), which ThreadSanitizer cannot tell from a race.
    bool finished = false;
    std::optional<std::string> error;
    bool transient = false;
    std::uint64_t durable_at = 0;  // with a wal_sync: the number to wait for (set before `finished`)
    // Touched by the turn's holder only: the transactions of other threads that ran in this group;
    // their callers sleep until it ends (committed or failed) and are woken then, once.
    std::vector<turn_request*> callers;
  };

  group_commit(soci::session& writer, std::size_t max_size, std::chrono::microseconds max_age, wal_sync* sync)
      : conn_(sqlite_connection(writer)),
        max_size_(std::max<std::size_t>(max_size, 1)),
        max_age_(max_age),
        sync_(sync) {
    try {
      begin_ = prepare("BEGIN IMMEDIATE");
      savepoint_ = prepare("SAVEPOINT shopd_member");
      release_ = prepare("RELEASE shopd_member");
      rollback_to_ = prepare("ROLLBACK TO shopd_member");
      commit_ = prepare("COMMIT");
      rollback_ = prepare("ROLLBACK");
    } catch (...) {
      finalize();
      throw;
    }
  }
  // Before the writer connection closes (SQLite does not close a connection with live statements).
  ~group_commit() { finalize(); }
  group_commit(const group_commit&) = delete;
  group_commit& operator=(const group_commit&) = delete;

  /// The open group, opening one (BEGIN IMMEDIATE) when there is none.
  std::shared_ptr<group> join() {
    if (!open_) {
      run(begin_, "BEGIN IMMEDIATE");
      open_ = std::make_shared<group>();
      open_->opened = std::chrono::steady_clock::now();
    }
    return open_;
  }
  [[nodiscard]] bool is_open(const std::shared_ptr<group>& g) const noexcept { return open_ == g; }
  [[nodiscard]] const std::shared_ptr<group>& open() const noexcept { return open_; }
  void savepoint() { run(savepoint_, "SAVEPOINT"); }
  void release() { run(release_, "RELEASE"); }

  /// Undo a member whose body threw. When the savepoint cannot be rolled back, or SQLite already
  /// rolled the whole transaction back, the group ends: its members fail with `cause`.
  void undo(const std::string& cause) {
    if (!open_) return;
    if (sqlite_api::sqlite3_get_autocommit(conn_) == 0) {
      try {
        run(rollback_to_, "ROLLBACK TO");
        run(release_, "RELEASE");
        return;
      } catch (const std::exception&) {
        // Fall through: end the whole transaction.
      }
    }
    abort(cause);
  }

  /// Whether the turn holder should commit now rather than leave the group open for the writers
  /// waiting for their turn.
  [[nodiscard]] bool due(std::size_t waiting) const noexcept {
    if (!open_) return false;
    return waiting == 0 || open_->members == 0 || open_->members >= max_size_ ||
           std::chrono::steady_clock::now() - open_->opened >= max_age_;
  }

  /// COMMIT the open group and wake its members; returns how many it made durable (0 when it failed).
  std::size_t commit() {
    auto g = std::move(open_);
    std::optional<std::string> error;
    bool transient = false;
    try {
      run(commit_, "COMMIT");
    } catch (const transient_error& e) {
      error = e.what();
      transient = true;
    } catch (const std::exception& e) {
      error = e.what();
    } catch (...) {
      error = "COMMIT failed: unknown exception";
    }
    if (error) rollback_quietly();
    if (!error && sync_ != nullptr) g->durable_at = sync_->committed();
    const std::size_t durable = error ? 0 : g->members;
    finish(*g, std::move(error), transient);
    return durable;
  }

  /// Wait until `g` is committed (or failed); rethrows its error. A member whose group stays open
  /// longer than expected (the writer the group was left open for gave up waiting for its turn)
  /// takes the turn itself and commits it.
  template <typename Flush>
  void wait(const std::shared_ptr<group>& g, Flush&& flush) {
    std::unique_lock lock(mutex_);
    while (!g->finished) {
      if (!done_.wait_for(lock, max_age_ * 4 + std::chrono::milliseconds(1), [&] { return g->finished; })) {
        lock.unlock();
        flush();
        lock.lock();
      }
    }
    if (g->error) {
      if (g->transient) throw transient_error(*g->error);
      throw std::runtime_error(*g->error);
    }
  }

 private:
  void finalize() noexcept {
    for (auto* st : {begin_, savepoint_, release_, rollback_to_, commit_, rollback_})
      sqlite_api::sqlite3_finalize(st);
  }

  sqlite_api::sqlite3_stmt* prepare(const char* sql) {
    sqlite_api::sqlite3_stmt* st = nullptr;
    if (sqlite_api::sqlite3_prepare_v2(conn_, sql, -1, &st, nullptr) != SQLITE_OK) {
      throw std::runtime_error(std::string("cannot prepare ") + sql + ": " +
                               sqlite_api::sqlite3_errmsg(conn_));
    }
    return st;
  }

  void run(sqlite_api::sqlite3_stmt* st, const char* what) {
    const int rc = sqlite_api::sqlite3_step(st);
    sqlite_api::sqlite3_reset(st);
    if (rc == SQLITE_DONE) return;
    const std::string message = std::string(what) + " failed: " + sqlite_api::sqlite3_errmsg(conn_);
    const int primary = rc & 0xff;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) throw transient_error(message);
    throw std::runtime_error(message);
  }

  void rollback_quietly() noexcept {
    if (sqlite_api::sqlite3_get_autocommit(conn_) != 0) return;
    sqlite_api::sqlite3_step(rollback_);
    sqlite_api::sqlite3_reset(rollback_);
  }

  void abort(const std::string& cause) {
    rollback_quietly();
    auto g = std::move(open_);
    finish(*g, "database transaction rolled back with another one of its commit group: " + cause, true);
  }

  void finish(group& g, std::optional<std::string> error, bool transient) {
    {
      std::lock_guard lock(mutex_);
      g.finished = true;
      g.error = std::move(error);
      g.transient = transient;
    }
    done_.notify_all();
  }

  sqlite_api::sqlite3* conn_;
  std::size_t max_size_;
  std::chrono::microseconds max_age_;
  wal_sync* sync_;
  sqlite_api::sqlite3_stmt* begin_ = nullptr;
  sqlite_api::sqlite3_stmt* savepoint_ = nullptr;
  sqlite_api::sqlite3_stmt* release_ = nullptr;
  sqlite_api::sqlite3_stmt* rollback_to_ = nullptr;
  sqlite_api::sqlite3_stmt* commit_ = nullptr;
  sqlite_api::sqlite3_stmt* rollback_ = nullptr;
  std::shared_ptr<group> open_;
  std::mutex mutex_;
  std::condition_variable done_;
};

// One in_transaction call on the writer connection, from the thread that made it. The holder of the
// turn runs it when it is queued: `st`, `group` and `failure` change under writer_turn's mutex or
// while its thread waits for `st` to say the holder is done with it.
struct database::turn_request {
  enum class state { queued, running, ran, handed };
  void (*body)(void*, soci::session&) = nullptr;  // nullptr: the turn alone is wanted
  void* context = nullptr;
  const obs::trace_context* trace = nullptr;  // the caller's, current while the body runs
  state st = state::queued;
  std::shared_ptr<group_commit::group> group;  // the group its savepoint was released into
  std::exception_ptr failure;                  // what the body (or BEGIN) threw
  std::condition_variable cv;                  // wakes the caller alone
};

// The writer connection's turn, taken by flat combining: the thread that finds the turn free holds
// it and runs, besides its own transaction, those that queued up meanwhile, in their order, each
// in its savepoint on the holder's thread, while their callers sleep until the group their
// transaction joined has ended (committed, or failed), woken once. Passing
// the turn from one thread to the next (waking it, then waiting for a core for it) left the writer
// connection idle between transactions: a fifth of the time it was held, under load, went to that.
// A holder passes the turn on once it has run a commit group's worth of others, so that its own
// call returns in bounded time; the next caller in line then holds it. Notifications happen under
// the mutex: the caller's request (and its condition variable) lives on its stack and is gone as
// soon as it sees its state change.
class database::writer_turn {
 public:
  enum class entry { holder, ran, timed_out };

  explicit writer_turn(std::atomic<std::size_t>& waiting) : waiting_(waiting) {}

  /// Hold the turn (free, or handed over by its holder: `holder`), or wait until the holder ran `r`
  /// (`ran`). `timed_out`: still queued after `timeout`, and taken out of the queue.
  entry enter(turn_request& r, std::chrono::milliseconds timeout) {
    using state = turn_request::state;
    std::unique_lock lock(mutex_);
    if (!held_) {
      held_ = true;
      return entry::holder;
    }
    queue_.push_back(&r);
    waiting_.fetch_add(1, std::memory_order_relaxed);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (r.st == state::queued) {
      if (r.cv.wait_until(lock, deadline) == std::cv_status::timeout && r.st == state::queued) {
        queue_.erase(std::find(queue_.begin(), queue_.end(), &r));
        waiting_.fetch_sub(1, std::memory_order_relaxed);
        return entry::timed_out;
      }
    }
    while (r.st == state::running) r.cv.wait(lock);
    return r.st == state::handed ? entry::holder : entry::ran;
  }

  /// For the holder: the longest waiting request, now running, or nullptr when none waits.
  turn_request* next() {
    std::lock_guard lock(mutex_);
    if (queue_.empty()) return nullptr;
    auto* r = pop();
    r->st = turn_request::state::running;
    return r;
  }

  /// For the holder: `r` has run (and its group ended, unless it failed); its caller goes on.
  void ran(turn_request& r) {
    std::lock_guard lock(mutex_);
    r.st = turn_request::state::ran;
    r.cv.notify_one();
  }
  void ran(std::span<turn_request* const> rs) {
    std::lock_guard lock(mutex_);
    for (auto* r : rs) {
      r->st = turn_request::state::ran;
      r->cv.notify_one();
    }
  }

  /// For the holder: free the turn if nobody waits for it (true), or else keep it (false).
  bool release_if_idle() {
    std::lock_guard lock(mutex_);
    if (!queue_.empty()) return false;
    held_ = false;
    return true;
  }

  /// For the holder: hand the turn to the longest waiting request, or free it when none waits.
  void pass() {
    std::lock_guard lock(mutex_);
    if (queue_.empty()) {
      held_ = false;
      return;
    }
    auto* r = pop();
    r->st = turn_request::state::handed;
    r->cv.notify_one();
  }

  [[nodiscard]] std::size_t queued() {
    std::lock_guard lock(mutex_);
    return queue_.size();
  }

 private:
  turn_request* pop() {
    auto* r = queue_.front();
    queue_.pop_front();
    waiting_.fetch_sub(1, std::memory_order_relaxed);
    return r;
  }

  std::atomic<std::size_t>& waiting_;  // the writers_waiting gauge: the queue's length
  std::mutex mutex_;
  bool held_ = false;
  std::deque<turn_request*> queue_;
};

database::database(database_url url, database_options opts)
    : url_(std::move(url)), opts_(opts), counters_(std::make_unique<counters>()) {
  if (opts_.pool_size == 0) throw std::invalid_argument("database pool size must be at least 1");
  const bool in_memory = url_.kind == dialect::sqlite && url_.sqlite_path.empty();
  if (in_memory) opts_.pool_size = 1;
  try {
    if (url_.kind == dialect::sqlite && !in_memory) {
      auto parent = std::filesystem::path(url_.sqlite_path).parent_path();
      if (!parent.empty()) std::filesystem::create_directories(parent);
    }
    pool_ = std::make_unique<soci::connection_pool>(opts_.pool_size);
    for (std::size_t i = 0; i < opts_.pool_size; ++i) {
      soci::session& s = pool_->at(i);
      if (url_.kind == dialect::sqlite) {
        open_sqlite(s, in_memory);
      } else {
        s.open(*soci::factory_postgresql(), url_.connect_string);
        route_pg_notices(s);
      }
    }
    if (url_.kind == dialect::sqlite && !in_memory) {
      writer_ = std::make_unique<soci::session>();
      open_sqlite(*writer_, false);
      writer_wait_ = busy_waits_.back().get();
      // Each member of a commit group runs in a savepoint, whose sub-journal keeps the first image of
      // every page the member changes. Past 64 KiB SQLite spills it to a temporary file it creates and
      // deletes, one per group: under load that was a third of the bytes this process wrote. In
      // memory it is bounded by the group: the pages its members change.
      *writer_ << "PRAGMA temp_store = MEMORY";
      if (opts_.sqlite_full_sync) {
        // Its COMMITs leave the WAL unsynced; each caller waits for a shared sync (wal_sync).
        wal_sync_ = std::make_unique<wal_sync>(url_.sqlite_path + "-wal");
        *writer_ << "PRAGMA synchronous = NORMAL";
      }
      checkpointer_ = std::make_unique<checkpointer>(url_, opts_.busy_timeout, opts_.wal_restart_pages,
                                                     wal_restart_wanted_);
      for (std::size_t i = 0; i < opts_.pool_size; ++i) {
        sqlite_api::sqlite3_wal_hook(sqlite_connection(pool_->at(i)), &checkpointer::on_commit,
                                     checkpointer_.get());
      }
      sqlite_api::sqlite3_wal_hook(sqlite_connection(*writer_), &checkpointer::on_commit,
                                   checkpointer_.get());
      group_ = std::make_unique<group_commit>(*writer_, opts_.commit_group_size, opts_.commit_group_age,
                                              wal_sync_.get());
      turn_ = std::make_unique<writer_turn>(counters_->writers_waiting);
      statements_ = std::make_unique<statement_cache>(*writer_);
    }
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot open database " + url_.redacted + ": " + one_line(e.what()));
  }
  if (opts_.metrics != nullptr) {
    auto& r = *opts_.metrics;
    auto& size =
        r.gauge_family("shopd_db_pool_connections", "Database sessions in this process's pool").get();
    auto& in_use =
        r.gauge_family("shopd_db_pool_connections_in_use", "Database sessions leased right now").get();
    counters_->waits = &r.counter_family("shopd_db_pool_waits_total",
                                         "Session leases that found the pool exhausted and waited")
                            .get();
    counters_->wait_duration = &r.histogram_family("shopd_db_pool_wait_duration_seconds",
                                                   "Time a lease waited for a free session (only leases that "
                                                   "waited; the timed out ones too)")
                                    .get();
    auto& writers_waiting = r.gauge_family("shopd_db_writers_waiting",
                                           "Transactions of this process waiting for their turn to write "
                                           "(SQLite)")
                                .get();
    if (group_) {
      counters_->group_size =
          &r.histogram_family("shopd_db_commit_group_transactions",
                              "Transactions made durable by one COMMIT (SQLite group commit)", {},
                              {1, 2, 4, 8, 16, 32, 64})
               .get();
      auto& syncs = r.counter_family("shopd_db_wal_syncs_total",
                                     "Syncs of the SQLite WAL that made commit groups durable "
                                     "(DATABASE_SQLITE_SYNCHRONOUS=full)")
                        .get();
      if (wal_sync_) wal_sync_->count_in(&syncs);
    }
    counters_->collector =
        r.add_collector([&size, &in_use, &writers_waiting, c = counters_.get(), n = opts_.pool_size] {
          size.set(static_cast<double>(n));
          in_use.set(static_cast<double>(c->in_use.load(std::memory_order_relaxed)));
          writers_waiting.set(static_cast<double>(c->writers_waiting.load(std::memory_order_relaxed)));
        });
    counters_->registry = &r;
  }
}

database::~database() = default;

void database::open_sqlite(soci::session& s, bool in_memory) {
  s.open(*soci::factory_sqlite3(), url_.connect_string);
  auto& wait = *busy_waits_.emplace_back(std::make_unique<busy_wait>(busy_wait{opts_.busy_timeout, {}}));
  sqlite_api::sqlite3_busy_handler(sqlite_connection(s), &busy_wait::retry, &wait);
  configure_sqlite(s, in_memory, opts_.sqlite_full_sync);
}

bool database::ping() noexcept {
  try {
    return with_session([](soci::session& s) {
      int one = 0;
      s << "SELECT 1", soci::into(one);
      return one == 1;
    });
  } catch (...) {
    return false;
  }
}

std::size_t database::in_use() const noexcept {
  return counters_->in_use.load(std::memory_order_relaxed);
}

void database::begin(soci::session& s) {
  // SOCI's begin() says plain BEGIN, which on SQLite takes the write lock only at the first write: two
  // such transactions that both read first then deadlock on the upgrade. commit()/rollback() send plain
  // COMMIT/ROLLBACK, which end an IMMEDIATE transaction as well.
  if (url_.kind == dialect::sqlite) {
    s << "BEGIN IMMEDIATE";
  } else {
    s.begin();
  }
}

void database::rollback_quietly(soci::session& s) noexcept {
  try {
    s.rollback();
  } catch (...) {
    // The transaction is gone with the connection, or never started: nothing left to undo.
  }
}

void database::rethrow_if_transient(const soci::soci_error& e, soci::session& s) const {
  bool transient = e.get_error_category() == soci::soci_error::connection_error;
  if (const auto* lite = dynamic_cast<const soci::sqlite3_soci_error*>(&e)) {
    const int primary = lite->result() & 0xff;  // extended codes (SQLITE_BUSY_SNAPSHOT...) keep it
    transient = transient || primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
  } else if (const auto* pg = dynamic_cast<const soci::postgresql_soci_error*>(&e)) {
    transient = transient || is_transient_sqlstate(pg->sqlstate());
  }
  // libpq's own "server closed the connection unexpectedly" carries no SQLSTATE; the connection
  // status does tell.
  if (!transient && url_.kind == dialect::postgresql) {
    PGconn* conn = pg_connection(s);
    transient = conn == nullptr || PQstatus(conn) != CONNECTION_OK;
  }
  // The backend's message without SOCI's context: that names the statement and its bound values,
  // customer data that must not reach the logs a retried event writes.
  if (transient) throw transient_error(one_line(e.get_error_message()));
}

bool database::take_turn() {
  counters_->writers_waiting.fetch_add(1, std::memory_order_relaxed);
  const bool taken = writers_.try_lock_for(opts_.busy_timeout);
  counters_->writers_waiting.fetch_sub(1, std::memory_order_relaxed);
  return taken;
}

transient_error database::no_turn_error() const {
  return transient_error("database busy: no turn to write within " +
                         std::to_string(to_timeout_ms(opts_.busy_timeout)) +
                         " ms (another transaction of this process holds the write lock)");
}

// With the turn held and no transaction open on the writer connection. RESTART takes SQLite's write
// lock (this process's writers queue for the turn meanwhile), copies the frames the background
// checkpoints have not, and waits for the readers still on the WAL; the next BEGIN then starts the
// WAL over. Readers that stay longer than wal_restart_wait leave it for the next request.
void database::restart_wal() noexcept {
  const auto saved = writer_wait_->timeout;
  writer_wait_->timeout = opts_.wal_restart_wait;
  const int rc = sqlite_api::sqlite3_wal_checkpoint_v2(sqlite_connection(*writer_), nullptr,
                                                       SQLITE_CHECKPOINT_RESTART, nullptr, nullptr);
  writer_wait_->timeout = saved;
  if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
    obs::warn("sqlite WAL restart checkpoint failed", {{"error", sqlite_api::sqlite3_errstr(rc)}});
  }
}

std::size_t database::writers_waiting() const noexcept {
  return counters_->writers_waiting.load(std::memory_order_relaxed);
}

void database::run_grouped(void (*body)(void*, soci::session&), void* context) {
  turn_request me;
  me.body = body;
  me.context = context;
  me.trace = obs::current_trace();
  switch (turn_->enter(me, opts_.busy_timeout)) {
    case writer_turn::entry::timed_out:
      throw no_turn_error();
    case writer_turn::entry::holder:
      hold(me);
      break;
    case writer_turn::entry::ran:
      break;
  }
  if (me.failure) {
    try {
      std::rethrow_exception(me.failure);
    } catch (const soci::soci_error& e) {
      rethrow_if_transient(e, *writer_);
      throw;
    }
  }
  // A group is committed before the turn is freed, so it always has a holder to commit it; the
  // fallback below only bounds the wait should that ever not hold.
  group_->wait(me.group, [&] {
    turn_request flush;  // the turn alone: holding it commits the open group
    if (turn_->enter(flush, opts_.busy_timeout) == writer_turn::entry::holder) hold(flush);
  });
  if (wal_sync_) wal_sync_->wait_durable(me.group->durable_at);
}

void database::execute(turn_request& r) noexcept {
  if (r.body == nullptr) return;
  auto& g = *group_;
  const obs::trace_scope traced(r.trace);
  try {
    r.group = g.join();
    try {
      g.savepoint();
      const detail::cache_scope cached(*writer_, *statements_);
      r.body(r.context, *writer_);
      g.release();
      ++r.group->members;
    } catch (const std::exception& e) {
      r.failure = std::current_exception();
      g.undo(one_line(e.what()));
    } catch (...) {
      r.failure = std::current_exception();
      g.undo("unknown exception");
    }
  } catch (...) {
    r.failure = std::current_exception();  // BEGIN failed, or so did ending a broken transaction
  }
}

void database::hold(turn_request& first) noexcept {
  auto& g = *group_;
  const auto wake_callers = [&](const std::shared_ptr<group_commit::group>& ended) {
    if (!ended || ended->callers.empty()) return;
    turn_->ran(ended->callers);
    ended->callers.clear();
  };
  const auto commit = [&] {
    const auto ended = g.open();
    counters_->committed(g.commit());
    wake_callers(ended);
    if (wal_restart_wanted_.exchange(false, std::memory_order_relaxed)) restart_wal();
  };
  // A failing transaction can end its whole group (SQLite rolled it back): wake the group's callers.
  const auto ended_by = [&](const turn_request& r) {
    if (r.group && !g.is_open(r.group)) wake_callers(r.group);
  };
  execute(first);
  ended_by(first);
  std::size_t served = 0;
  while (true) {
    if (g.due(turn_->queued())) commit();
    if (served >= opts_.commit_group_size) {
      turn_->pass();  // the group may stay open: its next holder commits it and wakes its callers
      return;
    }
    if (auto* r = turn_->next()) {
      execute(*r);
      ++served;
      if (!r->failure && g.is_open(r->group)) {
        r->group->callers.push_back(r);  // woken once the group ends: a single wake-up per call
      } else {
        ended_by(*r);
        turn_->ran(*r);
      }
      continue;
    }
    if (g.due(0)) commit();
    if (turn_->release_if_idle()) return;
  }
}

database::write_turn::write_turn(database& db) {
  if (db.url_.kind != dialect::sqlite) return;
  if (!db.take_turn()) throw db.no_turn_error();
  writers_ = &db.writers_;
}

database::write_turn::~write_turn() {
  if (writers_ != nullptr) writers_->unlock();
}

database::lease::lease(database& db) : db_(db), pos_(0) {
  const int timeout_ms = to_timeout_ms(db_.opts_.busy_timeout);
  // A first try that does not block (SOCI gives up at once on a deadline already reached) tells the
  // leases that had to wait, for the metrics, at no cost when a session is free.
  if (!db_.pool_->try_lease(pos_, 0)) {
    db_.counters_->wait_started();
    const auto start = std::chrono::steady_clock::now();
    const bool leased = db_.pool_->try_lease(pos_, timeout_ms);
    db_.counters_->wait_ended(std::chrono::steady_clock::now() - start);
    if (!leased) {
      throw transient_error("database pool exhausted: no session free within " + std::to_string(timeout_ms) +
                            " ms (pool size " + std::to_string(db_.opts_.pool_size) + ")");
    }
  }
  db_.counters_->in_use.fetch_add(1, std::memory_order_relaxed);
  if (db_.url_.kind != dialect::postgresql) return;
  soci::session& s = db_.pool_->at(pos_);
  if (pg_connection_usable(s)) return;
  try {
    s.reconnect();
    route_pg_notices(s);
  } catch (const std::exception& e) {
    // The session stays closed; the next lease tries again, so the pool heals once the server is back.
    db_.counters_->in_use.fetch_sub(1, std::memory_order_relaxed);
    db_.pool_->give_back(pos_);
    throw transient_error("database connection lost and reconnect failed: " + one_line(e.what()));
  }
}

database::lease::~lease() {
  db_.counters_->in_use.fetch_sub(1, std::memory_order_relaxed);
  db_.pool_->give_back(pos_);
}

soci::session& database::lease::session() noexcept {
  return db_.pool_->at(pos_);
}

}  // namespace shopd::db
