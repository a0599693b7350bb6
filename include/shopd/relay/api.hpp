#pragma once
/// The QStash v2 REST API of the relay: the subset the official `@upstash/qstash` SDK uses
/// (reference §1, §3.4, §5, §6.1), with QStash's paths, statuses and JSON shapes.
///
///   POST   /v2/publish/{destination...}          201 {"messageId","url"}; 202 + "deduplicated" on a
///   duplicate POST   /v2/enqueue/{queue}/{destination...}  the same (the queue name is recorded, not
///   enforced) POST   /v2/batch                             200 [{"messageId","url"} | {"error"}...] in input
///   order GET    /v2/messages/{messageId}              the pending message; 404 when unknown or finished
///   DELETE /v2/messages/{messageId}              {"cancelled":1}; 404 when unknown or finished
///   DELETE /v2/messages                          {"cancelled":n}: messageIds (query or JSON body), url,
///                                                fromDate, toDate; nothing selects every pending message
///   GET    /v2/dlq                               {"messages":[...],"cursor"?}: cursor, count (1..100),
///                                                order, dlqIds, messageId, url, responseStatus, callerIp,
///                                                fromDate, toDate
///   GET    /v2/dlq/{dlqId}                       the DLQ message; 404
///   DELETE /v2/dlq/{dlqId}                       {"deleted":1}; 404
///   DELETE /v2/dlq                               {"deleted":n,"cursor"?}: dlqIds (query or JSON body) or
///                                                the list filters, one page at a time
///   POST   /v2/dlq/retry/{dlqId}                 201 {"messageId"} (a new message); 404
///   POST   /v2/dlq/retry                         201 {"responses":[{"messageId"}...],"cursor"?}
///   GET    /v2/keys                              {"current","next"}
///
/// Every route needs `Authorization: Bearer <QSTASH_TOKEN>` or `?qstash_token=<token>` (401
/// otherwise). Errors use the one JSON error shape (`{"error","code","field"?}`, a superset of
/// QStash's `{"error"}`): 400 for a bad request (QStash's own text for a destination without a
/// scheme), 404, and 503 when the database is momentarily unavailable (publishers retry). A
/// publish is durable in the database before it is answered. Query parameters other than the ones
/// listed (QStash's topicName, label, host, flowControlKey, ... filters, which this relay has no
/// data for) are refused with 400 rather than ignored, so a bulk delete or cancel never widens.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "shopd/bus/local_relay.hpp"
#include "shopd/bus/signature.hpp"
#include "shopd/relay/message_spec.hpp"

namespace shopd::http {
class router;
}

namespace shopd::relay {

class engine;
class relay_store;
struct relay_metrics;

struct api_options {
  std::string token;        ///< QSTASH_TOKEN; must not be empty
  bus::signing_keys keys;   ///< what GET /v2/keys answers
  message_limits limits{};  ///< defaults and caps applied to publishes
  std::int64_t dedup_window_ms = 600'000;
};

/// Register the routes on `routes`; every handler runs on the worker pool (they block on the
/// database). A publish due at once goes by the engine's fast path when it has a slot (stored
/// leased, handed over after the commit); any other new message is stored for a claim and the
/// engine notified. Without an engine (it is gone) messages are only stored.
/// The registry behind `metrics` must outlive the routes. Throws std::invalid_argument for an empty token.
///
/// Returns the ways in for this process (bus::local_relay), which check no token:
/// - `batch`, `/v2/batch`: the route's work for the batch a publisher would send, answered as a
///   publisher reads the route's answer. Call it from a thread that may block (it runs the insert's
///   transaction); it throws what the route would turn into 400 (http::http_error) or 503
///   (db::transient_error).
/// - `stage`: one batch element validated as the route validates it and stored inside the caller's
///   transaction on the store's database as a new message (relay_store::insert_new_in: no
///   deduplication), taking the fast path as a publish does; its after_commit hands it to the engine
///   (or tells the engine of work for a claim) and counts it published.
struct local_ways {
  bus::local_batch_fn batch;
  bus::local_stage_fn stage;
};
local_ways add_api_routes(http::router& routes, std::shared_ptr<relay_store> store, api_options opts,
                          std::weak_ptr<engine> engine, relay_metrics& metrics);

}  // namespace shopd::relay
