#include "shopd/bus/publisher.hpp"

#include "shopd/config/config.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <functional>
#include <optional>
#include <stdexcept>

namespace shopd::bus {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;

std::string_view without_trailing_slashes(std::string_view url) {
  while (!url.empty() && url.back() == '/') url.remove_suffix(1);
  return url;
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/// Characters RFC 3986 allows unescaped in a path and query: unreserved, sub-delims, ':', '@', '/', '?'.
bool allowed_in_target(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("-._~!$&'()*+,;=:@/?").find(static_cast<char>(c)) != std::string_view::npos;
}

/// The destination as the SDK's `new URL(...)` leaves it: unchanged, except for bytes that cannot
/// appear in a URL (percent-encoded) and the fragment (dropped).
void append_destination(std::string& out, std::string_view destination) {
  static constexpr char hex[] = "0123456789ABCDEF";
  destination = destination.substr(0, destination.find('#'));
  for (std::size_t i = 0; i < destination.size(); ++i) {
    const auto c = static_cast<unsigned char>(destination[i]);
    const bool escape_sequence =
        c == '%' && i + 2 < destination.size() && is_hex(destination[i + 1]) && is_hex(destination[i + 2]);
    if (allowed_in_target(c) || escape_sequence) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0xF]);
    }
  }
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); });
  return out;
}

std::string seconds_value(std::chrono::seconds s) {
  return std::to_string(s.count()) + "s";
}

/// A response body squeezed onto one bounded line for an error message.
std::string one_line(std::string_view body) {
  constexpr std::size_t max = 300;
  std::string out(body.substr(0, max));
  std::replace_if(
      out.begin(), out.end(), [](char c) { return c == '\r' || c == '\n' || c == '\t'; }, ' ');
  if (body.size() > max) out += "...";
  return out;
}

bool retryable_status(unsigned status) {
  return status >= 500 || status == 408 || status == 429;
}

publish_error rejected(const http::client_response& res, std::string_view what) {
  publish_error e;
  e.kind = publish_failure::rejected;
  e.status = res.status;
  e.body = res.body;
  e.retryable = retryable_status(res.status);
  e.message = std::string(what) + ": " + std::to_string(res.status) + ": " + one_line(res.body);
  return e;
}

publish_error bad_response(const http::client_response& res, std::string_view what, std::string_view why) {
  publish_error e;
  e.kind = publish_failure::bad_response;
  e.status = res.status;
  e.body = res.body;
  // The message may or may not have been accepted; publishing again at worst duplicates it, which
  // consumers absorb, while giving up could lose it.
  e.retryable = true;
  e.message = std::string(what) + ": unexpected " + std::to_string(res.status) + " answer (" +
              std::string(why) + "): " + one_line(res.body);
  return e;
}

/// One `{"messageId","url"?,"deduplicated"?}`; nullopt when it is not that.
std::optional<published_message> read_message(const json::value& v) {
  const auto* obj = v.if_object();
  if (obj == nullptr) return std::nullopt;
  const auto* id = obj->if_contains("messageId");
  if (id == nullptr || !id->is_string() || id->get_string().empty()) return std::nullopt;
  published_message m;
  m.message_id = id->get_string();
  if (const auto* url = obj->if_contains("url"); url != nullptr && url->is_string())
    m.url = url->get_string();
  if (const auto* dedup = obj->if_contains("deduplicated"); dedup != nullptr && dedup->is_bool()) {
    m.deduplicated = dedup->get_bool();
  }
  return m;
}

/// An object (URL) or a non-empty array of objects (URL group) -> the messages; nullopt otherwise.
std::optional<std::vector<published_message>> read_messages(const json::value& v) {
  std::vector<published_message> out;
  if (const auto* arr = v.if_array()) {
    if (arr->empty()) return std::nullopt;
    for (const auto& element : *arr) {
      auto m = read_message(element);
      if (!m) return std::nullopt;
      out.push_back(std::move(*m));
    }
    return out;
  }
  auto m = read_message(v);
  if (!m) return std::nullopt;
  out.push_back(std::move(*m));
  return out;
}

