#include "shopd/mail/mime.hpp"

#include "shopd/text/utf8.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

using namespace shopd::mail;
using namespace std::chrono_literals;

namespace {

// An independent reader for what build_message writes: it checks the framing (CRLF only, line
// lengths), unfolds headers, and decodes quoted-printable and RFC 2047 B-encoded words.

std::vector<std::string_view> crlf_lines(std::string_view s) {
  std::vector<std::string_view> lines;
  while (true) {
    const auto end = s.find("\r\n");
    lines.push_back(s.substr(0, end));
    if (end == std::string_view::npos) break;
    s.remove_prefix(end + 2);
  }
  return lines;
}

bool only_crlf_line_ends(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return false;
    if (s[i] == '\r' && (i + 1 == s.size() || s[i + 1] != '\n')) return false;
  }
  return true;
}

std::size_t longest_line(std::string_view s) {
  std::size_t longest = 0;
  for (const auto line : crlf_lines(s)) longest = std::max(longest, line.size());
  return longest;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

struct entity {
  std::vector<std::pair<std::string, std::string>> headers;  // unfolded, one leading space removed
  std::vector<std::string> raw_header_lines;
  std::string body;

  [[nodiscard]] std::string header(std::string_view name) const {
    std::string found;
    int count = 0;
    for (const auto& [n, v] : headers) {
      if (lower(n) == lower(name)) {
        found = v;
        ++count;
      }
    }
    CHECK_MESSAGE(count == 1, "header ", name, " appears ", count, " times");
    return found;
  }
};

entity parse_entity(std::string_view data) {
  entity e;
  const auto split = data.find("\r\n\r\n");
  REQUIRE(split != std::string_view::npos);
  e.body = std::string(data.substr(split + 4));
  for (const auto line : crlf_lines(data.substr(0, split))) {
    e.raw_header_lines.emplace_back(line);
    if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
      REQUIRE_FALSE(e.headers.empty());
      REQUIRE_MESSAGE(line.find_first_not_of(" \t") != std::string_view::npos, "a folded line is blank");
      e.headers.back().second += line;  // unfolding removes just the CRLF
      continue;
    }
    const auto colon = line.find(':');
    REQUIRE(colon != std::string_view::npos);
    auto value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    e.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  }
  return e;
}

std::string param(std::string_view header_value, std::string_view name) {
  const auto key = std::string(name) + "=\"";
  const auto at = header_value.find(key);
  REQUIRE(at != std::string_view::npos);
  const auto start = at + key.size();
  const auto end = header_value.find('"', start);
  REQUIRE(end != std::string_view::npos);
  return std::string(header_value.substr(start, end - start));
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string qp_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '=') {
      out += s[i];
      continue;
    }
    if (s.substr(i + 1, 2) == "\r\n") {
      i += 2;
      continue;
    }
    REQUIRE(i + 2 < s.size());
    const int hi = hex_value(s[i + 1]);
    const int lo = hex_value(s[i + 2]);
    REQUIRE_MESSAGE((hi >= 0 && lo >= 0), "bad quoted-printable escape at ", i);
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::string base64_decode(std::string_view s) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : s) {
    if (c == '=') break;
    const auto v = alphabet.find(c);
    REQUIRE(v != std::string::npos);
    acc = acc << 6 | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>(acc >> bits & 0xff);
    }
  }
  return out;
}

// Decodes "=?UTF-8?B?...?=" words; white space between two adjacent encoded-words is dropped.
std::string decode_words(std::string_view value, std::vector<std::string>* words = nullptr) {
  constexpr std::string_view open = "=?UTF-8?B?";
  std::string out;
  bool after_word = false;
  while (true) {
    const auto start = value.find(open);
    const auto end = start == std::string_view::npos ? start : value.find("?=", start + open.size());
    if (end == std::string_view::npos) break;
    const auto between = value.substr(0, start);
    if (!(after_word && between.find_first_not_of(" \t") == std::string_view::npos)) out += between;
    out += base64_decode(value.substr(start + open.size(), end - start - open.size()));
    if (words != nullptr) words->emplace_back(value.substr(start, end + 2 - start));
    after_word = true;
    value.remove_prefix(end + 2);
  }
  return out + std::string(value);
}

