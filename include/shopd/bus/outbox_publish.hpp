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

/// A batch answer for `rows` outbox rows, as the dispatcher reads it (pure): one outcome per entry
/// up to the first that may pass later (accepted; refused for good when the entry's own error is
/// final, as a relay's or QStash's per-entry error is; or, ending the list, not accepted). A batch
/// refused whole as a bad request (400) or too large (413) is one refused outcome for a one-row
/// batch and throws batch_refused for more rows; any other failure of the whole batch (transport,
/// 401/403/404, 408/429/5xx) throws std::runtime_error, and nothing is set aside.
[[nodiscard]] std::vector<row_outcome> outbox_outcomes(const batch_result& answer, std::size_t rows);

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
