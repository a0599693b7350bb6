#include "shopd/relay/relay_role.hpp"

#include "capture_server.hpp"
#include "relay_fixture.hpp"
#include "test_support.hpp"

#include "shopd/bus/crypto.hpp"
#include "shopd/bus/dispatch.hpp"
#include "shopd/bus/signature.hpp"
#include "shopd/config/config.hpp"
#include "shopd/http/client.hpp"
#include "shopd/http/server.hpp"
#include "shopd/obs/metrics.hpp"
#include "shopd/relay/engine.hpp"
#include "shopd/relay/relay_metrics.hpp"
#include "shopd/relay/store.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <boost/json.hpp>

#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace json = boost::json;
using shopd::db::dialect;
using shopd::http::verb;
using shopd::test::capture_server;
using shopd::test::captured_request;
using shopd::test::eventually;
using shopd::test::scripted_reply;
using namespace std::chrono_literals;

namespace {

using shopd::test::current_key;
using shopd::test::next_key;
using shopd::test::relay_fixture;
using shopd::test::token;

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string str(const json::value& v, std::string_view key) {
  return std::string(v.as_object().at(key).as_string());
}

std::string b64(std::string_view s) {
  return shopd::bus::crypto::base64_encode(s);
}

/// Checks the delivery's signature as a receiver would: current key, sub = the URL, body hash.
void check_signed(const captured_request& r, const std::string& url) {
  const auto sig = r.header("Upstash-Signature");
  REQUIRE(sig.has_value());
  shopd::bus::verify_options opts;
  opts.expected_url = url;
  opts.clock_tolerance = 0s;
  const auto claims = shopd::bus::verify(*sig, {std::string(current_key), std::string(next_key)}, r.body,
                                         std::chrono::system_clock::now(), opts);
  REQUIRE_MESSAGE(claims.has_value(), shopd::bus::to_string(claims.error()));
  CHECK(claims->key == shopd::bus::signing_key_slot::current);
}

/// POST /v2/batch; returns the message ids, in order (and checks every element was accepted).
std::vector<std::string> publish_batch(relay_fixture& relay, const json::array& elements) {
  const auto res =
      relay.call(verb::post, "/v2/batch", json::serialize(elements), {{"Content-Type", "application/json"}});
  REQUIRE_MESSAGE(res.result_int() == 200, res.body());
  std::vector<std::string> ids;
  const auto answer = json::parse(res.body());
  for (const auto& o : answer.as_array()) ids.push_back(str(o, "messageId"));
  return ids;
}

std::size_t count_metric(shopd::obs::registry& r, std::string_view line_start) {
  return static_cast<std::size_t>(shopd::test::sample(r, line_start).value_or(0));
}

// A relay engine on a fresh SQLite database, with an I/O thread and two workers of its own: one
// slot per destination, claims at least every 20 ms. Stopped and joined in order when destroyed.
struct engine_rig {
  engine_rig() {
    client.emplace(ioc);
    shopd::relay::engine_options opts;
    opts.signing_key = "sig_engine_test";
    opts.per_destination_concurrency = 1;
    opts.poll_interval = 20ms;
    eng.emplace(opts, store, *client, ioc, workers, metrics);
  }
  ~engine_rig() {
    eng.reset();
    client.reset();
    work.reset();
    ioc.stop();
    io.join();
    workers.join();
  }
  engine_rig(const engine_rig&) = delete;
  engine_rig& operator=(const engine_rig&) = delete;

  /// `m` as stored under id, leased to this node until `until` (what the fast path hands over).
  [[nodiscard]] shopd::relay::stored_message leased(const std::string& id,
                                                    const shopd::relay::message_spec& m, std::int64_t until,
                                                    std::int64_t now) const {
    return {.message_id = id,
            .spec = m,
            .state = shopd::relay::message_state::active,
            .retried = 0,
            .lease_owner = store->node_id(),
            .lease_until_ms = until,
            .last_status = std::nullopt,
            .last_error = std::nullopt,
            .updated_at_ms = now};
  }

  shopd::test::fresh_database fdb{dialect::sqlite};
  std::shared_ptr<shopd::relay::relay_store> store =
      std::make_shared<shopd::relay::relay_store>(fdb.db(), "node-a");
  boost::asio::io_context ioc;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work =
      boost::asio::make_work_guard(ioc);
  std::thread io{[this] { ioc.run(); }};
  boost::asio::thread_pool workers{2};
  shopd::obs::registry registry;
  shopd::relay::relay_metrics metrics{registry};
  std::optional<shopd::http::client> client;
  std::optional<shopd::relay::engine> eng;
};

}  // namespace

