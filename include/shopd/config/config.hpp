#pragma once
/// Configuration: one table of keys drives parsing, validation, `--help`, the example env files and
/// the README. A `settings` value is an immutable, validated snapshot built once at start-up from, in
/// increasing precedence: the defaults in the table, an `--env-file`, the process environment, and
/// command-line flags.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace shopd::config {

/// The validated snapshot. Field names follow the keys (DATABASE_URL -> database_url).
/// Durations are integer milliseconds or seconds, as the key's suffix says.
struct settings {
  // Database
  std::string database_url;
  std::int64_t database_pool_size = 0;
  std::int64_t database_busy_timeout_ms = 0;
  std::string database_sqlite_synchronous;
  // HTTP server
  std::string http_bind;
  std::int64_t orders_port = 0;
  std::int64_t email_port = 0;
  std::int64_t inventory_port = 0;
  std::int64_t analytics_port = 0;
  std::int64_t relay_port = 0;
  std::int64_t http_body_limit = 0;
  std::int64_t http_header_timeout_ms = 0;
  std::int64_t http_read_timeout_ms = 0;
  std::int64_t http_write_timeout_ms = 0;
  std::int64_t http_idle_timeout_ms = 0;
  std::int64_t http_max_connections = 0;
  std::int64_t shutdown_timeout_ms = 0;
  std::int64_t shutdown_drain_delay_ms = 0;
  std::int64_t io_threads = 0;
  std::int64_t worker_threads = 0;
  // CORS
  std::string cors_allowed_origins;
  std::string cors_allowed_headers;
  bool cors_allow_credentials = false;
  std::int64_t cors_max_age_s = 0;
  // QStash / relay
  std::string qstash_url;
  std::string qstash_token;
  std::string qstash_current_signing_key;
  std::string qstash_next_signing_key;
  std::int64_t signature_clock_tolerance_s = 0;
  // Relay
  std::string relay_node_id;
  std::int64_t relay_concurrency = 0;
  std::int64_t relay_per_destination_concurrency = 0;
  std::int64_t relay_default_retries = 0;
  std::int64_t relay_max_retries = 0;
  std::int64_t relay_backoff_scale = 0;
  std::int64_t relay_delivery_timeout_ms = 0;
  std::int64_t relay_dedup_window_s = 0;
  std::int64_t relay_poll_interval_ms = 0;
  std::int64_t relay_retention_s = 0;
  // Service URLs (also the `sub` of the signatures their webhooks receive)
  std::string orders_service_url;
  std::string email_service_url;
  std::string inventory_service_url;
  std::string analytics_service_url;
  // Mail
  std::string mail_transport;
  std::string smtp_url;
  std::string mail_from;
  // API and observability
  std::string shopd_api_token;
  std::string log_level;
  std::string log_format;
};

/// What kind of value a key holds; decides parsing and validation.
enum class kind {
  string,   ///< any text
  secret,   ///< text never written to logs or `--help`
  integer,  ///< decimal integer within [min, max]
  boolean,  ///< true/false, 1/0, yes/no, on/off
  choice,   ///< one of `choices` ("json|text")
  url,      ///< URL whose scheme is one of `choices` ("http|https"); empty allowed when the default is
};

using field = std::variant<std::string settings::*, std::int64_t settings::*, bool settings::*>;

/// One configuration key. The table of these is the single description of configuration.
struct key_spec {
  std::string_view name{};  ///< environment name, e.g. DATABASE_URL
  kind type;
  std::string_view default_value{};  ///< as text; parsed and validated like any other source
  std::int64_t min = 0;              ///< integer bounds, inclusive
  std::int64_t max = 0;
  std::string_view choices{};  ///< choice values or URL schemes, '|'-separated
  std::string_view help{};     ///< one sentence
  field target;
  std::string_view group{};  ///< section in --help and the README

  /// Extra rule for values a kind does not describe (HTTP_BIND, MAIL_TRANSPORT, ...): returns ""
  /// when `value` is acceptable, else a short reason ("must be smtp or file:DIR"). Runs after the
  /// kind's own checks, on non-empty values only.
  std::string (*check)(std::string_view value) = nullptr;
  std::string_view rule{};  ///< what `check` accepts, in words, for --help and the README

  /// The command-line flag for this key: DATABASE_URL -> "--database-url".
  [[nodiscard]] std::string flag_name() const;
};

/// Every key, in documentation order.
[[nodiscard]] std::span<const key_spec> keys();

/// The key named `name`, or nullptr.
[[nodiscard]] const key_spec* find_key(std::string_view name);

/// Raised for any configuration problem; `what()` is one line that names the key and the source.
class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using string_map = std::map<std::string, std::string, std::less<>>;

/// The raw inputs, lowest precedence first (defaults come from the table).
struct sources {
  std::optional<std::filesystem::path> env_file;  ///< KEY=VALUE lines; unknown keys are an error
  string_map environment;                         ///< usually `process_environment()`
  string_map flags;                               ///< key name -> value, from the command line
};

/// The known keys present in this process's environment (other variables are ignored).
[[nodiscard]] string_map process_environment();

/// Parse a `.env` file: `KEY=VALUE` lines (LF or CRLF), blank lines and `#` comments, optional
/// `export ` before the key, whitespace around the key. Unquoted values are trimmed and end at a `#`
/// that follows whitespace; 'single-quoted' values are literal; "double-quoted" values understand
/// \" \\ and \n (any other backslash is kept as is). Quotes close on the same line, and only a
/// comment may follow them. A later assignment of a key replaces an earlier one. Throws
/// config_error naming the file (and line) for an unreadable file or a malformed line; the message
/// never repeats the line, which may hold a secret.
[[nodiscard]] string_map parse_env_file(const std::filesystem::path& path);
/// Same, from text already read; `origin` names it in error messages.
[[nodiscard]] string_map parse_env_text(std::string_view text, std::string_view origin);

/// One assignment of an env file, with the (1-based) line it is on.
struct env_entry {
  std::string key;
  std::string value;
  std::size_t line = 0;
};
/// The assignments of `text` in file order, duplicates included; same syntax and errors as
/// parse_env_text. load() uses it to name the line of a bad value.
[[nodiscard]] std::vector<env_entry> parse_env_entries(std::string_view text, std::string_view origin);
/// Same, reading the file at `path` (named in errors as given), with parse_env_file's errors.
[[nodiscard]] std::vector<env_entry> parse_env_entries(const std::filesystem::path& path);

/// Build and validate the snapshot. Throws config_error (one line naming the key) on the first bad
/// value, unknown env-file key or unreadable env file. Each source is applied in turn (defaults,
/// env file, environment, flags), every value validated as it is applied, so a bad value fails even
/// when a later source overrides it. An empty value is accepted only for keys whose default is
/// empty. Keys in `environment` or `flags` must be known keys.
[[nodiscard]] settings load(const sources& src);

/// The value to show for `key` in logs and diagnostics: secrets become "***" when set, and a URL's
/// password becomes "***".
[[nodiscard]] std::string display_value(const settings& s, const key_spec& key);

/// The key table as a Markdown table (README) or as a commented env file (config/*.env.example).
[[nodiscard]] std::string render_markdown();
[[nodiscard]] std::string render_env_example();
/// The env file of the systemd unit shopd@`role` (config/<role>.env.example): only the keys that
/// role uses, each with its help, set to production values where the default suits development
/// only (database in the units' state directory, JSON logs, SMTP mail); secrets left empty. Throws
/// config_error naming the valid roles when `role` is not orders, email, inventory, analytics or relay.
[[nodiscard]] std::string render_env_example(std::string_view role);

}  // namespace shopd::config
