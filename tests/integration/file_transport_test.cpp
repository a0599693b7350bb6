#include "shopd/mail/transport.hpp"

#include "shopd/mail/mime.hpp"
#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace shopd::mail;
namespace fs = std::filesystem;
using shopd::test::read_file;
using shopd::test::temp_dir;

namespace {

std::vector<fs::path> entries(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  return out;
}

outgoing_mail sample_mail(std::size_t body_size = 100) {
  message_spec spec;
  spec.from = mailbox::parse("shopd <shop@localhost>").value();
  spec.to = {mailbox::parse("ada@example.com").value()};
  spec.subject = "Hello";
  spec.text = std::string(body_size, 'x');
  spec.html = "<p>" + std::string(body_size, 'y') + "</p>";
  return build_message(spec).value();
}

template <typename T>
T expect(const send_result& r) {
  INFO("result: ", describe(r));
  REQUIRE(std::holds_alternative<T>(r));
  return std::get<T>(r);
}

}  // namespace

TEST_SUITE("mail/file_transport") {
  TEST_CASE("one complete .eml per message, in a directory created on demand") {
    temp_dir dir;
    const auto out = dir.path() / "var" / "mail";
    const auto transport = make_transport("file:" + out.string(), "");
    CHECK(fs::is_directory(out));
    CHECK(transport->describe() == "file:" + out.string());

    const auto mail = sample_mail();
    const auto ok = expect<sent>(transport->send(mail));
    const fs::path written = ok.detail;
    CHECK(written.parent_path() == out);
    const auto name = written.filename().string();
    CHECK(name == std::to_string(std::stoll(name.substr(0, 13))) + "-" + mail.message_id.substr(1, 32) +
                      "@localhost.eml");
    CHECK(read_file(written) == mail.data);
    CHECK(entries(out) == std::vector<fs::path>{written});

    SUBCASE("a second message is a second file") {
      const auto second = sample_mail();
      const fs::path path = expect<sent>(transport->send(second)).detail;
      CHECK(path != written);
      CHECK(read_file(path) == second.data);
      CHECK(entries(out).size() == 2);
    }
    SUBCASE("the directory is created again if it disappeared") {
      fs::remove_all(out);
      CHECK(read_file(expect<sent>(transport->send(mail)).detail) == mail.data);
    }
    SUBCASE("a file where the directory should be is a transient failure") {
      fs::remove_all(out);
      std::ofstream(out) << "in the way";
      CHECK_FALSE(expect<transient_failure>(transport->send(mail)).reason.empty());
    }
    SUBCASE("a message without recipients is permanent") {
      auto none = mail;
      none.recipients.clear();
      expect<permanent_failure>(transport->send(none));
    }
  }

  TEST_CASE("a directory that cannot be made fails at start-up") {
    temp_dir dir;
    std::ofstream(dir.path() / "file") << "x";
    CHECK_THROWS_AS(static_cast<void>(make_transport("file:" + (dir.path() / "file").string(), "")),
                    std::invalid_argument);
    CHECK_THROWS_AS(static_cast<void>(make_transport("file:" + (dir.path() / "file" / "sub").string(), "")),
                    std::invalid_argument);
  }

  TEST_CASE("a reader never sees half a message, even while many are being written") {
    temp_dir dir;
    const auto transport = make_file_transport(dir.path());
    const auto mail = sample_mail(256 * 1024);  // large enough to take several write(2) calls to copy

    std::atomic<bool> done{false};
    std::atomic<int> seen{0};
    std::atomic<int> incomplete{0};
    std::thread reader([&] {
      while (!done.load()) {
        for (const auto& path : entries(dir.path())) {
          if (path.extension() != ".eml") continue;
          ++seen;
          std::ifstream in(path, std::ios::binary);
          if (!in) continue;  // listed, then gone: not in this test, but harmless
          std::ostringstream content;
          content << in.rdbuf();
          if (content.str() != mail.data) ++incomplete;
        }
      }
    });

    constexpr int messages = 20;
    for (int i = 0; i < messages; ++i) {
      auto m = mail;
      m.message_id = "<msg" + std::to_string(i) + "@localhost>";
      expect<sent>(transport->send(m));
    }
    done = true;
    reader.join();

    CHECK(incomplete.load() == 0);
    const auto files = entries(dir.path());
    CHECK(files.size() == messages);
    for (const auto& f : files) {
      CAPTURE(f);
      CHECK(f.extension() == ".eml");
      CHECK(f.filename().string().front() != '.');
      CHECK(read_file(f) == mail.data);
    }
  }
}
