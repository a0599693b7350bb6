#include "shopd/app/dlq.hpp"

#include "capture_server.hpp"
#include "relay_fixture.hpp"

#include <boost/json.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace json = boost::json;
using shopd::http::verb;
using shopd::test::capture_server;
using shopd::test::captured_request;
using shopd::test::eventually;
using shopd::test::relay_fixture;
using shopd::test::scripted_reply;

namespace {

struct run_result {
  int rc;
  std::string out;
  std::string err;
};

shopd::dlq_options options_for(const relay_fixture& relay, std::string action,
                               std::vector<std::string> ids = {},
                               std::string token = std::string(shopd::test::token)) {
  shopd::config::sources src;
  src.environment = {{"QSTASH_URL", "http://127.0.0.1:" + std::to_string(relay.port()) + "/"},
                     {"QSTASH_TOKEN", std::move(token)}};
  shopd::dlq_options o;
  o.settings = shopd::config::load(src);
  o.action = std::move(action);
  o.ids = std::move(ids);
  o.timeout = std::chrono::milliseconds(5000);
  return o;
}

run_result run(const shopd::dlq_options& o) {
  std::ostringstream out;
  std::ostringstream err;
  const int rc = shopd::dlq(o, out, err);
  return {rc, out.str(), err.str()};
}

std::size_t lines(const std::string& s) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

/// `field` ("dlqId", "messageId") of every DLQ entry, oldest first, read page by page.
std::vector<std::string> dlq_field(relay_fixture& relay, std::string_view field) {
  std::vector<std::string> values;
  std::string cursor;
  do {
    const auto page = relay.get_json("/v2/dlq?count=100" + (cursor.empty() ? "" : "&cursor=" + cursor));
    for (const auto& m : page.as_object().at("messages").as_array())
      values.emplace_back(m.as_object().at(field).as_string());
    const auto* c = page.as_object().if_contains("cursor");
    cursor = c != nullptr && c->is_string() ? std::string(c->as_string()) : "";
  } while (!cursor.empty());
  return values;
}

std::vector<std::string> dlq_ids(relay_fixture& relay) {
  return dlq_field(relay, "dlqId");
}

/// The DLQ ids, oldest first, after `n` messages failed for good.
std::vector<std::string> fill_dlq(relay_fixture& relay, const capture_server& dest, int n) {
  for (int i = 0; i < n; ++i) relay.publish(dest.url("/fail"), std::to_string(i), {{"Upstash-Retries", "0"}});
  std::vector<std::string> ids;
  REQUIRE(eventually([&] {
    ids = dlq_ids(relay);
    return ids.size() == static_cast<std::size_t>(n);
  }));
  return ids;
}

}  // namespace

