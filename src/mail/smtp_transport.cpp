#include "shopd/mail/transport.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

namespace shopd::mail {

namespace {

// curl_global_init must run once before any handle exists, and is not thread-safe on every
// libcurl build: a function-local static gives both, whichever worker sends first.
class curl_global {
 public:
  curl_global() {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      throw std::runtime_error("curl_global_init failed");
  }
  curl_global(const curl_global&) = delete;
  curl_global& operator=(const curl_global&) = delete;
  ~curl_global() { curl_global_cleanup(); }
};

void ensure_curl_global() {
  static const curl_global instance;
}

enum class starttls_mode { opportunistic, required };

struct smtp_settings {
  std::string curl_url;  // scheme://host:port/path: no credentials, no query
  std::string where;     // host:port, for messages
  std::string redacted;  // the URL with the password replaced, for describe()
  bool implicit_tls = false;
  starttls_mode starttls = starttls_mode::opportunistic;
  std::string user;
  std::string password;
  std::string ca_file;
  std::chrono::milliseconds connect_timeout{};
  std::chrono::milliseconds total_timeout{};
};

[[noreturn]] void bad_url(std::string_view what) {
  throw std::invalid_argument(
      "SMTP_URL " + std::string(what) +
      " (expected smtp://[user:password@]host[:port][?starttls=required] or smtps://...)");
}

smtp_settings parse_settings(std::string_view text, const smtp_options& options) {
  const auto parsed = boost::urls::parse_uri(text);
  if (!parsed) bad_url("is not a URL");
  const auto& url = *parsed;

  smtp_settings s;
  std::string scheme(url.scheme());
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (scheme != "smtp" && scheme != "smtps") bad_url("must start with smtp:// or smtps://");
  s.implicit_tls = scheme == "smtps";
  if (!url.has_authority() || url.encoded_host().empty()) bad_url("has no host");
  if (url.has_fragment()) bad_url("must not have a #fragment");

  std::string credentials;
  if (url.has_userinfo()) {
    s.user = url.user();
    if (s.user.empty()) bad_url("has a password but no user");
    if (!url.has_password()) bad_url("has a user but no password");
    s.password = url.password();
    if (s.user.find('\0') != std::string::npos || s.password.find('\0') != std::string::npos) {
      bad_url("has a NUL byte in its user or password");
    }
    credentials = std::string(url.encoded_user()) + ":***@";
  }

  s.ca_file = options.ca_file;
  for (const auto param : url.params(boost::urls::encoding_opts(false))) {
    if (param.key == "starttls" && !s.implicit_tls) {
      if (param.value == "required") {
        s.starttls = starttls_mode::required;
      } else if (param.value == "opportunistic") {
        s.starttls = starttls_mode::opportunistic;
      } else {
        bad_url("has starttls=" + param.value + "; use starttls=required or starttls=opportunistic");
      }
    } else if (param.key == "cafile") {
      if (param.value.empty()) bad_url("has an empty cafile=");
      s.ca_file = param.value;
    } else {
      bad_url("has an unknown or misplaced option '" + param.key +
              "' (options: starttls=required|opportunistic for smtp://, cafile=PATH)");
    }
  }
  if (options.connect_timeout.count() <= 0 || options.total_timeout.count() <= 0) {
    throw std::invalid_argument("SMTP timeouts must be positive");
  }
  s.connect_timeout = options.connect_timeout;
  s.total_timeout = options.total_timeout;

  const std::string host_port(url.encoded_host_and_port());
  const std::string path(url.encoded_path());
  s.curl_url = scheme + "://" + host_port + path;
  s.where = host_port;
  s.redacted = scheme + "://" + credentials + host_port + path;
  if (!s.implicit_tls) {
    s.redacted += s.starttls == starttls_mode::required ? " (STARTTLS required)" : " (STARTTLS if offered)";
  }
  return s;
}

// An envelope address goes into an SMTP command line verbatim: nothing that could end or extend it.
bool is_safe_envelope_address(std::string_view a) {
  return std::all_of(a.begin(), a.end(), [](char c) { return c > 0x20 && c < 0x7f && c != '<' && c != '>'; });
}

struct upload {
  std::string_view data;

