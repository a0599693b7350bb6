#include "shopd/config/config.hpp"

#include "shopd/text/blank.hpp"

#include <cerrno>
#include <cstdio>
#include <memory>
#include <system_error>

namespace shopd::config {
namespace {

using text::is_blank;
using text::trim_blanks;

bool is_key_start(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
bool is_key_char(char c) noexcept {
  return is_key_start(c) || (c >= '0' && c <= '9');
}

bool is_valid_key(std::string_view key) noexcept {
  if (key.empty() || !is_key_start(key.front())) return false;
  for (char c : key)
    if (!is_key_char(c)) return false;
  return true;
}

// A bad key for an error message: control and non-ASCII bytes as \xNN, so that the message stays
// one line of plain text (a stray CR would otherwise rewrite the terminal line or split a log
// record), and at most 64 bytes of it.
std::string quoted_key(std::string_view key) {
  constexpr std::size_t max_shown = 64;
  constexpr std::string_view hex = "0123456789abcdef";
  std::string out = "\"";
  for (std::size_t i = 0; i < key.size(); ++i) {
    if (i == max_shown) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(key[i]);
    if (u == '"' || u == '\\') {
      out += '\\';
      out += key[i];
    } else if (u < 0x20 || u >= 0x7f) {
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 0xf];
    } else {
      out += key[i];
    }
  }
  out += '"';
  return out;
}

// Errors never quote the line: a malformed line may well be a pasted secret.
[[noreturn]] void fail(std::string_view origin, std::size_t line, std::string_view what) {
  std::string msg(origin);
  msg += ':';
  msg += std::to_string(line);
  msg += ": ";
  msg += what;
  throw config_error(msg);
}

// After a closing quote only blanks or a comment may follow.
void expect_end(std::string_view rest, std::string_view origin, std::size_t line) {
  rest = trim_blanks(rest);
  if (!rest.empty() && rest.front() != '#') fail(origin, line, "unexpected text after the closing quote");
}

std::string parse_value(std::string_view raw, std::string_view origin, std::size_t line) {
  std::string_view v = trim_blanks(raw);
  if (v.empty()) return {};
  if (v.front() == '\'') {
    const auto close = v.find('\'', 1);
    if (close == std::string_view::npos) fail(origin, line, "unterminated single quote");
    expect_end(v.substr(close + 1), origin, line);
    return std::string(v.substr(1, close - 1));
  }
  if (v.front() == '"') {
    std::string out;
    for (std::size_t i = 1; i < v.size(); ++i) {
      const char c = v[i];
      if (c == '"') {
        expect_end(v.substr(i + 1), origin, line);
        return out;
      }
      if (c == '\\' && i + 1 < v.size()) {
        const char next = v[i + 1];
        if (next == '"' || next == '\\') {
          out += next;
          ++i;
          continue;
        }
        if (next == 'n') {
          out += '\n';
          ++i;
          continue;
        }
      }
      out += c;
    }
    fail(origin, line, "unterminated double quote");
  }
  // Unquoted: a '#' starts a comment only after whitespace, so `KEY=a#b` keeps its '#'. The
  // leading blanks of `raw` count, so `KEY= # note` is empty.
  for (std::size_t i = 1; i < raw.size(); ++i) {
    if (raw[i] == '#' && is_blank(raw[i - 1])) {
      raw = raw.substr(0, i);
      break;
    }
  }
  return std::string(trim_blanks(raw));
}

// Later assignments replace earlier ones, as when a shell sources the file.
string_map to_map(std::vector<env_entry> entries) {
  string_map out;
  for (auto& e : entries) out.insert_or_assign(std::move(e.key), std::move(e.value));
  return out;
}

}  // namespace

std::vector<env_entry> parse_env_entries(std::string_view text, std::string_view origin) {
  constexpr std::string_view bom = "\xEF\xBB\xBF";
  if (text.starts_with(bom)) text.remove_prefix(bom.size());

  std::vector<env_entry> entries;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const auto eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (line.ends_with('\r')) line.remove_suffix(1);

    line = trim_blanks(line);
    if (line.empty() || line.front() == '#') continue;

    if (line.starts_with("export") && line.size() > 6 && is_blank(line[6]))
      line = trim_blanks(line.substr(6));

    const auto eq = line.find('=');
    if (eq == std::string_view::npos) fail(origin, line_no, "expected KEY=VALUE");
    const std::string_view key = trim_blanks(line.substr(0, eq));
    if (key.empty()) fail(origin, line_no, "missing key before '='");
    if (!is_valid_key(key))
      fail(origin, line_no,
           "bad key name " + quoted_key(key) + " (letters, digits and '_', not starting with a digit)");

    entries.push_back({std::string(key), parse_value(line.substr(eq + 1), origin, line_no), line_no});
  }
  return entries;
}

string_map parse_env_text(std::string_view text, std::string_view origin) {
  return to_map(parse_env_entries(text, origin));
}

std::vector<env_entry> parse_env_entries(const std::filesystem::path& path) {
  const std::string name = path.string();
  const auto cannot_read = [&name](int err) {
    return config_error("cannot read env file " + name + ": " + std::generic_category().message(err));
  };

  // stdio rather than iostreams: POSIX sets errno on failure, so the message can say why.
  errno = 0;
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(name.c_str(), "rb"), &std::fclose);
  if (!file) throw cannot_read(errno);

  std::string text;
  char buf[4096];
  while (const std::size_t n = std::fread(buf, 1, sizeof buf, file.get())) text.append(buf, n);
  // Opening a directory succeeds on Linux; the read then fails with EISDIR.
  if (std::ferror(file.get())) throw cannot_read(errno != 0 ? errno : EIO);

  return parse_env_entries(text, name);
}

string_map parse_env_file(const std::filesystem::path& path) {
  return to_map(parse_env_entries(path));
}

}  // namespace shopd::config