TEST_SUITE("app/dlq") {
  TEST_CASE("shopd dlq against the relay") {
    capture_server dest;
    dest.set_handler([](const captured_request& r) {
      return scripted_reply::respond(r.target == "/fail" ? 500 : 200, "answer");
    });
    relay_fixture relay;

    SUBCASE("list: an empty DLQ says so") {
      const auto r = run(options_for(relay, "list"));
      CHECK(r.rc == 0);
      CHECK(r.out == "The DLQ is empty.\n");
      CHECK(r.err.empty());
    }

    SUBCASE("list: a table, paged with --cursor") {
      const auto ids = fill_dlq(relay, dest, 3);
      auto o = options_for(relay, "list");
      auto r = run(o);
      CHECK(r.rc == 0);
      CHECK(lines(r.out) == 4);
      CHECK(r.out.starts_with("DLQ ID"));
      for (const auto& id : ids) CHECK(r.out.find(id) != std::string::npos);
      CHECK(r.out.find(dest.url("/fail")) != std::string::npos);
      CHECK(r.out.find("500") != std::string::npos);

      o.count = 2;
      r = run(o);
      CHECK(r.rc == 0);
      CHECK(r.out.find(ids[2]) == std::string::npos);
      const auto more = r.out.find("More entries: shopd dlq list --cursor ");
      REQUIRE(more != std::string::npos);
      o.cursor = r.out.substr(more + 38, r.out.find('\n', more) - more - 38);
      r = run(o);
      CHECK(r.out.find(ids[2]) != std::string::npos);
      CHECK(lines(r.out) == 2);

      auto as_json = options_for(relay, "list");
      as_json.json = true;
      as_json.latest_first = true;
      r = run(as_json);
      const auto parsed = json::parse(r.out).as_object();
      CHECK(parsed.at("messages").as_array().at(0).as_object().at("dlqId").as_string() == ids[2]);
    }

    SUBCASE("show, replay, delete") {
      const auto ids = fill_dlq(relay, dest, 3);
      auto r = run(options_for(relay, "show", {ids[0]}));
      CHECK(r.rc == 0);
      CHECK(json::parse(r.out).as_object().at("dlqId").as_string() == ids[0]);
      CHECK(r.out.find("\n  \"dlqId\": ") != std::string::npos);  // indented

      r = run(options_for(relay, "replay", {ids[0]}));
      CHECK(r.rc == 0);
      CHECK(r.out.starts_with("replayed " + ids[0] + " as msg_"));
      CHECK(relay.call(verb::get, "/v2/dlq/" + ids[0]).result_int() == 404);

      r = run(options_for(relay, "delete", {ids[1]}));
      CHECK(r.rc == 0);
      CHECK(r.out == "deleted " + ids[1] + "\n");
      r = run(options_for(relay, "delete", {ids[1], ids[2]}));
      CHECK(r.rc == 1);  // the first is gone, the second is deleted anyway
      CHECK(r.out == "deleted " + ids[2] + "\n");
      CHECK(r.err.find("DELETE /v2/dlq/" + ids[1] + ": 404") != std::string::npos);
    }

    SUBCASE("delete --all and replay --all work through every page") {
      fill_dlq(relay, dest, 3);
      auto o = options_for(relay, "delete");
      o.all = true;
      auto r = run(o);
      CHECK(r.rc == 0);
      CHECK(r.out == "deleted: 3 entries\n");
      CHECK(run(options_for(relay, "list")).out == "The DLQ is empty.\n");
      o.action = "replay";
      r = run(o);
      CHECK(r.rc == 0);
      CHECK(r.out == "replayed: 0 entries\n");
    }

    SUBCASE("replay --all replays what failed before it started, not what fails meanwhile") {
      // Six pages' worth, published 100 to a /v2/batch request.
      std::string batch = "[";
      for (int i = 0; i < 100; ++i) {
        batch += std::string(i > 0 ? "," : "") + R"({"destination":")" + dest.url("/fail") +
                 R"(","headers":{"Upstash-Retries":"0"},"body":"early"})";
      }
      batch += "]";
      for (int i = 0; i < 6; ++i) REQUIRE(relay.call(verb::post, "/v2/batch", batch).result_int() == 200);
      REQUIRE(eventually([&] { return dlq_ids(relay).size() >= 600; }, std::chrono::seconds(60)));
      // Meanwhile other messages keep failing for good; those failed after the command started are
      // not its business (without the bound, its later pages took them, and a DLQ that keeps
      // filling made it run on and on).
      std::atomic<bool> started = false;
      std::atomic<int> published = 0;
      std::vector<std::string> failing_meanwhile;  // published after the start, by the thread below
      std::jthread failing([&](const std::stop_token& stop) {
        for (int i = 0; i < 20'000 && !stop.stop_requested(); ++i) {
          const bool after_start = started;
          const auto res =
              relay.call(verb::post, "/v2/publish/" + dest.url("/fail"), "late", {{"Upstash-Retries", "0"}});
          ++published;
          if (after_start && res.result_int() == 201)
            failing_meanwhile.emplace_back(json::parse(res.body()).as_object().at("messageId").as_string());
        }
      });
      REQUIRE(eventually([&] { return published >= 20; }, std::chrono::seconds(60)));
      started = true;
      auto o = options_for(relay, "replay");
      o.all = true;
      const auto r = run(o);
      failing.request_stop();
      failing.join();
      CHECK(r.rc == 0);
      // Each message that failed after the start is in the DLQ as itself (once all have failed): not
      // replayed, which would have put it back under a new message id.
      CHECK_FALSE(failing_meanwhile.empty());
      std::set<std::string> missing;
      CHECK(eventually(
          [&] {
            const auto ids = dlq_field(relay, "messageId");
            const std::set<std::string> listed(ids.begin(), ids.end());
            missing.clear();
            for (const auto& id : failing_meanwhile) {
              if (!listed.contains(id)) missing.insert(id);
            }
            return missing.empty();
          },
          std::chrono::seconds(60)));
      CHECK_MESSAGE(missing.empty(), missing.size(), " of ", failing_meanwhile.size(), " were replayed");
    }

    SUBCASE("errors: a bad token is one line without the token; usage mistakes exit 2") {
      const auto r = run(options_for(relay, "list", {}, "wrong-secret-token"));
      CHECK(r.rc == 1);
      CHECK(lines(r.err) == 1);
      CHECK(r.err.find("401") != std::string::npos);
      CHECK(r.err.find("wrong-secret-token") == std::string::npos);
      CHECK(run(options_for(relay, "show")).rc == 2);
      CHECK(run(options_for(relay, "replay")).rc == 2);
      CHECK(run(options_for(relay, "explode")).rc == 2);
      auto both = options_for(relay, "delete", {"1-1"});
      both.all = true;
      CHECK(run(both).rc == 2);
      auto bad_count = options_for(relay, "list");
      bad_count.count = 500;
      CHECK(run(bad_count).rc == 2);
      CHECK(run(options_for(relay, "list", {}, "")).rc == 2);
    }
  }
}
