#include "shopd/obs/metrics.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>
#include <vector>

using shopd::obs::registry;

TEST_SUITE("obs/metrics") {
  TEST_CASE("metrics: counters") {
    registry r;
    SUBCASE("without labels: rendered at 0 before first use, then counted") {
      auto& total = r.counter_family("shopd_things_total", "Things counted.");
      CHECK(r.render() ==
            "# HELP shopd_things_total Things counted.\n"
            "# TYPE shopd_things_total counter\n"
            "shopd_things_total 0\n");
      total.get().inc();
      total.get().inc(2);
      total.get().inc(-5);  // counters never go down
      CHECK(total.get().value() == 3);
      CHECK(r.render() ==
            "# HELP shopd_things_total Things counted.\n"
            "# TYPE shopd_things_total counter\n"
            "shopd_things_total 3\n");
    }
    SUBCASE("with labels, children in label order") {
      auto& f = r.counter_family("shopd_events_total", "Events.", {"type", "outcome"});
      f.with({"order.created", "success"}).inc(4);
      f.with({"analytics.audit", "failure"}).inc();
      f.with({"order.created", "success"}).inc();
      CHECK(r.render() ==
            "# HELP shopd_events_total Events.\n"
            "# TYPE shopd_events_total counter\n"
            "shopd_events_total{type=\"analytics.audit\",outcome=\"failure\"} 1\n"
            "shopd_events_total{type=\"order.created\",outcome=\"success\"} 5\n");
    }
    SUBCASE("label values and help text are escaped") {
      auto& f = r.counter_family("shopd_odd_total", "Help with \\ and\nnewline.", {"v"});
      f.with({"a\"b\\c\nd"}).inc();
      CHECK(r.render() ==
            "# HELP shopd_odd_total Help with \\\\ and\\nnewline.\n"
            "# TYPE shopd_odd_total counter\n"
            "shopd_odd_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
    }
    SUBCASE("concurrent increments are all counted") {
      auto& c = r.counter_family("shopd_concurrent_total", "Concurrent.").get();
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
          for (int i = 0; i < 10'000; ++i) c.inc();
        });
      }
      for (auto& t : threads) t.join();
      CHECK(c.value() == 40'000);
    }
  }

  TEST_CASE("metrics: gauges") {
    registry r;
    auto& g = r.gauge_family("shopd_queue_depth", "Queued messages.", {"queue"});
    g.with({"outbox"}).set(10);
    g.with({"outbox"}).dec(3);
    g.with({"outbox"}).inc(0.5);
    g.with({"dlq"}).dec();
    CHECK(r.render() ==
          "# HELP shopd_queue_depth Queued messages.\n"
          "# TYPE shopd_queue_depth gauge\n"
          "shopd_queue_depth{queue=\"dlq\"} -1\n"
          "shopd_queue_depth{queue=\"outbox\"} 7.5\n");
  }

  TEST_CASE("metrics: histograms") {
    registry r;
    SUBCASE("cumulative buckets, +Inf, sum and count") {
      auto& f = r.histogram_family("shopd_latency_seconds", "Latency.", {"route"}, {0.5, 1});
      auto& h = f.with({"/a"});
      h.observe(0.25);
      h.observe(0.5);  // on a bound: counted in that bucket (le is "less or equal")
      h.observe(0.75);
      h.observe(3);
      CHECK(r.render() ==
            "# HELP shopd_latency_seconds Latency.\n"
            "# TYPE shopd_latency_seconds histogram\n"
            "shopd_latency_seconds_bucket{route=\"/a\",le=\"0.5\"} 2\n"
            "shopd_latency_seconds_bucket{route=\"/a\",le=\"1\"} 3\n"
            "shopd_latency_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4\n"
            "shopd_latency_seconds_sum{route=\"/a\"} 4.5\n"
            "shopd_latency_seconds_count{route=\"/a\"} 4\n");
      const auto snap = h.read();
      CHECK(snap.cumulative_counts == std::vector<std::uint64_t>{2, 3, 4});
      CHECK(snap.count == 4);
    }
    SUBCASE("without labels") {
      auto& f = r.histogram_family("shopd_size_bytes", "Sizes.", {}, {100, 1000});
      f.get().observe(50);
      CHECK(r.render() ==
            "# HELP shopd_size_bytes Sizes.\n"
            "# TYPE shopd_size_bytes histogram\n"
            "shopd_size_bytes_bucket{le=\"100\"} 1\n"
            "shopd_size_bytes_bucket{le=\"1000\"} 1\n"
            "shopd_size_bytes_bucket{le=\"+Inf\"} 1\n"
            "shopd_size_bytes_sum 50\n"
            "shopd_size_bytes_count 1\n");
    }
    SUBCASE("default latency buckets: 100 µs to 10 s, increasing") {
      const auto b = shopd::obs::default_latency_buckets();
      REQUIRE(b.size() >= 2);
      CHECK(b.front() == doctest::Approx(0.0001));
      CHECK(b.back() == doctest::Approx(10.0));
      CHECK(std::is_sorted(b.begin(), b.end()));
      auto& f = r.histogram_family("shopd_default_seconds", "Default buckets.");
      f.get().observe(0.00005);
      const auto text = r.render();
      CHECK(text.find("shopd_default_seconds_bucket{le=\"0.0001\"} 1\n") != std::string::npos);
      CHECK(text.find("shopd_default_seconds_bucket{le=\"0.00025\"} 1\n") != std::string::npos);
      CHECK(text.find("shopd_default_seconds_bucket{le=\"10\"} 1\n") != std::string::npos);
    }
    SUBCASE("bounds must be finite and strictly increasing") {
      CHECK_THROWS_AS(shopd::obs::histogram({1, 1}), std::invalid_argument);
      CHECK_THROWS_AS(shopd::obs::histogram({2, 1}), std::invalid_argument);
      CHECK_THROWS_AS(shopd::obs::histogram({std::numeric_limits<double>::quiet_NaN()}),
                      std::invalid_argument);
      shopd::obs::histogram trailing_inf({1, std::numeric_limits<double>::infinity()});
      CHECK(trailing_inf.read().upper_bounds == std::vector<double>{1});
    }
  }

  TEST_CASE("metrics: sample values are printed as Prometheus clients print them") {
    registry r;
    auto& g = r.gauge_family("shopd_values", "Values.", {"v"});
    g.with({"a"}).set(1234567);
    g.with({"b"}).set(0.0001);
    g.with({"c"}).set(0.00001);
    g.with({"d"}).set(1e21);
    g.with({"e"}).set(std::numeric_limits<double>::infinity());
    g.with({"f"}).set(std::nan(""));
    g.with({"g"}).set(-0.0);
    CHECK(r.render() ==
          "# HELP shopd_values Values.\n"
          "# TYPE shopd_values gauge\n"
          "shopd_values{v=\"a\"} 1234567\n"
          "shopd_values{v=\"b\"} 0.0001\n"
          "shopd_values{v=\"c\"} 1e-05\n"
          "shopd_values{v=\"d\"} 1e+21\n"
          "shopd_values{v=\"e\"} +Inf\n"
          "shopd_values{v=\"f\"} NaN\n"
          "shopd_values{v=\"g\"} 0\n");
  }

  TEST_CASE("metrics: the registry") {
    registry r;
    SUBCASE("families render sorted by name") {
      r.gauge_family("shopd_b", "B.");
      r.counter_family("shopd_a_total", "A.");
      const auto text = r.render();
      CHECK(text.find("shopd_a_total") < text.find("shopd_b"));
    }
    SUBCASE("asking again returns the same family") {
      auto& first = r.counter_family("shopd_x_total", "X.", {"k"});
      auto& again = r.counter_family("shopd_x_total", "X.", {"k"});
      CHECK(&first == &again);
      first.with({"v"}).inc();
      CHECK(again.with({"v"}).value() == 1);
    }
    SUBCASE("conflicting registrations are refused") {
      r.counter_family("shopd_x_total", "X.", {"k"});
      r.histogram_family("shopd_h_seconds", "H.", {}, {1, 2});
      CHECK_THROWS_AS(r.gauge_family("shopd_x_total", "X."), std::invalid_argument);
      CHECK_THROWS_AS(r.counter_family("shopd_x_total", "X.", {"other"}), std::invalid_argument);
      CHECK_THROWS_AS(r.histogram_family("shopd_h_seconds", "H.", {}, {1, 3}), std::invalid_argument);
    }
    SUBCASE("invalid names are refused") {
      CHECK_THROWS_AS(r.counter_family("", "."), std::invalid_argument);
      CHECK_THROWS_AS(r.counter_family("1abc", "."), std::invalid_argument);
      CHECK_THROWS_AS(r.counter_family("has-dash", "."), std::invalid_argument);
      CHECK_THROWS_AS(r.counter_family("shopd_ok", ".", {"__reserved"}), std::invalid_argument);
      CHECK_THROWS_AS(r.counter_family("shopd_ok", ".", {"a", "a"}), std::invalid_argument);
      CHECK_THROWS_AS(r.histogram_family("shopd_ok", ".", {"le"}), std::invalid_argument);
      CHECK_NOTHROW(r.counter_family("shopd:ok_total", ".", {"_fine1"}));
    }
    SUBCASE("a child needs one value per label") {
      auto& f = r.counter_family("shopd_y_total", "Y.", {"a", "b"});
      CHECK_THROWS_AS(f.with({"only one"}), std::invalid_argument);
      CHECK_THROWS_AS(f.get(), std::invalid_argument);
    }
  }

  TEST_CASE("metrics: collectors") {
    registry r;
    auto& depth = r.gauge_family("shopd_depth", "Depth.").get();
    SUBCASE("run before each render, in the order they were added, and stop once removed") {
      std::vector<int> calls;
      double source = 3;
      const auto first = r.add_collector([&] {
        calls.push_back(1);
        depth.set(source);
      });
      const auto second = r.add_collector([&] { calls.push_back(2); });
      CHECK(first != second);
      CHECK(r.render().find("shopd_depth 3\n") != std::string::npos);
      source = 5;
      CHECK(r.render().find("shopd_depth 5\n") != std::string::npos);
      CHECK(calls == std::vector<int>{1, 2, 1, 2});
      r.remove_collector(first);
      source = 7;
      CHECK(r.render().find("shopd_depth 5\n") != std::string::npos);
      CHECK(calls == std::vector<int>{1, 2, 1, 2, 2});
      r.remove_collector(first);  // twice, or an unknown id: ignored
      r.remove_collector(12345);
    }
    SUBCASE("a collector may use families it holds while renders run on other threads") {
      const auto id = r.add_collector([&] { depth.inc(); });
      std::thread other([&] {
        for (int i = 0; i < 100; ++i) (void)r.render();
      });
      for (int i = 0; i < 100; ++i) (void)r.render();
      other.join();
      r.remove_collector(id);
      CHECK(depth.value() == 200);
    }
  }
}
