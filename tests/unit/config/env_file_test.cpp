#include "shopd/config/config.hpp"

#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

namespace cfg = shopd::config;
using shopd::test::temp_dir;

namespace {

/// The config_error message thrown by parsing `text`, or "" when it parses.
std::string parse_error(std::string_view text, std::string_view origin = "test.env") {
  try {
    (void)cfg::parse_env_text(text, origin);
  } catch (const cfg::config_error& e) {
    return e.what();
  }
  return {};
}

}  // namespace

TEST_SUITE("config/env_file") {
  TEST_CASE("parses assignments, comments and blank lines") {
    const auto m = cfg::parse_env_text(
        "# a comment\n"
        "\n"
        "   \t\n"
        "   # an indented comment\n"
        "LOG_LEVEL=debug\n"
        "export LOG_FORMAT=json\n"
        "export\tWORKER_THREADS=4\n"
        "  HTTP_BIND  =  0.0.0.0  \n"
        "EMPTY=\n"
        "EMPTY_WITH_COMMENT=   # nothing here\n"
        "URL=postgresql://u:p@h/db?sslmode=require\n"
        "NO_NEWLINE_AT_END=last",
        "test.env");
    CHECK(m.size() == 8);
    CHECK(m.at("LOG_LEVEL") == "debug");
    CHECK(m.at("LOG_FORMAT") == "json");
    CHECK(m.at("WORKER_THREADS") == "4");
    CHECK(m.at("HTTP_BIND") == "0.0.0.0");
    CHECK(m.at("EMPTY").empty());
    CHECK(m.at("EMPTY_WITH_COMMENT").empty());
    CHECK(m.at("URL") == "postgresql://u:p@h/db?sslmode=require");
    CHECK(m.at("NO_NEWLINE_AT_END") == "last");
  }

  TEST_CASE("unquoted values") {
    SUBCASE("are trimmed") {
      CHECK(cfg::parse_env_text("K=  a b  \t\n", "t").at("K") == "a b");
    }
    SUBCASE("end at a # after whitespace") {
      CHECK(cfg::parse_env_text("K=value # comment\n", "t").at("K") == "value");
      CHECK(cfg::parse_env_text("K=value\t# comment\n", "t").at("K") == "value");
    }
    SUBCASE("keep a # that follows a non-blank") {
      CHECK(cfg::parse_env_text("K=a#b\n", "t").at("K") == "a#b");
      CHECK(cfg::parse_env_text("K=#b\n", "t").at("K") == "#b");
    }
    SUBCASE("keep everything after the first =") {
      CHECK(cfg::parse_env_text("K=a=b==c\n", "t").at("K") == "a=b==c");
    }
    SUBCASE("keep inner quotes and backslashes literally") {
      CHECK(cfg::parse_env_text(R"(K=a"b'c\n)"
                                "\n",
                                "t")
                .at("K") == R"(a"b'c\n)");
    }
  }

  TEST_CASE("single quotes are literal") {
    CHECK(cfg::parse_env_text(R"(K='  a # b \n \" $x  ')"
                              "\n",
                              "t")
              .at("K") == R"(  a # b \n \" $x  )");
    CHECK(cfg::parse_env_text("K=''\n", "t").at("K").empty());
    CHECK(cfg::parse_env_text("K='x'   # trailing comment\n", "t").at("K") == "x");
    CHECK(cfg::parse_env_text("K=  'x'  \n", "t").at("K") == "x");
  }

  TEST_CASE("double quotes understand \\\" \\\\ and \\n") {
    CHECK(cfg::parse_env_text(R"(K="say \"hi\"")"
                              "\n",
                              "t")
              .at("K") == R"(say "hi")");
    CHECK(cfg::parse_env_text(R"(K="a\\b")"
                              "\n",
                              "t")
              .at("K") == R"(a\b)");
    CHECK(cfg::parse_env_text(R"(K="line1\nline2")"
                              "\n",
                              "t")
              .at("K") == "line1\nline2");
    SUBCASE("other backslashes are kept") {
      CHECK(cfg::parse_env_text(R"(K="a\tb\$c")"
                                "\n",
                                "t")
                .at("K") == R"(a\tb\$c)");
    }
    SUBCASE("# and ' inside are plain text, spaces are kept") {
      CHECK(cfg::parse_env_text(R"(K=" a # 'b' ")"
                                "\n",
                                "t")
                .at("K") == " a # 'b' ");
    }
    SUBCASE("a comment may follow") {
      CHECK(cfg::parse_env_text("K=\"x\" # why\n", "t").at("K") == "x");
    }
    SUBCASE("escaped backslash before the closing quote") {
      CHECK(cfg::parse_env_text(R"(K="a\\")"
                                "\n",
                                "t")
                .at("K") == R"(a\)");
    }
  }

  TEST_CASE("CRLF line endings and a byte-order mark") {
    const auto m =
        cfg::parse_env_text("\xEF\xBB\xBF# windows\r\nA=1\r\nB='two'\r\nC=\"three\"\r\n\r\nD=4 # c\r\n", "t");
    CHECK(m.size() == 4);
    CHECK(m.at("A") == "1");
    CHECK(m.at("B") == "two");
    CHECK(m.at("C") == "three");
    CHECK(m.at("D") == "4");
  }

  TEST_CASE("a later assignment replaces an earlier one") {
    const auto m = cfg::parse_env_text("K=1\nK=2\n", "t");
    CHECK(m.at("K") == "2");
  }

  TEST_CASE("entries keep file order, duplicates and line numbers") {
    const auto entries = cfg::parse_env_entries("# header\n\nA=1\r\n  # note\nB=2\nA=3\n", "t");
    REQUIRE(entries.size() == 3);
    CHECK(entries[0].key == "A");
    CHECK(entries[0].value == "1");
    CHECK(entries[0].line == 3);
    CHECK(entries[1].key == "B");
    CHECK(entries[1].line == 5);
    CHECK(entries[2].key == "A");
    CHECK(entries[2].value == "3");
    CHECK(entries[2].line == 6);
  }

  TEST_CASE("malformed lines name the origin and the line, and nothing else of it") {
    struct bad_case {
      std::string_view text;
      std::string_view expected;
    };
    const bad_case cases[] = {
        {"A=1\nhunter2-no-equals\n", "test.env:2: expected KEY=VALUE"},
        {"A=1\n\n# c\n=hunter2\n", "test.env:4: missing key before '='"},
        {"1ABC=hunter2\n",
         "test.env:1: bad key name \"1ABC\" (letters, digits and '_', not starting with a digit)"},
        {"A=1\nMY-KEY=hunter2\n",
         "test.env:2: bad key name \"MY-KEY\" (letters, digits and '_', not starting with a digit)"},
        {"A B=hunter2\n",
         "test.env:1: bad key name \"A B\" (letters, digits and '_', not starting with a digit)"},
        {"export =hunter2\n", "test.env:1: missing key before '='"},
        // Found by fuzz/config: a CR or a non-ASCII byte in a key went into the message raw.
        {"\r*\xcf=hunter2",
         "test.env:1: bad key name \"\\x0d*\\xcf\" (letters, digits and '_', not starting with a digit)"},
        {"A\"\\\x7f B=hunter2\n",
         "test.env:1: bad key name \"A\\\"\\\\\\x7f B\" (letters, digits and '_', not starting with a "
         "digit)"},
        {std::string_view("K\0\x1b[2J=hunter2\n", 15),
         "test.env:1: bad key name \"K\\x00\\x1b[2J\" (letters, digits and '_', not starting with a digit)"},
        {"A=1\r\nB='hunter2\r\n", "test.env:2: unterminated single quote"},
        {"A=1\nB=2\nC=\"hunter2\n", "test.env:3: unterminated double quote"},
        {"C=\"hunter2\\\"\n", "test.env:1: unterminated double quote"},
        {"C=\"hunter2\" trailing\n", "test.env:1: unexpected text after the closing quote"},
        {"C='hunter2'trailing\n", "test.env:1: unexpected text after the closing quote"},
        // A quote never spans lines, even when the next line would close it.
        {"C='hunter2\nD='\n", "test.env:1: unterminated single quote"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.text);
      const std::string msg = parse_error(c.text);
      CHECK(msg == c.expected);
      CHECK(msg.find("hunter2") == std::string::npos);
      CHECK(msg.find('\n') == std::string::npos);
      CHECK(msg.find('\r') == std::string::npos);
    }
  }

  TEST_CASE("a long bad key is cut in the message") {
    const std::string key = "9" + std::string(100, 'K');
    const std::string msg = parse_error(key + "=hunter2\n");
    CHECK(msg == "test.env:1: bad key name \"9" + std::string(63, 'K') +
                     "...\" (letters, digits and '_', not starting with a digit)");
  }

  TEST_CASE("parse_env_file reads a file and names it in errors") {
    temp_dir dir;
    SUBCASE("a good file") {
      const auto file = dir.write("ok.env", "LOG_LEVEL=warn\nexport MAIL_FROM=\"Shop <a@b.c>\"\n");
      const auto m = cfg::parse_env_file(file);
      CHECK(m.size() == 2);
      CHECK(m.at("LOG_LEVEL") == "warn");
      CHECK(m.at("MAIL_FROM") == "Shop <a@b.c>");
    }
    SUBCASE("an empty file") {
      CHECK(cfg::parse_env_file(dir.write("empty.env", "")).empty());
    }
    SUBCASE("a malformed line") {
      const auto file = dir.write("bad.env", "A=1\nB\n");
      CHECK_THROWS_WITH_AS(cfg::parse_env_file(file), (file.string() + ":2: expected KEY=VALUE").c_str(),
                           cfg::config_error);
    }
    SUBCASE("a missing file") {
      const auto file = dir.path() / "missing.env";
      CHECK_THROWS_WITH_AS(cfg::parse_env_file(file),
                           ("cannot read env file " + file.string() + ": No such file or directory").c_str(),
                           cfg::config_error);
    }
    SUBCASE("a directory") {
      CHECK_THROWS_WITH_AS(cfg::parse_env_file(dir.path()),
                           ("cannot read env file " + dir.path().string() + ": Is a directory").c_str(),
                           cfg::config_error);
    }
    SUBCASE("entries from a file carry line numbers") {
      const auto entries = cfg::parse_env_entries(dir.write("lines.env", "\n\nA=1\n"));
      REQUIRE(entries.size() == 1);
      CHECK(entries[0].line == 3);
    }
  }
}
