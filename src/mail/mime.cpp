#include "shopd/mail/mime.hpp"

#include "shopd/text/blank.hpp"
#include "shopd/text/utf8.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <utility>

namespace shopd::mail {

using text::is_valid_utf8;

namespace {

// Lines of a header field are kept to 76 characters where a fold point allows: within RFC 5322's
// 78 and exactly RFC 2047's limit for lines holding encoded-words.
constexpr std::size_t fold_width = 76;
// An unfoldable run longer than this is sent as encoded-words instead, so that no line can reach
// the hard limit of 998 octets, whatever the header name.
constexpr std::size_t max_unfoldable = 900;
// Bytes of UTF-8 per encoded-word: base64 of 45 bytes is 60 characters, plus "=?UTF-8?B?" and "?="
// makes 72, which fits a continuation line (" " + 72 < 76).
constexpr std::size_t encoded_word_bytes = 45;
constexpr std::string_view encoded_word_prefix = "=?UTF-8?B?";
constexpr std::string_view encoded_word_suffix = "?=";

mail_error header_error(std::string_view field, std::string_view what) {
  return {mail_errc::invalid_header, std::string(field), std::string(field) + " " + std::string(what)};
}

mail_error address_error(std::string_view field, std::string_view address, std::string_view what) {
  // mailbox::parse does not know which header the address is for; build_message does.
  const auto prefix = field == "address" ? std::string() : std::string(field) + " ";
  return {mail_errc::invalid_address, std::string(field),
          prefix + "address '" + std::string(address) + "' " + std::string(what)};
}

bool has_injection_char(std::string_view s) noexcept {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

bool is_printable_ascii(std::string_view s) noexcept {
  for (const char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

bool is_atext(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

std::string base64(std::string_view in) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const auto n = static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << 16 |
                   static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8 |
                   static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 2]));
    out += alphabet[n >> 18 & 63];
    out += alphabet[n >> 12 & 63];
    out += alphabet[n >> 6 & 63];
    out += alphabet[n & 63];
  }
  if (const auto rest = in.size() - i; rest > 0) {
    auto n = static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << 16;
    if (rest == 2) n |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8;
    out += alphabet[n >> 18 & 63];
    out += alphabet[n >> 12 & 63];
    out += rest == 2 ? alphabet[n >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

// Message-IDs and boundaries must not be guessable or collide across instances: CSPRNG bytes.
std::string random_hex(std::size_t bytes) {
  std::array<unsigned char, 32> buf{};
  if (bytes > buf.size() || RAND_bytes(buf.data(), static_cast<int>(bytes)) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (std::size_t i = 0; i < bytes; ++i) {
    out += digits[buf[i] >> 4];
    out += digits[buf[i] & 15];
  }
  return out;
}

// RFC 2047 encoded-words of whole UTF-8 characters; the first may be shorter to fit behind the
// header name. `text` must be valid UTF-8.
std::vector<std::string> encoded_words(std::string_view text, std::size_t first_word_bytes) {
  std::vector<std::string> words;
  std::size_t budget = first_word_bytes;
  std::size_t start = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto len = std::max<std::size_t>(1, shopd::text::utf8_sequence_length(text, pos));
    if (pos + len - start > budget && pos > start) {
      words.push_back(std::string(encoded_word_prefix) + base64(text.substr(start, pos - start)) +
                      std::string(encoded_word_suffix));
      start = pos;
      budget = encoded_word_bytes;
    }
    pos += len;
  }
  if (start < text.size() || words.empty()) {
    words.push_back(std::string(encoded_word_prefix) + base64(text.substr(start)) +
                    std::string(encoded_word_suffix));
  }
  return words;
}

// Writes one header field, folding (CRLF before a space) where a line would pass fold_width.
class header_builder {
 public:
  explicit header_builder(std::string_view name) : out_(name), line_(name.size() + 1) { out_ += ':'; }

  // Appends " token"; the space may become a fold. Never folds before the first token.
  void add(std::string_view token) {
    if (!first_ && line_ + 1 + token.size() > fold_width) {
      out_ += "\r\n";
      line_ = 0;
    }
    out_ += ' ';
    out_ += token;
    line_ += 1 + token.size();
    first_ = false;
  }

  [[nodiscard]] std::string take() && { return std::move(out_); }

 private:
  std::string out_;
  std::size_t line_;
  bool first_ = true;
};

// Splits printable ASCII at the spaces that may become folds: a space followed by a non-space.
// Joining the pieces with single spaces gives the input back, and no folded line is blank.
std::vector<std::string_view> fold_pieces(std::string_view s) {
  std::vector<std::string_view> pieces;
  std::size_t start = 0;
  for (std::size_t i = 1; i + 1 < s.size(); ++i) {
    if (s[i] == ' ' && s[i + 1] != ' ' && i > start) {
      pieces.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  pieces.push_back(s.substr(start));
  return pieces;
}

std::optional<mail_error> check_addr_spec(std::string_view field, std::string_view address) {
  if (has_injection_char(address)) return header_error(field, "address contains CR, LF or NUL");
  if (address.size() > 254) return address_error(field, address, "is longer than 254 characters");
  const auto at = address.rfind('@');
  if (at == std::string_view::npos) return address_error(field, address, "has no '@'");
  const auto local = address.substr(0, at);
  const auto domain = address.substr(at + 1);

  if (local.empty() || local.size() > 64)
    return address_error(field, address, "needs a local part of 1 to 64 characters");
  if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string_view::npos) {
    return address_error(field, address, "has a misplaced '.' in its local part");
  }
  for (const char c : local) {
    if (c != '.' && !is_atext(c)) {
      return address_error(field, address, "has a character its local part cannot hold unquoted");
    }
  }

  if (domain.empty()) return address_error(field, address, "has no domain");
  if (domain.front() == '[') {
    if (domain.size() < 3 || domain.back() != ']')
      return address_error(field, address, "has a malformed domain literal");
    for (const char c : domain.substr(1, domain.size() - 2)) {
      if (c < 33 || c > 126 || c == '[' || c == ']' || c == '\\') {
        return address_error(field, address, "has a malformed domain literal");
      }
    }
    return std::nullopt;
  }
  if (domain.size() > 253) return address_error(field, address, "has a domain longer than 253 characters");
  std::size_t label_start = 0;
  while (label_start <= domain.size()) {
    auto label_end = domain.find('.', label_start);
    if (label_end == std::string_view::npos) label_end = domain.size();
    const auto label = domain.substr(label_start, label_end - label_start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return address_error(field, address, "has an invalid domain name");
    }
    for (const char c : label) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) return address_error(field, address, "has an invalid domain name");
    }
    label_start = label_end + 1;
  }
  return std::nullopt;
}

// RFC 5322 §3.6.4 without the obsolete forms: "<" dot-atom-text "@" (dot-atom-text / no-fold-literal) ">".
bool is_dot_atom_text(std::string_view s) noexcept {
  if (s.empty() || s.front() == '.' || s.back() == '.' || s.find("..") != std::string_view::npos)
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c == '.' || is_atext(c); });
}

std::optional<mail_error> check_message_id(std::string_view id) {
  constexpr std::size_t max_message_id = 250;
  if (has_injection_char(id)) return header_error("Message-ID", "contains CR, LF or NUL (header injection)");
  const auto invalid = [&] {
    return header_error("Message-ID",
                        "must look like <left@right> (dot-atoms, or a [literal] on the right) "
                        "and be at most 250 characters");
  };
  if (id.size() > max_message_id || id.size() < 5 || id.front() != '<' || id.back() != '>') return invalid();
  const auto inner = id.substr(1, id.size() - 2);
  const auto at = inner.find('@');
  if (at == std::string_view::npos) return invalid();
  const auto left = inner.substr(0, at);
  const auto right = inner.substr(at + 1);
  if (!is_dot_atom_text(left)) return invalid();
  if (right.size() >= 2 && right.front() == '[' && right.back() == ']') {
    const auto literal = right.substr(1, right.size() - 2);
    const bool dtext = std::all_of(literal.begin(), literal.end(), [](char c) {
      return c >= 33 && c <= 126 && c != '[' && c != ']' && c != '\\';
    });
    return dtext ? std::nullopt : std::optional<mail_error>(invalid());
  }
  if (!is_dot_atom_text(right)) return invalid();
  return std::nullopt;
}

std::optional<mail_error> check_mailbox(std::string_view field, const mailbox& m) {
  if (has_injection_char(m.display_name)) return header_error(field, "display name contains CR, LF or NUL");
  if (!is_valid_utf8(m.display_name)) return header_error(field, "display name is not valid UTF-8");
  return check_addr_spec(field, m.address);
}

// The display name as phrase tokens: plain atoms when it is made of them, a quoted-string when it
// is other printable ASCII, encoded-words otherwise.
std::vector<std::string> phrase_tokens(std::string_view name) {
  if (name.empty()) return {};
  if (is_printable_ascii(name) && name.size() <= max_unfoldable / 2) {
    const bool atoms = name.front() != ' ' && name.back() != ' ' &&
                       name.find("  ") == std::string_view::npos &&
                       name.find("=?") == std::string_view::npos &&
                       std::all_of(name.begin(), name.end(), [](char c) { return c == ' ' || is_atext(c); });
    if (atoms) {
      std::vector<std::string> tokens;
      for (const auto piece : fold_pieces(name)) tokens.emplace_back(piece);
      return tokens;
    }
    std::string quoted = "\"";
    for (const char c : name) {
      if (c == '"' || c == '\\') quoted += '\\';
      quoted += c;
    }
    quoted += '"';
    return {std::move(quoted)};
  }
  return encoded_words(name, encoded_word_bytes);
}

void add_mailbox(header_builder& h, const mailbox& m, bool last) {
  for (const auto& token : phrase_tokens(m.display_name)) h.add(token);
  std::string addr = m.display_name.empty() ? m.address : "<" + m.address + ">";
  if (!last) addr += ',';
  h.add(addr);
}

using text::trim_blanks;

void append_part(std::string& out, std::string_view boundary, std::string_view subtype,
                 std::string_view body) {
  out += "--";
  out += boundary;
  out += "\r\nContent-Type: text/";
  out += subtype;
  out += "; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n";
  out += quoted_printable_encode(body);
  out += "\r\n";
}

}  // namespace

