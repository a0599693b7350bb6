#include "shopd/relay/publish_request.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <utility>

#include "shopd/relay/duration.hpp"
#include "shopd/relay/retry_delay.hpp"
#include "shopd/text/hex.hpp"

namespace shopd::relay {

namespace {

namespace json = boost::json;

constexpr std::string_view publish_prefix = "/v2/publish/";
constexpr std::string_view enqueue_prefix = "/v2/enqueue/";
constexpr std::size_t max_dedup_id_length = 256;
constexpr std::size_t max_queue_name_length = 256;

char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), ascii_lower);
  return out;
}

std::string to_upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; });
  return out;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// URL-group and queue names: [A-Za-z0-9._-]+ (reference §1.1, §6.5).
bool is_group_name(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

// Strict RFC 3986 percent-decoding ('+' is left alone: these are URL parts, not form data).
std::optional<std::string> pct_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = text::hex_value(s[i + 1]);
    int lo = text::hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

error header_error(std::string_view name, const std::string& why) {
  return make_error(errc::invalid_header, std::string(name) + ": " + why, std::string(name));
}

std::string quoted(std::string_view v) {
  return "'" + std::string(v) + "'";
}

// A non-negative decimal integer; a value beyond int64 saturates (callers cap it anyway).
std::optional<std::int64_t> parse_count(std::string_view v) {
  if (v.empty() || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  std::int64_t n = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec == std::errc::result_out_of_range) return std::numeric_limits<std::int64_t>::max();
  if (ec != std::errc{} || ptr != v.data() + v.size()) return std::nullopt;
  return n;
}

// Forwarded names the relay sets itself, or that would change the framing of the delivery.
bool is_reserved_forward_name(std::string_view lname) {
  static constexpr std::array<std::string_view, 17> reserved{"host",
                                                             "content-length",
                                                             "transfer-encoding",
                                                             "connection",
                                                             "keep-alive",
                                                             "proxy-connection",
                                                             "te",
                                                             "trailer",
                                                             "upgrade",
                                                             "content-type",
                                                             "upstash-signature",
                                                             "upstash-message-id",
                                                             "upstash-retried",
                                                             "upstash-caller-ip",
                                                             "upstash-region",
                                                             "upstash-topic-name",
                                                             "upstash-schedule-id"};
  return std::find(reserved.begin(), reserved.end(), lname) != reserved.end();
}

// One configuration input: a request header or a query parameter, by lower-case name.
struct option_entry {
  std::string lname;
  std::string_view value;
};

// The Upstash-* headers that take one value.
constexpr std::array<std::string_view, 21> single_valued{
    "content-type",
    "upstash-method",
    "upstash-delay",
    "upstash-not-before",
    "upstash-retries",
    "upstash-retry-delay",
    "upstash-timeout",
    "upstash-callback",
    "upstash-failure-callback",
    "upstash-callback-method",
    "upstash-callback-timeout",
    "upstash-callback-retries",
    "upstash-callback-retry-delay",
    "upstash-callback-delay",
    "upstash-failure-callback-method",
    "upstash-failure-callback-timeout",
    "upstash-failure-callback-retries",
    "upstash-failure-callback-retry-delay",
    "upstash-failure-callback-delay",
    "upstash-deduplication-id",
    "upstash-content-based-deduplication",
};

class spec_builder {
 public:
  spec_builder(const message_limits& limits, std::int64_t now_ms) : limits_(limits), now_ms_(now_ms) {}

  // Sort the inputs into single values, forwarded headers, labels and ignored names.
  result<void> collect(std::span<const header_view> headers, std::span<const header> query_options) {
    std::vector<option_entry> entries;
    entries.reserve(headers.size() + query_options.size());
    for (const auto& h : headers) entries.push_back({to_lower(h.name), h.value});
    const auto from_headers = entries.size();
    for (const auto& q : query_options) {
      std::string lname = to_lower(q.name);
      bool overridden =
          std::any_of(entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(from_headers),
                      [&](const option_entry& e) { return e.lname == lname; });
      if (!overridden) entries.push_back({std::move(lname), q.value});
    }

    for (auto& e : entries) {
      const std::string& n = e.lname;
      if (n == "authorization" || n.starts_with("upstash-telemetry-")) continue;
      if (n != "content-type" && !n.starts_with("upstash-")) continue;  // only Upstash-Forward-* is delivered
      if (n.starts_with("upstash-forward-")) {
        auto r = add_forward(forward_, "Upstash-Forward-", n.substr(16), e.value);
        if (!r) return r;
      } else if (n.starts_with("upstash-callback-forward-")) {
        auto r = add_forward(callback_forward_, "Upstash-Callback-Forward-", n.substr(25), e.value);
        if (!r) return r;
      } else if (n.starts_with("upstash-failure-callback-forward-")) {
        auto r = add_forward(failure_forward_, "Upstash-Failure-Callback-Forward-", n.substr(33), e.value);
        if (!r) return r;
      } else if (n == "upstash-label") {
        auto r = add_labels(e.value);
        if (!r) return r;
      } else if (std::find(single_valued.begin(), single_valued.end(), n) != single_valued.end()) {
        if (!single_.emplace(n, e.value).second)
          return header_error(canonical_header_name(n), "given more than once");
      } else if (std::find(ignored_.begin(), ignored_.end(), n) == ignored_.end()) {
        ignored_.push_back(n);
      }
    }
    return {};
  }

  result<message_spec> build(std::string destination, std::string_view body, std::string_view caller_ip) {
    message_spec m;
    m.destination = std::move(destination);
    m.body = std::string(body);
    m.caller_ip = std::string(caller_ip);
    m.created_at_ms = now_ms_;
    m.not_before_ms = now_ms_;

    if (auto v = get("upstash-method")) {
      auto method = parse_method(*v, "Upstash-Method");
      if (!method) return method.error();
      m.method = std::move(*method);
    }

    m.max_retries = std::min(limits_.default_retries, limits_.max_retries);
    if (auto v = get("upstash-retries")) {
      auto r = parse_retries(*v, "Upstash-Retries");
      if (!r) return r.error();
      m.max_retries = *r;
    }

    if (auto v = get("upstash-retry-delay")) {
      auto r = parse_expression(*v, "Upstash-Retry-Delay");
      if (!r) return r.error();
      m.retry_delay_expr = std::move(*r);
    }

    m.timeout_ms = std::min(limits_.default_timeout_ms, limits_.max_timeout_ms);
    if (auto v = get("upstash-timeout")) {
      auto r = parse_timeout(*v, "Upstash-Timeout");
      if (!r) return r.error();
      m.timeout_ms = *r;
    }

    std::optional<std::int64_t> delay;
    if (auto v = get("upstash-delay")) {
      auto r = parse_delay(*v, "Upstash-Delay");
      if (!r) return r.error();
      delay = *r;
    }
    if (auto v = get("upstash-not-before")) {
      auto r = parse_not_before(*v);
      if (!r) return r.error();
      m.not_before_ms = *r;  // wins over Upstash-Delay
    } else if (delay) {
      m.not_before_ms = now_ms_ + *delay;
    }

    if (auto v = get("upstash-callback")) {
      auto r = validate_destination(*v, "Upstash-Callback");
      if (!r) return r.error();
      m.callback = std::string(*v);
    }
    if (auto v = get("upstash-failure-callback")) {
      auto r = validate_destination(*v, "Upstash-Failure-Callback");
      if (!r) return r.error();
      m.failure_callback = std::string(*v);
    }
    auto cb = callback_settings("upstash-callback-", "Upstash-Callback-", std::move(callback_forward_));
    if (!cb) return cb.error();
    m.options.callback = std::move(*cb);
    auto fcb = callback_settings("upstash-failure-callback-", "Upstash-Failure-Callback-",
                                 std::move(failure_forward_));
    if (!fcb) return fcb.error();
    m.options.failure_callback = std::move(*fcb);

    std::string content_type;
    if (auto v = get("content-type")) {
      if (!is_header_value(*v)) return header_error("Content-Type", "contains a control character");
      content_type = std::string(*v);
      m.headers.push_back({"Content-Type", content_type});
    }
    m.headers.insert(m.headers.end(), forward_.begin(), forward_.end());

    if (auto v = get("upstash-deduplication-id")) {
      auto r = check_dedup_id(*v);
      if (!r) return r.error();
      m.dedup_id = std::string(*v);
    }
    if (auto v = get("upstash-content-based-deduplication")) {
      bool on = iequals(*v, "true");
      if (!on && !iequals(*v, "false"))
        return header_error("Upstash-Content-Based-Deduplication",
                            "must be true or false, got " + quoted(*v));
      // An explicit Upstash-Deduplication-Id is the publisher's stronger statement: it wins.
      if (on && !m.dedup_id) m.dedup_id = content_dedup_id(m.destination, m.body, content_type, forward_);
    }

    m.options.labels = std::move(labels_);
    m.ignored_headers = std::move(ignored_);
    return m;
  }

 private:
  std::optional<std::string_view> get(std::string_view lname) const {
    auto it = single_.find(lname);
    if (it == single_.end()) return std::nullopt;
    return it->second;
  }

  static result<void> add_forward(header_list& out, std::string_view prefix, std::string_view lname,
                                  std::string_view value) {
    std::string field = std::string(prefix) + canonical_header_name(lname);
    if (!is_header_name(lname)) return header_error(field, "missing or invalid header name after the prefix");
    if (is_reserved_forward_name(lname))
      return header_error(
          field, "'" + canonical_header_name(lname) + "' is set by the relay and cannot be forwarded");
    if (!is_header_value(value)) return header_error(field, "value contains a control character");
    out.push_back({canonical_header_name(lname), std::string(value)});
    return {};
  }

  result<void> add_labels(std::string_view value) {
    while (!value.empty()) {
      auto comma = value.find(',');
      auto label = value.substr(0, comma);
      while (!label.empty() && (label.front() == ' ' || label.front() == '\t')) label.remove_prefix(1);
      while (!label.empty() && (label.back() == ' ' || label.back() == '\t')) label.remove_suffix(1);
      if (std::any_of(label.begin(), label.end(),
                      [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
        return header_error("Upstash-Label", "contains a control character");
      if (!label.empty()) labels_.emplace_back(label);
      if (comma == std::string_view::npos) break;
      value.remove_prefix(comma + 1);
    }
    return {};
  }

  static result<std::string> parse_method(std::string_view v, std::string_view field) {
    std::string method = to_upper(v);
    static constexpr std::array<std::string_view, 5> allowed{"GET", "POST", "PUT", "PATCH", "DELETE"};
    if (std::find(allowed.begin(), allowed.end(), method) == allowed.end())
      return header_error(field,
                          "unsupported method " + quoted(v) + " (use GET, POST, PUT, PATCH or DELETE)");
    return method;
  }

  result<std::int64_t> parse_retries(std::string_view v, std::string_view field) const {
    auto n = parse_count(v);
    if (!n) return header_error(field, "must be a non-negative integer, got " + quoted(v));
    return std::min(*n, limits_.max_retries);  // QStash caps at the plan's maximum
  }

  static result<std::string> parse_expression(std::string_view v, std::string_view field) {
    auto e = retry_delay_expression::parse(v);
    if (!e) return header_error(field, e.error().message);
    return std::string(v);
  }

  result<std::int64_t> parse_timeout(std::string_view v, std::string_view field) const {
    auto d = parse_duration_ms(v);
    if (!d) return header_error(field, d.error().message);
    if (*d == 0) return header_error(field, "must be greater than zero");
    return std::min(*d, limits_.max_timeout_ms);  // can only shorten the maximum
  }

  result<std::int64_t> parse_delay(std::string_view v, std::string_view field) const {
    auto d = parse_duration_ms(v);
    if (!d) return header_error(field, d.error().message);
    if (*d > limits_.max_delay_ms)
      return header_error(field, quoted(v) + " is longer than the maximum delay of " +
                                     std::to_string(limits_.max_delay_ms / 1000) + "s");
    return *d;
  }

  result<std::int64_t> parse_not_before(std::string_view v) const {
    constexpr std::string_view field = "Upstash-Not-Before";
    auto secs = parse_count(v);
    if (!secs) return header_error(field, "must be a Unix time in seconds, got " + quoted(v));
    if (*secs > (now_ms_ + limits_.max_delay_ms) / 1000)
      return header_error(field, quoted(v) + " is further ahead than the maximum delay of " +
                                     std::to_string(limits_.max_delay_ms / 1000) + "s");
    return *secs * 1000;
  }

  static result<void> check_dedup_id(std::string_view v) {
    constexpr std::string_view field = "Upstash-Deduplication-Id";
    if (v.empty()) return header_error(field, "must not be empty");
    if (v.size() > max_dedup_id_length)
      return header_error(field, "longer than " + std::to_string(max_dedup_id_length) + " characters");
    if (std::any_of(v.begin(), v.end(), [](char c) {
          return c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
                 static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
        }))
      return header_error(field, "must not contain ':' or whitespace, got " + quoted(v));
    return {};
  }

  result<callback_config> callback_settings(std::string_view lprefix, std::string_view prefix,
                                            header_list forward) const {
    callback_config c;
    auto key = [&](std::string_view suffix) { return std::string(lprefix) + std::string(suffix); };
    auto field = [&](std::string_view suffix) { return std::string(prefix) + std::string(suffix); };
    if (auto v = get(key("method"))) {
      auto r = parse_method(*v, field("Method"));
      if (!r) return r.error();
      c.method = std::move(*r);
    }
    if (auto v = get(key("timeout"))) {
      auto r = parse_timeout(*v, field("Timeout"));
      if (!r) return r.error();
      c.timeout_ms = *r;
    }
    if (auto v = get(key("retries"))) {
      auto r = parse_retries(*v, field("Retries"));
      if (!r) return r.error();
      c.retries = *r;
    }
    if (auto v = get(key("retry-delay"))) {
      auto r = parse_expression(*v, field("Retry-Delay"));
      if (!r) return r.error();
      c.retry_delay_expr = std::move(*r);
    }
    if (auto v = get(key("delay"))) {
      auto r = parse_delay(*v, field("Delay"));
      if (!r) return r.error();
      c.delay_ms = *r;
    }
    c.forward_headers = std::move(forward);
    return c;
  }

  const message_limits& limits_;
  std::int64_t now_ms_;
  std::map<std::string, std::string_view, std::less<>> single_;
  header_list forward_;
  header_list callback_forward_;
  header_list failure_forward_;
  std::vector<std::string> labels_;
  std::vector<std::string> ignored_;
};

struct md_ctx_deleter {
  void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};

class sha256 {
 public:
  sha256() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1)
      throw std::runtime_error("OpenSSL: cannot initialise SHA-256");
  }
  // Length-prefixed, so that field boundaries are part of what is hashed.
  void field(std::string_view bytes) {
    auto prefix = std::to_string(bytes.size()) + ":";
    update(prefix);
    update(bytes);
  }
  std::string hex() {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx_.get(), md.data(), &len) != 1)
      throw std::runtime_error("OpenSSL: SHA-256 failed");
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(len * 2);
    for (unsigned int i = 0; i < len; ++i) {
      out.push_back(digits[md[i] >> 4]);
      out.push_back(digits[md[i] & 15]);
    }
    return out;
  }

 private:
  void update(std::string_view bytes) {
    if (EVP_DigestUpdate(ctx_.get(), bytes.data(), bytes.size()) != 1)
      throw std::runtime_error("OpenSSL: SHA-256 failed");
  }
  std::unique_ptr<EVP_MD_CTX, md_ctx_deleter> ctx_;
};

