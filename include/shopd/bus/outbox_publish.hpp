#pragma once
/// How outbox rows become QStash messages: one `/v2/batch` request per dispatcher batch, each event
/// with its eventId as the deduplication id (a row re-sent after a crash is not delivered twice)
/// and the analytics role's failure-callback route, so an event that exhausts its retries is
/// reported as a dead letter.

#include "shopd/bus/local_relay.hpp"
#include "shopd/bus/outbox.hpp"
#include "shopd/bus/outbox_dispatcher.hpp"
#include "shopd/bus/publisher.hpp"

#include <span>
#include <string>
#include <vector>

namespace shopd::bus {

/// What the relay or QStash is sent for an outbox row: its destination and body, its eventId as the
/// deduplication id, analytics' failure callback, and `forward_headers` (the row's extra headers,
/// e.g. traceparent) forwarded as they are. Pure.
[[nodiscard]] batch_entry outbox_entry(const outbox_event& ev, const std::string& failure_callback_url,
                                       std::vector<std::pair<std::string, std::string>> forward_headers);

/// The batch entries for `events`, their headers read from each row's JSON (pure).
[[nodiscard]] std::vector<batch_entry> outbox_batch(std::span<const pending_event> events,
                                                    const std::string& failure_callback_url);

/// A dispatcher publish function sending through `pub`, whose client runs on `io`. Called from the
/// dispatcher's thread (never an I/O thread): it waits for the batch answer, or until its stop
/// token fires (publish_abandoned; the request may still complete later, unrecorded). When `local`
/// is enabled at the time of a call (the relay runs in this process and QSTASH_URL names it), the
/// batch goes to the relay directly instead, on the dispatcher's thread, and is not abandoned:
/// it ends within the database's busy timeout. `local` must outlive the function.
[[nodiscard]] outbox_dispatcher::publish_fn make_outbox_publisher(boost::asio::io_context& io,
                                                                  const publisher& pub,
                                                                  std::string failure_callback_url,
                                                                  const local_relay* local = nullptr);

}  // namespace shopd::bus