template <class Result>
Result run_blocking(http::client_options client_opts,
                    const std::function<asio::awaitable<Result>(const http::client&)>& call) {
  std::optional<Result> out;
  http::run_blocking(std::move(client_opts),
                     [&](const http::client& c) -> asio::awaitable<void> { out.emplace(co_await call(c)); });
  return std::move(*out);
}

asio::awaitable<publish_result> send_publish(http::client client, http::client_request req,
                                             std::string what) {
  auto res = co_await client.send(std::move(req));
  if (!res) co_return transport_failure(res.error(), what);
  co_return parse_publish_response(*res, what);
}

asio::awaitable<batch_result> send_batch(http::client client, http::client_request req, std::size_t entries) {
  auto res = co_await client.send(std::move(req));
  if (!res) co_return transport_failure(res.error(), "batch");
  co_return parse_batch_response(*res, entries);
}

}  // namespace

publisher_config publisher_config::from_settings(const config::settings& s) {
  publisher_config cfg;
  cfg.qstash_url = without_trailing_slashes(s.qstash_url);
  cfg.qstash_token = s.qstash_token;
  return cfg;
}

bool publish_receipt::deduplicated() const noexcept {
  return !messages.empty() && std::all_of(messages.begin(), messages.end(),
                                          [](const published_message& m) { return m.deduplicated; });
}

void throw_exception_from_error(const publish_error& e, const boost::source_location&) {
  throw std::runtime_error(e.message);
}

http::header_list publish_headers(const publish_options& opts) {
  http::header_list h;
  if (!opts.content_type.empty()) h.emplace_back("Content-Type", opts.content_type);
  h.emplace_back("Upstash-Method", opts.method.empty() ? std::string("POST") : opts.method);
  if (opts.delay) h.emplace_back("Upstash-Delay", seconds_value(*opts.delay));
  if (opts.not_before) {
    h.emplace_back("Upstash-Not-Before", std::to_string(opts.not_before->time_since_epoch().count()));
  }
  if (opts.retries) h.emplace_back("Upstash-Retries", std::to_string(*opts.retries));
  if (!opts.retry_delay.empty()) h.emplace_back("Upstash-Retry-Delay", opts.retry_delay);
  if (!opts.callback.empty()) h.emplace_back("Upstash-Callback", opts.callback);
  if (!opts.failure_callback.empty()) h.emplace_back("Upstash-Failure-Callback", opts.failure_callback);
  if (!opts.deduplication_id.empty()) h.emplace_back("Upstash-Deduplication-Id", opts.deduplication_id);
  if (opts.content_based_deduplication) h.emplace_back("Upstash-Content-Based-Deduplication", "true");
  if (opts.timeout) h.emplace_back("Upstash-Timeout", seconds_value(*opts.timeout));
  if (!opts.label.empty()) h.emplace_back("Upstash-Label", opts.label);
  for (const auto& [name, value] : opts.forward_headers) h.emplace_back("Upstash-Forward-" + name, value);
  return h;
}

std::string publish_url(std::string_view qstash_url, std::string_view destination) {
  std::string url(without_trailing_slashes(qstash_url));
  url += "/v2/publish/";
  append_destination(url, destination);
  return url;
}

http::client_request build_publish_request(const publisher_config& cfg, std::string_view destination,
                                           std::string body, const publish_options& opts) {
  http::client_request req;
  req.method = boost::beast::http::verb::post;
  req.url = publish_url(cfg.qstash_url, destination);
  req.headers.emplace_back("Authorization", "Bearer " + cfg.qstash_token);
  auto h = publish_headers(opts);
  req.headers.insert(req.headers.end(), std::make_move_iterator(h.begin()), std::make_move_iterator(h.end()));
  req.body = std::move(body);
  req.timeout = cfg.timeout;
  return req;
}

std::string batch_body(std::span<const batch_entry> entries) {
  json::array out;
  out.reserve(entries.size());
  for (const auto& entry : entries) {
    json::object message;
    message["destination"] = entry.destination;
    json::object headers;
    for (auto& [name, value] : publish_headers(entry.options)) headers[lowercase(name)] = value;
    message["headers"] = std::move(headers);
    if (entry.body) message["body"] = *entry.body;
    if (!entry.queue.empty()) message["queue"] = entry.queue;
    out.push_back(std::move(message));
  }
  return json::serialize(out);
}