error batch_error(const std::string& what, std::string field = {}) {
  return make_error(errc::invalid_batch, what, std::move(field));
}

result<message_spec> parse_batch_element(const json::value& v, std::string_view caller_ip,
                                         std::int64_t now_ms, const message_limits& limits) {
  const auto* o = v.if_object();
  if (o == nullptr) return batch_error("each batch element must be a JSON object");

  auto dest_it = o->find("destination");
  if (dest_it == o->end() || !dest_it->value().is_string())
    return batch_error("'destination' must be a string", "destination");
  std::string destination(dest_it->value().get_string());
  if (auto r = validate_destination(destination); !r) return r.error();

  std::vector<header_view> headers;
  if (auto it = o->find("headers"); it != o->end() && !it->value().is_null()) {
    const auto* ho = it->value().if_object();
    if (ho == nullptr) return batch_error("'headers' must be an object of strings", "headers");
    for (const auto& kv : *ho) {
      const auto* s = kv.value().if_string();
      if (s == nullptr)
        return batch_error("headers: '" + std::string(kv.key()) + "' must be a string",
                           std::string(kv.key()));
      headers.push_back(
          {std::string_view(kv.key().data(), kv.key().size()), std::string_view(s->data(), s->size())});
    }
  }

  std::string_view body;
  if (auto it = o->find("body"); it != o->end() && !it->value().is_null()) {
    const auto* s = it->value().if_string();
    if (s == nullptr) return batch_error("'body' must be a string", "body");
    body = std::string_view(s->data(), s->size());
  }

  std::optional<std::string> queue;
  if (auto it = o->find("queue"); it != o->end() && !it->value().is_null()) {
    const auto* s = it->value().if_string();
    if (s == nullptr || !is_group_name(*s) || s->size() > max_queue_name_length)
      return batch_error("'queue' must be a queue name ([A-Za-z0-9._-]+)", "queue");
    queue = std::string(*s);
  }

  auto m = build_message_spec(std::move(destination), headers, {}, body, caller_ip, now_ms, limits);
  if (m) m->options.queue = std::move(queue);
  return m;
}

}  // namespace

