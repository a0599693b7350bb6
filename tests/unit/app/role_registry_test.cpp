#include "shopd/app/role.hpp"

#include "shopd/config/config.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace {

std::vector<std::string> names(const std::vector<const shopd::app::role_entry*>& entries) {
  std::vector<std::string> out;
  for (const auto* e : entries) out.emplace_back(e->name);
  return out;
}

std::vector<std::string> resolve(std::vector<std::string> values) {
  return names(shopd::app::resolve_roles(values));
}

}  // namespace

TEST_SUITE("app/role_registry") {
  TEST_CASE("the table names every role of the design, each with its own port key") {
    std::vector<std::string> all;
    for (const auto& r : shopd::app::roles()) {
      all.emplace_back(r.name);
      CHECK(static_cast<bool>(r.make));
      CHECK(static_cast<bool>(r.port));
    }
    CHECK(all == std::vector<std::string>{"orders", "email", "inventory", "analytics", "relay"});
  }

  TEST_CASE("resolving --role values") {
    SUBCASE("a single name") {
      CHECK(resolve({"email"}) == std::vector<std::string>{"email"});
    }
    SUBCASE("a comma list, in table order, spaces allowed") {
      CHECK(resolve({"relay, orders"}) == std::vector<std::string>{"orders", "relay"});
    }
    SUBCASE("repeated flags and duplicates collapse") {
      CHECK(resolve({"orders", "orders,email"}) == std::vector<std::string>{"orders", "email"});
    }
    SUBCASE("all") {
      CHECK(resolve({"all"}) ==
            std::vector<std::string>{"orders", "email", "inventory", "analytics", "relay"});
    }
  }

  TEST_CASE("bad --role values fail and list the valid names") {
    auto message_for = [](std::vector<std::string> values) {
      try {
        (void)shopd::app::resolve_roles(values);
      } catch (const shopd::config::config_error& e) {
        return std::string(e.what());
      }
      return std::string("no error");
    };
    SUBCASE("unknown") {
      const auto m = message_for({"orders,shipping"});
      CHECK(m.find("unknown role \"shipping\"") != std::string::npos);
      CHECK(m.find("orders, email, inventory, analytics, relay, all") != std::string::npos);
    }
    SUBCASE("empty element") {
      CHECK(message_for({"orders,"}).find("empty role name") != std::string::npos);
    }
    SUBCASE("nothing") {
      CHECK(message_for({}).find("--role is required") != std::string::npos);
    }
  }
}
