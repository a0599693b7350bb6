#include "shopd/db/database_url.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace shopd::db {
namespace {

[[noreturn]] void fail(const std::string& reason) {
  throw std::invalid_argument("invalid database URL: " + reason);
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// libpq conninfo values: single-quoted, with ' and \ backslash-escaped.
std::string conninfo_quote(std::string_view value) {
  std::string out;
  out.reserve(value.size() + 2);
  out += '\'';
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  out += '\'';
  return out;
}

// A decoded component must survive the trip through a C string.
std::string checked(std::string value, std::string_view what) {
  if (value.find('\0') != std::string::npos) fail(std::string(what) + " contains a NUL byte");
  return value;
}

std::string decode(boost::urls::pct_string_view s) {
  boost::urls::encoding_opts opts;
  opts.space_as_plus = false;  // libpq decodes only %XX; '+' stays '+'
  return s.decode(opts);
}

database_url parse_sqlite(std::string_view url, std::string_view rest) {
  database_url out;
  out.kind = dialect::sqlite;
  out.redacted = std::string(url);
  if (rest == ":memory:") {
    out.connect_string = "db=\":memory:\"";
    return out;
  }
  if (rest.starts_with("//")) {
    // sqlite:///abs/path is a common spelling of an absolute path; sqlite://name is ambiguous.
    if (!rest.starts_with("///"))
      fail("sqlite: takes a path, not a host (sqlite:rel/path or sqlite:///abs/path)");
    rest.remove_prefix(2);
  }
  if (rest.empty()) fail("sqlite: needs a file path (or :memory:)");
  std::string path = checked(std::string(rest), "sqlite path");
  // SOCI's sqlite3 backend reads `db="..."` up to the next '"' and cannot escape one.
  if (path.find('"') != std::string::npos) fail("sqlite path must not contain '\"'");
  out.sqlite_path = path;
  // A relative path starting with a blank would trip SOCI's quoted-value reader; "./" is the same file.
  std::string for_soci = (path.front() == ' ') ? "./" + path : path;
  out.connect_string = "db=\"" + for_soci + "\"";
  return out;
}

bool is_conninfo_keyword(std::string_view key) noexcept {
  return !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// The text after the authority's port colon, or "" without one. Only called on a "scheme://" URL.
std::string_view raw_port(std::string_view url) noexcept {
  std::string_view authority = url.substr(url.find("//") + 2);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (auto at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  if (authority.starts_with('[')) {
    auto close = authority.find(']');
    authority.remove_prefix(close == std::string_view::npos ? authority.size() : close + 1);
  }
  auto colon = authority.rfind(':');
  return colon == std::string_view::npos ? std::string_view{} : authority.substr(colon + 1);
}

database_url parse_postgresql(std::string_view url) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) fail("not a valid postgresql:// URL (" + parsed.error().message() + ")");
  const boost::urls::url_view& u = *parsed;
  if (u.has_fragment()) fail("postgresql URL must not have a #fragment");
  if (!u.has_authority() || u.encoded_host().empty()) fail("postgresql URL has no host");

  // key, value in conninfo order; query parameters come last so they override, as in libpq.
  std::vector<std::pair<std::string, std::string>> params;
  if (u.has_userinfo()) {
    std::string user = checked(decode(u.encoded_user()), "user");
    if (!user.empty()) params.emplace_back("user", std::move(user));
    if (u.has_password()) params.emplace_back("password", checked(decode(u.encoded_password()), "password"));
  }
  params.emplace_back("host", checked(decode(u.encoded_host_address()), "host"));

  // The port as written: Boost.URL 1.81 accepts "h:54x/d" as port 54 and path "x/d".
  std::string_view port = raw_port(url);
  unsigned long port_number = 5432;
  if (!port.empty()) {
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), port_number);
    if (ec != std::errc{} || end != port.data() + port.size() || port_number == 0 || port_number > 65535) {
      // Not echoed: in a URL missing its host ("postgresql://user:secret/db") the "port" is the password.
      fail("bad port (expected a number from 1 to 65535)");
    }
  }
  params.emplace_back("port", std::to_string(port_number));

  std::string dbname = decode(u.encoded_path());
  if (!dbname.empty() && dbname.front() == '/') dbname.erase(0, 1);
  params.emplace_back("dbname",
                      dbname.empty() ? std::string("postgres") : checked(std::move(dbname), "dbname"));

  bool has_connect_timeout = false;
  bool query_password = false;
  for (auto p : u.encoded_params()) {
    if (p.key.empty() && !p.has_value) continue;  // a bare or doubled '&', or a trailing '?'
    std::string key = decode(p.key);
    if (!is_conninfo_keyword(key)) fail("bad query parameter name '" + key + "'");
    if (!p.has_value) fail("query parameter '" + key + "' has no value");
    has_connect_timeout = has_connect_timeout || key == "connect_timeout";
    query_password = query_password || key == "password";
    params.emplace_back(key, checked(decode(p.value), key));
  }
  // Without it libpq waits for the kernel's TCP timeout (minutes) on a black-holed host, and a
  // reconnect on lease would hold a worker that long.
  if (!has_connect_timeout) params.emplace_back("connect_timeout", "10");

  database_url out;
  out.kind = dialect::postgresql;
  for (const auto& [key, value] : params) {
    if (!out.connect_string.empty()) out.connect_string += ' ';
    out.connect_string += key;
    out.connect_string += '=';
    out.connect_string += conninfo_quote(value);
  }

  boost::urls::url redacted(u);
  if (redacted.has_password()) redacted.set_password("***");
  if (query_password) {
    auto ps = redacted.params();
    for (auto it = ps.begin(); it != ps.end(); ++it) {
      if ((*it).key == "password") it = ps.set(it, "***");
    }
  }
  out.redacted = std::string(redacted.buffer());
  return out;
}

}  // namespace

database_url database_url::parse(std::string_view url) {
  if (url.empty()) fail("empty");
  auto colon = url.find(':');
  if (colon == std::string_view::npos || colon == 0)
    fail("no scheme (expected sqlite:PATH or postgresql://...)");
  std::string_view scheme = url.substr(0, colon);
  if (iequals(scheme, "sqlite")) return parse_sqlite(url, url.substr(colon + 1));
  if (iequals(scheme, "postgresql") || iequals(scheme, "postgres")) {
    if (!url.substr(colon + 1).starts_with("//"))
      fail("postgresql URL has no host (postgresql://host/dbname)");
    return parse_postgresql(url);
  }
  // The scheme alone: anything after it may hold a password.
  fail("unsupported scheme '" + std::string(scheme) + "' (expected sqlite: or postgresql://)");
}

std::string_view to_string(dialect d) noexcept {
  switch (d) {
    case dialect::sqlite:
      return "sqlite";
    case dialect::postgresql:
      return "postgresql";
  }
  return "unknown";
}

}  // namespace shopd::db