result<void> validate_destination(std::string_view url, std::string_view field) {
  const bool is_destination = field == "destination";
  auto fail = [&](std::string_view why) {
    if (is_destination)
      return make_error(errc::invalid_destination, "invalid destination url: " + std::string(why),
                        "destination");
    return make_error(errc::invalid_header, std::string(field) + ": invalid url: " + std::string(why),
                      std::string(field));
  };
  if (!istarts_with(url, "http://") && !istarts_with(url, "https://")) {
    if (is_destination && is_group_name(url))
      return make_error(
          errc::url_groups_unsupported,
          "url groups are not supported by this relay: publish to an http:// or https:// url, not " +
              quoted(url),
          "destination");
    return fail("endpoint has invalid scheme, add http:// or https://");
  }
  auto parsed = boost::urls::parse_uri(boost::urls::string_view(url.data(), url.size()));
  if (!parsed) return fail(parsed.error().message());
  if (parsed->encoded_host().empty()) return fail("endpoint has no host");
  return {};
}

result<publish_target> parse_publish_target(std::string_view target) {
  publish_target out;
  std::string_view rest;
  if (target.starts_with(publish_prefix)) {
    rest = target.substr(publish_prefix.size());
  } else if (target.starts_with(enqueue_prefix)) {
    rest = target.substr(enqueue_prefix.size());
    auto slash = rest.find('/');
    auto raw_queue = rest.substr(0, slash);
    auto queue = pct_decode(raw_queue);
    if (slash == std::string_view::npos || !queue || !is_group_name(*queue) ||
        queue->size() > max_queue_name_length)
      return make_error(errc::invalid_target,
                        "expected /v2/enqueue/{queue}/{destination} with a queue name of [A-Za-z0-9._-]",
                        "queue");
    out.queue = std::move(*queue);
    rest.remove_prefix(slash + 1);
  } else {
    return make_error(errc::invalid_target,
                      "expected /v2/publish/{destination} or /v2/enqueue/{queue}/{destination}");
  }

  auto qmark = rest.find('?');
  std::string_view dest_part = rest.substr(0, qmark);
  std::vector<std::string_view> kept;
  if (qmark != std::string_view::npos) {
    std::string_view query = rest.substr(qmark + 1);
    while (true) {
      auto amp = query.find('&');
      std::string_view piece = query.substr(0, amp);
      auto eq = piece.find('=');
      auto key = pct_decode(piece.substr(0, eq));
      std::string lkey = key ? to_lower(*key) : std::string();
      if (lkey == "qstash_token") {
        // authentication; never part of the destination
      } else if (lkey.starts_with("upstash-")) {
        auto value = pct_decode(eq == std::string_view::npos ? std::string_view() : piece.substr(eq + 1));
        if (!value)
          return header_error(canonical_header_name(lkey), "invalid percent-encoding in the query parameter");
        out.options.push_back({std::move(lkey), std::move(*value)});
      } else {
        kept.push_back(piece);
      }
      if (amp == std::string_view::npos) break;
      query.remove_prefix(amp + 1);
    }
  }

  if (istarts_with(dest_part, "http%3a") || istarts_with(dest_part, "https%3a")) {
    auto decoded = pct_decode(dest_part);
    if (!decoded)
      return make_error(errc::invalid_destination, "invalid destination url: invalid percent-encoding",
                        "destination");
    out.destination = std::move(*decoded);
  } else {
    out.destination = std::string(dest_part);
  }
  if (!kept.empty()) {
    out.destination += out.destination.find('?') == std::string::npos ? '?' : '&';
    for (std::size_t i = 0; i < kept.size(); ++i) {
      if (i > 0) out.destination += '&';
      out.destination += kept[i];
    }
  }
  if (auto r = validate_destination(out.destination); !r) return r.error();
  return out;
}

