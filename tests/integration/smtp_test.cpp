#include "shopd/mail/transport.hpp"

#include "shopd/mail/mime.hpp"
#include "shopd/mail/templates.hpp"
#include "smtp_server.hpp"
#include "temp_dir.hpp"

#include <boost/json/parse.hpp>

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

extern char** environ;

using namespace shopd::mail;
using shopd::test::read_file;
using shopd::test::smtp_server;
using shopd::test::temp_dir;
namespace fs = std::filesystem;

namespace {

std::vector<char*> argv_of(std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return argv;
}

// Runs a command to completion with its output in `log`; returns its exit status.
int run(std::vector<std::string> args, const fs::path& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  auto argv = argv_of(args);
  const int rc = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A self-signed certificate for 127.0.0.1 (IP SAN), which is its own CA.
struct certificate {
  fs::path cert;
  fs::path key;
};

certificate make_certificate(const fs::path& dir) {
  certificate c{dir / "cert.pem", dir / "key.pem"};
  const int rc = run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-nodes", "-keyout", c.key.string(), "-out", c.cert.string(), "-days", "2", "-subj",
                      "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"},
                     dir / "openssl.log");
  REQUIRE_MESSAGE(rc == 0, "openssl req failed: ", read_file(dir / "openssl.log"));
  return c;
}

// A TCP socket on 127.0.0.1 with a kernel-chosen port. Bound but not listening, connections to it
// are refused; listening but never accepting, a client waits forever for the SMTP greeting.
class loopback_socket {
 public:
  explicit loopback_socket(bool listening) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    if (listening) REQUIRE(::listen(fd_, 8) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  loopback_socket(const loopback_socket&) = delete;
  loopback_socket& operator=(const loopback_socket&) = delete;
  ~loopback_socket() { ::close(fd_); }
  [[nodiscard]] std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_;
  int port_ = 0;
};

outgoing_mail order_mail(std::vector<std::string> to = {"Ada Lovelace <ada@example.com>"}) {
  const auto vars = boost::json::parse(R"({
    "orderId": "ord_42", "customerName": "Ada Lovelace", "currency": "EUR", "subtotalCents": 5500,
    "items": [
      {"sku": "MUG-1", "name": "Blue mug", "quantity": 2, "unitPriceCents": 1250, "lineTotalCents": 2500},
      {"sku": "TEA-7", "name": "Teapot", "quantity": 1, "unitPriceCents": 3000, "lineTotalCents": 3000}
    ]})")
                        .as_object();
  const auto rendered = render_template("order_confirmation", vars).value();
  message_spec spec;
  spec.from = mailbox::parse("shopd <shop@localhost>").value();
  for (const auto& t : to) spec.to.push_back(mailbox::parse(t).value());
  spec.subject = rendered.subject;
  spec.text = rendered.text;
  spec.html = rendered.html;
  return build_message(spec).value();
}

template <typename T>
T expect(const send_result& r) {
  INFO("result: ", describe(r));
  REQUIRE(std::holds_alternative<T>(r));
  return std::get<T>(r);
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

boost::json::object stored_envelope(const temp_dir& dir, int n) {
  return boost::json::parse(read_file(dir.path() / "mail" / (std::to_string(n) + ".json"))).as_object();
}

smtp_options short_timeouts() {
  smtp_options o;
  o.connect_timeout = std::chrono::seconds(10);
  o.total_timeout = std::chrono::seconds(20);
  return o;
}

}  // namespace