mail_result<mailbox> mailbox::parse(std::string_view text) {
  if (has_injection_char(text)) return header_error("address", "contains CR, LF or NUL");
  text = trim_blanks(text);
  mailbox m;
  if (!text.empty() && text.back() == '>') {
    const auto open = text.rfind('<');
    if (open == std::string_view::npos) return address_error("address", text, "has '>' without '<'");
    m.address = std::string(trim_blanks(text.substr(open + 1, text.size() - open - 2)));
    auto name = trim_blanks(text.substr(0, open));
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
      name = name.substr(1, name.size() - 2);
      for (std::size_t i = 0; i < name.size(); ++i) {
        if (name[i] == '\\' && i + 1 < name.size()) ++i;
        m.display_name += name[i];
      }
    } else {
      m.display_name = std::string(name);
    }
  } else {
    m.address = std::string(text);
  }
  if (auto err = check_mailbox("address", m)) return std::move(*err);
  return m;
}

std::string_view mailbox::domain() const noexcept {
  const auto at = address.rfind('@');
  return at == std::string::npos ? std::string_view{} : std::string_view(address).substr(at + 1);
}

std::string format_rfc5322_date(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  static constexpr std::array<const char*, 7> weekdays{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr std::array<const char*, 12> months{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const auto secs = floor<seconds>(t);
  const auto day = floor<days>(secs);
  const year_month_day ymd{day};
  const hh_mm_ss hms{secs - day};
  std::array<char, 40> buf{};
  std::snprintf(buf.data(), buf.size(), "%s, %02u %s %04d %02d:%02d:%02d +0000",
                weekdays[weekday{day}.c_encoding()], static_cast<unsigned>(ymd.day()),
                months[static_cast<unsigned>(ymd.month()) - 1], static_cast<int>(ymd.year()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf.data();
}

mail_result<std::string> encode_unstructured_header(std::string_view name, std::string_view value) {
  if (has_injection_char(value)) return header_error(name, "contains CR, LF or NUL (header injection)");
  if (!is_valid_utf8(value)) return header_error(name, "is not valid UTF-8");

  header_builder h(name);
  const auto pieces = fold_pieces(value);
  const bool plain = is_printable_ascii(value) && value.find("=?") == std::string_view::npos &&
                     std::all_of(pieces.begin(), pieces.end(),
                                 [](std::string_view p) { return p.size() <= max_unfoldable; });
  if (plain) {
    for (const auto piece : pieces) h.add(piece);
    return std::move(h).take();
  }
  // The first word shares its line with "Name: ".
  const auto room = fold_width - std::min(fold_width - 16, name.size() + 2);
  const auto first_bytes = (room - encoded_word_prefix.size() - encoded_word_suffix.size()) / 4 * 3;
  for (const auto& word : encoded_words(value, std::min(first_bytes, encoded_word_bytes))) h.add(word);
  return std::move(h).take();
}

std::string quoted_printable_encode(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() + text.size() / 4);
  std::size_t line = 0;  // characters on the current encoded line

  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n' || (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n')) {
      if (c == '\r') ++i;
      out += "\r\n";
      line = 0;
      continue;
    }
    const bool at_line_end = i + 1 == text.size() || text[i + 1] == '\n' ||
                             (text[i + 1] == '\r' && i + 2 < text.size() && text[i + 2] == '\n');
    // A '.' or the 'F' of "From " at the start of a line is encoded so that no relay can mistake
    // the line for the end of DATA or an mbox separator.
    const auto must_encode = [&](bool line_start) {
      if (c == ' ' || c == '\t') return at_line_end;
      if (c < 33 || c > 126 || c == '=') return true;
      if (line_start && c == '.') return true;
      return line_start && c == 'F' && text.substr(i, 5) == "From ";
    };
    auto encoded = must_encode(line == 0);
    if (line + (encoded ? 3 : 1) > 75) {  // 75 plus the '=' of the soft break
      out += "=\r\n";
      line = 0;
      encoded = must_encode(true);
    }
    if (encoded) {
      out += '=';
      out += hex[c >> 4];
      out += hex[c & 15];
      line += 3;
    } else {
      out += static_cast<char>(c);
      ++line;
    }
  }
  return out;
}

