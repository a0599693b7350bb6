#pragma once
/// `shopd publish EVENT_TYPE --data JSON|@file [--to ROLE|URL] [--direct]`: send an event by hand.
///
/// The data is validated as that event type's payload (a known type is required unless `--to`
/// names the destination), wrapped in an envelope (source "cli"; the correlation id is the
/// checkoutId for a checkout, else the new event id) and sent:
///   - by default through the relay or QStash (`QSTASH_URL`, `QSTASH_TOKEN`) to the consuming role's
///     webhook, with the eventId as deduplication id; prints {"eventId","correlationId","destination",
///     "messageId","traceId"};
///   - with `--direct`, signed with QSTASH_CURRENT_SIGNING_KEY and posted straight to the webhook;
///     prints the webhook's status and answer.
/// The event carries a W3C `traceparent` (forwarded by the relay as `Upstash-Forward-traceparent`):
/// a child of `--traceparent` when given (an invalid one is exit 2), else a new trace.
/// Exit codes: 0 accepted, 1 refused or unreachable, 2 invalid input.

#include "shopd/config/config.hpp"

#include <string>

namespace shopd {

struct publish_options {
  config::settings settings;
  std::string event_type;
  std::string data_arg;  ///< JSON text, "@path", or "@-" for stdin
  std::string to;        ///< a role name or an http(s) URL; empty: the consumer of event_type
  bool direct = false;
  std::string event_id;        ///< empty: a new ULID (give one to redeliver an event on purpose)
  std::string correlation_id;  ///< empty: the checkoutId of a checkout, else the event id
  std::string traceparent;     ///< empty: start a new trace
};

int publish(const publish_options& opts);

}  // namespace shopd
