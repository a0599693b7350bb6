#include "shopd/db/database_url.hpp"

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

using shopd::db::database_url;
using shopd::db::dialect;

namespace {

std::string parse_error(std::string_view url) {
  try {
    (void)database_url::parse(url);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

TEST_SUITE("db.database_url") {
  TEST_CASE("sqlite URLs") {
    SUBCASE("relative path") {
      auto u = database_url::parse("sqlite:var/shopd.db");
      CHECK(u.kind == dialect::sqlite);
      CHECK(u.sqlite_path == "var/shopd.db");
      CHECK(u.connect_string == "db=\"var/shopd.db\"");
      CHECK(u.redacted == "sqlite:var/shopd.db");
    }
    SUBCASE("absolute path") {
      auto u = database_url::parse("sqlite:/srv/shopd/data.db");
      CHECK(u.sqlite_path == "/srv/shopd/data.db");
      CHECK(u.connect_string == "db=\"/srv/shopd/data.db\"");
    }
    SUBCASE("sqlite:/// spells an absolute path") {
      auto u = database_url::parse("sqlite:///srv/shopd/data.db");
      CHECK(u.sqlite_path == "/srv/shopd/data.db");
    }
    SUBCASE("the scheme is case-insensitive") {
      CHECK(database_url::parse("SQLite:x.db").sqlite_path == "x.db");
    }
    SUBCASE("in memory") {
      auto u = database_url::parse("sqlite::memory:");
      CHECK(u.kind == dialect::sqlite);
      CHECK(u.sqlite_path.empty());
      CHECK(u.connect_string == "db=\":memory:\"");
    }
    SUBCASE("spaces survive SOCI's quoted value, a leading blank gets ./") {
      CHECK(database_url::parse("sqlite:my data/shop.db").connect_string == "db=\"my data/shop.db\"");
      auto u = database_url::parse("sqlite: odd.db");
      CHECK(u.sqlite_path == " odd.db");
      CHECK(u.connect_string == "db=\"./ odd.db\"");
    }
    SUBCASE("the path is taken literally, not percent-decoded") {
      CHECK(database_url::parse("sqlite:a%20b.db").sqlite_path == "a%20b.db");
    }
  }

  TEST_CASE("postgresql URLs") {
    SUBCASE("every component") {
      auto u = database_url::parse("postgresql://shop:s3cret@db.example.com:6543/shopd");
      CHECK(u.kind == dialect::postgresql);
      CHECK(u.sqlite_path.empty());
      CHECK(u.connect_string ==
            "user='shop' password='s3cret' host='db.example.com' port='6543' dbname='shopd' "
            "connect_timeout='10'");
      CHECK(u.redacted == "postgresql://shop:***@db.example.com:6543/shopd");
    }
    SUBCASE("postgres:// is the same") {
      auto u = database_url::parse("postgres://shop@localhost/shopd");
      CHECK(u.kind == dialect::postgresql);
      CHECK(u.connect_string ==
            "user='shop' host='localhost' port='5432' dbname='shopd' connect_timeout='10'");
      CHECK(u.redacted == "postgres://shop@localhost/shopd");
    }
    SUBCASE("defaults: port 5432, dbname postgres, no user") {
      CHECK(database_url::parse("postgresql://localhost").connect_string ==
            "host='localhost' port='5432' dbname='postgres' connect_timeout='10'");
      CHECK(database_url::parse("postgresql://localhost/").connect_string ==
            "host='localhost' port='5432' dbname='postgres' connect_timeout='10'");
      CHECK(database_url::parse("postgresql://localhost:/db").connect_string ==
            "host='localhost' port='5432' dbname='db' connect_timeout='10'");
    }
    SUBCASE("IPv6 literal host loses its brackets") {
      auto u = database_url::parse("postgresql://u@[::1]:5433/db");
      CHECK(u.connect_string == "user='u' host='::1' port='5433' dbname='db' connect_timeout='10'");
    }
    SUBCASE("components are percent-decoded") {
      auto u = database_url::parse("postgresql://us%40er:p%40ss%2Fw%3Ard@h/my%20db");
      CHECK(u.connect_string ==
            "user='us@er' password='p@ss/w:rd' host='h' port='5432' dbname='my db' connect_timeout='10'");
      CHECK(u.redacted == "postgresql://us%40er:***@h/my%20db");
    }
    SUBCASE("a percent-encoded socket directory is a host") {
      auto u = database_url::parse("postgresql://%2Fvar%2Frun%2Fpostgresql/shopd");
      CHECK(u.connect_string == "host='/var/run/postgresql' port='5432' dbname='shopd' connect_timeout='10'");
    }
    SUBCASE("'+' is not a space") {
      CHECK(database_url::parse("postgresql://u:a+b@h/d").connect_string ==
            "user='u' password='a+b' host='h' port='5432' dbname='d' connect_timeout='10'");
    }
    SUBCASE("query parameters pass through, after the components") {
      auto u = database_url::parse(
          "postgresql://u@h/d?sslmode=require&connect_timeout=5&application_name=shopd%20orders");
      CHECK(u.connect_string ==
            "user='u' host='h' port='5432' dbname='d' sslmode='require' connect_timeout='5' "
            "application_name='shopd orders'");
    }
    SUBCASE("a trailing '?' or a doubled '&' is harmless") {
      CHECK(database_url::parse("postgresql://h/d?").connect_string ==
            "host='h' port='5432' dbname='d' connect_timeout='10'");
      CHECK(database_url::parse("postgresql://h/d?sslmode=disable&&connect_timeout=3").connect_string ==
            "host='h' port='5432' dbname='d' sslmode='disable' connect_timeout='3'");
    }
    SUBCASE("a password given as a query parameter is redacted too") {
      auto u = database_url::parse("postgresql://u@h/d?password=hunter2&sslmode=require");
      CHECK(u.connect_string.find("password='hunter2'") != std::string::npos);
      CHECK(u.redacted == "postgresql://u@h/d?password=***&sslmode=require");
      CHECK(u.redacted.find("hunter2") == std::string::npos);
    }
    SUBCASE("an empty password is still a password") {
      auto u = database_url::parse("postgresql://u:@h/d");
      CHECK(u.connect_string == "user='u' password='' host='h' port='5432' dbname='d' connect_timeout='10'");
      CHECK(u.redacted == "postgresql://u:***@h/d");
    }
  }

  TEST_CASE("conninfo quoting follows libpq") {
    SUBCASE("quote and backslash are backslash-escaped") {
      auto u = database_url::parse("postgresql://o%27brien:a%5Cb%27c%20d@h/d");
      CHECK(u.connect_string ==
            "user='o\\'brien' password='a\\\\b\\'c d' host='h' port='5432' dbname='d' connect_timeout='10'");
    }
    SUBCASE("a value cannot inject another keyword") {
      auto u = database_url::parse("postgresql://h/d?application_name=x%27%20sslmode%3D%27disable");
      CHECK(
          u.connect_string ==
          "host='h' port='5432' dbname='d' application_name='x\\' sslmode=\\'disable' connect_timeout='10'");
    }
  }

  TEST_CASE("to_string(dialect)") {
    CHECK(shopd::db::to_string(dialect::sqlite) == "sqlite");
    CHECK(shopd::db::to_string(dialect::postgresql) == "postgresql");
  }

  TEST_CASE("malformed URLs are rejected with one line") {
    struct bad {
      const char* url;
      const char* reason;
    };
    const bad cases[] = {
        {"", "empty"},
        {"var/shopd.db", "no scheme"},
        {":memory:", "no scheme"},
        {"mysql://u:p@h/d", "unsupported scheme 'mysql'"},
        {"http://h/", "unsupported scheme 'http'"},
        {"sqlite:", "needs a file path"},
        {"sqlite://", "not a host"},
        {"sqlite://host/file.db", "not a host"},
        {"sqlite:a\"b.db", "must not contain"},
        {"postgresql:", "no host"},
        {"postgresql:/db", "no host"},
        {"postgresql://", "no host"},
        {"postgresql:///db", "no host"},
        {"postgresql://u:p@/db", "no host"},
        {"postgresql://h:0/d", "bad port"},
        {"postgresql://h:65536/d", "bad port"},
        {"postgresql://h:99999999999999999999/d", "bad port"},
        {"postgresql://h:54x/d", "bad port"},
        {"postgresql://u@[::1]:x/d", "bad port"},
        {"postgresql://h/d#frag", "#fragment"},
        {"postgresql://h/d?sslmode", "'sslmode' has no value"},
        {"postgresql://h/d?SSLMODE=require", "bad query parameter name 'SSLMODE'"},
        {"postgresql://h/d?a%20b=1", "bad query parameter name 'a b'"},
        {"postgresql://u:p%00w@h/d", "password contains a NUL byte"},
        {"postgresql://h/d b", "not a valid postgresql:// URL"},
    };
    for (const bad& c : cases) {
      const std::string url = c.url;
      const std::string msg = parse_error(url);
      CAPTURE(url);
      CAPTURE(msg);
      CHECK(msg.find(c.reason) != std::string::npos);
      CHECK(msg.find('\n') == std::string::npos);
      CHECK(msg.starts_with("invalid database URL: "));
    }
  }

  TEST_CASE("error messages never carry the password") {
    struct leak {
      const char* url;
      const char* secret;
    };
    // Some are a URL that forgot its host, where the password reads as a port.
    const leak cases[] = {
        {"postgresql://u:topsecret@h:0/d", "topsecret"}, {"postgresql://u:topsecret@h/d?x", "topsecret"},
        {"postgresql://u:123456/d", "123456"},           {"postgresql://u:12topsecret/d", "topsecret"},
        {"postgresql://u:top%20secret/d", "secret"},     {"mysql://u:topsecret@h", "topsecret"},
    };
    for (const leak& c : cases) {
      const std::string url = c.url;
      const std::string msg = parse_error(url);
      CAPTURE(url);
      CAPTURE(msg);
      CHECK(msg.starts_with("invalid database URL: "));
      CHECK(msg.find(c.secret) == std::string::npos);
    }
  }
}
