#include "shopd/relay/message_spec.hpp"

#include <boost/json/array.hpp>
#include <boost/json/string.hpp>

#include <limits>
#include <utility>

namespace shopd::relay {

namespace {

namespace json = boost::json;

error stored_error(std::string_view what) {
  return make_error(errc::invalid_stored_value, "options: " + std::string(what), "options");
}

json::object config_to_json(const callback_config& c) {
  json::object o;
  if (c.method) o["method"] = *c.method;
  if (c.timeout_ms) o["timeoutMs"] = *c.timeout_ms;
  if (c.retries) o["retries"] = *c.retries;
  if (c.retry_delay_expr) o["retryDelay"] = *c.retry_delay_expr;
  if (c.delay_ms) o["delayMs"] = *c.delay_ms;
  if (!c.forward_headers.empty()) o["headers"] = headers_to_json(c.forward_headers);
  return o;
}

result<std::optional<std::string>> optional_string(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return std::optional<std::string>{};
  if (const auto* s = it->value().if_string()) return std::optional<std::string>{std::string(*s)};
  return stored_error("'" + std::string(key) + "' must be a string");
}

result<std::optional<std::int64_t>> optional_int(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return std::optional<std::int64_t>{};
  const auto& v = it->value();
  if (v.is_int64()) return std::optional<std::int64_t>{v.get_int64()};
  if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    return std::optional<std::int64_t>{static_cast<std::int64_t>(v.get_uint64())};
  return stored_error("'" + std::string(key) + "' must be an integer");
}

result<callback_config> config_from_json(const json::object& parent, std::string_view key) {
  callback_config c;
  auto it = parent.find(key);
  if (it == parent.end() || it->value().is_null()) return c;
  const auto* o = it->value().if_object();
  if (o == nullptr) return stored_error("'" + std::string(key) + "' must be an object");
  auto method = optional_string(*o, "method");
  auto timeout = optional_int(*o, "timeoutMs");
  auto retries = optional_int(*o, "retries");
  auto retry_delay = optional_string(*o, "retryDelay");
  auto delay = optional_int(*o, "delayMs");
  if (!method) return method.error();
  if (!timeout) return timeout.error();
  if (!retries) return retries.error();
  if (!retry_delay) return retry_delay.error();
  if (!delay) return delay.error();
  c.method = std::move(*method);
  c.timeout_ms = *timeout;
  c.retries = *retries;
  c.retry_delay_expr = std::move(*retry_delay);
  c.delay_ms = *delay;
  if (auto h = o->find("headers"); h != o->end()) {
    auto headers = headers_from_json(h->value());
    if (!headers) return headers.error();
    c.forward_headers = std::move(*headers);
  }
  return c;
}

}  // namespace

std::string_view to_string(message_kind k) noexcept {
  switch (k) {
    case message_kind::message:
      return "message";
    case message_kind::callback:
      return "callback";
    case message_kind::failure_callback:
      return "failure_callback";
  }
  return "message";
}

std::optional<message_kind> message_kind_from_string(std::string_view s) noexcept {
  if (s == "message") return message_kind::message;
  if (s == "callback") return message_kind::callback;
  if (s == "failure_callback") return message_kind::failure_callback;
  return std::nullopt;
}

bool callback_config::empty() const noexcept {
  return !method && !timeout_ms && !retries && !retry_delay_expr && !delay_ms && forward_headers.empty();
}

json::object message_options::to_json() const {
  json::object o;
  if (!callback.empty()) o["callback"] = config_to_json(callback);
  if (!failure_callback.empty()) o["failureCallback"] = config_to_json(failure_callback);
  if (!labels.empty()) {
    json::array a;
    for (const auto& l : labels) a.emplace_back(json::string_view(l));
    o["labels"] = std::move(a);
  }
  if (queue) o["queue"] = *queue;
  if (source_message_id) o["sourceMessageId"] = *source_message_id;
  return o;
}

result<message_options> message_options::from_json(const json::value& v) {
  const auto* o = v.if_object();
  if (o == nullptr) return stored_error("expected a JSON object");
  message_options out;
  auto cb = config_from_json(*o, "callback");
  if (!cb) return cb.error();
  out.callback = std::move(*cb);
  auto fcb = config_from_json(*o, "failureCallback");
  if (!fcb) return fcb.error();
  out.failure_callback = std::move(*fcb);
  if (auto it = o->find("labels"); it != o->end() && !it->value().is_null()) {
    const auto* a = it->value().if_array();
    if (a == nullptr) return stored_error("'labels' must be an array");
    for (const auto& l : *a) {
      const auto* s = l.if_string();
      if (s == nullptr) return stored_error("'labels' must hold strings");
      out.labels.emplace_back(*s);
    }
  }
  auto queue = optional_string(*o, "queue");
  if (!queue) return queue.error();
  out.queue = std::move(*queue);
  auto source = optional_string(*o, "sourceMessageId");
  if (!source) return source.error();
  out.source_message_id = std::move(*source);
  return out;
}

std::optional<message_spec> make_callback_spec(const message_spec& source, std::string_view source_message_id,
                                               message_kind kind, std::string body_json, std::int64_t now_ms,
                                               const message_limits& limits) {
  const std::optional<std::string>* url = nullptr;
  const callback_config* cfg = nullptr;
  switch (kind) {
    case message_kind::callback:
      url = &source.callback;
      cfg = &source.options.callback;
      break;
    case message_kind::failure_callback:
      url = &source.failure_callback;
      cfg = &source.options.failure_callback;
      break;
    case message_kind::message:
      return std::nullopt;
  }
  if (!*url) return std::nullopt;

  message_spec m;
  m.kind = kind;
  m.destination = **url;
  m.method = cfg->method.value_or("POST");
  m.headers.push_back({"Content-Type", "application/json"});
  m.headers.insert(m.headers.end(), cfg->forward_headers.begin(), cfg->forward_headers.end());
  m.body = std::move(body_json);
  m.max_retries = cfg->retries.value_or(source.max_retries);
  m.retry_delay_expr = cfg->retry_delay_expr;
  m.timeout_ms = cfg->timeout_ms.value_or(limits.default_timeout_ms);
  m.options.source_message_id = std::string(source_message_id);
  m.options.labels = source.options.labels;
  m.caller_ip = source.caller_ip;
  m.not_before_ms = now_ms + cfg->delay_ms.value_or(0);
  m.created_at_ms = now_ms;
  return m;
}

}  // namespace shopd::relay
