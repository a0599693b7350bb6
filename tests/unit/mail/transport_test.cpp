#include "shopd/mail/transport.hpp"

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

using namespace shopd::mail;

namespace {

std::string creation_error(std::string_view mail_transport, std::string_view smtp_url) {
  try {
    static_cast<void>(make_transport(mail_transport, smtp_url));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  FAIL("make_transport accepted MAIL_TRANSPORT=", mail_transport, " SMTP_URL=", smtp_url);
  return {};
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_SUITE("mail/transport") {
  TEST_CASE("MAIL_TRANSPORT must be smtp or file:DIR") {
    CHECK(contains(creation_error("", ""), "MAIL_TRANSPORT"));
    CHECK(contains(creation_error("sendmail", ""), "'sendmail'"));
    CHECK(contains(creation_error("file:", ""), "file:DIR"));
    CHECK(contains(creation_error("SMTP", "smtp://localhost"), "MAIL_TRANSPORT"));
    CHECK(contains(creation_error("smtp", ""), "SMTP_URL is required"));
  }

  TEST_CASE("SMTP_URL is checked when the transport is made, without echoing secrets") {
    struct bad_url {
      const char* url;
      const char* says;
    };
    const bad_url cases[] = {
        {"mail.example.com", "smtp://"},
        {"http://mail.example.com", "smtp://"},
        {"smtp://", "no host"},
        {"smtp:///path", "no host"},
        {"smtp://user@mail.example.com", "no password"},
        {"smtp://:s3cret@mail.example.com", "no user"},
        {"smtp://mail.example.com#x", "fragment"},
        {"smtp://mail.example.com?starttls=maybe", "starttls=maybe"},
        {"smtp://mail.example.com?tls=on", "'tls'"},
        {"smtps://mail.example.com?starttls=required", "'starttls'"},
        {"smtp://u:p%00x@mail.example.com", "NUL"},
        {"smtp://u:s3cret@exa mple.com", "not a URL"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.url);
      const auto message = creation_error("smtp", c.url);
      CHECK(contains(message, "SMTP_URL"));
      CHECK(contains(message, c.says));
      CHECK_FALSE(contains(message, "s3cret"));
    }
  }

  TEST_CASE("accepted SMTP URLs describe themselves without the password") {
    SUBCASE("credentials are percent-decoded for use and stay encoded, redacted, in the description") {
      const auto t =
          make_transport("smtp", "smtp://us%40er:p%40ss%3Aword@mail.example.com:587?starttls=required");
      const auto d = t->describe();
      CHECK(d == "smtp://us%40er:***@mail.example.com:587 (STARTTLS required)");
    }
    SUBCASE("opportunistic STARTTLS is the default for smtp://") {
      CHECK(make_transport("smtp", "smtp://127.0.0.1:2525")->describe() ==
            "smtp://127.0.0.1:2525 (STARTTLS if offered)");
      CHECK(make_transport("smtp", "SMTP://[::1]:25/helo.example?starttls=opportunistic")->describe() ==
            "smtp://[::1]:25/helo.example (STARTTLS if offered)");
    }
    SUBCASE("smtps:// is implicit TLS") {
      CHECK(make_smtp_transport("smtps://a:b@mail.example.com?cafile=/etc/ssl/x.pem")->describe() ==
            "smtps://a:***@mail.example.com");
    }
    SUBCASE("timeouts must be positive") {
      smtp_options options;
      options.total_timeout = std::chrono::milliseconds{0};
      CHECK_THROWS_AS(static_cast<void>(make_smtp_transport("smtp://localhost", options)),
                      std::invalid_argument);
    }
  }

  TEST_CASE("describe(send_result) gives the detail or the reason") {
    CHECK(describe(send_result{sent{"250 ok"}}) == "250 ok");
    CHECK(describe(send_result{transient_failure{"later"}}) == "later");
    CHECK(describe(send_result{permanent_failure{"never"}}) == "never");
  }
}