// Matches `text` against a shape: '#' is any digit, '%' any lower-case hex digit, everything
// else itself.
bool has_shape(std::string_view text, std::string_view shape) {
  if (text.size() != shape.size()) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool digit = c >= '0' && c <= '9';
    if (shape[i] == '#' ? !digit : shape[i] == '%' ? !(digit || (c >= 'a' && c <= 'f')) : c != shape[i]) {
      return false;
    }
  }
  return true;
}

bool is_rfc5322_date(std::string_view date) {
  const auto listed = [](std::string_view list, std::string_view name) {
    const auto at = list.find(name);
    return at != std::string_view::npos && at % 4 == 0;
  };
  if (date.size() != 31) return false;
  const auto day = date.substr(0, 3);
  const auto month = date.substr(8, 3);
  return listed("Mon Tue Wed Thu Fri Sat Sun", day) &&
         listed("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec", month) &&
         has_shape(date, std::string(day) + ", ## " + std::string(month) + " #### ##:##:## +0000");
}

std::string crlf(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') continue;
    if (s[i] == '\n') out += '\r';
    out += s[i];
  }
  return out;
}

mailbox box(std::string name, std::string address) {
  return {std::move(name), std::move(address)};
}

message_spec sample_spec() {
  message_spec spec;
  spec.from = box("shopd", "shop@shop.example");
  spec.to = {box("Ada Lovelace", "ada@example.com")};
  spec.subject = "Your order ord_42 is confirmed";
  spec.text = "Hello Ada,\n\nthank you = merci.\nTotal: 55.00 EUR\n";
  spec.html =
      "<!DOCTYPE html>\n<html><body><p>Hello Ada,</p>\n<p style=\"color:red\">Total</p></body></html>\n";
  spec.date = std::chrono::sys_days{std::chrono::year{2026} / 11 / 23} + 10h + 5min + 7s;
  return spec;
}

outgoing_mail build(const message_spec& spec) {
  auto r = build_message(spec);
  REQUIRE_MESSAGE(r.has_value(), (r.has_error() ? r.error().message : std::string()));
  return std::move(*r);
}

mail_error build_error(const message_spec& spec) {
  auto r = build_message(spec);
  REQUIRE(r.has_error());
  return r.error();
}

}  // namespace