mail_result<outgoing_mail> build_message(const message_spec& spec) {
  if (spec.to.empty()) return mail_error{mail_errc::no_recipients, "To", "To needs at least one address"};
  if (auto err = check_mailbox("From", spec.from)) return std::move(*err);
  for (const auto& m : spec.to) {
    if (auto err = check_mailbox("To", m)) return std::move(*err);
  }
  auto subject = encode_unstructured_header("Subject", spec.subject);
  if (!subject) return std::move(subject).error();
  if (!spec.message_id.empty()) {
    if (auto err = check_message_id(spec.message_id)) return std::move(*err);
  }
  if (!is_valid_utf8(spec.text))
    return mail_error{mail_errc::invalid_body, "text", "text part is not valid UTF-8"};
  if (!is_valid_utf8(spec.html))
    return mail_error{mail_errc::invalid_body, "html", "html part is not valid UTF-8"};

  outgoing_mail mail;
  mail.envelope_from = spec.from.address;
  for (const auto& m : spec.to) mail.recipients.push_back(m.address);
  mail.message_id = spec.message_id.empty()
                        ? "<" + random_hex(16) + "@" + std::string(spec.from.domain()) + ">"
                        : spec.message_id;

  auto& d = mail.data;
  d += "Date: " + format_rfc5322_date(spec.date.value_or(std::chrono::system_clock::now())) + "\r\n";
  header_builder from("From");
  add_mailbox(from, spec.from, true);
  d += std::move(from).take() + "\r\n";
  header_builder to("To");
  for (std::size_t i = 0; i < spec.to.size(); ++i) add_mailbox(to, spec.to[i], i + 1 == spec.to.size());
  d += std::move(to).take() + "\r\n";
  d += *subject + "\r\n";
  d += "Message-ID: " + mail.message_id + "\r\n";
  d += "MIME-Version: 1.0\r\n";
  // RFC 3834: machine-generated, so vacation responders do not answer it.
  d += "Auto-Submitted: auto-generated\r\n";

  if (spec.html.empty()) {
    d += "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n";
    d += quoted_printable_encode(spec.text);
    if (!d.ends_with("\r\n")) d += "\r\n";
    return mail;
  }
  // "=_" cannot occur in quoted-printable output ('=' is always followed by hex or CRLF), so the
  // boundary cannot collide with a part.
  const auto boundary = "=_shopd_" + random_hex(12);
  d += "Content-Type: multipart/alternative;\r\n boundary=\"" + boundary + "\"\r\n\r\n";
  d += "This is a multi-part message in MIME format.\r\n\r\n";
  append_part(d, boundary, "plain", spec.text);
  append_part(d, boundary, "html", spec.html);
  d += "--" + boundary + "--\r\n";
  return mail;
}

}  // namespace shopd::mail