TEST_SUITE("relay") {
  TEST_CASE("every route needs the QStash token") {
    relay_fixture relay;
    const auto none = relay.call(verb::get, "/v2/dlq", {}, {}, false);
    CHECK(none.result_int() == 401);
    CHECK(json::parse(none.body()).as_object().contains("error"));
    const auto wrong = relay.call(verb::post, "/v2/publish/http://127.0.0.1:9/x", "{}",
                                  {{"Authorization", "Bearer nope"}}, false);
    CHECK(wrong.result_int() == 401);
    CHECK(relay.call(verb::get, "/v2/keys?qstash_token=" + std::string(token), {}, {}, false).result_int() ==
          200);
    CHECK(relay.call(verb::get, "/v2/keys?qstash_token=other", {}, {}, false).result_int() == 401);
    const auto keys = relay.get_json("/v2/keys");
    CHECK(str(keys, "current") == current_key);
    CHECK(str(keys, "next") == next_key);
  }

  TEST_CASE("a publish is delivered, signed, with QStash's headers and the forwarded ones") {
    capture_server dest;
    relay_fixture relay;
    const auto url = dest.url("/api/webhook?a=1&b=2");
    const std::string body = R"({"hello":"world"})";
    const auto answer = relay.publish(url, body,
                                      {{"Content-Type", "application/json"},
                                       {"Upstash-Forward-X-Trace", "t-1"},
                                       {"Upstash-Method", "PUT"},
                                       {"X-Not-Forwarded", "no"}});
    const auto id = std::string(answer.at("messageId").as_string());
    CHECK(std::string(answer.at("url").as_string()) == url);

    REQUIRE(eventually([&] { return dest.requests().size() == 1; }));
    const auto r = dest.requests().front();
    CHECK(r.method == "PUT");
    CHECK(r.target == "/api/webhook?a=1&b=2");
    CHECK(r.body == body);
    CHECK(r.header("Content-Type") == "application/json");
    CHECK(r.header("X-Trace") == "t-1");
    CHECK_FALSE(r.header("X-Not-Forwarded").has_value());
    CHECK_FALSE(r.header("Authorization").has_value());
    CHECK(r.header("Upstash-Message-Id") == id);
    CHECK(r.header("Upstash-Retried") == "0");
    CHECK(r.header("User-Agent") == "Upstash-QStash");
    check_signed(r, url);

    // Delivered: no longer pending.
    REQUIRE(eventually([&] { return relay.call(verb::get, "/v2/messages/" + id).result_int() == 404; }));
    CHECK(eventually([&] { return count_metric(relay.metrics(), "shopd_relay_delivered_total") == 1; }));
    CHECK(count_metric(relay.metrics(), "shopd_relay_published_total") == 1);
  }

  TEST_CASE("failures are retried with Upstash-Retried counting up, until one succeeds") {
    capture_server dest;
    dest.push(scripted_reply::respond(500, "no"));
    dest.push(scripted_reply::respond(503, "still no"));
    dest.push(scripted_reply::respond(429, "later", {{"Retry-After", "0"}}));
    relay_fixture relay;
    const auto id = std::string(
        relay.publish(dest.url("/hook"), "x", {{"Upstash-Retries", "5"}}).at("messageId").as_string());
    REQUIRE(eventually([&] { return dest.requests().size() == 4; }));
    const auto reqs = dest.requests();
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      CAPTURE(i);
      CHECK(reqs[i].header("Upstash-Message-Id") == id);
      CHECK(reqs[i].header("Upstash-Retried") == std::to_string(i));
      check_signed(reqs[i], dest.url("/hook"));
    }
    CHECK(eventually([&] { return count_metric(relay.metrics(), "shopd_relay_delivered_total") == 1; }));
    CHECK(count_metric(relay.metrics(), "shopd_relay_retries_total") == 3);
    CHECK(relay.call(verb::get, "/v2/messages/" + id).result_int() == 404);
    CHECK(dest.requests().size() == 4);
  }

  TEST_CASE("exhausted retries land in the DLQ and call the callback and the failure callback") {
    capture_server dest;
    dest.set_handler([](const captured_request&) {
      return scripted_reply::respond(500, "broken", {{"X-Why", "db down"}});
    });
    capture_server callbacks;
    relay_fixture relay;
    const std::string body = "payload";
    const auto id = std::string(relay
                                    .publish(dest.url("/hook"), body,
                                             {{"Upstash-Retries", "2"},
                                              {"Upstash-Retry-Delay", "10"},
                                              {"Content-Type", "text/plain"},
                                              {"Upstash-Callback", callbacks.url("/cb")},
                                              {"Upstash-Failure-Callback", callbacks.url("/failure")},
                                              {"Upstash-Failure-Callback-Forward-X-Secret", "s3"}})
                                    .at("messageId")
                                    .as_string());
    REQUIRE(eventually([&] { return callbacks.requests().size() == 2; }));
    CHECK(dest.requests().size() == 3);  // 1 + 2 retries

    const auto dlq = relay.get_json("/v2/dlq");
    const auto& messages = dlq.as_object().at("messages").as_array();
    REQUIRE(messages.size() == 1);
    const auto& entry = messages[0].as_object();
    const auto dlq_id = std::string(entry.at("dlqId").as_string());
    CHECK(entry.at("messageId").as_string() == id);
    CHECK(entry.at("responseStatus").as_int64() == 500);
    CHECK(entry.at("responseBody").as_string() == "broken");
    CHECK(entry.at("url").as_string() == dest.url("/hook"));
    CHECK(entry.at("maxRetries").as_int64() == 2);
    CHECK_FALSE(dlq.as_object().contains("cursor"));

    std::map<std::string, captured_request> by_path;
    for (const auto& r : callbacks.requests()) by_path[r.target] = r;
    REQUIRE(by_path.count("/failure") == 1);
    REQUIRE(by_path.count("/cb") == 1);
    const auto& f = by_path["/failure"];
    check_signed(f, callbacks.url("/failure"));
    CHECK(f.header("X-Secret") == "s3");
    CHECK(f.header("Content-Type") == "application/json");
    CHECK(f.header("Upstash-Message-Id") != id);  // a message of its own
    const auto fb = json::parse(f.body).as_object();
    CHECK(fb.at("sourceMessageId").as_string() == id);
    CHECK(fb.at("dlqId").as_string() == dlq_id);
    CHECK(fb.at("status").as_int64() == 500);
    CHECK(fb.at("body").as_string() == b64("broken"));
    CHECK(fb.at("sourceBody").as_string() == b64(body));
    CHECK(fb.at("retried").as_int64() == 2);
    CHECK(fb.at("maxRetries").as_int64() == 2);
    CHECK(fb.at("url").as_string() == dest.url("/hook"));
    CHECK(fb.at("method").as_string() == "POST");
    CHECK(fb.at("header").as_object().at("X-Why").as_array().at(0).as_string() == "db down");
    const auto cb = json::parse(by_path["/cb"].body).as_object();
    CHECK(cb.at("sourceMessageId").as_string() == id);
    CHECK_FALSE(cb.contains("dlqId"));
    check_signed(by_path["/cb"], callbacks.url("/cb"));

    CHECK(count_metric(relay.metrics(), "shopd_relay_failed_total") == 1);
    CHECK(eventually([&] { return count_metric(relay.metrics(), "shopd_relay_dlq_size") == 1; }));

    SUBCASE("the DLQ entry can be read, retried (a new message) and is then gone") {
      CHECK(str(relay.get_json("/v2/dlq/" + dlq_id), "messageId") == id);
      dest.set_handler([](const captured_request&) { return scripted_reply::respond(200); });
      const auto res = relay.call(verb::post, "/v2/dlq/retry/" + dlq_id);
      REQUIRE(res.result_int() == 201);
      const auto new_id = str(json::parse(res.body()), "messageId");
      CHECK(new_id != id);
      REQUIRE(eventually([&] {
        for (const auto& r : dest.requests())
          if (r.header("Upstash-Message-Id") == new_id) return true;
        return false;
      }));
      CHECK(relay.call(verb::get, "/v2/dlq/" + dlq_id).result_int() == 404);
      CHECK(relay.get_json("/v2/dlq").as_object().at("messages").as_array().empty());
    }
    SUBCASE("bulk retry by dlqIds answers the new ids") {
      const auto res = relay.call(verb::post, "/v2/dlq/retry?dlqIds=" + dlq_id);
      REQUIRE(res.result_int() == 201);
      const auto responses = json::parse(res.body()).as_object().at("responses").as_array();
      REQUIRE(responses.size() == 1);
      CHECK(responses[0].as_object().contains("messageId"));
    }
    SUBCASE("delete") {
      CHECK(relay.call(verb::delete_, "/v2/dlq/" + dlq_id).result_int() == 200);
      CHECK(relay.call(verb::delete_, "/v2/dlq/" + dlq_id).result_int() == 404);
    }
    SUBCASE("bulk delete with a JSON body") {
      const auto res = relay.call(verb::delete_, "/v2/dlq", R"({"dlqIds":[")" + dlq_id + R"("]})");
      REQUIRE(res.result_int() == 200);
      CHECK(json::parse(res.body()).as_object().at("deleted").as_int64() == 1);
    }
  }

  TEST_CASE("489 with Upstash-NonRetryable-Error is not retried") {
    capture_server dest;
    dest.set_handler([](const captured_request&) {
      return scripted_reply::respond(489, R"({"error":"bad"})", {{"Upstash-NonRetryable-Error", "true"}});
    });
    relay_fixture relay;
    relay.publish(dest.url("/hook"), "{}", {{"Upstash-Retries", "5"}});
    REQUIRE(eventually(
        [&] { return relay.get_json("/v2/dlq").as_object().at("messages").as_array().size() == 1; }));
    CHECK(dest.requests().size() == 1);
  }

  TEST_CASE("a duplicate deduplication id is answered 202 with the first id and delivered once") {
    capture_server dest;
    relay_fixture relay;
    const auto first = relay.publish(dest.url("/hook"), "a", {{"Upstash-Deduplication-Id", "order-42"}});
    const auto second =
        relay.publish(dest.url("/hook"), "a", {{"Upstash-Deduplication-Id", "order-42"}}, 202);
    CHECK(second.at("messageId") == first.at("messageId"));
    CHECK(second.at("deduplicated").as_bool());
    const auto third =
        relay.publish(dest.url("/hook"), "a", {{"Upstash-Content-Based-Deduplication", "true"}});
    const auto fourth =
        relay.publish(dest.url("/hook"), "a", {{"Upstash-Content-Based-Deduplication", "true"}}, 202);
    CHECK(fourth.at("messageId") == third.at("messageId"));
    REQUIRE(eventually([&] { return dest.requests().size() == 2; }));
    CHECK(count_metric(relay.metrics(), "shopd_relay_published_total") == 2);
  }

  TEST_CASE("delay and not-before are honoured; a pending message can be read and cancelled") {
    capture_server dest;
    std::mutex mutex;
    std::vector<std::int64_t> received_at;
    dest.set_handler([&](const captured_request&) {
      std::lock_guard lock(mutex);
      received_at.push_back(unix_ms());
      return scripted_reply::respond(200);
    });
    relay_fixture relay;
    const auto published_at = unix_ms();
    const auto delayed = relay.publish(dest.url("/delayed"), "d", {{"Upstash-Delay", "1s"}});
    const auto not_before_s = published_at / 1000 + 2;
    relay.publish(dest.url("/not-before"), "n", {{"Upstash-Not-Before", std::to_string(not_before_s)}});
    const auto cancelled = std::string(
        relay.publish(dest.url("/cancelled"), "c", {{"Upstash-Delay", "1h"}}).at("messageId").as_string());

    const auto pending = relay.get_json("/v2/messages/" + cancelled).as_object();
    CHECK(pending.at("messageId").as_string() == cancelled);
    CHECK(pending.at("url").as_string() == dest.url("/cancelled"));
    CHECK(pending.at("notBefore").as_int64() >= published_at + 3'600'000);
    const auto cancel = relay.call(verb::delete_, "/v2/messages/" + cancelled);
    REQUIRE(cancel.result_int() == 200);
    CHECK(json::parse(cancel.body()).as_object().at("cancelled").as_int64() == 1);
    CHECK(relay.call(verb::delete_, "/v2/messages/" + cancelled).result_int() == 404);
    CHECK(relay.call(verb::get, "/v2/messages/" + cancelled).result_int() == 404);

    REQUIRE(eventually([&] { return dest.requests().size() == 2; }, 10s));
    const auto reqs = dest.requests();
    std::lock_guard lock(mutex);
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      CAPTURE(reqs[i].target);
      if (reqs[i].target == "/delayed") CHECK(received_at[i] >= published_at + 1000);
      if (reqs[i].target == "/not-before") CHECK(received_at[i] >= not_before_s * 1000);
      CHECK(reqs[i].target != "/cancelled");
    }
    (void)delayed;
  }

  TEST_CASE("a slow destination holds only its own slots") {
    capture_server slow;
    slow.set_handler([](const captured_request&) { return scripted_reply::hang(); });
    capture_server fast;
    relay_fixture relay(dialect::sqlite,
                        {{"RELAY_PER_DESTINATION_CONCURRENCY", "2"}, {"RELAY_CONCURRENCY", "8"}});
    for (int i = 0; i < 6; ++i) relay.publish(slow.url("/slow"), std::to_string(i));
    REQUIRE(eventually([&] { return slow.requests().size() == 2; }));
    CHECK(count_metric(relay.metrics(), "shopd_relay_deliveries_in_flight") == 2);
    CHECK(eventually([&] {
      return count_metric(relay.metrics(), R"(shopd_relay_queue_depth{state="ACTIVE"})") == 2 &&
             count_metric(relay.metrics(), R"(shopd_relay_queue_depth{state="CREATED"})") == 4;
    }));
    relay.publish(fast.url("/fast"), "f");
    REQUIRE(eventually([&] { return fast.requests().size() == 1; }));
    CHECK(slow.requests().size() == 2);  // still only two in flight to the slow one
    slow.stop();                         // its attempts fail now and are retried later
  }

  TEST_CASE("a publish due at once skips the claim, and is delivered as a claim would deliver it") {
    capture_server dest;
    relay_fixture relay;
    const auto url = dest.url("/api/webhook?q=1");
    const std::vector<std::pair<std::string, std::string>> headers{{"Content-Type", "text/plain"},
                                                                   {"Upstash-Forward-X-Trace", "t-1"},
                                                                   {"Upstash-Retries", "2"},
                                                                   {"Upstash-Method", "PATCH"}};
    const auto started = [&](std::string_view via) {
      return count_metric(relay.metrics(),
                          R"(shopd_relay_attempts_started_total{via=")" + std::string(via) + R"("})");
    };
    // Scheduled a little later: a claim takes it when it falls due.
    auto delayed_headers = headers;
    delayed_headers.emplace_back("Upstash-Delay", "1s");
    relay.publish(url, "same body", delayed_headers);
    REQUIRE(eventually([&] { return dest.requests().size() == 1; }));
    CHECK(started("claim") == 1);
    CHECK(started("publish") == 0);

    // Due at once, nothing waiting: stored leased and handed over with its commit.
    const auto id = std::string(relay.publish(url, "same body", headers).at("messageId").as_string());
    REQUIRE(eventually([&] { return dest.requests().size() == 2; }));
    CHECK(started("publish") == 1);
    CHECK(started("claim") == 1);
    const auto claimed = dest.requests()[0];
    const auto fast = dest.requests()[1];
    CHECK(fast.header("Upstash-Message-Id") == id);
    check_signed(fast, url);
    CHECK(fast.method == claimed.method);
    CHECK(fast.target == claimed.target);
    CHECK(fast.body == claimed.body);
    const auto without_id_and_signature = [](const captured_request& r) {
      std::multimap<std::string, std::string> out;
      for (const auto& [name, value] : r.headers) {
        if (name != "Upstash-Signature" && name != "Upstash-Message-Id") out.emplace(name, value);
      }
      return out;
    };
    CHECK(without_id_and_signature(fast) == without_id_and_signature(claimed));
    REQUIRE(eventually([&] { return relay.call(verb::get, "/v2/messages/" + id).result_int() == 404; }));
    CHECK(eventually([&] { return count_metric(relay.metrics(), "shopd_relay_delivered_total") == 2; }));

    // A batch goes the same way, element by element.
    publish_batch(relay, json::array{json::object{{"destination", url}, {"body", "b1"}},
                                     json::object{{"destination", url}, {"body", "b2"}}});
    REQUIRE(eventually([&] { return dest.requests().size() == 4; }));
    CHECK(started("publish") == 3);
    CHECK(started("claim") == 1);
  }

  TEST_CASE("a publish never overtakes a message waiting for its destination's slot") {
    std::promise<void> release;
    const auto released = release.get_future().share();
    capture_server dest;
    dest.set_handler([released](const captured_request& r) {
      if (r.body == "A") released.wait();
      return scripted_reply::respond(200);
    });
    // Releases "A" however the test ends, before the server (declared earlier) is stopped.
    const std::unique_ptr<std::promise<void>, void (*)(std::promise<void>*)> guard(&release, [](auto* p) {
      try {
        p->set_value();
      } catch (const std::future_error&) {  // already released
      }
    });
    // One slot to the destination, and claims only when woken (the poll is a minute).
    relay_fixture relay(dialect::sqlite,
                        {{"RELAY_PER_DESTINATION_CONCURRENCY", "1"}, {"RELAY_POLL_INTERVAL_MS", "60000"}});
    const auto url = dest.url("/one-at-a-time");
    relay.publish(url, "A");
    REQUIRE(eventually([&] { return dest.requests().size() == 1; }));
    relay.publish(url, "B");  // no slot: stored for a claim
    // The claim that B's publish woke runs and finds the destination saturated.
    std::this_thread::sleep_for(200ms);
    release.set_value();
    relay.publish(url, "C");  // A's slot may be free already, but B waits for it
    REQUIRE(eventually([&] { return dest.requests().size() == 3; }));
    std::vector<std::string> order;
    for (const auto& r : dest.requests()) order.push_back(r.body);
    CHECK(order == std::vector<std::string>{"A", "B", "C"});
  }

  TEST_CASE(
      "engine reservations: one slot each, given back unless delivered, and after stop() the lease goes "
      "back") {
    engine_rig rig;
    auto& eng = *rig.eng;
    auto& store = rig.store;
    {
      shopd::relay::message_spec m;
      m.destination = "http://127.0.0.1:9/never-called";
      m.body = "{}";
      m.timeout_ms = 1'000;
      m.not_before_ms = unix_ms();
      CHECK_FALSE(eng.reserve(m, unix_ms()).has_value());  // not started

      eng.start();
      std::optional<shopd::relay::engine::reservation> r;
      // The fast path opens once the first claim has found nothing waiting.
      REQUIRE(eventually([&] {
        r = eng.reserve(m, unix_ms());
        return r.has_value();
      }));
      CHECK(r->lease_until_ms() >= m.not_before_ms + 1'000 + 30'000);
      CHECK_FALSE(eng.reserve(m, unix_ms()).has_value());  // the origin's one slot is taken
      auto later = m;
      later.not_before_ms = unix_ms() + 60'000;
      CHECK_FALSE(eng.reserve(later, unix_ms()).has_value());  // not due: for a claim
      r.reset();                                               // given back
      r = eng.reserve(m, unix_ms());
      REQUIRE(r.has_value());

      const auto now = unix_ms();
      const auto until = r->lease_until_ms();
      const auto id = store->insert(m, now, 600'000, until).message_id;
      eng.stop();
      CHECK_FALSE(eng.reserve(m, unix_ms()).has_value());
      eng.deliver(std::move(*r), rig.leased(id, m, until, now));
      CHECK(eng.in_flight() == 0);
      const auto got = store->get(id);
      REQUIRE(got.has_value());
      CHECK(got->state == shopd::relay::message_state::retry);  // handed back, due at once
      CHECK_FALSE(got->lease_owner.has_value());
      CHECK(count_metric(rig.registry, R"(shopd_relay_attempts_started_total{via="publish"})") == 0);
    }
  }

  TEST_CASE(
      "engine: an attempt's slot is free once its destination answered, before the outcome is recorded") {
    std::promise<void> answer;
    const auto answered = answer.get_future().share();
    capture_server dest;
    dest.set_handler([answered](const captured_request&) {
      answered.wait();
      return scripted_reply::respond(200);
    });
    const std::unique_ptr<std::promise<void>, void (*)(std::promise<void>*)> guard(&answer, [](auto* p) {
      try {
        p->set_value();
      } catch (const std::future_error&) {  // already answered
      }
    });
    engine_rig rig;
    auto& eng = *rig.eng;
    auto& store = rig.store;
    {
      shopd::relay::message_spec m;
      m.destination = dest.url("/slow");
      m.body = "{}";
      m.timeout_ms = 10'000;
      m.not_before_ms = unix_ms();
      eng.start();
      std::optional<shopd::relay::engine::reservation> r;
      REQUIRE(eventually([&] {
        r = eng.reserve(m, unix_ms());
        return r.has_value();
      }));
      const auto now = unix_ms();
      const auto until = r->lease_until_ms();
      const auto id = store->insert(m, now, 600'000, until).message_id;
      eng.deliver(std::move(*r), rig.leased(id, m, until, now));
      REQUIRE(eventually([&] { return dest.requests().size() == 1; }));
      CHECK_FALSE(eng.reserve(m, unix_ms()).has_value());  // the origin's one slot is the attempt's

      // The outcome cannot be recorded while another transaction holds the write turn.
      std::promise<void> held;
      std::promise<void> let_go;
      const auto go = let_go.get_future().share();
      std::thread writer([&] {
        rig.fdb.db().in_transaction([&](soci::session&) {
          held.set_value();
          go.wait();
        });
      });
      held.get_future().wait();
      answer.set_value();
      CHECK(eventually([&] { return eng.reserve(m, unix_ms()).has_value(); }));
      const auto pending = store->get(id);
      REQUIRE(pending.has_value());
      CHECK(pending->state == shopd::relay::message_state::active);  // not recorded yet
      let_go.set_value();
      writer.join();
      CHECK(eventually([&] {
        const auto got = store->get(id);
        return got && got->state == shopd::relay::message_state::delivered;
      }));
      eng.stop();
    }
  }

  TEST_CASE("batch: each element is its own message") {
    capture_server dest;
    relay_fixture relay;
    const std::string body =
        R"([{"destination":")" + dest.url("/one") +
        R"(","headers":{"content-type":"application/json","upstash-forward-x-n":"1"},"body":"{\"n\":1}"},)"
        R"({"destination":"not a url","body":"x"},)"
        R"({"destination":")" +
        dest.url("/two") + R"(","queue":"q1"}])";
    const auto res = relay.call(verb::post, "/v2/batch", body, {{"Content-Type", "application/json"}});
    REQUIRE_MESSAGE(res.result_int() == 200, res.body());
    const auto out = json::parse(res.body()).as_array();
    REQUIRE(out.size() == 3);
    CHECK(out[0].as_object().contains("messageId"));
    CHECK(out[1].as_object().contains("error"));
    CHECK(out[2].as_object().contains("messageId"));
    REQUIRE(eventually([&] { return dest.requests().size() == 2; }));
    for (const auto& r : dest.requests()) {
      if (r.target == "/one") {
        CHECK(r.body == R"({"n":1})");
        CHECK(r.header("X-N") == "1");
        CHECK(r.header("Upstash-Message-Id") == std::string(out[0].as_object().at("messageId").as_string()));
      } else {
        CHECK(r.target == "/two");
        CHECK(r.body.empty());
      }
    }
  }

  TEST_CASE("many concurrent attempts: every outcome is recorded once, with its follow-ups") {
    capture_server dest;
    dest.set_handler([](const captured_request& r) {
      return scripted_reply::respond(r.target.starts_with("/bad/") ? 500 : 200);
    });
    relay_fixture relay(dialect::sqlite,
                        {{"RELAY_CONCURRENCY", "64"}, {"RELAY_PER_DESTINATION_CONCURRENCY", "64"}});
    json::array elements;
    for (int i = 0; i < 200; ++i)
      elements.push_back(
          {{"destination", dest.url("/ok/" + std::to_string(i))}, {"body", std::to_string(i)}});
    for (int i = 0; i < 20; ++i) {
      elements.push_back(
          {{"destination", dest.url("/bad/" + std::to_string(i))},
           {"headers",
            {{"upstash-retries", "0"}, {"upstash-failure-callback", dest.url("/failure-callback")}}}});
    }
    const auto ids = publish_batch(relay, elements);
    REQUIRE(ids.size() == 220);

    // 200 delivered, 20 failed into the DLQ, and their 20 failure callbacks delivered.
    REQUIRE(eventually([&] {
      return count_metric(relay.metrics(), "shopd_relay_delivered_total") == 220 &&
             count_metric(relay.metrics(), "shopd_relay_failed_total") == 20;
    }));
    shopd::relay::relay_store store(relay.db(), "test-reader");
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const auto m = store.get(ids[i]);
      REQUIRE(m.has_value());
      CHECK(m->state ==
            (i < 200 ? shopd::relay::message_state::delivered : shopd::relay::message_state::failed));
      CHECK(m->retried == 0);
      CHECK_FALSE(m->lease_owner.has_value());
    }
    const auto c = store.counts();
    CHECK(c.created == 0);
    CHECK(c.active == 0);
    CHECK(c.retry == 0);
    CHECK(c.dlq == 20);
    const auto reqs = dest.requests();
    CHECK(reqs.size() == 240);  // each once
    std::set<std::string> dlq_ids;
    for (const auto& r : reqs) {
      if (r.target == "/failure-callback") dlq_ids.insert(str(json::parse(r.body), "dlqId"));
    }
    CHECK(dlq_ids.size() == 20);
    CHECK(count_metric(relay.metrics(), "shopd_relay_retries_total") == 0);
  }

  TEST_CASE("an outcome the database refuses does not lose the others recorded with it") {
    capture_server dest;
    relay_fixture relay(dialect::sqlite,
                        {{"RELAY_CONCURRENCY", "64"}, {"RELAY_PER_DESTINATION_CONCURRENCY", "64"}});
    // A real refusal by the database (SQLITE_CONSTRAINT) for one message's outcome only.
    relay.db().in_transaction([](soci::session& s) {
      s << "CREATE TRIGGER refuse_poison BEFORE UPDATE OF state ON relay_messages "
           "WHEN NEW.state = 'DELIVERED' AND NEW.destination LIKE '%/poison' "
           "BEGIN SELECT RAISE(ABORT, 'poisoned outcome'); END";
    });
    json::array elements;
    for (int i = 0; i < 60; ++i) {
      elements.push_back(
          json::object{{"destination", dest.url(i == 30 ? "/poison" : "/ok/" + std::to_string(i))}});
    }
    const auto ids = publish_batch(relay, elements);
    REQUIRE(ids.size() == 60);
    REQUIRE(eventually([&] { return count_metric(relay.metrics(), "shopd_relay_delivered_total") == 59; }));
    shopd::relay::relay_store store(relay.db(), "test-reader");
    for (std::size_t i = 0; i < ids.size(); ++i) {
      CAPTURE(i);
      CHECK(store.get(ids[i])->state ==
            (i == 30 ? shopd::relay::message_state::active : shopd::relay::message_state::delivered));
    }
    CHECK(dest.requests().size() == 60);
  }

  TEST_CASE("an outcome is recorded once the database is back, not delivered again after its lease") {
    capture_server dest;
    // Another connection holding the write lock makes every write of the relay fail as a transient
    // error once the (short) busy timeout is over, as a database that is down does.
    relay_fixture relay(dialect::sqlite, {}, 100ms);
    const std::string file = relay.database_url().substr(std::string_view("sqlite:").size());
    std::mutex outage_mutex;
    std::optional<soci::session> outage;
    dest.set_handler([&](const captured_request&) {
      // The outage begins while the delivery is answered: its outcome cannot be recorded.
      std::lock_guard lock(outage_mutex);
      if (!outage) {
        outage.emplace(*soci::factory_sqlite3(), file);
        *outage << "PRAGMA busy_timeout = 5000";  // the relay may be writing just now
        *outage << "BEGIN IMMEDIATE";
      }
      return scripted_reply::respond(200);
    });
    const auto id = std::string(relay.publish(dest.url("/api/webhook"), "hello").at("messageId").as_string());
    REQUIRE(eventually([&] { return dest.requests().size() == 1; }));
    // Longer than five tries of recording (about 2.5 s here), and far shorter than the lease (50 s).
    std::this_thread::sleep_for(4s);
    shopd::relay::relay_store store(relay.db(), "test-reader");
    CHECK(store.get(id)->state == shopd::relay::message_state::active);  // reads go on (WAL)
    {
      std::lock_guard lock(outage_mutex);
      *outage << "ROLLBACK";
      outage.reset();
    }
    CHECK(eventually([&] { return store.get(id)->state == shopd::relay::message_state::delivered; }, 10s));
    // Counted once the recording call returns, a moment after its COMMIT made the row visible.
    CHECK(eventually([&] { return count_metric(relay.metrics(), "shopd_relay_delivered_total") == 1; }));
    CHECK(dest.requests().size() == 1);
  }

  TEST_CASE("a callback after success carries the response") {
    capture_server dest;
    dest.push(scripted_reply::respond(201, "created!"));
    capture_server callbacks;
    relay_fixture relay;
    const auto id =
        std::string(relay.publish(dest.url("/hook"), "x", {{"Upstash-Callback", callbacks.url("/cb")}})
                        .at("messageId")
                        .as_string());
    REQUIRE(eventually([&] { return callbacks.requests().size() == 1; }));
    const auto cb = callbacks.requests().front();
    check_signed(cb, callbacks.url("/cb"));
    const auto b = json::parse(cb.body).as_object();
    CHECK(b.at("status").as_int64() == 201);
    CHECK(b.at("body").as_string() == b64("created!"));
    CHECK(b.at("sourceMessageId").as_string() == id);
    CHECK(b.at("retried").as_int64() == 0);
  }

  TEST_CASE("bad requests") {
    relay_fixture relay;
    const auto no_scheme = relay.call(verb::post, "/v2/publish/127.0.0.1:9/x", "{}");
    CHECK(no_scheme.result_int() == 400);
    CHECK(std::string(json::parse(no_scheme.body()).as_object().at("error").as_string())
              .find("invalid scheme") != std::string::npos);
    CHECK(
        relay.call(verb::post, "/v2/publish/http://h/x", "{}", {{"Upstash-Retries", "many"}}).result_int() ==
        400);
    CHECK(relay.call(verb::post, "/v2/publish/http://h/x", "{}", {{"Upstash-Forward-X-Name", "caf\xe9"}})
              .result_int() == 400);
    CHECK(relay.call(verb::get, "/v2/dlq?count=1000").result_int() == 400);
    CHECK(relay.call(verb::get, "/v2/dlq?cursor=garbage").result_int() == 400);
    CHECK(relay.call(verb::get, "/v2/dlq?topicName=grp").result_int() == 400);
    // An unknown filter never widens a bulk operation to everything.
    const auto pending = std::string(
        relay.publish("http://127.0.0.1:9/x", "{}", {{"Upstash-Delay", "1h"}}).at("messageId").as_string());
    CHECK(relay.call(verb::delete_, "/v2/messages?host=elsewhere").result_int() == 400);
    CHECK(relay.call(verb::delete_, "/v2/dlq?label=a").result_int() == 400);
    CHECK(relay.call(verb::get, "/v2/messages/" + pending).result_int() == 200);
    CHECK(relay.call(verb::get, "/v2/messages/msg_unknown").result_int() == 404);
    CHECK(relay.call(verb::post, "/v2/batch", "{").result_int() == 400);
  }

  TEST_CASE("PostgreSQL: publish, deliver and the DLQ work the same") {
    capture_server dest;
    dest.push(scripted_reply::respond(500));
    relay_fixture relay(dialect::postgresql);
    relay.publish(dest.url("/ok"), "1", {{"Upstash-Retries", "1"}, {"Upstash-Retry-Delay", "10"}});
    // The failing answer carries a header value that is not UTF-8 (obs-text), which PostgreSQL's
    // text columns would refuse if it were stored as is.
    dest.set_handler([](const captured_request& r) {
      if (r.target == "/ok") return scripted_reply::respond(200);
      return scripted_reply::respond(500, "", {{"X-Bin", "caf\xe9"}});
    });
    relay.publish(dest.url("/bad"), "2", {{"Upstash-Retries", "0"}});
    REQUIRE(eventually([&] {
      return relay.get_json("/v2/dlq").as_object().at("messages").as_array().size() == 1 &&
             count_metric(relay.metrics(), "shopd_relay_delivered_total") == 1;
    }));
    CHECK(dest.requests().size() == 3);
    const auto entry = relay.get_json("/v2/dlq").as_object().at("messages").as_array().at(0).as_object();
    CHECK(entry.at("responseHeader").as_object().at("X-Bin").as_array().at(0).as_string() == "caf?");
  }
}
