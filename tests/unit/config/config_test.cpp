#include "shopd/config/config.hpp"

#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace cfg = shopd::config;
using shopd::test::temp_dir;

namespace {

/// The config_error message load() throws for `src`, or "" when it loads.
std::string load_error(const cfg::sources& src) {
  try {
    (void)cfg::load(src);
  } catch (const cfg::config_error& e) {
    return e.what();
  }
  return {};
}

std::string env_error(const std::string& key, const std::string& value) {
  cfg::sources src;
  src.environment[key] = value;
  return load_error(src);
}

cfg::settings with_env(const std::string& key, const std::string& value) {
  cfg::sources src;
  src.environment[key] = value;
  return cfg::load(src);
}

const cfg::key_spec& key(std::string_view name) {
  const auto* k = cfg::find_key(name);
  REQUIRE(k != nullptr);
  return *k;
}

std::size_t count(std::string_view haystack, std::string_view needle) {
  std::size_t n = 0;
  for (auto pos = haystack.find(needle); pos != std::string_view::npos; pos = haystack.find(needle, pos + 1))
    ++n;
  return n;
}

/// True when `text` has no '|' at all and no '<', '>' or '*' outside `code spans`, where Markdown
/// would read them as HTML or emphasis.
bool markdown_safe(std::string_view text) {
  if (text.find('|') != std::string_view::npos) return false;
  bool in_code = false;
  for (char c : text) {
    if (c == '`') in_code = !in_code;
    if (!in_code && (c == '<' || c == '>' || c == '*')) return false;
  }
  return !in_code;
}

}  // namespace