  static std::size_t read(char* buffer, std::size_t size, std::size_t count, void* user) {
    auto* self = static_cast<upload*>(user);
    const auto n = std::min(size * count, self->data.size());
    std::memcpy(buffer, self->data.data(), n);
    self->data.remove_prefix(n);
    return n;
  }
};

// libcurl hands every server reply line to the header callback. The reply that decided the send
// is the last one carrying the final response code: after a refusal libcurl still says QUIT, and
// "221 Bye" is not what the operator needs to read ("550 5.1.1 <x@y>: User unknown" is).
class reply_capture {
 public:
  static std::size_t on_line(char* buffer, std::size_t size, std::size_t count, void* user) {
    static_cast<reply_capture*>(user)->add(std::string_view(buffer, size * count));
    return size * count;
  }

  [[nodiscard]] std::string reply_with_code(long code) const {
    const auto prefix = std::to_string(code);
    for (auto it = replies_.rbegin(); it != replies_.rend(); ++it) {
      if (it->starts_with(prefix)) return *it;
    }
    return {};
  }

 private:
  static constexpr std::size_t max_size = 512;
  static constexpr std::size_t max_replies = 8;

  void add(std::string_view line) {
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    if (!current_.empty() && current_.size() < max_size) current_ += " | ";
    for (const char c : line) {
      if (current_.size() >= max_size) break;
      current_ += (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    if (line.size() >= 4 && line[3] == '-') return;  // a multi-line reply continues
    if (replies_.size() == max_replies) replies_.erase(replies_.begin());
    replies_.push_back(std::exchange(current_, {}));
  }

  std::string current_;
  std::vector<std::string> replies_;
};

send_result classify(CURLcode rc, long code, const std::string& reply, const char* error_buffer,
                     const std::string& where) {
  if (rc == CURLE_OK) return sent{reply.empty() ? "accepted by " + where : reply};

  const std::string curl_text = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(rc);
  const std::string server_said = reply.empty() ? std::to_string(code) : reply;
  const bool auth_failure = rc == CURLE_LOGIN_DENIED || rc == CURLE_AUTH_ERROR;

  // libcurl ends the conversation at the first negative reply, so a 4xx/5xx response code is the
  // reply that failed this send (a stale positive one means the failure was below SMTP).
  if (code >= 400 && code < 500) {
    return transient_failure{"SMTP server " + where + " answered " + server_said + " (" + curl_text + ")",
                             static_cast<int>(code)};
  }
  // This side's settings, not the message: every message fails alike until they are fixed, and
  // then each succeeds. Retried (transient), flagged so the caller can say so loudly.
  const auto configuration = [](std::string reason, int smtp_code = 0) {
    return transient_failure{.reason = std::move(reason), .smtp_code = smtp_code, .configuration = true};
  };
  if (code >= 500 && code < 600) {
    if (auth_failure || code == 534 || code == 535 || code == 538) {
      return configuration("SMTP authentication failed at " + where + ": " + server_said +
                               "; check the user and password in SMTP_URL",
                           static_cast<int>(code));
    }
    if (code == 530) {
      return configuration("SMTP server " + where + " requires authentication or STARTTLS first: " +
                               server_said + "; check SMTP_URL",
                           static_cast<int>(code));
    }
    return permanent_failure{
        "SMTP server " + where + " rejected the message: " + curl_text + ": " + server_said,
        static_cast<int>(code)};
  }

  switch (rc) {
    case CURLE_LOGIN_DENIED:
    case CURLE_AUTH_ERROR:
      return configuration("SMTP authentication failed at " + where + ": " + curl_text +
                           "; check the user and password in SMTP_URL");
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_CRL_BADFILE:
      return configuration("TLS certificate of SMTP server " + where + " is not trusted: " + curl_text +
                           "; a configuration error (cafile= in SMTP_URL, or the server's certificate)");
    case CURLE_USE_SSL_FAILED:
      return configuration("SMTP server " + where +
                           " does not offer STARTTLS, which SMTP_URL requires (starttls=required)");
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_BAD_FUNCTION_ARGUMENT:
      return configuration("cannot use SMTP_URL with this libcurl: " + curl_text);
    default:
      return transient_failure{"cannot deliver to SMTP server " + where + ": " + curl_text};
  }
}

struct easy_deleter {
  void operator()(CURL* h) const noexcept { curl_easy_cleanup(h); }
};
struct slist_deleter {
  void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};

class smtp_transport final : public transport {
 public:
  explicit smtp_transport(smtp_settings settings) : settings_(std::move(settings)) { ensure_curl_global(); }

  send_result send(const outgoing_mail& mail) override {
    if (mail.recipients.empty()) return permanent_failure{"message has no recipients"};
    if (!is_safe_envelope_address(mail.envelope_from)) return permanent_failure{"invalid envelope sender"};

    std::unique_ptr<curl_slist, slist_deleter> recipients;
    for (const auto& r : mail.recipients) {
      if (!is_safe_envelope_address(r) || r.empty()) return permanent_failure{"invalid envelope recipient"};
      auto* appended = curl_slist_append(recipients.get(), ("<" + r + ">").c_str());
      if (appended == nullptr) throw std::bad_alloc();
      static_cast<void>(recipients.release());
      recipients.reset(appended);
    }
    std::unique_ptr<CURL, easy_deleter> handle(curl_easy_init());
    if (!handle) throw std::bad_alloc();

    const std::string mail_from = "<" + mail.envelope_from + ">";
    std::array<char, CURL_ERROR_SIZE> error_buffer{};
    upload body{mail.data};
    reply_capture replies;

    CURLcode setup = CURLE_OK;
    const auto set = [&](CURLoption option, auto value) {
      if (setup == CURLE_OK) setup = curl_easy_setopt(handle.get(), option, value);
    };
    set(CURLOPT_ERRORBUFFER, error_buffer.data());
    set(CURLOPT_URL, settings_.curl_url.c_str());
    set(CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    set(CURLOPT_NOSIGNAL, 1L);
    set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(settings_.connect_timeout.count()));
    set(CURLOPT_TIMEOUT_MS, static_cast<long>(settings_.total_timeout.count()));
    if (!settings_.implicit_tls) {
      set(CURLOPT_USE_SSL, settings_.starttls == starttls_mode::required ? static_cast<long>(CURLUSESSL_ALL)
                                                                         : static_cast<long>(CURLUSESSL_TRY));
    }
    set(CURLOPT_SSL_VERIFYPEER, 1L);
    set(CURLOPT_SSL_VERIFYHOST, 2L);
    if (!settings_.ca_file.empty()) set(CURLOPT_CAINFO, settings_.ca_file.c_str());
    if (!settings_.user.empty()) {
      set(CURLOPT_USERNAME, settings_.user.c_str());
      set(CURLOPT_PASSWORD, settings_.password.c_str());
    }
    set(CURLOPT_MAIL_FROM, mail_from.c_str());
    set(CURLOPT_MAIL_RCPT, recipients.get());
    set(CURLOPT_UPLOAD, 1L);
    set(CURLOPT_READFUNCTION, &upload::read);
    set(CURLOPT_READDATA, &body);
    set(CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(mail.data.size()));
    set(CURLOPT_HEADERFUNCTION, &reply_capture::on_line);
    set(CURLOPT_HEADERDATA, &replies);
    if (setup != CURLE_OK) {
      return permanent_failure{"cannot configure libcurl for SMTP: " +
                               std::string(curl_easy_strerror(setup))};
    }

    const CURLcode rc = curl_easy_perform(handle.get());
    long code = 0;
    curl_easy_getinfo(handle.get(), CURLINFO_RESPONSE_CODE, &code);
    return classify(rc, code, replies.reply_with_code(code), error_buffer.data(), settings_.where);
  }

  std::string describe() const override { return settings_.redacted; }

 private:
  smtp_settings settings_;
};

}  // namespace

std::unique_ptr<transport> make_smtp_transport(std::string_view smtp_url, const smtp_options& options) {
  return std::make_unique<smtp_transport>(parse_settings(smtp_url, options));
}

}  // namespace shopd::mail
