#include "shopd/relay/responses.hpp"

#include "shopd/text/utf8.hpp"

#include <boost/json/string.hpp>

#include <openssl/evp.h>

#include <limits>
#include <stdexcept>

namespace shopd::relay {

using text::is_valid_utf8;

namespace {

namespace json = boost::json;

json::string_view jsv(std::string_view s) {
  return {s.data(), s.size()};
}

// `key` when the bytes are text, `key_base64` (standard base64) otherwise; nothing when empty.
void put_body(json::object& o, std::string_view key, std::string_view key_base64, std::string_view bytes) {
  if (bytes.empty()) return;
  if (is_valid_utf8(bytes))
    o[key] = jsv(bytes);
  else
    o[key_base64] = base64_encode(bytes);
}

json::object optional_cursor(json::object o, std::optional<std::string_view> cursor) {
  if (cursor && !cursor->empty()) o["cursor"] = jsv(*cursor);
  return o;
}

json::object callback_common(std::string_view source_message_id, const message_spec& source,
                             const attempt_response& response, std::int64_t retried) {
  json::object o;
  o["status"] = response.status;
  o["header"] = headers_to_json(response.headers);
  o["body"] = base64_encode(response.body);
  o["retried"] = retried;
  o["maxRetries"] = source.max_retries;
  o["sourceMessageId"] = jsv(source_message_id);
  o["url"] = source.destination;
  o["method"] = source.method;
  o["sourceHeader"] = headers_to_json(source.headers);
  o["sourceBody"] = base64_encode(source.body);
  o["notBefore"] = source.not_before_ms;
  o["createdAt"] = source.created_at_ms;
  o["callerIP"] = source.caller_ip;
  return o;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  if (bytes.empty()) return {};
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max() / 4 * 3))
    throw std::length_error("base64_encode: input too large");
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

json::object publish_response(std::string_view message_id, std::string_view url, bool deduplicated) {
  json::object o;
  o["messageId"] = jsv(message_id);
  o["url"] = jsv(url);
  if (deduplicated) o["deduplicated"] = true;
  return o;
}

json::array batch_response(std::span<const batch_outcome> outcomes) {
  json::array a;
  a.reserve(outcomes.size());
  for (const auto& r : outcomes) {
    if (r.error) {
      json::object e;
      e["error"] = *r.error;
      a.emplace_back(std::move(e));
    } else {
      a.emplace_back(publish_response(r.message_id, r.url, r.deduplicated));
    }
  }
  return a;
}

json::object message_json(std::string_view message_id, const message_spec& m) {
  json::object o;
  o["messageId"] = jsv(message_id);
  o["url"] = m.destination;
  o["method"] = m.method;
  o["header"] = headers_to_json(m.headers);
  put_body(o, "body", "bodyBase64", m.body);
  o["maxRetries"] = m.max_retries;
  if (m.retry_delay_expr) o["retryDelayExpression"] = *m.retry_delay_expr;
  o["notBefore"] = m.not_before_ms;
  o["createdAt"] = m.created_at_ms;
  if (m.callback) o["callback"] = *m.callback;
  if (m.failure_callback) o["failureCallback"] = *m.failure_callback;
  if (m.options.queue) o["queueName"] = *m.options.queue;
  o["callerIP"] = m.caller_ip;
  if (!m.options.labels.empty()) {
    o["label"] = m.options.labels.front();
    json::array labels;
    for (const auto& l : m.options.labels) labels.emplace_back(jsv(l));
    o["labels"] = std::move(labels);
  }
  return o;
}

json::object dlq_message_json(const dlq_entry& entry, const message_spec& source) {
  json::object o = message_json(entry.message_id, source);
  o["dlqId"] = entry.dlq_id;
  o["responseStatus"] = entry.response_status;
  o["responseHeader"] = headers_to_json(entry.response_headers);
  put_body(o, "responseBody", "responseBodyBase64", entry.response_body);
  return o;
}

json::object dlq_list_response(json::array messages, std::optional<std::string_view> cursor) {
  json::object o;
  o["messages"] = std::move(messages);
  return optional_cursor(std::move(o), cursor);
}

json::object dlq_retry_response(std::string_view new_message_id) {
  json::object o;
  o["messageId"] = jsv(new_message_id);
  return o;
}

json::object dlq_retry_bulk_response(std::span<const std::string> new_message_ids,
                                     std::optional<std::string_view> cursor) {
  json::array responses;
  responses.reserve(new_message_ids.size());
  for (const auto& id : new_message_ids) responses.emplace_back(dlq_retry_response(id));
  json::object o;
  o["responses"] = std::move(responses);
  return optional_cursor(std::move(o), cursor);
}

json::object dlq_delete_response(std::int64_t deleted, std::optional<std::string_view> cursor) {
  json::object o;
  o["deleted"] = deleted;
  return optional_cursor(std::move(o), cursor);
}

json::object cancel_response(std::int64_t cancelled) {
  json::object o;
  o["cancelled"] = cancelled;
  return o;
}

json::object callback_body(std::string_view source_message_id, const message_spec& source,
                           const attempt_response& response, std::int64_t retried) {
  return callback_common(source_message_id, source, response, retried);
}

json::object failure_callback_body(std::string_view source_message_id, const message_spec& source,
                                   const attempt_response& response, std::int64_t retried,
                                   std::string_view dlq_id) {
  json::object o = callback_common(source_message_id, source, response, retried);
  o["dlqId"] = jsv(dlq_id);
  return o;
}

}  // namespace shopd::relay
