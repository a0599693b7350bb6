#include "shopd/bus/local_relay.hpp"

#include <doctest/doctest.h>

using shopd::bus::local_relay;
using shopd::bus::names_local_listener;

TEST_SUITE("bus/local_relay") {
  TEST_CASE("names_local_listener: QSTASH_URL naming this process's relay listener") {
    SUBCASE("loopback, as configured by default") {
      CHECK(names_local_listener("http://127.0.0.1:8080", "127.0.0.1", 8080));
      CHECK(names_local_listener("http://127.0.0.1:8080/", "127.0.0.1", 8080));
      CHECK(names_local_listener("http://localhost:8080", "127.0.0.1", 8080));
      CHECK(names_local_listener("http://LocalHost:8080", "127.0.0.1", 8080));
      CHECK(names_local_listener("HTTP://127.0.0.1:8080", "127.0.0.1", 8080));
      CHECK(names_local_listener("http://127.0.0.1", "127.0.0.1", 80));
    }
    SUBCASE("a listener on every interface is reached through loopback or its own address") {
      CHECK(names_local_listener("http://127.0.0.1:8080", "0.0.0.0", 8080));
      CHECK(names_local_listener("http://localhost:8080", "::", 8080));
      CHECK(names_local_listener("http://[::1]:8080", "::", 8080));
      CHECK(names_local_listener("http://10.1.2.3:8080", "10.1.2.3", 8080));
      CHECK(names_local_listener("http://[::1]:8080", "::1", 8080));
      CHECK(names_local_listener("http://localhost:8080", "::1", 8080));
    }
    SUBCASE("anything else is another relay, or Upstash") {
      CHECK_FALSE(names_local_listener("https://qstash.upstash.io", "127.0.0.1", 443));
      CHECK_FALSE(names_local_listener("https://127.0.0.1:8080", "127.0.0.1", 8080));  // TLS in front
      CHECK_FALSE(names_local_listener("http://127.0.0.1:8081", "127.0.0.1", 8080));
      CHECK_FALSE(names_local_listener("http://127.0.0.1", "127.0.0.1", 8080));
      CHECK_FALSE(names_local_listener("http://127.0.0.2:8080", "127.0.0.1", 8080));
      CHECK_FALSE(names_local_listener("http://relay.internal:8080", "0.0.0.0", 8080));
      CHECK_FALSE(names_local_listener("http://[::1]:8080", "127.0.0.1", 8080));  // not bound there
      CHECK_FALSE(names_local_listener("http://127.0.0.1:8080", "::1", 8080));
      CHECK_FALSE(names_local_listener("http://127.0.0.1:8080", "10.1.2.3", 8080));
      CHECK_FALSE(names_local_listener("http://127.0.0.1:8080/proxy", "127.0.0.1", 8080));
      CHECK_FALSE(names_local_listener("http://127.0.0.1:8080?x=1", "127.0.0.1", 8080));
      CHECK_FALSE(names_local_listener("http://user:pw@127.0.0.1:8080", "127.0.0.1", 8080));
      CHECK_FALSE(names_local_listener("http://127.0.0.1:0", "127.0.0.1", 0));
      CHECK_FALSE(names_local_listener("127.0.0.1:8080", "127.0.0.1", 8080));
      CHECK_FALSE(names_local_listener("", "127.0.0.1", 8080));
    }
  }

  TEST_CASE("local_relay: used only once offered and enabled") {
    local_relay link;
    CHECK(link.get() == nullptr);
    link.enable();  // nothing offered: still the HTTP way
    CHECK(link.get() == nullptr);
    int calls = 0;
    link.offer([&](std::span<const shopd::bus::batch_entry>) {
      ++calls;
      return shopd::bus::batch_result(std::vector<shopd::bus::publish_result>{});
    });
    CHECK(link.get() == nullptr);
    link.enable();
    REQUIRE(link.get() != nullptr);
    CHECK((*link.get())({})->empty());
    CHECK(calls == 1);
  }
}
