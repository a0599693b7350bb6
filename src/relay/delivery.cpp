#include "shopd/relay/delivery.hpp"

#include "shopd/bus/signature.hpp"

#include <algorithm>
#include <array>

namespace shopd::relay {

namespace {

char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// Names the relay sets on every delivery: a stored header of the same name would send the field
// twice (two User-Agents, a forged Upstash-Message-Id), so the relay's own wins.
constexpr std::array<std::string_view, 6> relay_header_names{
    "Upstash-Signature", "Upstash-Message-Id", "Upstash-Retried",
    "User-Agent",        "Upstash-Caller-Ip",  "Upstash-Region",
};

bool is_relay_header(std::string_view name) noexcept {
  return std::any_of(relay_header_names.begin(), relay_header_names.end(),
                     [&](std::string_view own) { return iequals(own, name); });
}

}  // namespace

std::string origin_of(std::string_view url) {
  std::size_t end = url.size();
  if (const auto scheme_end = url.find("://"); scheme_end != std::string_view::npos) {
    end = url.find_first_of("/?#", scheme_end + 3);
    if (end == std::string_view::npos) end = url.size();
  }
  std::string out(url.substr(0, end));
  std::transform(out.begin(), out.end(), out.begin(), ascii_lower);
  return out;
}

delivery_slots::delivery_slots(std::size_t global, std::size_t per_origin)
    : global_(std::max<std::size_t>(global, 1)), per_origin_(std::max<std::size_t>(per_origin, 1)) {}

std::size_t delivery_slots::in_flight(std::string_view origin) const {
  const auto it = by_origin_.find(origin);
  return it == by_origin_.end() ? 0 : it->second;
}

bool delivery_slots::can_take(std::string_view origin) const {
  return total_ < global_ && in_flight(origin) < per_origin_;
}

bool delivery_slots::try_take(std::string_view origin) {
  if (!can_take(origin)) return false;
  ++total_;
  auto it = by_origin_.find(origin);
  if (it == by_origin_.end()) it = by_origin_.emplace(std::string(origin), 0).first;
  ++it->second;
  return true;
}

void delivery_slots::give_back(std::string_view origin) {
  const auto it = by_origin_.find(origin);
  if (it == by_origin_.end()) return;
  --total_;
  if (--it->second == 0) by_origin_.erase(it);
}

std::vector<std::string> delivery_slots::saturated_origins() const {
  std::vector<std::string> out;
  for (const auto& [origin, n] : by_origin_) {
    if (n >= per_origin_) out.push_back(origin);
  }
  return out;
}

delivery_request make_delivery_request(std::string_view message_id, const message_spec& m,
                                       std::int64_t retried, std::string_view signing_key,
                                       std::chrono::system_clock::time_point now,
                                       std::int64_t default_timeout_ms) {
  delivery_request req;
  req.method = m.method;
  req.url = m.destination;
  req.body = m.body;
  req.timeout_ms = m.timeout_ms > 0 ? m.timeout_ms : default_timeout_ms;
  req.headers.reserve(m.headers.size() + 5);
  for (const auto& h : m.headers) {
    if (!is_relay_header(h.name)) req.headers.push_back(h);
  }
  req.headers.push_back({"Upstash-Signature", bus::sign(signing_key, m.destination, m.body, now)});
  req.headers.push_back({"Upstash-Message-Id", std::string(message_id)});
  req.headers.push_back({"Upstash-Retried", std::to_string(retried)});
  req.headers.push_back({"User-Agent", std::string(delivery_user_agent)});
  if (!m.caller_ip.empty()) req.headers.push_back({"Upstash-Caller-Ip", m.caller_ip});
  return req;
}

std::string_view to_string(attempt_verdict v) noexcept {
  switch (v) {
    case attempt_verdict::delivered:
      return "delivered";
    case attempt_verdict::retry:
      return "retry";
    case attempt_verdict::failed:
      return "failed";
  }
  return "failed";
}

attempt_decision decide(const attempt_input& in) {
  attempt_decision d;
  const int status = in.response.status;
  if (status >= 200 && status <= 299) {
    d.verdict = attempt_verdict::delivered;
    return d;
  }
  std::vector<header_view> headers;
  headers.reserve(in.response.headers.size());
  for (const auto& h : in.response.headers) headers.push_back({h.name, h.value});

  if (status == 489) {
    const auto flag = find_header(headers, "Upstash-NonRetryable-Error");
    if (flag && iequals(*flag, "true")) {
      d.verdict = attempt_verdict::failed;
      d.non_retryable = true;
      return d;
    }
  }
  if (in.retried >= in.max_retries) {
    d.verdict = attempt_verdict::failed;
    return d;
  }

  std::optional<retry_delay_expression> expression;
  if (in.retry_delay_expr) {
    auto parsed = retry_delay_expression::parse(*in.retry_delay_expr);
    if (parsed) {
      expression = std::move(*parsed);
    } else {
      d.expression_error = parsed.error();
    }
  }
  retry_delay_input rin;
  rin.retried = in.retried;
  rin.response_headers = headers;
  rin.expression = expression ? &*expression : nullptr;
  rin.backoff_scale = in.backoff_scale;
  rin.now_ms = in.now_ms;
  auto next = next_retry_delay(rin);
  d.verdict = attempt_verdict::retry;
  d.retry_delay_ms = next.delay_ms;
  d.delay_source = next.source;
  if (next.expression_error) d.expression_error = std::move(next.expression_error);
  return d;
}

std::string recorded_body(std::string_view body) {
  return std::string(body.substr(0, max_recorded_response_bytes));
}

}  // namespace shopd::relay
