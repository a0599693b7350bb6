// Fuzzes what every webhook does with an untrusted body: bus::parse_envelope (the strict JSON parser
// and the envelope fields), then the payload decoders of events.hpp. Input: the raw body.
//
// Properties checked besides "no crash, leak or UB":
//  - an accepted envelope serializes to text that parses back to the same envelope;
//  - every payload type T accepted by T::from_json satisfies T::from_json(to_json(p)) == p
//    (events.hpp promises it), and validate_payload agrees with the decoder of the envelope's type;
//  - a parse error names at most the path of a field, never the document.
#include <boost/json/serialize.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "shopd/bus/envelope.hpp"
#include "shopd/bus/events.hpp"

namespace {

using namespace shopd::bus;
using shopd::fuzz::check;

template <class T>
void check_payload(const boost::json::object& data, const envelope& e) {
  auto p = T::from_json(data);
  if (e.event_type == T::event_type) {
    const auto verdict = validate_payload(e.event_type, data);
    check(verdict.has_value() == !p, "validate_payload disagrees with from_json");
    check(payload_of<T>(e).has_value() == p.has_value(), "payload_of disagrees with from_json");
  }
  if (!p) {
    check(p.error().field.starts_with("data"), "a payload error names a path outside data");
    return;
  }
  auto again = T::from_json(to_json(*p));
  check(again.has_value(), "to_json of a valid payload does not decode again");
  check(*again == *p, "payload changed across to_json/from_json");
}

void check_envelope(std::string_view raw, const parse_limits& limits) {
  auto e = parse_envelope(raw, limits);
  if (!e) {
    check(e.error().message.size() < 512, "an error message grew with the input");
    return;
  }
  const std::string text = serialize(*e);
  auto again = parse_envelope(text, limits);
  check(again.has_value(), "a serialized envelope does not parse again");
  check(*again == *e, "envelope changed across serialize/parse_envelope");

  check_payload<checkout_command>(e->data, *e);
  check_payload<order_created>(e->data, *e);
  check_payload<email_notification>(e->data, *e);
  check_payload<stock_updated>(e->data, *e);
  check_payload<audit_record>(e->data, *e);
  check_payload<metric_point>(e->data, *e);
  check_payload<dead_letter>(e->data, *e);
  if (!consumer_role(e->event_type)) {
    check(validate_payload(e->event_type, e->data).has_value(), "an unknown event type validated");
  }
  if (auto t = ulid_time(e->event_id)) check(is_ulid(e->event_id), "ulid_time read a non-ULID");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  // The defaults (what webhooks use), and tight limits so the fuzzer meets every bound.
  check_envelope(raw, parse_limits{});
  check_envelope(raw, parse_limits{.max_body_bytes = 2048,
                                   .max_depth = 4,
                                   .max_string_bytes = 64,
                                   .max_key_bytes = 16,
                                   .max_values = 40,
                                   .max_id_bytes = 32});
  return 0;
}
