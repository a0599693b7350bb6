// Fuzzes the relay's publish API parsing: relay::parse_publish (request target, Upstash-* headers and
// their query-parameter forms) and relay::parse_batch (the /v2/batch JSON body), the pure functions
// behind POST /v2/publish, /v2/enqueue and /v2/batch. Input, an HTTP/1.1-like text:
//   [METHOD ' '] TARGET [' HTTP/1.1'] '\n'  ('\r\n' also ends a line)
//   Name ':' value '\n'  ...  (until an empty line)
//   BODY
// A target starting with /v2/batch sends the body to parse_batch; any other to parse_publish.
// Properties besides "no crash, leak or UB": whatever is accepted is something the relay can deliver
// safely and store faithfully: an http(s) destination and callbacks that validate again; delivered
// header names are tokens and values carry no CR, LF or NUL (no header injection, even from JSON);
// method, retries, timeout and due time within the limits; a well-formed dedup id; options and
// headers survive their JSON round trip (up to grouping); the retry expression parses again.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "shopd/relay/duration.hpp"
#include "shopd/relay/headers.hpp"
#include "shopd/relay/message_spec.hpp"
#include "shopd/relay/publish_request.hpp"
#include "shopd/relay/retry_delay.hpp"

namespace {

using namespace shopd::relay;
using shopd::fuzz::check;

constexpr std::int64_t now_ms = 1'795'537'760'000;
// Small caps, so the fuzzer meets every bound.
constexpr message_limits limits{.default_retries = 3,
                                .max_retries = 5,
                                .default_timeout_ms = 30'000,
                                .max_timeout_ms = 60'000,
                                .max_delay_ms = 3'600'000,
                                .max_batch_messages = 8};

// The relay evaluates the expression before every retry: it must parse again and evaluate to a
// delay within [0, one day] or to an evaluation error, for every retry count.
void check_expression(const std::string& text) {
  auto e = retry_delay_expression::parse(text);
  check(e.has_value(), "an accepted retry expression does not parse again");
  for (const std::int64_t retried : {std::int64_t{0}, std::int64_t{1}, std::int64_t{7}, limits.max_retries}) {
    auto ms = e->evaluate_ms(retried);
    if (ms)
      check(*ms >= 0 && *ms <= one_day_ms, "a retry delay outside [0, one day]");
    else
      check(ms.error().code == errc::evaluation_failed, "evaluation failed with another code");
  }
}

// The JSON shape of headers groups repeated names at their first appearance (as Go's http.Header
// does); the order of fields with different names carries no meaning in HTTP.
header_list grouped(const header_list& headers) {
  header_list out;
  for (const auto& h : headers) {
    if (std::any_of(out.begin(), out.end(), [&](const header& g) { return iequals(g.name, h.name); }))
      continue;
    for (const auto& same : headers)
      if (iequals(same.name, h.name)) out.push_back(same);
  }
  return out;
}

void check_headers(const header_list& headers) {
  for (const auto& h : headers) {
    check(is_header_name(h.name), "a delivered header name is not a token");
    // Spelled out rather than calling is_header_value, so that a bug there is caught too.
    check(h.value.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos,
          "a delivered header value could inject headers");
  }
  auto back = headers_from_json(boost::json::value(headers_to_json(headers)));
  check(back.has_value() && *back == grouped(headers), "headers changed across headers_to_json/from_json");
}

void check_callback(const callback_config& c) {
  if (c.method)
    check(*c.method == "GET" || *c.method == "POST" || *c.method == "PUT" || *c.method == "PATCH" ||
              *c.method == "DELETE",
          "a callback method outside the allowed set");
  if (c.timeout_ms) check(*c.timeout_ms > 0 && *c.timeout_ms <= limits.max_timeout_ms, "callback timeout");
  if (c.retries) check(*c.retries >= 0 && *c.retries <= limits.max_retries, "callback retries");
  if (c.delay_ms) check(*c.delay_ms >= 0 && *c.delay_ms <= limits.max_delay_ms, "callback delay");
  if (c.retry_delay_expr) check_expression(*c.retry_delay_expr);
  check_headers(c.forward_headers);
}

void check_spec(const message_spec& m) {
  check(validate_destination(m.destination).has_value(), "an accepted destination does not validate");
  if (m.callback) check(validate_destination(*m.callback, "Upstash-Callback").has_value(), "callback URL");
  if (m.failure_callback)
    check(validate_destination(*m.failure_callback, "Upstash-Failure-Callback").has_value(), "failure URL");
  check(m.method == "GET" || m.method == "POST" || m.method == "PUT" || m.method == "PATCH" ||
            m.method == "DELETE",
        "a method outside the allowed set");
  check(m.max_retries >= 0 && m.max_retries <= limits.max_retries, "retries beyond the cap");
  check(m.timeout_ms > 0 && m.timeout_ms <= limits.max_timeout_ms, "timeout beyond the cap");
  check(m.not_before_ms >= 0 && m.not_before_ms <= now_ms + limits.max_delay_ms, "due beyond the max delay");
  check(m.created_at_ms == now_ms, "created_at is not now");
  if (m.retry_delay_expr) check_expression(*m.retry_delay_expr);
  if (m.dedup_id) {
    check(!m.dedup_id->empty() && m.dedup_id->size() <= 256, "dedup id length");
    check(std::none_of(m.dedup_id->begin(), m.dedup_id->end(),
                       [](char c) { return c == ':' || static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; }),
          "dedup id with ':' or whitespace");
  }
  check_headers(m.headers);
  check_callback(m.options.callback);
  check_callback(m.options.failure_callback);
  auto options = message_options::from_json(boost::json::value(m.options.to_json()));
  message_options expected = m.options;
  expected.callback.forward_headers = grouped(expected.callback.forward_headers);
  expected.failure_callback.forward_headers = grouped(expected.failure_callback.forward_headers);
  check(options.has_value() && *options == expected, "options changed across to_json/from_json");
}

// Splits off one line, ending at LF (a CR before it is dropped).
std::string_view take_line(std::string_view& in) {
  const auto nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  if (line.ends_with('\r')) line.remove_suffix(1);
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  std::string_view target = take_line(in);
  if (const auto sp = target.find(' '); sp != std::string_view::npos && !target.starts_with('/'))
    target.remove_prefix(sp + 1);
  if (const auto sp = target.rfind(" HTTP/"); sp != std::string_view::npos) target = target.substr(0, sp);

  std::vector<header_view> headers;
  while (!in.empty()) {
    const std::string_view line = take_line(in);
    if (line.empty()) break;
    const auto colon = line.find(':');
    std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    while (value.starts_with(' ') || value.starts_with('\t')) value.remove_prefix(1);
    headers.push_back({line.substr(0, colon), value});
  }
  const std::string_view body = in;

  if (target.starts_with("/v2/batch")) {
    auto batch = parse_batch(body, "127.0.0.1", now_ms, limits);
    if (!batch) return 0;
    check(batch->size() <= limits.max_batch_messages, "a batch beyond max_batch_messages");
    for (const auto& element : *batch) {
      if (element) check_spec(*element);
    }
    return 0;
  }

  if (auto t = parse_publish_target(target)) {
    check(validate_destination(t->destination).has_value(),
          "a parsed target's destination does not validate");
    for (const auto& o : t->options) check(o.name.starts_with("upstash-"), "a non-Upstash query option");
  }
  auto spec = parse_publish(
      {.target = target, .headers = headers, .body = body, .caller_ip = "127.0.0.1", .now_ms = now_ms},
      limits);
  if (spec) {
    check(spec->body == body, "the body was altered");
    check_spec(*spec);
  }
  return 0;
}
