#include "shopd/config/config.hpp"

#include "shopd/text/blank.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <iterator>
#include <system_error>
#include <type_traits>

#include <boost/url/parse.hpp>

namespace shopd::config {
namespace {

// ---------------------------------------------------------------------------------------------
// Small text helpers.

using text::is_blank;
using text::trim_blanks;

char to_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
char to_upper(char c) noexcept {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](char x, char y) { return to_lower(x) == to_lower(y); });
}

bool is_control(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

template <class F>
void for_each_choice(std::string_view list, F&& f) {
  while (true) {
    const auto bar = list.find('|');
    f(list.substr(0, bar));
    if (bar == std::string_view::npos) return;
    list.remove_prefix(bar + 1);
  }
}

bool in_choices(std::string_view list, std::string_view value, bool case_insensitive) {
  bool found = false;
  for_each_choice(list, [&](std::string_view c) {
    found = found || (case_insensitive ? iequals(c, value) : c == value);
  });
  return found;
}

template <class F>
void for_each_item(std::string_view list, F&& f) {
  while (true) {
    const auto comma = list.find(',');
    f(trim_blanks(list.substr(0, comma)));
    if (comma == std::string_view::npos) return;
    list.remove_prefix(comma + 1);
  }
}

std::string join_choices(std::string_view list, std::string_view before, std::string_view after,
                         std::string_view separator) {
  std::string out;
  for_each_choice(list, [&](std::string_view c) {
    if (!out.empty()) out += separator;
    out += before;
    out += c;
    out += after;
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Checks for values a kind does not describe. Each returns "" when the value is fine.

std::string check_ip_literal(std::string_view value) {
  const std::string s(value);
  std::array<unsigned char, 16> addr{};
  if (::inet_pton(AF_INET, s.c_str(), addr.data()) == 1 || ::inet_pton(AF_INET6, s.c_str(), addr.data()) == 1)
    return {};
  return "must be an IPv4 or IPv6 address such as 127.0.0.1, 0.0.0.0 or ::";
}

std::string check_mail_transport(std::string_view value) {
  if (value == "smtp") return {};
  if (value.starts_with("file:") && !trim_blanks(value.substr(5)).empty()) return {};
  return "must be smtp or file:DIR";
}

bool is_plain_address(std::string_view addr) {
  const auto at = addr.find('@');
  if (at == 0 || at == std::string_view::npos || at + 1 == addr.size()) return false;
  if (addr.find('@', at + 1) != std::string_view::npos) return false;
  return std::none_of(addr.begin(), addr.end(),
                      [](char c) { return is_blank(c) || c == '<' || c == '>' || c == ',' || c == '"'; });
}

std::string check_mail_from(std::string_view value) {
  const std::string_view v = trim_blanks(value);
  const auto lt = v.find('<');
  std::string_view addr = v;
  if (lt != std::string_view::npos) {
    if (!v.ends_with('>') || v.find('>') != v.size() - 1 || v.find('<', lt + 1) != std::string_view::npos)
      addr = {};
    else
      addr = v.substr(lt + 1, v.size() - lt - 2);
  }
  if (is_plain_address(addr)) return {};
  return "must be an address like shop@example.com or Name <shop@example.com>";
}

std::string check_cors_origins(std::string_view value) {
  if (trim_blanks(value) == "*") return {};
  bool ok = true;
  for_each_item(value, [&ok](std::string_view origin) {
    const auto u = boost::urls::parse_uri(origin);
    ok = ok && u && !u->encoded_host().empty() && !u->has_userinfo() && u->encoded_path().empty() &&
         !u->has_query() && !u->has_fragment();
  });
  if (ok) return {};
  return "must be * or comma-separated origins like https://shop.example.com";
}

// RFC 9110 token characters: what a header name may be made of.
bool is_tchar(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string check_header_list(std::string_view value) {
  bool ok = true;
  for_each_item(value, [&ok](std::string_view name) {
    ok = ok && !name.empty() && std::all_of(name.begin(), name.end(), is_tchar);
  });
  if (ok) return {};
  return "must be comma-separated header names";
}

// ---------------------------------------------------------------------------------------------
// The table.

constexpr std::string_view service_schemes = "http|https";

// clang-format off
const key_spec key_table[] = {
  // Database
  {.name = "DATABASE_URL", .type = kind::url, .default_value = "sqlite:var/shopd.db",
   .choices = "sqlite|postgresql|postgres",
   .help = "Database to use: `sqlite:PATH` (relative to the working directory; `sqlite::memory:` for "
           "tests) or `postgresql://user:password@host:port/dbname`.",
   .target = &settings::database_url, .group = "Database"},
  {.name = "DATABASE_POOL_SIZE", .type = kind::integer, .default_value = "8", .min = 1, .max = 256,
   .help = "Number of database connections each process keeps open. On a SQLite file they serve reads: "
           "transactions run on one more connection of their own, and WAL checkpoints on another.",
   .target = &settings::database_pool_size, .group = "Database"},
  {.name = "DATABASE_BUSY_TIMEOUT_MS", .type = kind::integer, .default_value = "5000",
   .min = 0, .max = 600000,
   .help = "How long a statement waits for a locked database before it fails, in milliseconds.",
   .target = &settings::database_busy_timeout_ms, .group = "Database"},
  {.name = "DATABASE_SQLITE_SYNCHRONOUS", .type = kind::choice, .default_value = "full", .choices = "full|normal",
   .help = "On a SQLite file, whether an answer waits for its commit to be on disk. `full`: a transaction "
           "returns once the WAL is synced after its commit (one sync shared by concurrent commits), so what was "
           "answered (a checkout accepted, a message published, an event handled) survives a power loss or an "
           "OS crash. `normal`: the WAL is synced at checkpoints only, faster; a crash of the process still loses "
           "nothing, but a power loss may roll back the last commits, already answered. PostgreSQL ignores it.",
   .target = &settings::database_sqlite_synchronous, .group = "Database"},

  // HTTP
  {.name = "HTTP_BIND", .type = kind::string, .default_value = "127.0.0.1",
   .help = "Address the HTTP listeners bind to; `0.0.0.0` or `::` listens on every interface.",
   .target = &settings::http_bind, .group = "HTTP",
   .check = &check_ip_literal, .rule = "IPv4 or IPv6 address"},
  {.name = "ORDERS_PORT", .type = kind::integer, .default_value = "3001", .min = 0, .max = 65535,
   .help = "TCP port of the orders role (0 picks a free port).",
   .target = &settings::orders_port, .group = "HTTP"},
  {.name = "EMAIL_PORT", .type = kind::integer, .default_value = "3002", .min = 0, .max = 65535,
   .help = "TCP port of the email role (0 picks a free port).",
   .target = &settings::email_port, .group = "HTTP"},
  {.name = "INVENTORY_PORT", .type = kind::integer, .default_value = "3003", .min = 0, .max = 65535,
   .help = "TCP port of the inventory role (0 picks a free port).",
   .target = &settings::inventory_port, .group = "HTTP"},
  {.name = "ANALYTICS_PORT", .type = kind::integer, .default_value = "3004", .min = 0, .max = 65535,
   .help = "TCP port of the analytics role (0 picks a free port).",
   .target = &settings::analytics_port, .group = "HTTP"},
  {.name = "RELAY_PORT", .type = kind::integer, .default_value = "8080", .min = 0, .max = 65535,
   .help = "TCP port of the embedded QStash relay (0 picks a free port).",
   .target = &settings::relay_port, .group = "HTTP"},
  {.name = "HTTP_BODY_LIMIT", .type = kind::integer, .default_value = "1048576", .min = 1024, .max = 67108864,
   .help = "Largest request body accepted, in bytes; a larger one is refused with 413. The analytics "
           "role's /api/dlq/callback takes 4/3 of it plus 150 KiB: a failure callback carries a whole "
           "message in base64.",
   .target = &settings::http_body_limit, .group = "HTTP"},
  {.name = "HTTP_HEADER_TIMEOUT_MS", .type = kind::integer, .default_value = "10000",
   .min = 100, .max = 600000,
   .help = "Time a client has to send a request's headers, in milliseconds.",
   .target = &settings::http_header_timeout_ms, .group = "HTTP"},
  {.name = "HTTP_READ_TIMEOUT_MS", .type = kind::integer, .default_value = "30000",
   .min = 100, .max = 3600000,
   .help = "Time a client has to send a whole request, in milliseconds.",
   .target = &settings::http_read_timeout_ms, .group = "HTTP"},
  {.name = "HTTP_WRITE_TIMEOUT_MS", .type = kind::integer, .default_value = "30000",
   .min = 100, .max = 3600000,
   .help = "Time a client has to receive a whole response, in milliseconds.",
   .target = &settings::http_write_timeout_ms, .group = "HTTP"},
  {.name = "HTTP_IDLE_TIMEOUT_MS", .type = kind::integer, .default_value = "60000",
   .min = 100, .max = 3600000,
   .help = "How long a keep-alive connection may stay idle between requests, in milliseconds.",
   .target = &settings::http_idle_timeout_ms, .group = "HTTP"},
  {.name = "HTTP_MAX_CONNECTIONS", .type = kind::integer, .default_value = "10000", .min = 1, .max = 1000000,
   .help = "Most client connections a listener serves at once.",
   .target = &settings::http_max_connections, .group = "HTTP"},
  {.name = "SHUTDOWN_TIMEOUT_MS", .type = kind::integer, .default_value = "10000", .min = 0, .max = 600000,
   .help = "How long shutdown waits for in-flight requests and work to finish (the relay's deliveries, the "
           "outboxes' batches and the open requests share it), in milliseconds; with the drain delay, it must fit "
           "in the unit's TimeoutStopSec (30 s).",
   .target = &settings::shutdown_timeout_ms, .group = "HTTP"},
  {.name = "SHUTDOWN_DRAIN_DELAY_MS", .type = kind::integer, .default_value = "5000", .min = 0, .max = 600000,
   .help = "After SIGTERM, how long the roles go on serving with `/readyz` answering 503 before they close "
           "their listeners, so that load balancers stop sending first, in milliseconds; SIGINT or a second "
           "signal skips it.",
   .target = &settings::shutdown_drain_delay_ms, .group = "HTTP"},
  {.name = "IO_THREADS", .type = kind::integer, .default_value = "0", .min = 0, .max = 256,
   .help = "Threads running network I/O (0 means one per CPU core).",
   .target = &settings::io_threads, .group = "HTTP"},
  {.name = "WORKER_THREADS", .type = kind::integer, .default_value = "8", .min = 1, .max = 256,
   .help = "Threads running blocking work such as database queries and SMTP sessions. A process "
           "serving the email role with others gives it a pool of this size of its own.",
   .target = &settings::worker_threads, .group = "HTTP"},

  // CORS
  {.name = "CORS_ALLOWED_ORIGINS", .type = kind::string, .default_value = "",
   .help = "Origins whose pages may call the role APIs, comma-separated, or `*` for any; empty turns "
           "CORS off.",
   .target = &settings::cors_allowed_origins, .group = "CORS",
   .check = &check_cors_origins, .rule = "`*` or comma-separated `scheme://host[:port]`"},
  {.name = "CORS_ALLOWED_HEADERS", .type = kind::string, .default_value = "Content-Type, Authorization",
   .help = "Request headers a cross-origin page may send (`Access-Control-Allow-Headers`).",
   .target = &settings::cors_allowed_headers, .group = "CORS",
   .check = &check_header_list, .rule = "comma-separated header names"},
  {.name = "CORS_ALLOW_CREDENTIALS", .type = kind::boolean, .default_value = "false",
   .help = "Whether cross-origin pages may send cookies and credentials (refused with the `*` origin).",
   .target = &settings::cors_allow_credentials, .group = "CORS"},
  {.name = "CORS_MAX_AGE_S", .type = kind::integer, .default_value = "600", .min = 0, .max = 86400,
   .help = "How long a browser may cache a preflight answer, in seconds.",
   .target = &settings::cors_max_age_s, .group = "CORS"},

  // QStash
  {.name = "QSTASH_URL", .type = kind::url, .default_value = "http://127.0.0.1:8080",
   .choices = service_schemes,
   .help = "QStash endpoint that events are published to: the embedded relay, or "
           "`https://qstash.upstash.io`.",
   .target = &settings::qstash_url, .group = "QStash"},
  {.name = "QSTASH_TOKEN", .type = kind::secret, .default_value = "",
   .help = "Bearer token for the QStash REST API.",
   .target = &settings::qstash_token, .group = "QStash"},
  {.name = "QSTASH_CURRENT_SIGNING_KEY", .type = kind::secret, .default_value = "",
   .help = "Key that signs deliveries and verifies their `Upstash-Signature` header.",
   .target = &settings::qstash_current_signing_key, .group = "QStash"},
  {.name = "QSTASH_NEXT_SIGNING_KEY", .type = kind::secret, .default_value = "",
   .help = "Key that verification also accepts, so the signing key can be rotated without downtime.",
   .target = &settings::qstash_next_signing_key, .group = "QStash"},
  {.name = "SIGNATURE_CLOCK_TOLERANCE_S", .type = kind::integer, .default_value = "5", .min = 0, .max = 300,
   .help = "Clock skew allowed when checking a signature's validity period, in seconds.",
   .target = &settings::signature_clock_tolerance_s, .group = "QStash"},

  // Relay
  {.name = "RELAY_NODE_ID", .type = kind::string, .default_value = "",
   .help = "Name of this relay instance in message leases: distinct for instances sharing a database, "
           "the same across restarts so a restarted relay re-sends its own in-flight messages at once; "
           "empty means the host name and the relay's port, `--port` included (`shop1:8080`; with port 0, "
           "the process id: `shop1:pid4242`).",
   .target = &settings::relay_node_id, .group = "Relay"},
  {.name = "RELAY_CONCURRENCY", .type = kind::integer, .default_value = "256", .min = 1, .max = 10000,
   .help = "Most deliveries one relay process has in flight at once.",
   .target = &settings::relay_concurrency, .group = "Relay"},
  {.name = "RELAY_PER_DESTINATION_CONCURRENCY", .type = kind::integer, .default_value = "64", .min = 1,
   .max = 10000,
   .help = "Most deliveries one relay process has in flight to one destination (scheme, host and port), so "
           "a slow service cannot hold every slot. A delivery waiting for the destination's workers holds "
           "its slot: with too few, a busy destination's messages wait in the queue to be claimed.",
   .target = &settings::relay_per_destination_concurrency, .group = "Relay"},
  {.name = "RELAY_DEFAULT_RETRIES", .type = kind::integer, .default_value = "3", .min = 0, .max = 100,
   .help = "Retries after the first delivery attempt for messages without `Upstash-Retries`.",
   .target = &settings::relay_default_retries, .group = "Relay"},
  {.name = "RELAY_MAX_RETRIES", .type = kind::integer, .default_value = "20", .min = 0, .max = 100,
   .help = "Largest `Upstash-Retries` honoured; larger values are capped to it.",
   .target = &settings::relay_max_retries, .group = "Relay"},
  {.name = "RELAY_BACKOFF_SCALE", .type = kind::integer, .default_value = "1000", .min = 0, .max = 1000000,
   .help = "Milliseconds of default back-off per second of QStash's schedule (min(1 day, e^(2.5n)) seconds "
           "before retry n): 1000 is QStash's own, 1 makes it a thousand times faster.",
   .target = &settings::relay_backoff_scale, .group = "Relay"},
  {.name = "RELAY_DELIVERY_TIMEOUT_MS", .type = kind::integer, .default_value = "30000", .min = 100,
   .max = 7200000,
   .help = "Timeout of one delivery attempt for messages without `Upstash-Timeout`, and the longest one a "
           "message may ask for, in milliseconds.",
   .target = &settings::relay_delivery_timeout_ms, .group = "Relay"},
  {.name = "RELAY_DEDUP_WINDOW_S", .type = kind::integer, .default_value = "600", .min = 1, .max = 7776000,
   .help = "How long a deduplication id blocks a repeated publish, in seconds.",
   .target = &settings::relay_dedup_window_s, .group = "Relay"},
  {.name = "RELAY_POLL_INTERVAL_MS", .type = kind::integer, .default_value = "200", .min = 10, .max = 60000,
   .help = "How often the relay looks for due messages when nothing wakes it, in milliseconds.",
   .target = &settings::relay_poll_interval_ms, .group = "Relay"},
  {.name = "RELAY_RETENTION_S", .type = kind::integer, .default_value = "604800", .min = 60, .max = 31536000,
   .help = "How long delivered and cancelled messages stay in the database, in seconds; DLQ entries stay "
           "until deleted or retried.",
   .target = &settings::relay_retention_s, .group = "Relay"},

  // Services
  {.name = "ORDERS_SERVICE_URL", .type = kind::url, .default_value = "http://127.0.0.1:3001",
   .choices = service_schemes,
   .help = "Base URL where the relay delivers the orders role's events (its webhook is `BASE/api/webhook`).",
   .target = &settings::orders_service_url, .group = "Services"},
  {.name = "EMAIL_SERVICE_URL", .type = kind::url, .default_value = "http://127.0.0.1:3002",
   .choices = service_schemes,
   .help = "Base URL where the relay delivers the email role's events (its webhook is `BASE/api/webhook`).",
   .target = &settings::email_service_url, .group = "Services"},
  {.name = "INVENTORY_SERVICE_URL", .type = kind::url, .default_value = "http://127.0.0.1:3003",
   .choices = service_schemes,
   .help = "Base URL where the relay delivers the inventory role's events (its webhook is "
           "`BASE/api/webhook`).",
   .target = &settings::inventory_service_url, .group = "Services"},
  {.name = "ANALYTICS_SERVICE_URL", .type = kind::url, .default_value = "http://127.0.0.1:3004",
   .choices = service_schemes,
   .help = "Base URL where the relay delivers the analytics role's events (its webhook is "
           "`BASE/api/webhook`).",
   .target = &settings::analytics_service_url, .group = "Services"},

  // Mail
  {.name = "MAIL_TRANSPORT", .type = kind::string, .default_value = "file:var/mail",
   .help = "How the email role sends mail: `smtp` through `SMTP_URL`, or `file:DIR` to write `.eml` "
           "files into DIR.",
   .target = &settings::mail_transport, .group = "Mail",
   .check = &check_mail_transport, .rule = "`smtp` or `file:DIR`"},
  {.name = "SMTP_URL", .type = kind::url, .default_value = "", .choices = "smtp|smtps",
   .help = "SMTP server for `MAIL_TRANSPORT=smtp`, as `smtp://user:password@host:port` (`smtps://` for TLS).",
   .target = &settings::smtp_url, .group = "Mail"},
  {.name = "MAIL_FROM", .type = kind::string, .default_value = "shopd <shop@localhost>",
   .help = "Sender of outgoing mail, as an address or as `Name <address>`.",
   .target = &settings::mail_from, .group = "Mail",
   .check = &check_mail_from, .rule = "address or `Name <address>`"},

  // API and logs
  {.name = "SHOPD_API_TOKEN", .type = kind::secret, .default_value = "",
   .help = "Bearer token the role APIs require for writes and private reads.",
   .target = &settings::shopd_api_token, .group = "API and logs"},
  {.name = "LOG_LEVEL", .type = kind::choice, .default_value = "info", .choices = "debug|info|warn|error",
   .help = "Least severe level of the log lines written.",
   .target = &settings::log_level, .group = "API and logs"},
  {.name = "LOG_FORMAT", .type = kind::choice, .default_value = "text", .choices = "json|text",
   .help = "Log line format: `json` writes one object per line, `text` one readable line.",
   .target = &settings::log_format, .group = "API and logs"},
};
// clang-format on

// ---------------------------------------------------------------------------------------------
// Validation.

/// The example a URL error points at, so the fix is obvious.
std::string_view url_example(std::string_view scheme) {
  if (scheme == "sqlite") return "sqlite:var/shopd.db, sqlite:/abs/path.db or sqlite::memory:";
  if (scheme == "postgresql" || scheme == "postgres") return "postgresql://user:password@host:5432/dbname";
  if (scheme == "smtp" || scheme == "smtps") return "smtp://user:password@host:587";
  return "http://127.0.0.1:3001";
}

std::string check_url(std::string_view value, std::string_view schemes) {
  const auto parsed = boost::urls::parse_uri(value);
  if (!parsed) {
    const auto first_scheme = schemes.substr(0, schemes.find('|'));
    return "not a URL (e.g. " + std::string(url_example(first_scheme)) + ")";
  }
  const auto& u = *parsed;
  std::string scheme(u.scheme());
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), to_lower);
  if (!in_choices(schemes, scheme, false)) return "URL scheme must be one of " + std::string(schemes);

  if (scheme == "sqlite") {
    // SOCI's sqlite backend takes a file name: sqlite://host/... would silently mean something else.
    if (u.has_authority())
      return "a sqlite: URL holds a path, not a host (e.g. " + std::string(url_example(scheme)) + ")";
    if (u.encoded_path().empty())
      return "a sqlite: URL needs a path (e.g. " + std::string(url_example(scheme)) + ")";
    return {};
  }
  if (!u.has_authority() || u.encoded_host().empty())
    return "URL needs a host (e.g. " + std::string(url_example(scheme)) + ")";
  if (u.has_port() && !u.port().empty()) {
    const std::string_view port = u.port();
    unsigned number = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (ec != std::errc{} || end != port.data() + port.size() || number == 0 || number > 65535)
      return "URL port must be between 1 and 65535";
  }
  return {};
}

/// The kind's parse of `value`; "" when fine. Integers and booleans land in `integer`/`boolean`.
std::string check_value(const key_spec& key, std::string_view value, std::int64_t& integer, bool& boolean) {
  if (std::any_of(value.begin(), value.end(), is_control)) return "must not contain control characters";
  if (value.empty()) return key.default_value.empty() ? std::string() : "must not be empty";

  switch (key.type) {
    case kind::string:
    case kind::secret:
      break;
    case kind::integer: {
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), integer);
      const bool overflow = ec == std::errc::result_out_of_range;
      if (!overflow && (ec != std::errc{} || end != value.data() + value.size())) return "not an integer";
      if (overflow || integer < key.min || integer > key.max)
        return "must be between " + std::to_string(key.min) + " and " + std::to_string(key.max);
      break;
    }
    case kind::boolean:
      if (in_choices("true|1|yes|on", value, true))
        boolean = true;
      else if (in_choices("false|0|no|off", value, true))
        boolean = false;
      else
        return "not a boolean (true/false, 1/0, yes/no, on/off)";
      break;
    case kind::choice:
      if (!in_choices(key.choices, value, false)) return "must be one of " + std::string(key.choices);
      break;
    case kind::url:
      if (auto reason = check_url(value, key.choices); !reason.empty()) return reason;
      break;
  }
  if (key.check != nullptr) return key.check(value);
  return {};
}

/// Replaces the password of a URL (scheme://user:password@host...) by "***". The password ends at
/// the LAST '@', not the first: a password with an unescaped '@' or '/' is a common typo, and the
/// text must stay hidden even then (an '@' later in a path only hides more than needed).
std::string redact_url(std::string_view value) {
  const auto authority = value.find("://");
  if (authority == std::string_view::npos) return std::string(value);
  const auto user = authority + 3;
  const auto at = value.rfind('@');
  if (at == std::string_view::npos || at < user) return std::string(value);
  const auto colon = value.find(':', user);
  if (colon == std::string_view::npos || colon > at) return std::string(value);
  return std::string(value.substr(0, colon + 1)) + "***" + std::string(value.substr(at));
}

/// How a value may be shown in a message or a log: secrets hidden, URL passwords hidden.
std::string shown(const key_spec& key, std::string_view value) {
  if (key.type == kind::secret) return value.empty() ? std::string() : "***";
  if (key.type == kind::url) return redact_url(value);
  return std::string(value);
}

/// `value` as a double-quoted, one-line, bounded string for an error message.
std::string one_line_quoted(std::string_view value) {
  constexpr std::size_t max_shown = 120;
  std::string out = "\"";
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (i == max_shown) {
      out += "...";
      break;
    }
    const char c = value[i];
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (is_control(c)) {
      constexpr std::string_view hex = "0123456789abcdef";
      const auto u = static_cast<unsigned char>(c);
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

/// Where a value came from, for error messages.
struct origin {
  enum class type { defaults, file, environment, flag } kind;
  std::string_view file{};
  std::size_t line = 0;
};

std::string describe(const key_spec& key, std::string_view value, const origin& from) {
  const std::string v = one_line_quoted(shown(key, value));
  switch (from.kind) {
    case origin::type::defaults:
      return std::string(key.name) + "=" + v + " (built-in default)";
    case origin::type::file:
      return std::string(key.name) + "=" + v + " from " + std::string(from.file) + ":" +
             std::to_string(from.line);
    case origin::type::environment:
      return std::string(key.name) + "=" + v + " from the environment";
    case origin::type::flag:
      return key.flag_name() + "=" + v;
  }
  return std::string(key.name);
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

/// " (did you mean KEY?)" for the closest key within two edits, ignoring case; else "".
std::string suggestion(std::string_view unknown) {
  std::string upper(unknown);
  std::transform(upper.begin(), upper.end(), upper.begin(), to_upper);
  const key_spec* best = nullptr;
  std::size_t best_distance = 3;
  for (const auto& key : key_table) {
    if (const auto d = edit_distance(upper, key.name); d < best_distance) {
      best = &key;
      best_distance = d;
    }
  }
  return best == nullptr ? std::string() : " (did you mean " + std::string(best->name) + "?)";
}

void apply(settings& s, const key_spec& key, std::string_view value, const origin& from) {
  std::int64_t integer = 0;
  bool boolean = false;
  if (auto reason = check_value(key, value, integer, boolean); !reason.empty())
    throw config_error(describe(key, value, from) + ": " + reason);
  std::visit(
      [&](auto member) {
        using type = std::remove_reference_t<decltype(s.*member)>;
        if constexpr (std::is_same_v<type, std::string>)
          s.*member = std::string(value);
        else if constexpr (std::is_same_v<type, std::int64_t>)
          s.*member = integer;
        else
          s.*member = boolean;
      },
      key.target);
}

const key_spec& known_key(std::string_view name, std::string_view where) {
  if (const auto* key = find_key(name)) return *key;
  throw config_error("unknown key " + std::string(name) + " " + std::string(where) + suggestion(name));
}

// ---------------------------------------------------------------------------------------------
// Rendering.

std::string_view kind_name(kind k) {
  switch (k) {
    case kind::string:
      return "string";
    case kind::secret:
      return "secret";
    case kind::integer:
      return "integer";
    case kind::boolean:
      return "boolean";
    case kind::choice:
      return "choice";
    case kind::url:
      return "url";
  }
  return "string";
}

/// What values `key` takes, in words; `code` wraps literal values in backticks (Markdown).
std::string allowed(const key_spec& key, bool code) {
  const std::string_view tick = code ? "`" : "";
  switch (key.type) {
    case kind::integer:
      return std::to_string(key.min) + ".." + std::to_string(key.max);
    case kind::boolean:
      return "true/false, 1/0, yes/no, on/off";
    case kind::choice:
      return join_choices(key.choices, tick, tick, ", ");
    case kind::url:
      return join_choices(key.choices, tick, std::string(":") + std::string(tick), ", ") + " URL";
    case kind::string:
    case kind::secret:
      break;
  }
  if (!key.rule.empty()) return std::string(key.rule);
  return key.type == kind::secret ? "any text, never shown" : "any text";
}

/// Help and rule texts mark literals with backticks for Markdown; a plain-text comment drops them.
std::string without_backticks(std::string_view text) {
  std::string out;
  std::copy_if(text.begin(), text.end(), std::back_inserter(out), [](char c) { return c != '`'; });
  return out;
}

/// A Markdown table cell: '|' would end the cell.
std::string cell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

/// `value` as an env-file value that parse_env_text and POSIX shells read back unchanged.
std::string env_quoted(std::string_view value) {
  const bool plain = std::all_of(value.begin(), value.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("_-./:@,+=%").find(c) != std::string_view::npos;
  });
  if (plain) return std::string(value);
  if (value.find('\'') == std::string_view::npos) return "'" + std::string(value) + "'";
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

constexpr std::array<std::string_view, 5> unit_roles{"orders", "email", "inventory", "analytics", "relay"};

std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// Whether `key` matters to a process serving only `role` (from what the role and `serve` read).
// Groups not named here (new ones included) matter to every role, so a new key shows up in every
// example file and the drift test asks for them to be regenerated.
bool role_uses(std::string_view role, const key_spec& key) {
  const bool relay = role == "relay";
  const std::string_view name = key.name;
  if (name.ends_with("_PORT")) return name == upper(role) + "_PORT";
  if (key.group == "Relay") return relay;
  if (key.group == "Mail") return role == "email";
  // The relay publishes nothing, verifies no deliveries and serves no browser: it needs neither
  // the service URLs, CORS, the QStash endpoint, nor the role API token.
  if (key.group == "Services" || key.group == "CORS") return !relay;
  if (name == "QSTASH_URL" || name == "SIGNATURE_CLOCK_TOLERANCE_S" || name == "SHOPD_API_TOKEN")
    return !relay;
  return true;
}

// What a production unit runs with where the built-in default suits development only: the
// database in the units' shared state directory, logs for the journal, real mail.
std::string_view unit_value(std::string_view role, const key_spec& key) {
  const std::string_view name = key.name;
  if (name == "DATABASE_URL") return "sqlite:/var/lib/shopd/shopd.db";
  if (name == "LOG_FORMAT") return "json";
  if (role == "email") {
    if (name == "MAIL_TRANSPORT") return "smtp";
    if (name == "SMTP_URL") return "smtp://shop:CHANGE-ME@smtp.example.com:587?starttls=required";
    if (name == "MAIL_FROM") return "Shop <shop@example.com>";
  }
  return key.default_value;
}

}  // namespace

std::string key_spec::flag_name() const {
  std::string out = "--";
  for (char c : name) out += c == '_' ? '-' : to_lower(c);
  return out;
}

std::span<const key_spec> keys() {
  return key_table;
}

const key_spec* find_key(std::string_view name) {
  const auto it = std::find_if(std::begin(key_table), std::end(key_table),
                               [name](const key_spec& k) { return k.name == name; });
  return it == std::end(key_table) ? nullptr : &*it;
}

string_map process_environment() {
  string_map out;
  for (const auto& key : key_table) {
    const std::string name(key.name);
    if (const char* value = std::getenv(name.c_str())) out.emplace(name, value);
  }
  return out;
}

settings load(const sources& src) {
  settings s;
  for (const auto& key : key_table) apply(s, key, key.default_value, {origin::type::defaults});

  if (src.env_file) {
    const std::string file = src.env_file->string();
    for (const auto& entry : parse_env_entries(*src.env_file)) {
      const auto* key = find_key(entry.key);
      if (key == nullptr)
        throw config_error(file + ":" + std::to_string(entry.line) + ": unknown key " + entry.key +
                           suggestion(entry.key));
      apply(s, *key, entry.value, {origin::type::file, file, entry.line});
    }
  }
  for (const auto& [name, value] : src.environment)
    apply(s, known_key(name, "in the environment"), value, {origin::type::environment});
  for (const auto& [name, value] : src.flags)
    apply(s, known_key(name, "given as a flag"), value, {origin::type::flag});
  return s;
}

std::string display_value(const settings& s, const key_spec& key) {
  return std::visit(
      [&](auto member) -> std::string {
        const auto& value = s.*member;
        using type = std::remove_cvref_t<decltype(value)>;
        if constexpr (std::is_same_v<type, std::string>)
          return shown(key, value);
        else if constexpr (std::is_same_v<type, std::int64_t>)
          return std::to_string(value);
        else
          return value ? "true" : "false";
      },
      key.target);
}

std::string render_markdown() {
  std::string out = "| Key | Type | Default | Allowed | Description |\n|---|---|---|---|---|\n";
  for (const auto& key : key_table) {
    out += "| `" + std::string(key.name) + "` | " + std::string(kind_name(key.type)) + " | ";
    out += key.default_value.empty() ? "(empty)" : "`" + cell(key.default_value) + "`";
    out += " | " + cell(allowed(key, true)) + " | " + cell(key.help) + " |\n";
  }
  return out;
}

std::string render_env_example() {
  std::string out =
      "# shopd configuration: every key with its built-in default.\n"
      "# Later sources win: built-in defaults, then --env-file, then the environment, then flags.\n"
      "# Syntax: KEY=VALUE, # comments, optional `export `, 'literal' or \"escaped\" quotes.\n";
  std::string_view group;
  for (const auto& key : key_table) {
    if (key.group != group) {
      group = key.group;
      out += "\n# --- " + std::string(group) + " ---\n";
    }
    out += "\n# " + without_backticks(key.help) + "\n";
    out += "# " + std::string(kind_name(key.type)) + ": " + without_backticks(allowed(key, false)) + "\n";
    out += std::string(key.name) + "=" +
           (key.type == kind::secret ? std::string() : env_quoted(key.default_value)) + "\n";
  }
  return out;
}

std::string render_env_example(std::string_view role) {
  if (std::find(unit_roles.begin(), unit_roles.end(), role) == unit_roles.end()) {
    std::string valid;
    for (const auto r : unit_roles) valid += (valid.empty() ? "" : ", ") + std::string(r);
    throw config_error("unknown role '" + std::string(role) + "' (valid: " + valid + ")");
  }
  const std::string name(role);
  std::string out =
      "# /etc/shopd/" + name + ".env: settings of the shopd@" + name + " unit (`shopd serve --role=" + name +
      "`).\n"
      "# Generated by `shopd config --format env --role=" +
      name +
      "`: the keys this role uses, with values for a\n"
      "# production unit; every other key keeps its built-in default (`shopd config --format env` lists "
      "them).\n"
      "# Set the empty secrets before starting the unit; keep this file root:shopd, mode 0640.\n"
      "# Syntax understood by both systemd (EnvironmentFile=) and shopd (--env-file): KEY=VALUE lines,\n"
      "# whole-line # comments, 'literal' quotes.\n";
  std::string_view group;
  for (const auto& key : key_table) {
    if (!role_uses(role, key)) continue;
    if (key.group != group) {
      group = key.group;
      out += "\n# --- " + std::string(group) + " ---\n";
    }
    const auto value = unit_value(role, key);
    out += "\n# " + without_backticks(key.help) + "\n";
    out += "# " + std::string(kind_name(key.type)) + ": " + without_backticks(allowed(key, false));
    if (value != key.default_value) {
      out += "; built-in default: " +
             (key.default_value.empty() ? std::string("(empty)") : std::string(key.default_value));
    }
    out += "\n" + std::string(key.name) + "=" +
           (key.type == kind::secret ? std::string() : env_quoted(value)) + "\n";
  }
  return out;
}

}  // namespace shopd::config