http::client_request build_batch_request(const publisher_config& cfg, std::span<const batch_entry> entries) {
  http::client_request req;
  req.method = boost::beast::http::verb::post;
  req.url = std::string(without_trailing_slashes(cfg.qstash_url)) + "/v2/batch";
  req.headers.emplace_back("Authorization", "Bearer " + cfg.qstash_token);
  req.headers.emplace_back("Content-Type", "application/json");
  req.body = batch_body(entries);
  req.timeout = cfg.timeout;
  return req;
}

publish_result parse_publish_response(const http::client_response& res, std::string_view what) {
  if (res.status < 200 || res.status > 299) return rejected(res, what);
  boost::system::error_code ec;
  const auto doc = json::parse(res.body, ec);
  if (ec) return bad_response(res, what, "not JSON");
  auto messages = read_messages(doc);
  if (!messages) return bad_response(res, what, "no messageId");
  return publish_receipt{res.status, std::move(*messages)};
}

batch_result parse_batch_response(const http::client_response& res, std::size_t entries) {
  constexpr std::string_view what = "batch";
  if (res.status < 200 || res.status > 299) return rejected(res, what);
  boost::system::error_code ec;
  auto doc = json::parse(res.body, ec);
  if (ec) return bad_response(res, what, "not JSON");
  if (!doc.is_array() && entries == 1) {
    json::array wrapped;
    wrapped.push_back(std::move(doc));
    doc = std::move(wrapped);
  }
  const auto* arr = doc.if_array();
  if (arr == nullptr) return bad_response(res, what, "not an array");
  if (arr->size() != entries) {
    return bad_response(
        res, what, std::to_string(arr->size()) + " results for " + std::to_string(entries) + " messages");
  }
  std::vector<publish_result> out;
  out.reserve(entries);
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const auto& element = (*arr)[i];
    if (auto messages = read_messages(element)) {
      out.emplace_back(publish_receipt{res.status, std::move(*messages)});
      continue;
    }
    publish_error e;
    e.kind = publish_failure::entry_failed;
    e.status = res.status;
    e.body = json::serialize(element);
    const auto* obj = element.if_object();
    const auto* text = obj != nullptr ? obj->if_contains("error") : nullptr;
    e.message = "batch entry " + std::to_string(i) + ": " +
                (text != nullptr && text->is_string() ? std::string(text->get_string()) : one_line(e.body));
    out.emplace_back(std::move(e));
  }
  return out;
}

publish_error transport_failure(const http::client_error& e, std::string_view what) {
  publish_error out;
  out.kind = e.stage == http::client_stage::request ? publish_failure::invalid : publish_failure::transport;
  out.transport_error = e.code;
  out.retryable = out.kind == publish_failure::transport;
  out.message = std::string(what) + ": " + e.message;
  return out;
}

publisher::publisher(http::client client, publisher_config cfg)
    : client_(std::move(client)), cfg_(std::move(cfg)) {}

asio::awaitable<publish_result> publisher::publish(std::string destination, std::string body,
                                                   publish_options opts) const {
  auto req = build_publish_request(cfg_, destination, std::move(body), opts);
  return send_publish(client_, std::move(req), "publish " + destination);
}

asio::awaitable<batch_result> publisher::batch(std::vector<batch_entry> entries) const {
  auto req = build_batch_request(cfg_, entries);
  return send_batch(client_, std::move(req), entries.size());
}

const publisher_config& publisher::config() const noexcept {
  return cfg_;
}

publish_result publish_blocking(const publisher_config& cfg, std::string destination, std::string body,
                                publish_options opts, http::client_options client_opts) {
  return run_blocking<publish_result>(std::move(client_opts), [&](const http::client& c) {
    return publisher(c, cfg).publish(std::move(destination), std::move(body), std::move(opts));
  });
}

batch_result batch_blocking(const publisher_config& cfg, std::vector<batch_entry> entries,
                            http::client_options client_opts) {
  return run_blocking<batch_result>(std::move(client_opts), [&](const http::client& c) {
    return publisher(c, cfg).batch(std::move(entries));
  });
}

}  // namespace shopd::bus