TEST_SUITE("mail/mime") {
  TEST_CASE("a multipart/alternative message parses back to what was put in") {
    const auto spec = sample_spec();
    const auto mail = build(spec);
    CHECK(only_crlf_line_ends(mail.data));
    CHECK(mail.data.ends_with("\r\n"));
    CHECK(longest_line(mail.data) <= 78);
    CHECK(mail.envelope_from == "shop@shop.example");
    CHECK(mail.recipients == std::vector<std::string>{"ada@example.com"});

    const auto msg = parse_entity(mail.data);
    SUBCASE("headers") {
      CHECK(msg.header("From") == "shopd <shop@shop.example>");
      CHECK(msg.header("To") == "Ada Lovelace <ada@example.com>");
      CHECK(msg.header("Subject") == "Your order ord_42 is confirmed");
      CHECK(msg.header("Date") == "Mon, 23 Nov 2026 10:05:07 +0000");
      CHECK(msg.header("MIME-Version") == "1.0");
      CHECK(msg.header("Message-ID") == mail.message_id);
      CHECK(has_shape(mail.message_id, "<" + std::string(32, '%') + "@shop.example>"));
    }
    SUBCASE("both parts, in order, quoted-printable UTF-8") {
      const auto content_type = msg.header("Content-Type");
      REQUIRE(content_type.starts_with("multipart/alternative;"));
      const auto boundary = param(content_type, "boundary");
      CHECK(boundary.size() <= 70);
      CHECK(msg.body.find("\r\n--" + boundary + "--\r\n") != std::string::npos);

      // Split at the delimiters (CRLF "--" boundary; the first may start the body).
      std::vector<std::string> parts;
      const std::string delimiter = "\r\n--" + boundary;
      const std::string body = "\r\n" + msg.body;
      auto pos = body.find(delimiter);
      REQUIRE(pos != std::string::npos);
      while (true) {
        const auto after = pos + delimiter.size();
        if (body.compare(after, 2, "--") == 0) break;
        REQUIRE(body.compare(after, 2, "\r\n") == 0);
        const auto next = body.find(delimiter, after);
        REQUIRE(next != std::string::npos);
        parts.push_back(body.substr(after + 2, next - after - 2));
        pos = next;
      }
      REQUIRE(parts.size() == 2);

      const auto text = parse_entity(parts[0]);
      CHECK(text.header("Content-Type") == "text/plain; charset=UTF-8");
      CHECK(text.header("Content-Transfer-Encoding") == "quoted-printable");
      CHECK(qp_decode(text.body) == crlf(spec.text));
      CHECK(text.body.find("thank you =3D merci.") != std::string::npos);

      const auto html = parse_entity(parts[1]);
      CHECK(html.header("Content-Type") == "text/html; charset=UTF-8");
      CHECK(html.header("Content-Transfer-Encoding") == "quoted-printable");
      CHECK(qp_decode(html.body) == crlf(spec.html));
    }
  }

  TEST_CASE("a message without HTML is a single text/plain entity") {
    auto spec = sample_spec();
    spec.html.clear();
    const auto mail = build(spec);
    const auto msg = parse_entity(mail.data);
    CHECK(msg.header("Content-Type") == "text/plain; charset=UTF-8");
    CHECK(msg.header("Content-Transfer-Encoding") == "quoted-printable");
    CHECK(mail.data.find("multipart") == std::string::npos);
    CHECK(qp_decode(msg.body) == crlf(spec.text));
  }

  TEST_CASE("each message gets its own Message-ID and boundary") {
    const auto a = build(sample_spec());
    const auto b = build(sample_spec());
    CHECK(a.message_id != b.message_id);
    CHECK(param(parse_entity(a.data).header("Content-Type"), "boundary") !=
          param(parse_entity(b.data).header("Content-Type"), "boundary"));
  }

  TEST_CASE("a chosen Message-ID is used as given, so a resent message keeps its id") {
    auto spec = sample_spec();
    SUBCASE("accepted forms") {
      for (const char* id :
           {"<01JD8ZQ3K4V6Y7X9ABCDEFGHJK@shop.example>", "<a.b+c=d@[192.0.2.1]>", "<x@localhost>"}) {
        CAPTURE(id);
        spec.message_id = id;
        const auto a = build(spec);
        const auto b = build(spec);
        CHECK(a.message_id == id);
        CHECK(b.message_id == id);
        CHECK(parse_entity(a.data).header("Message-ID") == id);
      }
    }
    SUBCASE("malformed ids are refused, never written") {
      for (const auto& id : std::vector<std::string>{
               "no-brackets@shop.example", "<no-at-sign>", "<@shop.example>", "<left@>",
               "<a..b@shop.example>", "<.a@shop.example>", "<a b@shop.example>", "<a@b@shop.example>",
               "<a@[x]y>", "<\"q\"@shop.example>", "<a@shop.example>\r\nBcc: victim@example.com",
               "<a@shop.example\n>", "<" + std::string(250, 'a') + "@shop.example>"}) {
        CAPTURE(id);
        spec.message_id = id;
        const auto e = build_error(spec);
        CHECK(e.code == mail_errc::invalid_header);
        CHECK(e.field == "Message-ID");
      }
    }
  }

  TEST_CASE("a non-ASCII subject becomes UTF-8 base64 encoded-words") {
    auto spec = sample_spec();
    spec.subject = "Ihre Bestellung ord_42 – Größe ✓";
    const auto mail = build(spec);
    const auto msg = parse_entity(mail.data);
    const auto subject = msg.header("Subject");
    CHECK(subject.starts_with("=?UTF-8?B?"));
    CHECK(decode_words(subject) == spec.subject);
    CHECK(longest_line(mail.data) <= 76);
  }

  TEST_CASE("long subjects are folded within the line limits") {
    SUBCASE("printable ASCII folds at spaces and unfolds to the original") {
      std::string subject;
      for (int i = 0; i < 60; ++i) subject += "word" + std::to_string(i) + (i % 7 == 0 ? "  " : " ");
      subject += " end";
      const auto header = encode_unstructured_header("Subject", subject);
      REQUIRE(header.has_value());
      CHECK(std::count(header->begin(), header->end(), '\n') > 3);
      CHECK(longest_line(*header) <= 78);
      const auto msg = parse_entity(*header + "\r\n\r\n");
      CHECK(msg.header("Subject") == subject);
    }
    SUBCASE("non-ASCII is split into encoded-words of whole characters") {
      std::string subject;
      for (int i = 0; i < 120; ++i) subject += i % 3 == 0 ? "é" : (i % 3 == 1 ? "€" : "🛒");
      const auto header = encode_unstructured_header("Subject", subject);
      REQUIRE(header.has_value());
      CHECK(longest_line(*header) <= 76);
      const auto msg = parse_entity(*header + "\r\n\r\n");
      std::vector<std::string> words;
      CHECK(decode_words(msg.header("Subject"), &words) == subject);
      CHECK(words.size() > 5);
      for (const auto& w : words) {
        CAPTURE(w);
        CHECK(w.size() <= 75);
        CHECK(shopd::text::is_valid_utf8(decode_words(w)));
      }
    }
    SUBCASE("a word too long to fold is encoded") {
      const std::string subject = "see " + std::string(1200, 'x');
      const auto header = encode_unstructured_header("Subject", subject);
      REQUIRE(header.has_value());
      CHECK(longest_line(*header) <= 76);
      CHECK(decode_words(parse_entity(*header + "\r\n\r\n").header("Subject")) == subject);
    }
    SUBCASE("ASCII that looks like an encoded-word is encoded") {
      const auto header = encode_unstructured_header("Subject", "=?UTF-8?B?SGk=?=");
      REQUIRE(header.has_value());
      CHECK(decode_words(parse_entity(*header + "\r\n\r\n").header("Subject")) == "=?UTF-8?B?SGk=?=");
    }
  }

  TEST_CASE("display names: atoms as they are, specials quoted, non-ASCII encoded") {
    auto spec = sample_spec();
    spec.to = {box("Doe, \"Jo\" \\", "jo@example.com"), box("Jürgen Groß", "j@example.com"),
               box("", "plain@example.com")};
    spec.from = box("", "shop@[192.0.2.1]");
    const auto mail = build(spec);
    CHECK(mail.recipients ==
          std::vector<std::string>{"jo@example.com", "j@example.com", "plain@example.com"});
    CHECK(longest_line(mail.data) <= 76);
    const auto msg = parse_entity(mail.data);
    CHECK(msg.header("From") == "shop@[192.0.2.1]");
    CHECK(has_shape(mail.message_id, "<" + std::string(32, '%') + "@[192.0.2.1]>"));
    const auto to = msg.header("To");
    CHECK(to.starts_with(R"("Doe, \"Jo\" \\" <jo@example.com>, =?UTF-8?B?)"));
    CHECK(decode_words(to) ==
          R"("Doe, \"Jo\" \\" <jo@example.com>, Jürgen Groß <j@example.com>, plain@example.com)");
  }

  TEST_CASE("dates in RFC 5322 form") {
    CHECK(format_rfc5322_date(std::chrono::system_clock::time_point{}) == "Thu, 01 Jan 1970 00:00:00 +0000");
    CHECK(format_rfc5322_date(std::chrono::sys_days{std::chrono::year{2024} / 2 / 29} + 23h + 59min + 59s +
                              999ms) == "Thu, 29 Feb 2024 23:59:59 +0000");
    const auto now = build([] {
                       auto s = sample_spec();
                       s.date.reset();
                       return s;
                     }())
                         .data;
    // Date comes first, from the clock.
    REQUIRE(now.starts_with("Date: "));
    CHECK(is_rfc5322_date(now.substr(6, now.find("\r\n") - 6)));
    CHECK(is_rfc5322_date("Mon, 23 Nov 2026 10:05:07 +0000"));
    CHECK_FALSE(is_rfc5322_date("Mon, 23 Nov 2026 10:05:07 +0100"));
    CHECK_FALSE(is_rfc5322_date("Mo, 23 Nov 2026 10:05:07 +00000"));
  }

  TEST_CASE("quoted-printable") {
    SUBCASE("known encodings") {
      CHECK(quoted_printable_encode("a=b") == "a=3Db");
      CHECK(quoted_printable_encode("trailing \nspace\t") == "trailing=20\r\nspace=09");
      CHECK(quoted_printable_encode("in the middle ok") == "in the middle ok");
      CHECK(quoted_printable_encode("Grüße") == "Gr=C3=BC=C3=9Fe");
      CHECK(quoted_printable_encode("a\r\nb\nc\rd") == "a\r\nb\r\nc=0Dd");
      CHECK(quoted_printable_encode(".\n.. x") == "=2E\r\n=2E. x");
      CHECK(quoted_printable_encode("From me\nFromage\n From") == "=46rom me\r\nFromage\r\n From");
      CHECK(quoted_printable_encode("") == "");
    }
    SUBCASE("long lines get soft breaks and decode back") {
      const std::string line(200, 'a');
      const auto encoded = quoted_printable_encode(line + "\n" + std::string(100, '=') + " \n");
      CHECK(only_crlf_line_ends(encoded));
      CHECK(longest_line(encoded) <= 76);
      CHECK(qp_decode(encoded) == line + "\r\n" + std::string(100, '=') + " \r\n");
    }
    SUBCASE("every byte value round-trips") {
      std::string all;
      for (int round = 0; round < 3; ++round) {
        for (int b = 0; b < 256; ++b) {
          if (b != '\n' && b != '\r') all += static_cast<char>(b);
          if (b % 37 == 0) all += ' ';
          if (b % 53 == 0) all += "\n";
        }
      }
      const auto encoded = quoted_printable_encode(all);
      CHECK(only_crlf_line_ends(encoded));
      CHECK(longest_line(encoded) <= 76);
      for (const auto line : crlf_lines(encoded)) {
        CAPTURE(line);
        CHECK((line.empty() || (line.back() != ' ' && line.back() != '\t')));
        CHECK(std::all_of(line.begin(), line.end(),
                          [](char c) { return c == '\t' || (c >= 0x20 && c < 0x7f); }));
      }
      CHECK(qp_decode(encoded) == crlf(all));
    }
  }

  TEST_CASE("header injection is impossible") {
    SUBCASE("in the subject") {
      for (const char* subject :
           {"Hi\r\nBcc: victim@example.com", "Hi\nBcc: victim@example.com", "Hi\rthere"}) {
        CAPTURE(subject);
        auto spec = sample_spec();
        spec.subject = subject;
        const auto e = build_error(spec);
        CHECK(e.code == mail_errc::invalid_header);
        CHECK(e.field == "Subject");
      }
      auto spec = sample_spec();
      spec.subject = std::string("Hi\0there", 8);
      CHECK(build_error(spec).code == mail_errc::invalid_header);
    }
    SUBCASE("in a display name") {
      auto spec = sample_spec();
      spec.to = {box("Ada\r\nBcc: victim@example.com", "ada@example.com")};
      const auto e = build_error(spec);
      CHECK(e.code == mail_errc::invalid_header);
      CHECK(e.field == "To");
      spec = sample_spec();
      spec.from.display_name = "shop\n";
      CHECK(build_error(spec).field == "From");
    }
    SUBCASE("in an address") {
      auto spec = sample_spec();
      spec.to = {box("", "ada@example.com\r\nBcc: victim@example.com")};
      CHECK(build_error(spec).code == mail_errc::invalid_header);
      const auto parsed = mailbox::parse("Ada <ada@example.com>\r\nBcc: victim@example.com");
      REQUIRE(parsed.has_error());
      CHECK(parsed.error().code == mail_errc::invalid_header);
    }
  }

  TEST_CASE("other invalid input") {
    SUBCASE("no recipients") {
      auto spec = sample_spec();
      spec.to.clear();
      CHECK(build_error(spec).code == mail_errc::no_recipients);
    }
    SUBCASE("invalid UTF-8") {
      auto spec = sample_spec();
      spec.text = "caf\xe9";
      auto e = build_error(spec);
      CHECK(e.code == mail_errc::invalid_body);
      CHECK(e.field == "text");
      spec = sample_spec();
      spec.html = "\xc3";
      CHECK(build_error(spec).field == "html");
      spec = sample_spec();
      spec.subject = "\xff";
      CHECK(build_error(spec).code == mail_errc::invalid_header);
    }
    SUBCASE("bad addresses") {
      auto spec = sample_spec();
      spec.to = {box("", "not-an-address")};
      CHECK(build_error(spec).code == mail_errc::invalid_address);
      spec.to = {box("", "ada@example.com")};
      spec.from.address = "shop@exa mple.com";
      CHECK(build_error(spec).code == mail_errc::invalid_address);
      CHECK(build_error(spec).field == "From");
    }
  }

  TEST_CASE("mailbox::parse") {
    SUBCASE("accepted forms") {
      const auto check = [](std::string_view text, std::string_view name, std::string_view address) {
        CAPTURE(text);
        const auto m = mailbox::parse(text);
        REQUIRE_MESSAGE(m.has_value(), (m.has_error() ? m.error().message : std::string()));
        CHECK(m->display_name == name);
        CHECK(m->address == address);
      };
      check("shop@localhost", "", "shop@localhost");
      check("  shop@localhost  ", "", "shop@localhost");
      check("<shop@localhost>", "", "shop@localhost");
      check("shopd <shop@localhost>", "shopd", "shop@localhost");
      check("\"Doe, John \\\"JD\\\"\" <john.doe+tag@mail.example.co.uk>", "Doe, John \"JD\"",
            "john.doe+tag@mail.example.co.uk");
      check("Jürgen <j@example.com>", "Jürgen", "j@example.com");
      check("x <a!#$%&'*+-/=?^_`{|}~@[IPv6:2001:db8::1]>", "x", "a!#$%&'*+-/=?^_`{|}~@[IPv6:2001:db8::1]");
      CHECK(mailbox::parse("shopd <shop@shop.example>")->domain() == "shop.example");
    }
    SUBCASE("rejected forms") {
      for (const char* text :
           {"", "shop", "@localhost", "shop@", "shop@@localhost", ".shop@localhost", "sh..op@localhost",
            "shop.@localhost", "\"quoted\"@localhost", "shöp@localhost", "shop@exam_ple.com",
            "shop@-example.com", "shop@example-.com", "shop@example..com", "shop@[1.2.3.4",
            "Name shop@localhost>", "a b@localhost"}) {
        CAPTURE(text);
        const auto m = mailbox::parse(text);
        REQUIRE(m.has_error());
        CHECK(m.error().code == mail_errc::invalid_address);
      }
      CHECK(mailbox::parse(std::string(65, 'a') + "@example.com").has_error());
      CHECK(mailbox::parse("a@" + std::string(64, 'b') + ".com").has_error());
    }
  }
}
