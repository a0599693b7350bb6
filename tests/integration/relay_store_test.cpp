#include "shopd/relay/store.hpp"

#include "fresh_database.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace relay = shopd::relay;
using shopd::db::dialect;
using shopd::test::fresh_database;

namespace {

constexpr std::int64_t t0 = 1'700'000'000'000;  // a fixed "now": the store never reads the clock
constexpr std::int64_t window = 600'000;
constexpr std::int64_t margin = 30'000;

relay::message_spec spec(std::string destination, std::string body = "{}", std::int64_t not_before = t0) {
  relay::message_spec m;
  m.destination = std::move(destination);
  m.body = std::move(body);
  m.headers = {{"Content-Type", "application/json"}};
  m.max_retries = 3;
  m.timeout_ms = 5'000;
  m.not_before_ms = not_before;
  m.created_at_ms = t0;
  m.caller_ip = "127.0.0.1";
  return m;
}

relay::attempt_record answered(int status, std::string body = {}) {
  relay::attempt_record a;
  a.response.status = status;
  a.response.headers = {{"X-Answer", "yes"}, {"X-Answer", "twice"}};
  a.response.body = std::move(body);
  if (status < 200 || status > 299) a.error = "HTTP " + std::to_string(status);
  return a;
}

std::set<std::string> ids_of(const relay::claim_result& r) {
  std::set<std::string> out;
  for (const auto& m : r.messages) out.insert(m.message_id);
  return out;
}

relay::claim_result claim(relay::relay_store& s, std::int64_t now, std::size_t global = 100,
                          std::size_t per_origin = 100) {
  relay::delivery_slots slots(global, per_origin);
  return s.claim(now, slots, margin, 30'000);
}

const dialect both[] = {dialect::sqlite, dialect::postgresql};

// The origin column of a stored message: nullopt when NULL.
std::optional<std::string> stored_origin(shopd::db::database& db, const std::string& message_id) {
  return db.with_session([&](soci::session& s) -> std::optional<std::string> {
    std::string origin;
    soci::indicator ind = soci::i_null;
    s << "SELECT origin FROM relay_messages WHERE message_id = :id", soci::into(origin, ind),
        soci::use(message_id);
    if (ind != soci::i_ok) return std::nullopt;
    return origin;
  });
}

// What an older relay, or one from before the origin column, leaves behind.
void forget_origin(shopd::db::database& db, const std::string& message_id) {
  db.in_transaction([&](soci::session& s) {
    s << "UPDATE relay_messages SET origin = NULL WHERE message_id = :id", soci::use(message_id);
  });
}

}  // namespace

TEST_SUITE("relay/store") {
  TEST_CASE("a message round-trips through the database") {
    for (auto d : both) {
      CAPTURE(shopd::test::dialect_name(d));
      fresh_database fdb(d);
      relay::relay_store store(fdb.db(), "node-a");

      auto m = spec("http://127.0.0.1:3001/api/webhook?a=1&b=2",
                    std::string("\x00\x01\xff\xfe binary \"body\"", 18));
      m.method = "PATCH";
      m.headers.push_back({"X-Trace", "one"});
      m.headers.push_back({"X-Trace", "two"});
      m.retry_delay_expr = "1000 * (1 + retried)";
      m.callback = "http://127.0.0.1:3004/cb";
      m.failure_callback = "http://127.0.0.1:3004/fcb";
      m.options.labels = {"a", "b"};
      m.options.queue = "q1";
      m.options.callback.retries = 1;
      m.options.failure_callback.forward_headers = {{"X-F", "1"}};
      m.dedup_id = "dedup-1";

      const auto a = store.insert(m, t0, window);
      CHECK_FALSE(a.deduplicated);
      CHECK(relay::is_message_id(a.message_id));

      const auto got = store.get(a.message_id);
      REQUIRE(got.has_value());
      CHECK(got->message_id == a.message_id);
      CHECK(got->state == relay::message_state::created);
      CHECK(got->retried == 0);
      CHECK(got->spec.body == m.body);
      CHECK(got->spec.destination == m.destination);
      CHECK(got->spec.method == "PATCH");
      CHECK(got->spec.headers == m.headers);
      CHECK(got->spec.retry_delay_expr == m.retry_delay_expr);
      CHECK(got->spec.timeout_ms == 5'000);
      CHECK(got->spec.callback == m.callback);
      CHECK(got->spec.failure_callback == m.failure_callback);
      CHECK(got->spec.options == m.options);
      CHECK(got->spec.dedup_id == m.dedup_id);
      CHECK(got->spec.caller_ip == "127.0.0.1");
      CHECK(got->spec.not_before_ms == t0);
      CHECK(got->spec.created_at_ms == t0);
      CHECK_FALSE(got->lease_owner.has_value());

      CHECK_FALSE(store.get("msg_unknown").has_value());

      SUBCASE("an empty body stays empty") {
        const auto e = store.insert(spec("http://h/e", ""), t0, window);
        CHECK(store.get(e.message_id)->spec.body.empty());
      }
    }
  }

  TEST_CASE("deduplication ids") {
    for (auto d : both) {
      CAPTURE(shopd::test::dialect_name(d));
      fresh_database fdb(d);
      relay::relay_store store(fdb.db(), "node-a");
      auto m = spec("http://h/x");
      m.dedup_id = "order-1";

      const auto first = store.insert(m, t0, window);
      const auto again = store.insert(m, t0 + 1000, window);
      CHECK(again.deduplicated);
      CHECK(again.message_id == first.message_id);

      auto other = m;
      other.dedup_id = "order-2";
      CHECK_FALSE(store.insert(other, t0, window).deduplicated);
      CHECK_FALSE(store.insert(spec("http://h/x"), t0, window).deduplicated);  // no id, no dedup

      SUBCASE("a failed message still blocks its id within the window") {
        auto r = claim(store, t0);
        for (const auto& c : r.messages) {
          CHECK(store.record_failed(
              c.message_id, answered(500),
              [](std::string_view) { return std::vector<relay::message_spec>{}; }, t0));
        }
        CHECK(store.insert(m, t0 + window - 1, window).deduplicated);
      }
      SUBCASE("after the window the id is free again") {
        const auto later = store.insert(m, t0 + window, window);
        CHECK_FALSE(later.deduplicated);
        CHECK(later.message_id != first.message_id);
        CHECK(store.insert(m, t0 + window + 1, window).message_id == later.message_id);
      }
      SUBCASE("a batch: all in one transaction, duplicates inside it too") {
        auto b1 = spec("http://h/b");
        b1.dedup_id = "batch-1";
        const std::vector<relay::message_spec> batch{b1, spec("http://h/c"), b1, m};
        const auto out = store.insert_all(batch, t0, window);
        REQUIRE(out.size() == 4);
        CHECK_FALSE(out[0].deduplicated);
        CHECK_FALSE(out[1].deduplicated);
        CHECK(out[2].deduplicated);
        CHECK(out[2].message_id == out[0].message_id);
        CHECK(out[3].deduplicated);
        CHECK(out[3].message_id == first.message_id);
      }
    }
  }

  TEST_CASE("concurrent publishes of one dedup id store one message (PostgreSQL)") {
    fresh_database fdb(dialect::postgresql, 8);
    relay::relay_store store(fdb.db(), "node-a");
    auto m = spec("http://h/x");
    m.dedup_id = "race";
    constexpr int threads = 8;
    std::vector<relay::accepted_message> results(threads);
    std::barrier start(threads);
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) {
      pool.emplace_back([&, i] {
        start.arrive_and_wait();
        results[static_cast<std::size_t>(i)] = store.insert(m, t0, window);
      });
    }
    for (auto& t : pool) t.join();
    const auto fresh =
        std::count_if(results.begin(), results.end(), [](const auto& r) { return !r.deduplicated; });
    CHECK(fresh == 1);
    for (const auto& r : results) CHECK(r.message_id == results.front().message_id);
    CHECK(store.counts().created == 1);
  }

  TEST_CASE("claiming due work and leases") {
    for (auto d : both) {
      CAPTURE(shopd::test::dialect_name(d));
      fresh_database fdb(d);
      relay::relay_store a(fdb.db(), "node-a");
      relay::relay_store b(fdb.db(), "node-b");
      const auto late = a.insert(spec("http://h/late", "{}", t0 + 500), t0, window).message_id;
      const auto due2 = a.insert(spec("http://h/2", "{}", t0 - 10), t0, window).message_id;
      const auto due1 = a.insert(spec("http://h/1", "{}", t0 - 20), t0, window).message_id;

      const auto r = claim(a, t0);
      REQUIRE(r.messages.size() == 2);
      CHECK(r.messages[0].message_id == due1);  // oldest not_before first
      CHECK(r.messages[1].message_id == due2);
      CHECK_FALSE(r.more_due);
      CHECK(r.next_due_ms == t0 + 500);
      for (const auto& m : r.messages) {
        CHECK(m.state == relay::message_state::active);
        CHECK(m.lease_owner == "node-a");
        CHECK(m.lease_until_ms == t0 + 5'000 + margin);
        const auto stored = a.get(m.message_id);
        CHECK(stored->state == relay::message_state::active);
        CHECK(stored->lease_owner == "node-a");
      }

      SUBCASE("a message published without a delay, after the claim's now, is not the next scheduled one") {
        auto undelayed = spec("http://h/u", "{}", t0 + 100);
        undelayed.created_at_ms = t0 + 100;
        a.insert(undelayed, t0 + 100, window);
        const auto r2 = claim(b, t0 + 50);
        CHECK(r2.messages.empty());
        CHECK(r2.next_due_ms == t0 + 500);  // "late", created at t0 to be due at t0 + 500
      }
      SUBCASE("a leased message is not claimed again while its lease runs") {
        CHECK(claim(b, t0 + 1000).messages.size() == 1);  // only "late", now due
        CHECK(claim(a, t0 + 1000).messages.empty());
      }
      SUBCASE("an expired lease is claimed by another node, which then owns the outcome") {
        const auto r2 = claim(b, t0 + 5'000 + margin + 1);
        CHECK(ids_of(r2) == std::set<std::string>{due1, due2, late});
        CHECK_FALSE(a.record_delivered(due1, answered(200), {}, t0 + 40'000));  // node-a lost it
        CHECK(b.record_delivered(due1, answered(200), {}, t0 + 40'000));
        CHECK(a.get(due1)->state == relay::message_state::delivered);
        CHECK(a.get(due1)->retried == 0);
      }
      SUBCASE("a store looks for expired leases at most every expired_lease_check_ms") {
        const auto expired = t0 + 5'000 + margin + 1;
        CHECK(claim(b, expired - 1).messages.size() == 1);  // only "late": the leases still run
        // Within the interval after that claim, the expired leases are not looked for...
        CHECK(claim(b, expired).messages.empty());
        CHECK(claim(b, expired - 1 + relay::relay_store::expired_lease_check_ms - 1).messages.empty());
        // ...by this store: another's claims look on their own schedule.
        relay::relay_store c(fdb.db(), "node-c");
        CHECK(ids_of(claim(c, expired)) == std::set<std::string>{due1, due2});
      }
      SUBCASE("the expired leases are found by the first claim past the interval") {
        const auto expired = t0 + 5'000 + margin + 1;
        CHECK(claim(b, expired - 1).messages.size() == 1);
        CHECK(ids_of(claim(b, expired - 1 + relay::relay_store::expired_lease_check_ms)) ==
              std::set<std::string>{due1, due2});
      }
      SUBCASE("release at start-up: this node's leases become due again, others' stay") {
        CHECK(claim(b, t0 + 600).messages.size() == 1);  // node-b leases "late"
        CHECK(a.release_leases(t0 + 700) == 2);
        for (const auto& id : {due1, due2}) {
          const auto m = a.get(id);
          CHECK(m->state == relay::message_state::retry);
          CHECK_FALSE(m->lease_owner.has_value());
          CHECK(m->spec.not_before_ms == t0 + 700);
          CHECK(m->retried == 0);
        }
        CHECK(a.get(late)->lease_owner == "node-b");
        CHECK(ids_of(claim(a, t0 + 700)) == std::set<std::string>{due1, due2});
      }
      SUBCASE("release of chosen messages only") {
        const std::vector<std::string> one{due2};
        CHECK(b.release_leases(one, t0) == 0);  // not node-b's
        CHECK(a.release_leases(one, t0) == 1);
        CHECK(a.get(due2)->state == relay::message_state::retry);
        CHECK(a.get(due1)->state == relay::message_state::active);
      }
    }
  }

  TEST_CASE("a message this relay cannot read is put off, not a failure of every claim") {
    for (auto d : both) {
      CAPTURE(shopd::test::dialect_name(d));
      fresh_database fdb(d);
      relay::relay_store store(fdb.db(), "node-a");
      const auto bad = store.insert(spec("http://h/1"), t0, window).message_id;
      const auto good = store.insert(spec("http://h/2"), t0, window).message_id;
      // Edited by hand, or damaged: headers that are not JSON.
      std::string headers;
      fdb.db().with_session([&](soci::session& s) {
        s << "SELECT headers FROM relay_messages WHERE message_id = :id", soci::into(headers), soci::use(bad);
      });
      fdb.db().in_transaction([&](soci::session& s) {
        s << "UPDATE relay_messages SET headers = 'not JSON' WHERE message_id = :id", soci::use(bad);
      });
      const auto not_before = [&] {
        return fdb.db().with_session([&](soci::session& s) {
          long long v = 0;
          s << "SELECT not_before_ms FROM relay_messages WHERE message_id = :id", soci::into(v),
              soci::use(bad);
          return v;
        });
      };

      CHECK(ids_of(claim(store, t0 + 1)) == std::set<std::string>{good});
      CHECK(store.record_delivered(good, answered(200), {}, t0 + 10));
      CHECK(not_before() == t0 + 1 + relay::relay_store::unreadable_retry_ms);
      CHECK(claim(store, t0 + 2).messages.empty());  // put off: no claim meets it meanwhile
      // Once past that, it is tried again (and put off again while it cannot be read).
      const auto later = t0 + 1 + relay::relay_store::unreadable_retry_ms;
      CHECK(claim(store, later).messages.empty());
      CHECK(not_before() == later + relay::relay_store::unreadable_retry_ms);
      // Nothing else of it changed: a relay that can read it delivers it.
      fdb.db().in_transaction([&](soci::session& s) {
        s << "UPDATE relay_messages SET headers = :h WHERE message_id = :id", soci::use(headers),
            soci::use(bad);
      });
      const auto r = claim(store, later + relay::relay_store::unreadable_retry_ms);
      CHECK(ids_of(r) == std::set<std::string>{bad});
      CHECK(r.messages.front().retried == 0);
    }
  }

  TEST_CASE("claims respect global and per-origin slots") {
    for (auto d : both) {
      CAPTURE(shopd::test::dialect_name(d));
      fresh_database fdb(d);
      relay::relay_store store(fdb.db(), "node-a");
      // The slow origin's messages are all older than the fast one's.
      for (int i = 0; i < 5; ++i) store.insert(spec("http://slow:1/x", "{}", t0 - 100 + i), t0, window);
      for (int i = 0; i < 3; ++i)
        store.insert(spec("http://FAST:2/y?" + std::to_string(i), "{}", t0), t0, window);

      SUBCASE("a claim takes only what fits each origin") {
        relay::delivery_slots slots(10, 2);
        const auto r = store.claim(t0, slots, margin, 30'000);
        CHECK(r.more_due);
        CHECK(slots.in_flight("http://slow:1") == 2);
        CHECK(slots.in_flight("http://fast:2") == 2);
        CHECK(r.messages.size() == 4);
        CHECK(store.counts().active == 4);
      }
      SUBCASE("a saturated origin is skipped by the query, so others are found behind it") {
        relay::delivery_slots slots(3, 2);
        slots.try_take("http://slow:1");
        slots.try_take("http://slow:1");
        const auto r = store.claim(t0, slots, margin, 30'000);
        REQUIRE(r.messages.size() == 1);  // the global limit
        CHECK(relay::origin_of(r.messages[0].spec.destination) == "http://fast:2");
      }
      SUBCASE("the owner's real slots: a pick whose slot was taken meanwhile stays due, its origin waiting") {
        relay::delivery_slots copy(10, 2);
        relay::delivery_slots real(10, 2);
        REQUIRE(real.try_take("http://slow:1"));  // publishes took the slow origin's slots meanwhile
        REQUIRE(real.try_take("http://slow:1"));
        const relay::claim_slots owner{.take = [&](std::string_view o) { return real.try_take(o); },
                                       .give_back = [&](std::string_view o) { real.give_back(o); }};
        const auto r = store.claim(t0, copy, margin, 30'000, owner);
        REQUIRE(r.messages.size() == 2);
        for (const auto& m : r.messages) CHECK(relay::origin_of(m.spec.destination) == "http://fast:2");
        CHECK(r.more_due);
        CHECK(std::find(r.waiting_origins.begin(), r.waiting_origins.end(), "http://slow:1") !=
              r.waiting_origins.end());
        CHECK(real.in_flight("http://fast:2") == 2);
        CHECK(real.in_flight("http://slow:1") == 2);
        CHECK(store.counts().active == 2);
        CHECK(store.counts().created == 6);
      }
      SUBCASE("the global limit") {
        relay::delivery_slots slots(3, 100);
        const auto r = store.claim(t0, slots, margin, 30'000);
        CHECK(r.messages.size() == 3);
        CHECK(r.more_due);
        CHECK(slots.free() == 0);
        relay::delivery_slots full(1, 1);
        full.try_take("x");
        CHECK(store.claim(t0, full, margin, 30'000).messages.empty());
      }
    }
  }

  TEST_CASE("a saturated origin's backlog does not hide another origin's due message") {
    for (auto d : both) {
      CAPTURE(shopd::test::dialect_name(d));
      fresh_database fdb(d);
      relay::relay_store store(fdb.db(), "node-a");
      // Thousands of due messages to one origin, all older than the one message to another.
      std::vector<relay::message_spec> backlog;
      for (int i = 0; i < 2'000; ++i)
        backlog.push_back(spec("http://orders:1/api/checkout", "{}", t0 - 5'000 + i));
      const auto backlog_ids = store.insert_all(backlog, t0, window);
      const auto mail = store.insert(spec("http://Email:2/api/send", "{}", t0), t0, window).message_id;
      CHECK(stored_origin(fdb.db(), mail) == "http://email:2");
      CHECK(stored_origin(fdb.db(), backlog_ids.front().message_id) == "http://orders:1");

      SUBCASE("the saturated origin is passed over, the other one's message is claimed") {
        relay::delivery_slots slots(100, 16);
        for (int i = 0; i < 16; ++i) REQUIRE(slots.try_take("http://orders:1"));
        const auto r = store.claim(t0, slots, margin, 30'000);
        REQUIRE(r.messages.size() == 1);
        CHECK(r.messages[0].message_id == mail);
        CHECK_FALSE(r.more_due);
        // ... and reported waiting, as the engine's fast path must know.
        CHECK(r.waiting_origins == std::vector<std::string>{"http://orders:1"});
        CHECK_FALSE(r.other_due);
        CHECK(slots.in_flight("http://orders:1") == 16);
        CHECK(slots.in_flight("http://email:2") == 1);
        CHECK(store.get(mail)->state == relay::message_state::active);
        CHECK(store.counts().active == 1);
      }
      SUBCASE("an origin with one free slot gives its oldest message, and more are due") {
        relay::delivery_slots slots(100, 16);
        for (int i = 0; i < 15; ++i) REQUIRE(slots.try_take("http://orders:1"));
        const auto r = store.claim(t0, slots, margin, 30'000);
        REQUIRE(r.messages.size() == 2);
        CHECK(r.messages[0].message_id == backlog_ids.front().message_id);  // oldest first
        CHECK(r.messages[1].message_id == mail);
        CHECK(r.more_due);
        CHECK(r.waiting_origins == std::vector<std::string>{"http://orders:1"});
        CHECK(slots.in_flight("http://orders:1") == 16);
      }
      SUBCASE("a saturated origin with nothing due is not waiting") {
        store.cancel_many({}, t0);
        const auto later = store.insert(spec("http://orders:1/api/checkout", "{}", t0 + 1'000), t0, window);
        relay::delivery_slots slots(100, 16);
        for (int i = 0; i < 16; ++i) REQUIRE(slots.try_take("http://orders:1"));
        const auto r = store.claim(t0, slots, margin, 30'000);
        CHECK(r.messages.empty());
        CHECK(r.waiting_origins.empty());
        CHECK(r.next_due_ms == t0 + 1'000);
        CHECK(store.get(later.message_id)->state == relay::message_state::created);
      }
    }
  }

  TEST_CASE("a publish stored leased (the engine's fast path) is not claimed while its lease runs") {
    for (auto d : both) {
      CAPTURE(shopd::test::dialect_name(d));
      fresh_database fdb(d);
      relay::relay_store a(fdb.db(), "node-a");
      relay::relay_store b(fdb.db(), "node-b");
      const auto until = t0 + 5'000 + margin;
      const auto leased = a.insert(spec("http://h/1"), t0, window, until).message_id;
      const auto m = a.get(leased);
      REQUIRE(m.has_value());
      CHECK(m->state == relay::message_state::active);
      CHECK(m->lease_owner == "node-a");
      CHECK(m->lease_until_ms == until);
      CHECK(stored_origin(fdb.db(), leased) == "http://h");
      const auto r = claim(b, t0 + 1);
      CHECK(r.messages.empty());
      CHECK(r.waiting_origins.empty());
      CHECK_FALSE(r.other_due);

      SUBCASE("its outcome is recorded like a claimed one's") {
        CHECK(a.record_delivered(leased, answered(200), {}, t0 + 10));
        CHECK(a.get(leased)->state == relay::message_state::delivered);
      }
      SUBCASE("a restarted node hands it back") {
        CHECK(a.release_leases(t0 + 10) == 1);
        CHECK(ids_of(claim(b, t0 + 10)) == std::set<std::string>{leased});
      }
      SUBCASE("its lease expires like a claimed one's") {
        CHECK(ids_of(claim(b, until + 1)) == std::set<std::string>{leased});
      }
      SUBCASE("a duplicate takes no lease; a batch leases only the entries given one") {
        auto dup = spec("http://h/2");
        dup.dedup_id = "once";
        CHECK_FALSE(a.insert(dup, t0, window).deduplicated);
        const std::vector<relay::message_spec> batch{dup, spec("http://h/3"), spec("http://h/4")};
        const std::vector<std::optional<std::int64_t>> leases{until, until, std::nullopt};
        const auto got = a.insert_all(batch, t0, window, leases);
        REQUIRE(got.size() == 3);
        CHECK(got[0].deduplicated);
        CHECK(a.get(got[0].message_id)->state == relay::message_state::created);
        CHECK(a.get(got[1].message_id)->state == relay::message_state::active);
        CHECK(a.get(got[2].message_id)->state == relay::message_state::created);
        const std::vector<std::optional<std::int64_t>> too_few{until};
        CHECK_THROWS_AS(a.insert_all(batch, t0, window, too_few), std::invalid_argument);
      }
    }
  }

  TEST_CASE("SQLite: a message that stops being claimable between the choice and the lease is left alone") {
    // On SQLite a claim chooses on a pooled connection, then takes the leases in the write
    // transaction. The leases are taken in the choice's order (oldest first); a trigger on the
    // connection that writes cancels the second message when the first one's lease is taken, as a
    // cancel arriving between the two steps would.
    fresh_database fdb(dialect::sqlite);
    relay::relay_store store(fdb.db(), "node-a");
    const auto first = store.insert(spec("http://a:1/x", "{}", t0 - 2), t0, window).message_id;
    const auto second = store.insert(spec("http://b:2/x", "{}", t0 - 1), t0, window).message_id;
    fdb.db().in_transaction([&](soci::session& s) {
      s << "CREATE TEMP TRIGGER cancel_second AFTER UPDATE OF state ON relay_messages WHEN NEW.message_id = "
           "'" +
               first +
               "' AND NEW.state = 'ACTIVE' BEGIN UPDATE relay_messages SET state = 'CANCELLED' "
               "WHERE message_id = '" +
               second + "'; END";
    });
    relay::delivery_slots slots(100, 16);
    const auto r = store.claim(t0, slots, margin, 30'000);
    REQUIRE(r.messages.size() == 1);
    CHECK(r.messages[0].message_id == first);
    CHECK(r.more_due);
    CHECK(slots.in_flight("http://a:1") == 1);
    CHECK(slots.in_flight("http://b:2") == 0);  // its slot was given back
    CHECK(store.get(first)->state == relay::message_state::active);
    CHECK(store.get(second)->state == relay::message_state::cancelled);
  }

  TEST_CASE("messages stored without an origin are still claimed, within their origin's slots") {
    for (auto d : both) {
      CAPTURE(shopd::test::dialect_name(d));
      fresh_database fdb(d);
      relay::relay_store store(fdb.db(), "node-a");
      std::vector<std::string> old_ids;
      for (int i = 0; i < 3; ++i) {
        old_ids.push_back(store.insert(spec("http://Old:1/a", "{}", t0 - 100 + i), t0, window).message_id);
        forget_origin(fdb.db(), old_ids.back());
      }
      const auto new_without = store.insert(spec("http://new:2/b", "{}", t0 - 50), t0, window).message_id;
      forget_origin(fdb.db(), new_without);
      const auto new_with = store.insert(spec("http://new:2/b", "{}", t0 - 40), t0, window).message_id;
      REQUIRE_FALSE(stored_origin(fdb.db(), old_ids[0]).has_value());

      relay::delivery_slots slots(10, 2);
      REQUIRE(slots.try_take("http://old:1"));
      REQUIRE(slots.try_take("http://old:1"));
      const auto r = store.claim(t0, slots, margin, 30'000);
      CHECK(ids_of(r) == std::set<std::string>{new_without, new_with});  // old:1 is saturated
      CHECK(stored_origin(fdb.db(), new_without) == "http://new:2");
      CHECK_FALSE(stored_origin(fdb.db(), old_ids[0]).has_value());

      relay::delivery_slots fresh(10, 2);
      const auto r2 = store.claim(t0, fresh, margin, 30'000);
      CHECK(ids_of(r2) == std::set<std::string>{old_ids[0], old_ids[1]});  // two slots, oldest first
      CHECK(r2.more_due);
      CHECK(stored_origin(fdb.db(), old_ids[0]) == "http://old:1");
      CHECK(stored_origin(fdb.db(), old_ids[1]) == "http://old:1");
      CHECK_FALSE(stored_origin(fdb.db(), old_ids[2]).has_value());
      CHECK(fresh.in_flight("http://old:1") == 2);
    }
  }

  TEST_CASE("more origins than one claim visits are all served over successive claims") {
    constexpr std::size_t cap = relay::relay_store::max_origins_per_claim;
    constexpr std::size_t beyond = 44;
    for (auto d : both) {
      CAPTURE(shopd::test::dialect_name(d));
      fresh_database fdb(d);
      relay::relay_store store(fdb.db(), "node-a");
      // Two messages per origin, so every origin still has pending work after its first claim.
      std::vector<relay::message_spec> batch;
      for (std::size_t i = 0; i < cap + beyond; ++i) {
        for (int copy = 0; copy < 2; ++copy) batch.push_back(spec("http://h" + std::to_string(i) + ":80/x"));
      }
      store.insert_all(batch, t0, window);

      relay::delivery_slots slots(10'000, 1);
      std::set<std::string> origins;
      const auto first = store.claim(t0, slots, margin, 30'000);
      CHECK(first.messages.size() == cap);
      CHECK(first.more_due);
      for (const auto& m : first.messages) origins.insert(relay::origin_of(m.spec.destination));
      CHECK(origins.size() == cap);

      // The first origins still have a pending message each, but are saturated: the next claim
      // goes on with the origins the first one did not reach.
      const auto second = store.claim(t0, slots, margin, 30'000);
      CHECK(second.messages.size() == beyond);
      for (const auto& m : second.messages) origins.insert(relay::origin_of(m.spec.destination));
      CHECK(origins.size() == cap + beyond);

      CHECK(store.claim(t0, slots, margin, 30'000).messages.empty());  // every origin saturated
      relay::delivery_slots fresh(10'000, 1);
      std::size_t rest = 0;
      for (int round = 0; round < 3; ++round) rest += store.claim(t0, fresh, margin, 30'000).messages.size();
      CHECK(rest == cap + beyond);  // the second message of every origin, cursor wrapping around
      CHECK(store.counts().created == 0);
    }
  }

  TEST_CASE("two nodes claiming at once get disjoint sets (PostgreSQL)") {
    fresh_database fdb(dialect::postgresql, 8);
    relay::relay_store setup(fdb.db(), "setup");
    constexpr int total = 300;
    std::vector<relay::message_spec> batch;
    for (int i = 0; i < total; ++i)
      batch.push_back(spec("http://h" + std::to_string(i % 7) + "/x", "{}", t0 - i));
    setup.insert_all(batch, t0, window);

    constexpr int nodes = 4;
    std::vector<std::vector<std::string>> got(nodes);
    std::barrier start(nodes);
    std::vector<std::thread> pool;
    for (int n = 0; n < nodes; ++n) {
      pool.emplace_back([&, n] {
        relay::relay_store store(fdb.db(), "node-" + std::to_string(n));
        start.arrive_and_wait();
        for (;;) {
          relay::delivery_slots slots(7, 100);
          const auto r = store.claim(t0, slots, margin, 30'000);
          if (r.messages.empty()) break;
          for (const auto& m : r.messages) got[static_cast<std::size_t>(n)].push_back(m.message_id);
        }
      });
    }
    for (auto& t : pool) t.join();
    std::set<std::string> all;
    std::size_t claimed = 0;
    for (const auto& ids : got) {
      claimed += ids.size();
      all.insert(ids.begin(), ids.end());
    }
    CHECK(claimed == total);
    CHECK(all.size() == total);
    CHECK(setup.counts().active == total);
  }

  TEST_CASE("outcomes") {
    for (auto d : both) {
      CAPTURE(shopd::test::dialect_name(d));
      fresh_database fdb(d);
      relay::relay_store store(fdb.db(), "node-a");
      relay::relay_store other(fdb.db(), "node-b");
      auto m = spec("http://h/x");
      m.callback = "http://h/cb";
      const auto id = store.insert(m, t0, window).message_id;
      REQUIRE(claim(store, t0).messages.size() == 1);

      SUBCASE("delivered, with the callback message in the same transaction") {
        auto cb = spec("http://h/cb", R"({"status":200})");
        cb.kind = relay::message_kind::callback;
        cb.options.source_message_id = id;
        const std::vector<relay::message_spec> follow{cb};
        CHECK_FALSE(other.record_delivered(id, answered(200), follow, t0 + 1));  // not its lease
        CHECK(store.record_delivered(id, answered(204, "ok"), follow, t0 + 1));
        const auto got = store.get(id);
        CHECK(got->state == relay::message_state::delivered);
        CHECK(got->last_status == 204);
        CHECK_FALSE(got->lease_owner.has_value());
        CHECK_FALSE(store.record_delivered(id, answered(200), follow, t0 + 2));  // once only
        const auto next = claim(store, t0 + 10);
        REQUIRE(next.messages.size() == 1);
        CHECK(next.messages[0].spec.kind == relay::message_kind::callback);
        CHECK(next.messages[0].spec.destination == "http://h/cb");
        CHECK(next.messages[0].spec.options.source_message_id == id);
        CHECK_FALSE(next.messages[0].spec.dedup_id.has_value());
      }
      SUBCASE("retry: retried grows, due later, lease gone") {
        relay::attempt_record none;
        none.error = "connect 127.0.0.1:9: Connection refused";
        CHECK(store.record_retry(id, none, t0 + 5'000, t0 + 1));
        auto got = store.get(id);
        CHECK(got->state == relay::message_state::retry);
        CHECK(got->retried == 1);
        CHECK(got->spec.not_before_ms == t0 + 5'000);
        CHECK(got->last_error == none.error);
        CHECK_FALSE(got->last_status.has_value());
        CHECK(claim(store, t0 + 4'999).messages.empty());
        const auto again = claim(store, t0 + 5'000);
        REQUIRE(again.messages.size() == 1);
        CHECK(again.messages[0].retried == 1);
      }
      SUBCASE("failed: a DLQ entry with the last response, follow-ups that know its id") {
        std::string seen_dlq_id;
        const auto dlq_id = store.record_failed(
            id, answered(500, std::string("boom\x00\xff", 6)),
            [&](std::string_view dlq) {
              seen_dlq_id = dlq;
              auto f = spec("http://h/failure", std::string(R"({"dlqId":")") + std::string(dlq) + "\"}");
              f.kind = relay::message_kind::failure_callback;
              return std::vector<relay::message_spec>{f};
            },
            t0 + 1);
        REQUIRE(dlq_id.has_value());
        CHECK(*dlq_id == seen_dlq_id);
        CHECK(relay::parse_dlq_id(*dlq_id).has_value());
        CHECK(store.get(id)->state == relay::message_state::failed);
        const auto item = store.dlq_get(*dlq_id);
        REQUIRE(item.has_value());
        CHECK(item->entry.message_id == id);
        CHECK(item->entry.response_status == 500);
        CHECK(item->entry.response_body == std::string("boom\x00\xff", 6));
        CHECK(item->entry.response_headers == relay::header_list{{"X-Answer", "yes"}, {"X-Answer", "twice"}});
        CHECK(item->message.spec.destination == "http://h/x");
        CHECK(store.counts().dlq == 1);
        const auto follow = claim(store, t0 + 2);
        REQUIRE(follow.messages.size() == 1);
        CHECK(follow.messages[0].spec.kind == relay::message_kind::failure_callback);
        CHECK(follow.messages[0].spec.body.find(*dlq_id) != std::string::npos);
      }
      SUBCASE("a cancelled message's outcome is not recorded") {
        CHECK(store.cancel(id, t0 + 1) == relay::relay_store::cancel_outcome::cancelled);
        CHECK_FALSE(store.record_delivered(id, answered(200), {}, t0 + 2));
        CHECK_FALSE(store.record_failed(
            id, answered(500), [](std::string_view) { return std::vector<relay::message_spec>{}; }, t0 + 2));
        CHECK(store.get(id)->state == relay::message_state::cancelled);
        CHECK(store.counts().dlq == 0);
        CHECK(store.cancel(id, t0 + 3) == relay::relay_store::cancel_outcome::finished);
        CHECK(store.cancel("msg_nope", t0 + 3) == relay::relay_store::cancel_outcome::not_found);
      }
    }
  }

  TEST_CASE("a batch of outcomes is recorded in one transaction") {
    for (auto d : both) {
      CAPTURE(shopd::test::dialect_name(d));
      fresh_database fdb(d);
      relay::relay_store store(fdb.db(), "node-a");
      std::vector<std::string> ids;
      for (const char* path : {"delivered", "no-answer", "answered-503", "cancelled", "failed", "plain"})
        ids.push_back(store.insert(spec(std::string("http://h/") + path), t0, window).message_id);
      REQUIRE(claim(store, t0).messages.size() == ids.size());
      CHECK(store.cancel(ids[3], t0 + 1) == relay::relay_store::cancel_outcome::cancelled);

      int follow_up_calls = 0;
      const auto outcome = [&](std::size_t i, relay::attempt_verdict v, relay::attempt_record a) {
        relay::attempt_outcome o{.message_id = ids[i],
                                 .verdict = v,
                                 .attempt = std::move(a),
                                 .next_attempt_ms = 0,
                                 .now_ms = t0 + 2};
        if (v == relay::attempt_verdict::retry) o.next_attempt_ms = t0 + 5'000 + static_cast<std::int64_t>(i);
        o.follow_ups = [&, i, v](std::optional<std::string_view> dlq_id) {
          ++follow_up_calls;
          CHECK(dlq_id.has_value() == (v == relay::attempt_verdict::failed));
          auto cb = spec("http://h/cb",
                         "{\"for\":\"" + ids[i] + "\",\"dlq\":\"" + std::string(dlq_id.value_or("")) + "\"}");
          cb.kind = relay::message_kind::callback;
          cb.options.source_message_id = ids[i];
          return std::vector<relay::message_spec>{cb};
        };
        return o;
      };
      relay::attempt_record refused;
      refused.error = "connect 127.0.0.1:9: Connection refused";
      std::vector<relay::attempt_outcome> batch;
      batch.push_back(outcome(0, relay::attempt_verdict::delivered, answered(200, "fine")));
      batch.push_back(outcome(1, relay::attempt_verdict::retry, refused));
      batch.push_back(outcome(2, relay::attempt_verdict::retry, answered(503, "busy")));
      batch.push_back(outcome(3, relay::attempt_verdict::delivered, answered(200)));  // its lease is gone
      batch.push_back(outcome(4, relay::attempt_verdict::failed, answered(500, std::string("boom\x00", 5))));
      batch.push_back(outcome(5, relay::attempt_verdict::delivered, answered(204)));
      batch.back().follow_ups = nullptr;

      const auto results = store.record_outcomes(batch);
      REQUIRE(results.size() == batch.size());
      CHECK(results[0].held);
      CHECK(results[1].held);
      CHECK(results[2].held);
      CHECK_FALSE(results[3].held);
      CHECK(results[4].held);
      CHECK(results[5].held);
      for (std::size_t i : {0, 1, 2, 3, 5}) CHECK_FALSE(results[i].dlq_id.has_value());
      REQUIRE(results[4].dlq_id.has_value());
      CHECK(follow_up_calls == 2);  // the delivered and the failed one that held their leases

      const auto delivered = store.get(ids[0]);
      CHECK(delivered->state == relay::message_state::delivered);
      CHECK(delivered->last_status == 200);
      CHECK_FALSE(delivered->last_error.has_value());
      CHECK_FALSE(delivered->lease_owner.has_value());
      CHECK(delivered->updated_at_ms == t0 + 2);
      // One statement re-executed with a NULL status, then with a value.
      const auto no_answer = store.get(ids[1]);
      CHECK(no_answer->state == relay::message_state::retry);
      CHECK(no_answer->retried == 1);
      CHECK(no_answer->spec.not_before_ms == t0 + 5'001);
      CHECK_FALSE(no_answer->last_status.has_value());
      CHECK(no_answer->last_error == refused.error);
      const auto answered_503 = store.get(ids[2]);
      CHECK(answered_503->state == relay::message_state::retry);
      CHECK(answered_503->spec.not_before_ms == t0 + 5'002);
      CHECK(answered_503->last_status == 503);
      CHECK(answered_503->last_error == "HTTP 503");
      CHECK(store.get(ids[3])->state == relay::message_state::cancelled);
      CHECK(store.get(ids[4])->state == relay::message_state::failed);
      CHECK(store.get(ids[5])->last_status == 204);

      const auto item = store.dlq_get(*results[4].dlq_id);
      REQUIRE(item.has_value());
      CHECK(item->entry.message_id == ids[4]);
      CHECK(item->entry.response_status == 500);
      CHECK(item->entry.response_body == std::string("boom\x00", 5));
      CHECK(store.counts().dlq == 1);

      // The follow-ups, inserted with their outcomes: due now, while the retries are not.
      const auto next = claim(store, t0 + 10);
      std::set<std::string> bodies;
      for (const auto& m : next.messages) bodies.insert(m.spec.body);
      CHECK(bodies ==
            std::set<std::string>{"{\"for\":\"" + ids[0] + "\",\"dlq\":\"\"}",
                                  "{\"for\":\"" + ids[4] + "\",\"dlq\":\"" + *results[4].dlq_id + "\"}"});

      CHECK(store.record_outcomes({}).empty());
    }
  }

  TEST_CASE("a batch with an outcome the database refuses records nothing; the others can go again") {
    for (auto d : both) {
      CAPTURE(shopd::test::dialect_name(d));
      fresh_database fdb(d);
      relay::relay_store store(fdb.db(), "node-a");
      std::vector<std::string> ids;
      for (int i = 0; i < 3; ++i) ids.push_back(store.insert(spec("http://h/x"), t0, window).message_id);
      REQUIRE(claim(store, t0).messages.size() == 3);
      std::vector<relay::attempt_outcome> batch;
      for (const auto& id : ids) {
        batch.push_back({.message_id = id,
                         .verdict = relay::attempt_verdict::failed,
                         .attempt = answered(500),
                         .next_attempt_ms = 0,
                         .now_ms = t0 + 1});
      }
      batch[1].follow_ups = [](std::optional<std::string_view>) -> std::vector<relay::message_spec> {
        throw std::runtime_error("refused");
      };
      CHECK_THROWS_WITH_AS(store.record_outcomes(batch), "refused", std::runtime_error);
      CHECK(store.counts().active == 3);
      CHECK(store.counts().dlq == 0);

      batch.erase(batch.begin() + 1);
      const auto results = store.record_outcomes(batch);
      CHECK((results.size() == 2 && results[0].held && results[1].held));
      CHECK(store.counts().dlq == 2);
      CHECK(store.get(ids[1])->state == relay::message_state::active);
    }
  }

  TEST_CASE("cancelling pending messages in bulk") {
    for (auto d : both) {
      CAPTURE(shopd::test::dialect_name(d));
      fresh_database fdb(d);
      relay::relay_store store(fdb.db(), "node-a");
      const auto x1 = store.insert(spec("http://h/x"), t0, window).message_id;
      const auto x2 = store.insert(spec("http://h/x"), t0, window).message_id;
      const auto y = store.insert(spec("http://h/y"), t0, window).message_id;
      SUBCASE("by id") {
        relay::cancel_query q;
        q.message_ids = {x1, y, "msg_unknown"};
        CHECK(store.cancel_many(q, t0) == 2);
        CHECK(store.get(x2)->state == relay::message_state::created);
      }
      SUBCASE("by url") {
        relay::cancel_query q;
        q.url = "http://h/x";
        CHECK(store.cancel_many(q, t0) == 2);
        CHECK(store.get(y)->state == relay::message_state::created);
      }
      SUBCASE("all pending") {
        CHECK(store.cancel_many({}, t0) == 3);
        CHECK(store.cancel_many({}, t0) == 0);
      }
    }
  }

  TEST_CASE("the DLQ: list, filter, page, get, delete, retry") {
    for (auto d : both) {
      CAPTURE(shopd::test::dialect_name(d));
      fresh_database fdb(d);
      relay::relay_store store(fdb.db(), "node-a");
      std::vector<std::string> dlq_ids;  // in failure order
      std::vector<std::string> message_ids;
      for (int i = 0; i < 5; ++i) {
        auto m = spec(i % 2 == 0 ? "http://h/even" : "http://h/odd", "{\"n\":" + std::to_string(i) + "}");
        m.dedup_id = "d" + std::to_string(i);
        message_ids.push_back(store.insert(m, t0, window).message_id);
        REQUIRE(claim(store, t0).messages.size() == 1);
        const auto id = store.record_failed(
            message_ids.back(), answered(i < 3 ? 500 : 404),
            [](std::string_view) { return std::vector<relay::message_spec>{}; }, t0 + i * 1000);
        REQUIRE(id.has_value());
        dlq_ids.push_back(*id);
      }
      const auto ids_of_page = [](const relay::dlq_page& p) {
        std::vector<std::string> out;
        for (const auto& i : p.items) out.push_back(i.entry.dlq_id);
        return out;
      };

      SUBCASE("earliest first by default, paged with a cursor") {
        relay::dlq_query q;
        q.count = 2;
        auto p1 = store.dlq_list(q);
        CHECK(ids_of_page(p1) == std::vector<std::string>{dlq_ids[0], dlq_ids[1]});
        REQUIRE(p1.cursor.has_value());
        q.cursor = p1.cursor;
        auto p2 = store.dlq_list(q);
        CHECK(ids_of_page(p2) == std::vector<std::string>{dlq_ids[2], dlq_ids[3]});
        q.cursor = p2.cursor;
        auto p3 = store.dlq_list(q);
        CHECK(ids_of_page(p3) == std::vector<std::string>{dlq_ids[4]});
        CHECK_FALSE(p3.cursor.has_value());
      }
      SUBCASE("latest first") {
        relay::dlq_query q;
        q.latest_first = true;
        q.count = 3;
        auto p1 = store.dlq_list(q);
        CHECK(ids_of_page(p1) == std::vector<std::string>{dlq_ids[4], dlq_ids[3], dlq_ids[2]});
        q.cursor = p1.cursor;
        CHECK(ids_of_page(store.dlq_list(q)) == std::vector<std::string>{dlq_ids[1], dlq_ids[0]});
      }
      SUBCASE("filters") {
        relay::dlq_query q;
        q.url = "http://h/odd";
        CHECK(ids_of_page(store.dlq_list(q)) == std::vector<std::string>{dlq_ids[1], dlq_ids[3]});
        q = {};
        q.response_status = 404;
        CHECK(ids_of_page(store.dlq_list(q)) == std::vector<std::string>{dlq_ids[3], dlq_ids[4]});
        q = {};
        q.message_id = message_ids[2];
        CHECK(ids_of_page(store.dlq_list(q)) == std::vector<std::string>{dlq_ids[2]});
        q = {};
        q.from_ms = relay::parse_dlq_id(dlq_ids[1])->ms;
        q.to_ms = relay::parse_dlq_id(dlq_ids[2])->ms;
        CHECK(ids_of_page(store.dlq_list(q)) == std::vector<std::string>{dlq_ids[1], dlq_ids[2]});
        q = {};
        q.dlq_ids = {dlq_ids[4], dlq_ids[0]};
        CHECK(ids_of_page(store.dlq_list(q)) == std::vector<std::string>{dlq_ids[0], dlq_ids[4]});
        q = {};
        q.caller_ip = "10.9.9.9";
        CHECK(store.dlq_list(q).items.empty());
      }
      SUBCASE("delete one, then many") {
        CHECK(store.dlq_delete(dlq_ids[0]));
        CHECK_FALSE(store.dlq_delete(dlq_ids[0]));
        CHECK_FALSE(store.dlq_get(dlq_ids[0]).has_value());
        CHECK_FALSE(store.get(message_ids[0]).has_value());  // the failed message goes with it
        relay::dlq_query q;
        q.dlq_ids = {dlq_ids[1], dlq_ids[2]};
        CHECK(store.dlq_delete_many(q).first == 2);
        q = {};
        q.count = 1;
        const auto [n, cursor] = store.dlq_delete_many(q);
        CHECK(n == 1);
        CHECK(cursor.has_value());
        CHECK(store.counts().dlq == 1);
      }
      SUBCASE("retry re-publishes with the same settings under a new id, without the dedup id") {
        const auto new_id = store.dlq_retry(dlq_ids[3], t0 + 10'000);
        REQUIRE(new_id.has_value());
        CHECK(*new_id != message_ids[3]);
        CHECK_FALSE(store.dlq_get(dlq_ids[3]).has_value());
        CHECK_FALSE(store.dlq_retry(dlq_ids[3], t0).has_value());
        const auto m = store.get(*new_id);
        REQUIRE(m.has_value());
        CHECK(m->state == relay::message_state::created);
        CHECK(m->retried == 0);
        CHECK(m->spec.destination == "http://h/odd");
        CHECK(m->spec.body == "{\"n\":3}");
        CHECK(m->spec.max_retries == 3);
        CHECK(m->spec.not_before_ms == t0 + 10'000);
        CHECK_FALSE(m->spec.dedup_id.has_value());
        CHECK(store.get(message_ids[3])->state == relay::message_state::failed);  // history stays

        relay::dlq_query q;
        q.url = "http://h/even";
        const auto [ids, cursor] = store.dlq_retry_many(q, t0 + 20'000);
        CHECK(ids.size() == 3);
        CHECK_FALSE(cursor.has_value());
        CHECK(store.counts().dlq == 1);
        CHECK(store.counts().created == 4);
      }
      SUBCASE("an invalid cursor is refused") {
        relay::dlq_query q;
        q.cursor = "not-a-cursor";
        CHECK_THROWS_AS(store.dlq_list(q), std::invalid_argument);
      }
    }
  }

  TEST_CASE("counts and purging") {
    for (auto d : both) {
      CAPTURE(shopd::test::dialect_name(d));
      fresh_database fdb(d);
      relay::relay_store store(fdb.db(), "node-a");
      auto dedup = spec("http://h/x");
      dedup.dedup_id = "once";
      const auto delivered = store.insert(dedup, t0, window).message_id;
      store.insert(spec("http://h/later", "{}", t0 + 60'000), t0, window);
      const auto failed = store.insert(spec("http://h/y"), t0, window).message_id;
      REQUIRE(claim(store, t0).messages.size() == 2);
      CHECK(store.record_delivered(delivered, answered(200), {}, t0));
      const auto dlq = store.record_failed(
          failed, answered(500), [](std::string_view) { return std::vector<relay::message_spec>{}; }, t0);
      const auto c = store.counts();
      CHECK(c.created == 1);
      CHECK(c.active == 0);
      CHECK(c.retry == 0);
      CHECK(c.dlq == 1);

      CHECK(store.purge(t0 + 1000, 10'000).messages == 0);  // too young
      CHECK(store.purge(t0 + window + 20'000, 10'000).messages ==
            1);  // the delivered one; the DLQ'd one stays
      CHECK_FALSE(store.get(delivered).has_value());
      CHECK(store.get(failed).has_value());
      CHECK_FALSE(store.insert(dedup, t0 + window + 20'000, window).deduplicated);  // expired id purged
      REQUIRE(dlq.has_value());
      CHECK(store.dlq_retry(*dlq, t0 + window + 30'000).has_value());
      CHECK(store.purge(t0 + window + 60'000, 10'000).messages == 1);  // the failed one, out of the DLQ now
    }
  }

  TEST_CASE("expired dedup rows are purged a batch per transaction too") {
    for (auto d : both) {
      CAPTURE(shopd::test::dialect_name(d));
      fresh_database fdb(d);
      relay::relay_store store(fdb.db(), "node-a");
      const auto dedup_rows = [&] {
        return fdb.db().with_session([](soci::session& s) {
          long long n = -1;
          s << "SELECT COUNT(*) FROM relay_dedup", soci::into(n);
          return n;
        });
      };
      for (int i = 0; i < 7; ++i) {
        auto m = spec("http://h/d");
        m.dedup_id = "dedup-" + std::to_string(i);
        store.insert(m, t0 + i, window);  // expires at t0 + i + window
      }
      REQUIRE(dedup_rows() == 7);
      // 6 of the 7 expired: 2 batches of 3, the most allowed, so there may be more. No message is
      // old enough to go.
      auto r = store.purge(t0 + window + 5, 3'600'000, 3, 2);
      CHECK(r.dedup_ids == 6);
      CHECK(r.messages == 0);
      CHECK(r.more);
      CHECK(dedup_rows() == 1);
      r = store.purge(t0 + window + 5, 3'600'000, 3, 2);
      CHECK(r.dedup_ids == 0);
      CHECK_FALSE(r.more);
      CHECK(dedup_rows() == 1);  // the last one expires at t0 + 6 + window
      CHECK(store.purge(t0 + window + 6, 3'600'000, 3, 2).dedup_ids == 1);
      CHECK(dedup_rows() == 0);
    }
  }

  TEST_CASE("purging goes a batch per transaction and keeps what is not due") {
    for (auto d : both) {
      CAPTURE(shopd::test::dialect_name(d));
      fresh_database fdb(d);
      relay::relay_store store(fdb.db(), "node-a");
      // 25 messages delivered a second apart, a cancelled one, one still waiting, one in the DLQ.
      std::vector<std::string> delivered;
      for (int i = 0; i < 25; ++i)
        delivered.push_back(store.insert(spec("http://h/x"), t0, window).message_id);
      REQUIRE(claim(store, t0).messages.size() == 25);
      for (int i = 0; i < 25; ++i)
        CHECK(store.record_delivered(delivered[i], answered(200), {}, t0 + i * 1'000));
      const auto cancelled = store.insert(spec("http://h/c", "{}", t0 + 3'600'000), t0, window).message_id;
      REQUIRE(store.cancel(cancelled, t0) == relay::relay_store::cancel_outcome::cancelled);
      const auto waiting = store.insert(spec("http://h/w", "{}", t0 + 3'600'000), t0, window).message_id;
      const auto failed = store.insert(spec("http://h/f"), t0, window).message_id;
      REQUIRE(claim(store, t0).messages.size() == 1);
      REQUIRE(store
                  .record_failed(
                      failed, answered(500),
                      [](std::string_view) { return std::vector<relay::message_spec>{}; }, t0)
                  .has_value());

      // Retention 10 s, now t0 + 20.5 s: the 11 delivered at t0 .. t0 + 10 s expired, 4 per batch.
      CHECK(store.purge(t0 + 20'500, 10'000, 4).messages == 11 + 1);  // and the cancelled one (changed at t0)
      for (int i = 0; i < 25; ++i) {
        CAPTURE(i);
        CHECK(store.get(delivered[i]).has_value() == (i > 10));
      }
      CHECK_FALSE(store.get(cancelled).has_value());
      CHECK(store.get(waiting).has_value());
      CHECK(store.get(failed).has_value());  // in the DLQ: kept however old
      // Exactly a batch's worth left to purge: one full batch, then an empty one ends it.
      CHECK(store.purge(t0 + 24'500, 10'000, 4).messages == 4);
      CHECK(store.purge(t0 + 24'500, 10'000, 4).messages == 0);
      const auto cut = store.purge(t0 + 1'000'000, 10'000, 3, 2);
      CHECK(cut.messages == 6);  // at most 2 batches of 3: more to go
      CHECK(cut.more);
      const auto rest = store.purge(t0 + 1'000'000, 10'000, 3, 2);
      CHECK(rest.messages == 4);
      CHECK_FALSE(rest.more);
      CHECK(store.purge(t0 + 1'000'000, 10'000).messages == 0);
      CHECK(store.get(waiting).has_value());
      CHECK(store.get(failed).has_value());
    }
  }
}