TEST_SUITE("config/config") {
  TEST_CASE("the key table is the documented one") {
    struct expected_key {
      std::string_view name;
      cfg::kind type;
      std::string_view default_value;
      std::int64_t min, max;
      std::string_view choices;
      std::string_view group;
    };
    using k = cfg::kind;
    const expected_key expected[] = {
        {"DATABASE_URL", k::url, "sqlite:var/shopd.db", 0, 0, "sqlite|postgresql|postgres", "Database"},
        {"DATABASE_POOL_SIZE", k::integer, "8", 1, 256, "", "Database"},
        {"DATABASE_BUSY_TIMEOUT_MS", k::integer, "5000", 0, 600000, "", "Database"},
        {"DATABASE_SQLITE_SYNCHRONOUS", k::choice, "full", 0, 0, "full|normal", "Database"},
        {"HTTP_BIND", k::string, "127.0.0.1", 0, 0, "", "HTTP"},
        {"ORDERS_PORT", k::integer, "3001", 0, 65535, "", "HTTP"},
        {"EMAIL_PORT", k::integer, "3002", 0, 65535, "", "HTTP"},
        {"INVENTORY_PORT", k::integer, "3003", 0, 65535, "", "HTTP"},
        {"ANALYTICS_PORT", k::integer, "3004", 0, 65535, "", "HTTP"},
        {"RELAY_PORT", k::integer, "8080", 0, 65535, "", "HTTP"},
        {"HTTP_BODY_LIMIT", k::integer, "1048576", 1024, 67108864, "", "HTTP"},
        {"HTTP_HEADER_TIMEOUT_MS", k::integer, "10000", 100, 600000, "", "HTTP"},
        {"HTTP_READ_TIMEOUT_MS", k::integer, "30000", 100, 3600000, "", "HTTP"},
        {"HTTP_WRITE_TIMEOUT_MS", k::integer, "30000", 100, 3600000, "", "HTTP"},
        {"HTTP_IDLE_TIMEOUT_MS", k::integer, "60000", 100, 3600000, "", "HTTP"},
        {"HTTP_MAX_CONNECTIONS", k::integer, "10000", 1, 1000000, "", "HTTP"},
        {"SHUTDOWN_TIMEOUT_MS", k::integer, "10000", 0, 600000, "", "HTTP"},
        {"SHUTDOWN_DRAIN_DELAY_MS", k::integer, "5000", 0, 600000, "", "HTTP"},
        {"IO_THREADS", k::integer, "0", 0, 256, "", "HTTP"},
        {"WORKER_THREADS", k::integer, "8", 1, 256, "", "HTTP"},
        {"CORS_ALLOWED_ORIGINS", k::string, "", 0, 0, "", "CORS"},
        {"CORS_ALLOWED_HEADERS", k::string, "Content-Type, Authorization", 0, 0, "", "CORS"},
        {"CORS_ALLOW_CREDENTIALS", k::boolean, "false", 0, 0, "", "CORS"},
        {"CORS_MAX_AGE_S", k::integer, "600", 0, 86400, "", "CORS"},
        {"QSTASH_URL", k::url, "http://127.0.0.1:8080", 0, 0, "http|https", "QStash"},
        {"QSTASH_TOKEN", k::secret, "", 0, 0, "", "QStash"},
        {"QSTASH_CURRENT_SIGNING_KEY", k::secret, "", 0, 0, "", "QStash"},
        {"QSTASH_NEXT_SIGNING_KEY", k::secret, "", 0, 0, "", "QStash"},
        {"SIGNATURE_CLOCK_TOLERANCE_S", k::integer, "5", 0, 300, "", "QStash"},
        {"RELAY_NODE_ID", k::string, "", 0, 0, "", "Relay"},
        {"RELAY_CONCURRENCY", k::integer, "256", 1, 10000, "", "Relay"},
        {"RELAY_PER_DESTINATION_CONCURRENCY", k::integer, "64", 1, 10000, "", "Relay"},
        {"RELAY_DEFAULT_RETRIES", k::integer, "3", 0, 100, "", "Relay"},
        {"RELAY_MAX_RETRIES", k::integer, "20", 0, 100, "", "Relay"},
        {"RELAY_BACKOFF_SCALE", k::integer, "1000", 0, 1000000, "", "Relay"},
        {"RELAY_DELIVERY_TIMEOUT_MS", k::integer, "30000", 100, 7200000, "", "Relay"},
        {"RELAY_DEDUP_WINDOW_S", k::integer, "600", 1, 7776000, "", "Relay"},
        {"RELAY_POLL_INTERVAL_MS", k::integer, "200", 10, 60000, "", "Relay"},
        {"RELAY_RETENTION_S", k::integer, "604800", 60, 31536000, "", "Relay"},
        {"ORDERS_SERVICE_URL", k::url, "http://127.0.0.1:3001", 0, 0, "http|https", "Services"},
        {"EMAIL_SERVICE_URL", k::url, "http://127.0.0.1:3002", 0, 0, "http|https", "Services"},
        {"INVENTORY_SERVICE_URL", k::url, "http://127.0.0.1:3003", 0, 0, "http|https", "Services"},
        {"ANALYTICS_SERVICE_URL", k::url, "http://127.0.0.1:3004", 0, 0, "http|https", "Services"},
        {"MAIL_TRANSPORT", k::string, "file:var/mail", 0, 0, "", "Mail"},
        {"SMTP_URL", k::url, "", 0, 0, "smtp|smtps", "Mail"},
        {"MAIL_FROM", k::string, "shopd <shop@localhost>", 0, 0, "", "Mail"},
        {"SHOPD_API_TOKEN", k::secret, "", 0, 0, "", "API and logs"},
        {"LOG_LEVEL", k::choice, "info", 0, 0, "debug|info|warn|error", "API and logs"},
        {"LOG_FORMAT", k::choice, "text", 0, 0, "json|text", "API and logs"},
    };
    const auto table = cfg::keys();
    REQUIRE(table.size() == std::size(expected));
    for (std::size_t i = 0; i < table.size(); ++i) {
      CAPTURE(expected[i].name);
      CHECK(table[i].name == expected[i].name);
      CHECK(table[i].type == expected[i].type);
      CHECK(table[i].default_value == expected[i].default_value);
      CHECK(table[i].min == expected[i].min);
      CHECK(table[i].max == expected[i].max);
      CHECK(table[i].choices == expected[i].choices);
      CHECK(table[i].group == expected[i].group);
    }
  }

  TEST_CASE("the key table is consistent") {
    std::set<std::string_view> names;
    std::vector<std::string_view> groups_seen;
    std::vector<cfg::field> targets;
    for (const auto& k : cfg::keys()) {
      CAPTURE(k.name);
      CHECK(names.insert(k.name).second);
      CHECK(std::all_of(k.name.begin(), k.name.end(),
                        [](char c) { return (c >= 'A' && c <= 'Z') || c == '_'; }));
      CHECK(cfg::find_key(k.name) == &k);

      // One sentence, and nothing that would break a Markdown table cell.
      CHECK(k.help.size() > 20);
      CHECK(k.help.ends_with('.'));
      CHECK(k.help.find('\n') == std::string_view::npos);
      CHECK(markdown_safe(k.help));
      CHECK(markdown_safe(k.rule));

      // Groups are contiguous, so --help and the README show each once.
      if (groups_seen.empty() || groups_seen.back() != k.group) {
        CHECK(std::find(groups_seen.begin(), groups_seen.end(), k.group) == groups_seen.end());
        groups_seen.push_back(k.group);
      }

      // The field's type matches the kind, and no two keys write the same field.
      switch (k.type) {
        case cfg::kind::integer:
          CHECK(std::holds_alternative<std::int64_t cfg::settings::*>(k.target));
          CHECK(k.min <= k.max);
          break;
        case cfg::kind::boolean:
          CHECK(std::holds_alternative<bool cfg::settings::*>(k.target));
          break;
        case cfg::kind::choice:
        case cfg::kind::url:
          CHECK(!k.choices.empty());
          CHECK(std::holds_alternative<std::string cfg::settings::*>(k.target));
          break;
        case cfg::kind::string:
        case cfg::kind::secret:
          CHECK(std::holds_alternative<std::string cfg::settings::*>(k.target));
          break;
      }
      CHECK((k.check == nullptr) == k.rule.empty());
      CHECK(std::find(targets.begin(), targets.end(), k.target) == targets.end());
      targets.push_back(k.target);
    }
    CHECK(cfg::find_key("NOT_A_KEY") == nullptr);
    CHECK(cfg::find_key("log_level") == nullptr);
  }

  TEST_CASE("the defaults load and are what the table says") {
    const auto s = cfg::load({});
    CHECK(s.database_url == "sqlite:var/shopd.db");
    CHECK(s.database_pool_size == 8);
    CHECK(s.http_bind == "127.0.0.1");
    CHECK(s.orders_port == 3001);
    CHECK(s.relay_port == 8080);
    CHECK(s.http_body_limit == 1048576);
    CHECK(s.io_threads == 0);
    CHECK(s.cors_allowed_origins.empty());
    CHECK(s.cors_allowed_headers == "Content-Type, Authorization");
    CHECK(s.cors_allow_credentials == false);
    CHECK(s.qstash_url == "http://127.0.0.1:8080");
    CHECK(s.qstash_token.empty());
    CHECK(s.analytics_service_url == "http://127.0.0.1:3004");
    CHECK(s.mail_transport == "file:var/mail");
    CHECK(s.mail_from == "shopd <shop@localhost>");
    CHECK(s.log_level == "info");
    CHECK(s.log_format == "text");
    for (const auto& k : cfg::keys()) {
      CAPTURE(k.name);
      CHECK(cfg::display_value(s, k) == k.default_value);
    }
  }

  TEST_CASE("precedence: default < env file < environment < flags") {
    temp_dir dir;
    const auto file = dir.write("shopd.env",
                                "LOG_LEVEL=warn\n"
                                "WORKER_THREADS=2\n"
                                "DATABASE_POOL_SIZE=16\n"
                                "HTTP_BIND=0.0.0.0\n"
                                "CORS_ALLOW_CREDENTIALS=on\n");
    cfg::sources src;
    src.env_file = file;
    src.environment = {{"LOG_LEVEL", "error"}, {"WORKER_THREADS", "3"}, {"HTTP_BIND", "::1"}};
    src.flags = {{"LOG_LEVEL", "debug"}, {"LOG_FORMAT", "json"}};

    const auto s = cfg::load(src);
    CHECK(s.log_level == "debug");               // flag over environment over file
    CHECK(s.log_format == "json");               // flag over default
    CHECK(s.worker_threads == 3);                // environment over file
    CHECK(s.http_bind == "::1");                 // environment over file
    CHECK(s.database_pool_size == 16);           // file over default
    CHECK(s.cors_allow_credentials == true);     // file over default
    CHECK(s.relay_port == 8080);                 // default
    CHECK(s.mail_transport == "file:var/mail");  // default

    SUBCASE("without flags the environment wins") {
      src.flags.clear();
      CHECK(cfg::load(src).log_level == "error");
    }
    SUBCASE("without flags and environment the file wins") {
      src.flags.clear();
      src.environment.clear();
      const auto t = cfg::load(src);
      CHECK(t.log_level == "warn");
      CHECK(t.worker_threads == 2);
    }
    SUBCASE("a later line of the file wins over an earlier one") {
      src = {};
      src.env_file = dir.write("twice.env", "ORDERS_PORT=4001\nORDERS_PORT=5001\n");
      CHECK(cfg::load(src).orders_port == 5001);
    }
  }

  TEST_CASE("a bad value fails even when a later source overrides it") {
    temp_dir dir;
    cfg::sources src;
    src.env_file = dir.write("orders.env", "# orders\nLOG_LEVEL=info\n\nHTTP_BODY_LIMIT=10\n");
    src.flags = {{"HTTP_BODY_LIMIT", "2048"}};
    CHECK(load_error(src) ==
          "HTTP_BODY_LIMIT=\"10\" from " + src.env_file->string() + ":4: must be between 1024 and 67108864");
  }

  TEST_CASE("errors name key, value and source on one line") {
    SUBCASE("environment") {
      CHECK(env_error("LOG_LEVEL", "verbose") ==
            "LOG_LEVEL=\"verbose\" from the environment: must be one of debug|info|warn|error");
    }
    SUBCASE("flag") {
      cfg::sources src;
      src.flags = {{"WORKER_THREADS", "x"}};
      CHECK(load_error(src) == "--worker-threads=\"x\": not an integer");
    }
    SUBCASE("env file") {
      temp_dir dir;
      cfg::sources src;
      src.env_file = dir.write("a.env", "LOG_FORMAT=xml\n");
      CHECK(load_error(src) ==
            "LOG_FORMAT=\"xml\" from " + src.env_file->string() + ":1: must be one of json|text");
    }
    SUBCASE("control characters are escaped, never printed raw") {
      const auto msg = env_error("LOG_LEVEL", "info\nerror\x01\"");
      CHECK(msg ==
            R"(LOG_LEVEL="info\nerror\x01\"" from the environment: must not contain control characters)");
    }
    SUBCASE("long values are cut short") {
      const auto msg = env_error("MAIL_FROM", std::string(500, 'x'));
      CHECK(msg.size() < 250);
      CHECK(msg.find("...\" from the environment") != std::string::npos);
    }
  }

  TEST_CASE("integers") {
    SUBCASE("bounds are inclusive, negatives parse") {
      CHECK(with_env("DATABASE_POOL_SIZE", "1").database_pool_size == 1);
      CHECK(with_env("DATABASE_POOL_SIZE", "256").database_pool_size == 256);
      CHECK(with_env("ORDERS_PORT", "0").orders_port == 0);
      CHECK(with_env("ORDERS_PORT", "65535").orders_port == 65535);
      CHECK(with_env("SHUTDOWN_TIMEOUT_MS", "-0").shutdown_timeout_ms == 0);
    }
    struct bad_case {
      std::string_view key, value, reason;
    };
    const bad_case cases[] = {
        {"WORKER_THREADS", "x", "not an integer"},
        {"WORKER_THREADS", "12abc", "not an integer"},
        {"WORKER_THREADS", "1.5", "not an integer"},
        {"WORKER_THREADS", "+4", "not an integer"},
        {"WORKER_THREADS", " 4", "not an integer"},
        {"WORKER_THREADS", "4 ", "not an integer"},
        {"WORKER_THREADS", "0x10", "not an integer"},
        {"WORKER_THREADS", "-", "not an integer"},
        {"WORKER_THREADS", "", "must not be empty"},
        {"WORKER_THREADS", "0", "must be between 1 and 256"},
        {"WORKER_THREADS", "257", "must be between 1 and 256"},
        {"ORDERS_PORT", "-1", "must be between 0 and 65535"},
        {"ORDERS_PORT", "65536", "must be between 0 and 65535"},
        {"HTTP_BODY_LIMIT", "10", "must be between 1024 and 67108864"},
        {"HTTP_BODY_LIMIT", "9223372036854775807", "must be between 1024 and 67108864"},
        {"HTTP_BODY_LIMIT", "9223372036854775808", "must be between 1024 and 67108864"},
        {"HTTP_BODY_LIMIT", "-99999999999999999999", "must be between 1024 and 67108864"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.value);
      CHECK(env_error(std::string(c.key), std::string(c.value)) ==
            std::string(c.key) + "=\"" + std::string(c.value) +
                "\" from the environment: " + std::string(c.reason));
    }
  }

  TEST_CASE("booleans") {
    for (const char* yes : {"true", "TRUE", "True", "1", "yes", "Yes", "on", "ON"}) {
      CAPTURE(yes);
      CHECK(with_env("CORS_ALLOW_CREDENTIALS", yes).cors_allow_credentials == true);
    }
    for (const char* no : {"false", "FALSE", "0", "no", "NO", "off", "Off"}) {
      CAPTURE(no);
      CHECK(with_env("CORS_ALLOW_CREDENTIALS", no).cors_allow_credentials == false);
    }
    for (const char* bad : {"2", "y", "n", "enable", "truee", " true"}) {
      CAPTURE(bad);
      CHECK(env_error("CORS_ALLOW_CREDENTIALS", bad) ==
            "CORS_ALLOW_CREDENTIALS=\"" + std::string(bad) +
                "\" from the environment: not a boolean (true/false, 1/0, yes/no, on/off)");
    }
    CHECK(env_error("CORS_ALLOW_CREDENTIALS", "") ==
          "CORS_ALLOW_CREDENTIALS=\"\" from the environment: must not be empty");
  }

  TEST_CASE("choices are exact") {
    CHECK(with_env("LOG_LEVEL", "warn").log_level == "warn");
    CHECK(with_env("LOG_FORMAT", "json").log_format == "json");
    for (const char* bad : {"INFO", "verbose", "info ", "inf", "debug|info"}) {
      CAPTURE(bad);
      CHECK(env_error("LOG_LEVEL", bad) ==
            "LOG_LEVEL=\"" + std::string(bad) +
                "\" from the environment: must be one of debug|info|warn|error");
    }
    CHECK(env_error("LOG_LEVEL", "") == "LOG_LEVEL=\"\" from the environment: must not be empty");
  }

  TEST_CASE("URLs") {
    SUBCASE("accepted") {
      for (const char* ok : {"sqlite:var/x.db", "sqlite:/abs/x.db", "sqlite::memory:", "SQLITE:x.db",
                             "postgresql://shop:pw@db.internal:5432/shop?sslmode=require",
                             "postgres://db/shop", "postgresql://[::1]/shop"}) {
        CAPTURE(ok);
        CHECK(with_env("DATABASE_URL", ok).database_url == ok);
      }
      CHECK(with_env("QSTASH_URL", "https://qstash.upstash.io").qstash_url == "https://qstash.upstash.io");
      CHECK(with_env("ORDERS_SERVICE_URL", "http://orders.internal").orders_service_url ==
            "http://orders.internal");
      CHECK(with_env("SMTP_URL", "smtps://u:p@mail.example.com:465").smtp_url ==
            "smtps://u:p@mail.example.com:465");
      CHECK(with_env("SMTP_URL", "").smtp_url.empty());
    }
    struct bad_case {
      std::string_view key, value, reason;
    };
    const bad_case cases[] = {
        {"DATABASE_URL", "mysql://db/shop", "URL scheme must be one of sqlite|postgresql|postgres"},
        {"DATABASE_URL", "var/shopd.db",
         "not a URL (e.g. sqlite:var/shopd.db, sqlite:/abs/path.db or sqlite::memory:)"},
        {"DATABASE_URL", "sqlite://host/x.db",
         "a sqlite: URL holds a path, not a host (e.g. sqlite:var/shopd.db, sqlite:/abs/path.db or "
         "sqlite::memory:)"},
        {"DATABASE_URL", "sqlite:",
         "a sqlite: URL needs a path (e.g. sqlite:var/shopd.db, sqlite:/abs/path.db or sqlite::memory:)"},
        {"DATABASE_URL", "postgresql:///shop",
         "URL needs a host (e.g. postgresql://user:password@host:5432/dbname)"},
        {"DATABASE_URL", "postgres:shop",
         "URL needs a host (e.g. postgresql://user:password@host:5432/dbname)"},
        {"DATABASE_URL", "", "must not be empty"},
        {"QSTASH_URL", "ftp://relay", "URL scheme must be one of http|https"},
        {"QSTASH_URL", "http://", "URL needs a host (e.g. http://127.0.0.1:3001)"},
        {"QSTASH_URL", "http://relay:99999", "URL port must be between 1 and 65535"},
        {"QSTASH_URL", "http://relay:0", "URL port must be between 1 and 65535"},
        {"QSTASH_URL", "http://re lay", "not a URL (e.g. http://127.0.0.1:3001)"},
        {"EMAIL_SERVICE_URL", "127.0.0.1:3002", "not a URL (e.g. http://127.0.0.1:3001)"},
        {"EMAIL_SERVICE_URL", "localhost:3002", "URL scheme must be one of http|https"},
        {"SMTP_URL", "http://mail", "URL scheme must be one of smtp|smtps"},
        {"SMTP_URL", "smtp:mail", "URL needs a host (e.g. smtp://user:password@host:587)"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.value);
      CHECK(env_error(std::string(c.key), std::string(c.value)) ==
            std::string(c.key) + "=\"" + std::string(c.value) +
                "\" from the environment: " + std::string(c.reason));
    }
  }

  TEST_CASE("HTTP_BIND takes an IP address literal") {
    for (const char* ok : {"0.0.0.0", "127.0.0.1", "192.168.10.20", "::", "::1", "fe80::1:2"}) {
      CAPTURE(ok);
      CHECK(with_env("HTTP_BIND", ok).http_bind == ok);
    }
    for (const char* bad : {"localhost", "256.1.1.1", "1.2.3", "[::1]", "127.0.0.1:80", "::g", ""}) {
      CAPTURE(bad);
      const std::string reason = *bad == '\0'
                                     ? "must not be empty"
                                     : "must be an IPv4 or IPv6 address such as 127.0.0.1, 0.0.0.0 or ::";
      CHECK(env_error("HTTP_BIND", bad) ==
            "HTTP_BIND=\"" + std::string(bad) + "\" from the environment: " + reason);
    }
  }

  TEST_CASE("MAIL_TRANSPORT is smtp or file:DIR") {
    CHECK(with_env("MAIL_TRANSPORT", "smtp").mail_transport == "smtp");
    CHECK(with_env("MAIL_TRANSPORT", "file:/var/spool/shopd").mail_transport == "file:/var/spool/shopd");
    for (const char* bad : {"file:", "file:  ", "smtp://mail", "SMTP", "sendmail", "file"}) {
      CAPTURE(bad);
      CHECK(env_error("MAIL_TRANSPORT", bad) ==
            "MAIL_TRANSPORT=\"" + std::string(bad) + "\" from the environment: must be smtp or file:DIR");
    }
  }

  TEST_CASE("MAIL_FROM holds an address") {
    for (const char* ok :
         {"shop@example.com", "Shop <shop@example.com>", "\"Shop, Inc.\" <orders@shop.example>", "<a@b>"}) {
      CAPTURE(ok);
      CHECK(with_env("MAIL_FROM", ok).mail_from == ok);
    }
    for (const char* bad : {"shop", "Shop <shop>", "Shop <@example.com>", "a@", "@b", "Shop <a@b> extra",
                            "Shop <a@b", "a b@c", "a@b@c", "Shop <<a@b>>"}) {
      CAPTURE(bad);
      CHECK(
          env_error("MAIL_FROM", bad) ==
          "MAIL_FROM=\"" + std::string(bad) +
              "\" from the environment: must be an address like shop@example.com or Name <shop@example.com>");
    }
    // A header injection attempt is refused before the address check sees it.
    CHECK(env_error("MAIL_FROM", "a@b\r\nBcc: x@y").ends_with("must not contain control characters"));
  }

  TEST_CASE("CORS lists") {
    CHECK(with_env("CORS_ALLOWED_ORIGINS", "*").cors_allowed_origins == "*");
    CHECK(with_env("CORS_ALLOWED_ORIGINS", "https://shop.example, http://localhost:5173")
              .cors_allowed_origins == "https://shop.example, http://localhost:5173");
    CHECK(with_env("CORS_ALLOWED_ORIGINS", "").cors_allowed_origins.empty());
    for (const char* bad : {"https://shop.example/", "*, https://a.example", "shop.example",
                            "https://a.example,,", "https://u@a.example", "https://a.example?x"}) {
      CAPTURE(bad);
      CHECK(
          env_error("CORS_ALLOWED_ORIGINS", bad) ==
          "CORS_ALLOWED_ORIGINS=\"" + std::string(bad) +
              "\" from the environment: must be * or comma-separated origins like https://shop.example.com");
    }
    CHECK(with_env("CORS_ALLOWED_HEADERS", "X-Request-Id,Content-Type").cors_allowed_headers ==
          "X-Request-Id,Content-Type");
    CHECK(env_error("CORS_ALLOWED_HEADERS", "Content Type") ==
          "CORS_ALLOWED_HEADERS=\"Content Type\" from the environment: must be comma-separated header names");
    CHECK(env_error("CORS_ALLOWED_HEADERS", "") ==
          "CORS_ALLOWED_HEADERS=\"\" from the environment: must not be empty");
  }

  TEST_CASE("secrets stay out of error text and display") {
    SUBCASE("secret keys display *** when set") {
      const auto s = with_env("QSTASH_TOKEN", "hunter2");
      CHECK(s.qstash_token == "hunter2");
      CHECK(cfg::display_value(s, key("QSTASH_TOKEN")) == "***");
      CHECK(cfg::display_value(s, key("QSTASH_NEXT_SIGNING_KEY")).empty());
    }
    SUBCASE("URL passwords display as ***") {
      auto s = with_env("SMTP_URL", "smtp://shop:hunter2@mail.example.com:587");
      CHECK(cfg::display_value(s, key("SMTP_URL")) == "smtp://shop:***@mail.example.com:587");
      s = with_env("DATABASE_URL", "postgresql://shop:hunter2@db/shop");
      CHECK(cfg::display_value(s, key("DATABASE_URL")) == "postgresql://shop:***@db/shop");
      // Without a password there is nothing to hide.
      s = with_env("SMTP_URL", "smtp://shop@mail.example.com");
      CHECK(cfg::display_value(s, key("SMTP_URL")) == "smtp://shop@mail.example.com");
      // An unescaped '@' or '/' in the password hides it all the same.
      s = with_env("DATABASE_URL", "postgresql://shop:hun@ter/2@db/shop");
      CHECK(cfg::display_value(s, key("DATABASE_URL")) == "postgresql://shop:***@db/shop");
    }
    SUBCASE("URL passwords never appear in errors") {
      CHECK(env_error("SMTP_URL", "http://shop:hunter2@mail") ==
            "SMTP_URL=\"http://shop:***@mail\" from the environment: URL scheme must be one of smtp|smtps");
      const auto msg = env_error("DATABASE_URL", "postgresql://shop:hun ter2@db/shop");
      CHECK(msg.find("hun") == std::string::npos);
      CHECK(msg.starts_with("DATABASE_URL=\"postgresql://shop:***@db/shop\" from the environment: "));
    }
    SUBCASE("a secret in a bad env file line is not echoed") {
      temp_dir dir;
      cfg::sources src;
      src.env_file = dir.write("s.env", "QSTASH_TOKEN='hunter2\n");
      const auto msg = load_error(src);
      CHECK(msg == src.env_file->string() + ":1: unterminated single quote");
    }
    SUBCASE("a secret with a control character is refused without showing it") {
      CHECK(env_error("SHOPD_API_TOKEN", "hunter2\n") ==
            "SHOPD_API_TOKEN=\"***\" from the environment: must not contain control characters");
    }
  }

  TEST_CASE("unknown keys") {
    temp_dir dir;
    cfg::sources src;
    SUBCASE("in the env file, with a suggestion") {
      src.env_file = dir.write("o.env", "LOG_LEVEL=info\n\nLOG_LEVL=debug\n");
      CHECK(load_error(src) == src.env_file->string() + ":3: unknown key LOG_LEVL (did you mean LOG_LEVEL?)");
    }
    SUBCASE("in the env file, in lower case") {
      src.env_file = dir.write("o.env", "worker_threads=2\n");
      CHECK(load_error(src) ==
            src.env_file->string() + ":1: unknown key worker_threads (did you mean WORKER_THREADS?)");
    }
    SUBCASE("in the env file, nothing close") {
      src.env_file = dir.write("o.env", "PATH=/usr/bin\n");
      CHECK(load_error(src) == src.env_file->string() + ":1: unknown key PATH");
    }
    SUBCASE("in the environment map") {
      src.environment = {{"QSTASH_TOKN", "x"}};
      CHECK(load_error(src) == "unknown key QSTASH_TOKN in the environment (did you mean QSTASH_TOKEN?)");
    }
    SUBCASE("in the flags map") {
      src.flags = {{"NOPE", "x"}};
      CHECK(load_error(src) == "unknown key NOPE given as a flag");
    }
  }

  TEST_CASE("a missing env file is an error naming it") {
    cfg::sources src;
    src.env_file = std::filesystem::temp_directory_path() / "shopd-config-test-no-such-dir" / "gone.env";
    CHECK(load_error(src) ==
          "cannot read env file " + src.env_file->string() + ": No such file or directory");
  }

  TEST_CASE("process_environment returns only known keys") {
    const char* saved = std::getenv("LOG_FORMAT");
    const std::optional<std::string> previous = saved ? std::optional<std::string>(saved) : std::nullopt;
    REQUIRE(::setenv("LOG_FORMAT", "json", 1) == 0);
    REQUIRE(::setenv("SHOPD_CONFIG_TEST_UNKNOWN", "1", 1) == 0);

    const auto env = cfg::process_environment();
    CHECK(env.at("LOG_FORMAT") == "json");
    CHECK(env.count("SHOPD_CONFIG_TEST_UNKNOWN") == 0);
    for (const auto& [name, value] : env) CHECK(cfg::find_key(name) != nullptr);

    ::unsetenv("SHOPD_CONFIG_TEST_UNKNOWN");
    if (previous)
      ::setenv("LOG_FORMAT", previous->c_str(), 1);
    else
      ::unsetenv("LOG_FORMAT");
  }

  TEST_CASE("display_value") {
    cfg::sources src;
    src.environment = {{"CORS_ALLOW_CREDENTIALS", "yes"}, {"WORKER_THREADS", "12"}, {"LOG_LEVEL", "warn"}};
    const auto s = cfg::load(src);
    CHECK(cfg::display_value(s, key("CORS_ALLOW_CREDENTIALS")) == "true");
    CHECK(cfg::display_value(s, key("WORKER_THREADS")) == "12");
    CHECK(cfg::display_value(s, key("LOG_LEVEL")) == "warn");
  }

  TEST_CASE("flag_name") {
    CHECK(key("DATABASE_URL").flag_name() == "--database-url");
    CHECK(key("LOG_LEVEL").flag_name() == "--log-level");
    CHECK(key("QSTASH_CURRENT_SIGNING_KEY").flag_name() == "--qstash-current-signing-key");
    CHECK(key("CORS_MAX_AGE_S").flag_name() == "--cors-max-age-s");
    std::set<std::string> flags;
    for (const auto& k : cfg::keys()) CHECK(flags.insert(k.flag_name()).second);
  }

  TEST_CASE("render_markdown: one table, every key once, in table order") {
    const std::string md = cfg::render_markdown();
    CHECK(md.starts_with("| Key | Type | Default | Allowed | Description |\n|---|---|---|---|---|\n"));
    CHECK(count(md, "\n") == cfg::keys().size() + 2);

    std::size_t last = 0;
    for (const auto& k : cfg::keys()) {
      CAPTURE(k.name);
      const std::string row = "\n| `" + std::string(k.name) + "` |";
      CHECK(count(md, row) == 1);
      const auto at = md.find(row);
      CHECK(at > last);
      last = at;
    }
    // Every row has exactly the five cells: no stray '|' from a value or a help text.
    std::size_t line_start = 0;
    while (line_start < md.size()) {
      const auto line_end = md.find('\n', line_start);
      const std::string_view line(md.data() + line_start, line_end - line_start);
      std::size_t cells = 0;
      for (std::size_t i = 0; i < line.size(); ++i)
        if (line[i] == '|' && (i == 0 || line[i - 1] != '\\')) ++cells;
      CAPTURE(line);
      CHECK(cells == 6);
      line_start = line_end + 1;
    }
    CHECK(md.find("| `LOG_LEVEL` | choice | `info` | `debug`, `info`, `warn`, `error` | ") !=
          std::string::npos);
    CHECK(md.find("| `WORKER_THREADS` | integer | `8` | 1..256 | ") != std::string::npos);
    CHECK(md.find("| `QSTASH_TOKEN` | secret | (empty) | ") != std::string::npos);
    CHECK(md.find("| `SMTP_URL` | url | (empty) | `smtp:`, `smtps:` URL | ") != std::string::npos);
  }

  TEST_CASE("render_env_example parses back to the defaults") {
    const std::string example = cfg::render_env_example();
    CHECK(example.starts_with("# "));
    for (std::string_view group : {"Database", "HTTP", "CORS", "QStash", "Services", "Mail", "API and logs"})
      CHECK(count(example, "\n# --- " + std::string(group) + " ---\n") == 1);

    const auto parsed = cfg::parse_env_text(example, "example");
    CHECK(parsed.size() == cfg::keys().size());
    for (const auto& k : cfg::keys()) {
      CAPTURE(k.name);
      REQUIRE(parsed.count(std::string(k.name)) == 1);
      CHECK(parsed.at(std::string(k.name)) == k.default_value);
      std::string plain_help(k.help);
      std::erase(plain_help, '`');
      CHECK(example.find("\n# " + plain_help + "\n") != std::string::npos);
    }

    // And as an --env-file it loads to exactly the defaults.
    temp_dir dir;
    cfg::sources src;
    src.env_file = dir.write("example.env", example);
    const auto from_file = cfg::load(src);
    const auto defaults = cfg::load({});
    for (const auto& k : cfg::keys())
      CHECK(cfg::display_value(from_file, k) == cfg::display_value(defaults, k));
  }

  TEST_CASE("render_env_example(role): the unit's keys, production values, loadable") {
    for (std::string_view role : {"orders", "email", "inventory", "analytics", "relay"}) {
      CAPTURE(role);
      const std::string example = cfg::render_env_example(role);
      const auto parsed = cfg::parse_env_text(example, "example");
      std::string port_key(role);
      std::transform(port_key.begin(), port_key.end(), port_key.begin(),
                     [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
      port_key += "_PORT";
      CHECK(parsed.count(port_key) == 1);
      for (std::string_view other :
           {"ORDERS_PORT", "EMAIL_PORT", "INVENTORY_PORT", "ANALYTICS_PORT", "RELAY_PORT"})
        if (other != port_key) CHECK(parsed.count(std::string(other)) == 0);
      CHECK(parsed.at("DATABASE_URL") == "sqlite:/var/lib/shopd/shopd.db");
      CHECK(parsed.at("LOG_FORMAT") == "json");
      CHECK(parsed.at("QSTASH_CURRENT_SIGNING_KEY").empty());  // secrets are the operator's to set
      CHECK(parsed.count("MAIL_TRANSPORT") == (role == "email" ? 1U : 0U));
      CHECK(parsed.count("RELAY_CONCURRENCY") == (role == "relay" ? 1U : 0U));
      CHECK(parsed.count("SHOPD_API_TOKEN") == (role == "relay" ? 0U : 1U));
      for (const auto& [name, value] : parsed) {
        const auto* key = cfg::find_key(name);
        REQUIRE(key != nullptr);
        std::string plain_help(key->help);
        std::erase(plain_help, '`');
        CHECK(example.find("\n# " + plain_help + "\n") != std::string::npos);
      }
      temp_dir dir;
      cfg::sources src;
      src.env_file = dir.write("role.env", example);
      CHECK_NOTHROW((void)cfg::load(src));
    }
    CHECK(cfg::parse_env_text(cfg::render_env_example("email"), "email").at("MAIL_TRANSPORT") == "smtp");
    CHECK_THROWS_WITH_AS((void)cfg::render_env_example("shipping"),
                         doctest::Contains("orders, email, inventory, analytics, relay"), cfg::config_error);
  }
}
