#include "shopd/app/publish.hpp"

#include "shopd/bus/dispatch.hpp"
#include "shopd/bus/envelope.hpp"
#include "shopd/bus/events.hpp"
#include "shopd/bus/publisher.hpp"
#include "shopd/bus/signature.hpp"
#include "shopd/http/client.hpp"
#include "shopd/obs/trace.hpp"

#include <boost/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <stdexcept>

namespace shopd {

namespace {

namespace json = boost::json;

// Input problems: exit 2 with one line.
class input_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string read_data(const std::string& arg) {
  if (arg.empty() || arg[0] != '@') return arg;
  if (arg == "@-") return {std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
  std::ifstream in(arg.substr(1), std::ios::binary);
  if (!in) throw input_error("--data: cannot read " + arg.substr(1));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string destination_for(const publish_options& opts) {
  const bus::destinations dest(opts.settings);
  if (opts.to.empty()) return dest.url_for(opts.event_type);
  if (opts.to.starts_with("http://") || opts.to.starts_with("https://")) return opts.to;
  try {
    return dest.webhook_url(opts.to);
  } catch (const std::invalid_argument&) {
    throw input_error("--to: \"" + opts.to +
                      "\" is neither a role (orders, email, inventory, analytics) nor a URL");
  }
}

bus::envelope build_envelope(const publish_options& opts, const json::object& data) {
  std::string correlation = opts.correlation_id;
  if (correlation.empty() && opts.event_type == bus::event_types::checkout_command) {
    if (const auto* id = data.if_contains("checkoutId"); id != nullptr && id->is_string()) {
      correlation = std::string(id->as_string());
    }
  }
  const std::string event_id = opts.event_id.empty() ? bus::new_event_id() : opts.event_id;
  if (!bus::is_valid_id(event_id)) throw input_error("--event-id: not a valid id");
  if (correlation.empty()) correlation = event_id;
  try {
    auto ev = bus::make_envelope(opts.event_type, "cli", data, correlation);
    ev.event_id = event_id;
    return ev;
  } catch (const std::invalid_argument& e) {
    throw input_error(e.what());
  }
}

// The CLI is the edge of a chain: it continues the trace it is given, or starts one.
obs::trace_context trace_for(const publish_options& opts) {
  if (opts.traceparent.empty()) return obs::trace_context::start();
  const auto given = obs::trace_context::parse(opts.traceparent);
  if (!given) {
    throw input_error(
        "--traceparent: not a W3C traceparent (00-<32 lower-hex>-<16 lower-hex>-<2 lower-hex>)");
  }
  return given->child();
}

int send_direct(const publish_options& opts, const std::string& url, const std::string& body,
                const obs::trace_context& trace) {
  if (opts.settings.qstash_current_signing_key.empty()) {
    throw input_error("--direct signs with QSTASH_CURRENT_SIGNING_KEY, which is not set");
  }
  http::client_request req;
  req.method = boost::beast::http::verb::post;
  req.url = url;
  req.body = body;
  req.headers = {{"Content-Type", "application/json"},
                 {"Upstash-Signature", bus::sign(opts.settings.qstash_current_signing_key, url, body,
                                                 std::chrono::system_clock::now())},
                 {"traceparent", trace.traceparent()}};
  auto res = http::send_blocking(std::move(req));
  if (!res) {
    std::fprintf(stderr, "shopd: %s\n", res.error().message.c_str());
    return 1;
  }
  std::printf("%u %s\n", res->status, res->body.c_str());
  return res->status >= 200 && res->status < 300 ? 0 : 1;
}

}  // namespace

int publish(const publish_options& opts) {
  try {
    const auto raw = read_data(opts.data_arg);
    auto parsed = bus::parse_json(raw);
    if (!parsed || !parsed->is_object()) {
      throw input_error("--data: not a JSON object" +
                        (parsed ? std::string() : ": " + parsed.error().message));
    }
    const auto& data = parsed->as_object();
    const bool known = bus::consumer_role(opts.event_type).has_value();
    if (!known && opts.to.empty()) {
      throw input_error("unknown event type \"" + opts.event_type +
                        "\": give --to ROLE|URL to send it anyway");
    }
    if (known) {
      if (const auto err = bus::validate_payload(opts.event_type, data)) {
        throw input_error("--data: " + err->field + ": " + err->message);
      }
    }
    const auto trace = trace_for(opts);
    const auto ev = build_envelope(opts, data);
    const auto body = bus::serialize(ev);
    const auto url = destination_for(opts);
    if (opts.direct) return send_direct(opts, url, body, trace);

    bus::publish_options po;
    po.deduplication_id = ev.event_id;
    po.failure_callback = bus::destinations(opts.settings).failure_callback_url();
    po.forward_headers.emplace_back("traceparent", trace.traceparent());
    auto receipt = bus::publish_blocking(bus::publisher_config::from_settings(opts.settings), url, body, po);
    if (!receipt) {
      std::fprintf(stderr, "shopd: %s\n", receipt.error().message.c_str());
      return 1;
    }
    json::object out{{"eventId", ev.event_id},
                     {"correlationId", ev.correlation_id},
                     {"destination", url},
                     {"messageId", receipt->message_id()},
                     {"traceId", trace.trace_id()}};
    if (receipt->deduplicated()) out["deduplicated"] = true;
    std::printf("%s\n", json::serialize(out).c_str());
    return 0;
  } catch (const input_error& e) {
    std::fprintf(stderr, "shopd: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shopd: %s\n", e.what());
    return 1;
  }
}

}  // namespace shopd
