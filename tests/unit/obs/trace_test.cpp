#include "shopd/obs/trace.hpp"

#include "shopd/obs/log.hpp"

#include "capture_stderr.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <thread>

namespace {

using shopd::obs::trace_context;

constexpr std::string_view example = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

bool lower_hex(std::string_view s) {
  return s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

}  // namespace

TEST_SUITE("obs/trace") {
  TEST_CASE("a valid traceparent is parsed and written back unchanged") {
    const auto t = trace_context::parse(example);
    REQUIRE(t.has_value());
    CHECK(t->trace_id() == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(t->parent_id() == "00f067aa0ba902b7");
    CHECK(t->flags() == 0x01);
    CHECK(t->sampled());
    CHECK(t->traceparent() == example);

    const auto unsampled = trace_context::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    REQUIRE(unsampled.has_value());
    CHECK_FALSE(unsampled->sampled());
  }

  TEST_CASE("invalid values are refused") {
    const char* const invalid[] = {
        "",
        "00",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",    // flags too short
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",  // v00 with a trailing field
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",  // v00 must be 55 characters
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   // all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   // all-zero parent id
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   // upper-case trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",   // upper-case parent id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",   // upper-case flags
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",   // not hex
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // wrong separator
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",   // wrong separator
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",   // wrong separator
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // forbidden version
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // version not hex
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  // later version: 56th not '-'
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-701",   // fields shifted
    };
    for (const char* v : invalid) {
      CAPTURE(v);
      CHECK_FALSE(trace_context::parse(v).has_value());
    }
  }

  TEST_CASE("a later version is read by its version-00 prefix") {
    const auto t =
        trace_context::parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds");
    REQUIRE(t.has_value());
    CHECK(t->trace_id() == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(t->traceparent() == example);  // sent on as version 00
    CHECK(trace_context::parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").has_value());
  }

  TEST_CASE("a child keeps the trace id and the sampled flag, with a fresh parent id") {
    const auto parent = trace_context::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03");
    REQUIRE(parent.has_value());
    std::set<std::string> parents{std::string(parent->parent_id())};
    for (int i = 0; i < 50; ++i) {
      const auto child = parent->child();
      CHECK(child.trace_id() == parent->trace_id());
      CHECK(lower_hex(child.parent_id()));
      CHECK(child.flags() == 0x01);  // unknown flag bits are not passed on
      parents.emplace(child.parent_id());
      const auto reparsed = trace_context::parse(child.traceparent());
      REQUIRE(reparsed.has_value());
      CHECK(*reparsed == child);
    }
    CHECK(parents.size() == 51);  // 64 random bits each: a repeat would be a broken generator
  }

  TEST_CASE("a new trace is random, sampled and valid") {
    std::set<std::string> ids;
    for (int i = 0; i < 50; ++i) {
      const auto t = trace_context::start();
      CHECK(t.sampled());
      CHECK(lower_hex(t.trace_id()));
      CHECK(trace_context::parse(t.traceparent()) == t);
      ids.emplace(t.trace_id());
    }
    CHECK(ids.size() == 50);
  }

  TEST_CASE("trace_scope makes a context current on its thread only, and nests") {
    CHECK(shopd::obs::current_trace() == nullptr);
    const auto outer = trace_context::start();
    const auto inner = trace_context::start();
    {
      const shopd::obs::trace_scope a(outer);
      CHECK(shopd::obs::current_trace() == &outer);
      {
        const shopd::obs::trace_scope b(inner);
        CHECK(shopd::obs::current_trace() == &inner);
      }
      CHECK(shopd::obs::current_trace() == &outer);
      const shopd::obs::trace_context* elsewhere = &outer;
      std::thread([&] { elsewhere = shopd::obs::current_trace(); }).join();
      CHECK(elsewhere == nullptr);
    }
    CHECK(shopd::obs::current_trace() == nullptr);
  }

  TEST_CASE("log lines written under a trace_scope carry its trace_id") {
    shopd::obs::configure(shopd::obs::level::info, shopd::obs::format::text);
    const auto t = *trace_context::parse(example);
    const std::string out = shopd::test::capture_stderr([&](const auto&) {
      shopd::obs::info("outside");
      const shopd::obs::trace_scope scope(t);
      shopd::obs::info("inside", {{"k", "v"}});
      shopd::obs::info("explicit", {{"trace_id", "given"}});
    });
    CHECK(out.find("outside\n") != std::string::npos);
    CHECK(out.find("inside k=v trace_id=4bf92f3577b34da6a3ce929d0e0e4736\n") != std::string::npos);
    CHECK(out.find("explicit trace_id=given\n") != std::string::npos);  // never twice
  }
}
