#include "shopd/app/sign.hpp"

#include "shopd/bus/signature.hpp"

#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace fs = std::filesystem;
using shopd::test::temp_dir;

namespace {

constexpr std::string_view url = "http://127.0.0.1:3001/api/webhook";

shopd::sign_options options(std::string body_arg) {
  shopd::sign_options o;
  o.settings.qstash_current_signing_key = "sig_cli_current";
  o.settings.qstash_next_signing_key = "sig_cli_next";
  o.url = url;
  o.body_arg = std::move(body_arg);
  return o;
}

struct run_result {
  int code;
  std::string out;
  std::string err;
};

run_result run(const shopd::sign_options& o, const std::string& stdin_text = {}) {
  std::istringstream in(stdin_text);
  std::ostringstream out;
  std::ostringstream err;
  const int code = shopd::sign(o, in, out, err);
  return {code, out.str(), err.str()};
}

// The printed token (without its newline) verifies for `body` under the given keys.
std::string verify_printed(const run_result& r, std::string_view body, const shopd::sign_options& o) {
  REQUIRE(r.code == 0);
  REQUIRE(r.out.ends_with('\n'));
  const std::string token = r.out.substr(0, r.out.size() - 1);
  shopd::bus::verify_options opts;
  opts.expected_url = o.url;
  const auto v =
      shopd::bus::verify(token, {o.settings.qstash_current_signing_key, o.settings.qstash_next_signing_key},
                         body, std::chrono::system_clock::now(), opts);
  return v ? (v->key == shopd::bus::signing_key_slot::current ? "current" : "next")
           : std::string(shopd::bus::to_string(v.error()));
}

}  // namespace

TEST_SUITE("app/sign") {
  TEST_CASE("a literal body") {
    const auto o = options(R"({"n":1})");
    const auto r = run(o);
    CHECK(r.err.empty());
    CHECK(verify_printed(r, R"({"n":1})", o) == "current");
  }

  TEST_CASE("an empty literal body") {
    const auto o = options("");
    CHECK(verify_printed(run(o), "", o) == "current");
  }

  TEST_CASE("the body from stdin, binary safe") {
    const std::string body("line1\r\nline2\0\xff", 14);
    const auto o = options("@-");
    CHECK(verify_printed(run(o, body), body, o) == "current");
  }

  TEST_CASE("the body from a file, byte for byte") {
    temp_dir dir;
    const fs::path file = dir.path() / "body.json";
    const std::string body = "{\"a\":\"b\"}\n\n";
    std::ofstream(file, std::ios::binary) << body;
    const auto o = options("@" + file.string());
    const auto r = run(o);
    CHECK(verify_printed(r, body, o) == "current");
    CHECK(verify_printed(r, "{\"a\":\"b\"}\n", o) == "body_mismatch");
  }

  TEST_CASE("signing with the next key") {
    auto o = options("x");
    o.key = "next";
    CHECK(verify_printed(run(o), "x", o) == "next");
  }

  TEST_CASE("errors are one line on stderr and exit code 2") {
    temp_dir dir;
    auto o = options("x");
    std::string mention;
    SUBCASE("current key not configured") {
      o.settings.qstash_current_signing_key.clear();
      mention = "QSTASH_CURRENT_SIGNING_KEY";
    }
    SUBCASE("next key not configured") {
      o.settings.qstash_next_signing_key.clear();
      o.key = "next";
      mention = "QSTASH_NEXT_SIGNING_KEY";
    }
    SUBCASE("unknown key name") {
      o.key = "previous";
      mention = "previous";
    }
    SUBCASE("no URL") {
      o.url.clear();
      mention = "--url";
    }
    SUBCASE("missing body file") {
      o.body_arg = "@" + (dir.path() / "absent.json").string();
      mention = "absent.json";
    }
    SUBCASE("body file is a directory") {
      o.body_arg = "@" + dir.path().string();
      mention = dir.path().string();
    }
    const auto r = run(o);
    CHECK(r.code == 2);
    CHECK(r.out.empty());
    CHECK(r.err.starts_with("shopd sign: "));
    CHECK(r.err.find(mention) != std::string::npos);
    CHECK(r.err.find('\n') == r.err.size() - 1);
  }
}