result<message_spec> build_message_spec(std::string destination, std::span<const header_view> headers,
                                        std::span<const header> query_options, std::string_view body,
                                        std::string_view caller_ip, std::int64_t now_ms,
                                        const message_limits& limits) {
  spec_builder b(limits, now_ms);
  if (auto r = b.collect(headers, query_options); !r) return r.error();
  return b.build(std::move(destination), body, caller_ip);
}

result<message_spec> parse_publish(const publish_input& in, const message_limits& limits) {
  auto target = parse_publish_target(in.target);
  if (!target) return target.error();
  auto m = build_message_spec(std::move(target->destination), in.headers, target->options, in.body,
                              in.caller_ip, in.now_ms, limits);
  if (m) m->options.queue = std::move(target->queue);
  return m;
}

std::string content_dedup_id(std::string_view destination, std::string_view body,
                             std::string_view content_type, std::span<const header> forwarded_headers) {
  std::vector<std::pair<std::string, std::string_view>> sorted;
  sorted.reserve(forwarded_headers.size());
  for (const auto& h : forwarded_headers) sorted.emplace_back(to_lower(h.name), h.value);
  std::sort(sorted.begin(), sorted.end());
  sha256 hash;
  hash.field(destination);
  hash.field(body);
  hash.field(content_type);
  hash.field(std::to_string(sorted.size()));
  for (const auto& [name, value] : sorted) {
    hash.field(name);
    hash.field(value);
  }
  return hash.hex();
}

result<std::vector<result<message_spec>>> parse_batch(std::string_view body_json, std::string_view caller_ip,
                                                      std::int64_t now_ms, const message_limits& limits) {
  boost::system::error_code ec;
  json::value doc = json::parse(json::string_view(body_json.data(), body_json.size()), ec);
  if (ec) return batch_error("batch body is not valid JSON: " + ec.message());
  const auto* arr = doc.if_array();
  if (arr == nullptr) return batch_error("batch body must be a JSON array of messages");
  if (arr->size() > limits.max_batch_messages)
    return batch_error("a batch holds at most " + std::to_string(limits.max_batch_messages) +
                       " messages, got " + std::to_string(arr->size()));
  std::vector<result<message_spec>> out;
  out.reserve(arr->size());
  for (const auto& element : *arr) out.push_back(parse_batch_element(element, caller_ip, now_ms, limits));
  return out;
}

}  // namespace shopd::relay