TEST_SUITE("mail/smtp") {
  TEST_CASE("plain SMTP: the message arrives byte for byte, with its envelope") {
    temp_dir dir;
    fs::create_directory(dir.path() / "mail");
    smtp_server server(dir.path(), {"sink", "--dir", (dir.path() / "mail").string()});
    const auto transport = make_transport("smtp", "smtp://" + server.address(), short_timeouts());

    const auto mail = order_mail({"Ada Lovelace <ada@example.com>", "ops@example.com"});
    const auto ok = expect<sent>(transport->send(mail));
    CHECK_MESSAGE(contains(ok.detail, "250"), ok.detail);
    CHECK_MESSAGE(contains(ok.detail, "queued as 1"), ok.detail);

    const auto received = read_file(dir.path() / "mail" / "1.eml");
    CHECK(received == mail.data);
    CHECK(contains(received, "\r\nSubject: Your order ord_42 is confirmed\r\n"));
    CHECK(contains(received, "\r\nMessage-ID: " + mail.message_id + "\r\n"));
    CHECK(contains(received, "\r\nFrom: shopd <shop@localhost>\r\n"));
    CHECK(contains(received, "\r\nTo: Ada Lovelace <ada@example.com>, ops@example.com\r\n"));
    CHECK(contains(received, "Content-Type: text/plain; charset=UTF-8"));
    CHECK(contains(received, "Content-Type: text/html; charset=UTF-8"));
    CHECK(contains(received, "Blue mug (MUG-1), 12.50 EUR each: 25.00 EUR"));

    const auto envelope = stored_envelope(dir, 1);
    CHECK(envelope.at("mail_from") == "shop@localhost");
    CHECK(envelope.at("rcpt_tos") == boost::json::array{"ada@example.com", "ops@example.com"});
    CHECK(envelope.at("tls") == false);

    SUBCASE("several messages through one transport") {
      const auto second = order_mail();
      expect<sent>(transport->send(second));
      CHECK(read_file(dir.path() / "mail" / "2.eml") == second.data);
    }
  }

  TEST_CASE("STARTTLS and AUTH") {
    temp_dir dir;
    fs::create_directory(dir.path() / "mail");
    const auto cert = make_certificate(dir.path());
    const std::string password = "p@ss:w/rd%";
    smtp_server server(dir.path(),
                       {"tls-auth", "--dir", (dir.path() / "mail").string(), "--cert", cert.cert.string(),
                        "--key", cert.key.string(), "--user", "shop", "--password", password});
    const std::string credentials = "shop:p%40ss%3Aw%2Frd%25@";

    SUBCASE("work with the CA file, STARTTLS required") {
      auto options = short_timeouts();
      options.ca_file = cert.cert.string();
      const auto transport =
          make_transport("smtp", "smtp://" + credentials + server.address() + "?starttls=required", options);
      const auto mail = order_mail();
      expect<sent>(transport->send(mail));
      CHECK(read_file(dir.path() / "mail" / "1.eml") == mail.data);
      const auto envelope = stored_envelope(dir, 1);
      CHECK(envelope.at("tls") == true);
      CHECK(envelope.at("auth_login") == "shop");
    }
    SUBCASE("work with the CA file from the URL, STARTTLS taken when offered") {
      const auto transport =
          make_transport("smtp", "smtp://" + credentials + server.address() + "?cafile=" + cert.cert.string(),
                         short_timeouts());
      expect<sent>(transport->send(order_mail()));
      CHECK(stored_envelope(dir, 1).at("tls") == true);
    }
    SUBCASE("fail without the CA file: the certificate is not trusted, a configuration failure") {
      const auto transport =
          make_transport("smtp", "smtp://" + credentials + server.address(), short_timeouts());
      const auto failure = expect<transient_failure>(transport->send(order_mail()));
      CHECK(failure.configuration);
      CHECK_MESSAGE(contains(failure.reason, "certificate"), failure.reason);
      CHECK_FALSE(fs::exists(dir.path() / "mail" / "1.eml"));
    }
    SUBCASE("a wrong password is a configuration failure that says authentication") {
      auto options = short_timeouts();
      options.ca_file = cert.cert.string();
      const auto transport = make_transport("smtp", "smtp://shop:wrong@" + server.address(), options);
      const auto failure = expect<transient_failure>(transport->send(order_mail()));
      CHECK(failure.configuration);
      CHECK_MESSAGE(contains(failure.reason, "authentication"), failure.reason);
      CHECK_MESSAGE(contains(failure.reason, "535"), failure.reason);
      CHECK_FALSE(contains(failure.reason, "wrong"));
    }
    SUBCASE("no credentials where the server requires them is a configuration failure") {
      auto options = short_timeouts();
      options.ca_file = cert.cert.string();
      const auto transport = make_transport("smtp", "smtp://" + server.address(), options);
      const auto failure = expect<transient_failure>(transport->send(order_mail()));
      CHECK(failure.configuration);
      CHECK_MESSAGE(contains(failure.reason, "530"), failure.reason);
    }
  }

  TEST_CASE("implicit TLS (smtps://) and AUTH") {
    temp_dir dir;
    fs::create_directory(dir.path() / "mail");
    const auto cert = make_certificate(dir.path());
    smtp_server server(
        dir.path(), {"tls-auth", "--implicit-tls", "--dir", (dir.path() / "mail").string(), "--cert",
                     cert.cert.string(), "--key", cert.key.string(), "--user", "shop", "--password", "pw"});

    SUBCASE("with the CA file") {
      auto options = short_timeouts();
      options.ca_file = cert.cert.string();
      const auto transport = make_transport("smtp", "smtps://shop:pw@" + server.address(), options);
      const auto mail = order_mail();
      expect<sent>(transport->send(mail));
      CHECK(read_file(dir.path() / "mail" / "1.eml") == mail.data);
      const auto envelope = stored_envelope(dir, 1);
      CHECK(envelope.at("tls") == true);
      CHECK(envelope.at("auth_login") == "shop");
    }
    SUBCASE("without it") {
      const auto transport = make_transport("smtp", "smtps://shop:pw@" + server.address(), short_timeouts());
      const auto failure = expect<transient_failure>(transport->send(order_mail()));
      CHECK(failure.configuration);
      CHECK_MESSAGE(contains(failure.reason, "certificate"), failure.reason);
    }
  }

  TEST_CASE("STARTTLS required but not offered is a configuration failure") {
    temp_dir dir;
    fs::create_directory(dir.path() / "mail");
    smtp_server server(dir.path(), {"sink", "--dir", (dir.path() / "mail").string()});
    const auto transport =
        make_transport("smtp", "smtp://" + server.address() + "?starttls=required", short_timeouts());
    const auto failure = expect<transient_failure>(transport->send(order_mail()));
    CHECK(failure.configuration);
    CHECK_MESSAGE(contains(failure.reason, "STARTTLS"), failure.reason);
    CHECK_FALSE(fs::exists(dir.path() / "mail" / "1.eml"));
  }

  TEST_CASE("a recipient refused with 550 is permanent") {
    temp_dir dir;
    fs::create_directory(dir.path() / "mail");
    smtp_server server(dir.path(), {"reject-rcpt", "--dir", (dir.path() / "mail").string(), "--reject",
                                    "nobody@example.com"});
    const auto transport = make_transport("smtp", "smtp://" + server.address(), short_timeouts());

    const auto failure = expect<permanent_failure>(transport->send(order_mail({"nobody@example.com"})));
    CHECK_MESSAGE(contains(failure.reason, "550"), failure.reason);
    CHECK_MESSAGE(contains(failure.reason, "User unknown"), failure.reason);
    CHECK_FALSE(fs::exists(dir.path() / "mail" / "1.eml"));

    SUBCASE("other recipients are still accepted") {
      expect<sent>(transport->send(order_mail({"ada@example.com"})));
    }
  }

  TEST_CASE("451 is transient") {
    temp_dir dir;
    SUBCASE("to every command") {
      smtp_server server(dir.path(), {"tempfail", "--stage", "all"});
      const auto transport = make_transport("smtp", "smtp://" + server.address(), short_timeouts());
      const auto failure = expect<transient_failure>(transport->send(order_mail()));
      CHECK_FALSE(failure.configuration);
      CHECK_MESSAGE(contains(failure.reason, "451"), failure.reason);
    }
    SUBCASE("at the end of DATA, after the message was transferred") {
      smtp_server server(dir.path(), {"tempfail", "--stage", "data"});
      const auto transport = make_transport("smtp", "smtp://" + server.address(), short_timeouts());
      const auto failure = expect<transient_failure>(transport->send(order_mail()));
      CHECK_MESSAGE(contains(failure.reason, "451"), failure.reason);
    }
  }

  TEST_CASE("nothing listening is transient") {
    const loopback_socket closed(false);
    const auto transport = make_transport("smtp", "smtp://" + closed.address(), short_timeouts());
    const auto failure = expect<transient_failure>(transport->send(order_mail()));
    CHECK_FALSE(failure.configuration);
    CHECK_MESSAGE(contains(failure.reason, closed.address()), failure.reason);
  }

  TEST_CASE("a server that never greets runs into the timeout, which is transient") {
    const loopback_socket silent(true);
    smtp_options options;
    options.connect_timeout = std::chrono::milliseconds(500);
    options.total_timeout = std::chrono::milliseconds(500);
    const auto transport = make_transport("smtp", "smtp://" + silent.address(), options);
    const auto failure = expect<transient_failure>(transport->send(order_mail()));
    CHECK_MESSAGE(contains(failure.reason, "timed out"), failure.reason);
  }

  TEST_CASE("unsafe envelopes are refused before connecting") {
    const loopback_socket closed(false);
    const auto transport = make_transport("smtp", "smtp://" + closed.address(), short_timeouts());
    auto mail = order_mail();
    mail.recipients = {"a@example.com>\r\nRCPT TO:<b@example.com"};
    expect<permanent_failure>(transport->send(mail));
    mail.recipients.clear();
    expect<permanent_failure>(transport->send(mail));
  }
}
