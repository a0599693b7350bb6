#include "shopd/bus/outbox_publish.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>

namespace shopd::bus {

batch_entry outbox_entry(const outbox_event& ev, const std::string& failure_callback_url,
                         std::vector<std::pair<std::string, std::string>> forward_headers) {
  batch_entry e;
  e.destination = ev.destination;
  e.body = ev.body;
  e.options.deduplication_id = ev.event_id;
  e.options.failure_callback = failure_callback_url;
  e.options.forward_headers = std::move(forward_headers);
  return e;
}

std::vector<batch_entry> outbox_batch(std::span<const pending_event> events,
                                      const std::string& failure_callback_url) {
  std::vector<batch_entry> entries;
  entries.reserve(events.size());
  for (const auto& p : events) {
    // Extra headers stored with the row (e.g. traceparent) reach the consumer as they are.
    std::vector<std::pair<std::string, std::string>> forward;
    boost::system::error_code ec;
    const auto headers = boost::json::parse(p.event.headers, ec);
    if (!ec && headers.is_object()) {
      for (const auto& [name, value] : headers.as_object()) {
        if (value.is_string()) forward.emplace_back(name, value.as_string());
      }
    }
    entries.push_back(outbox_entry(p.event, failure_callback_url, std::move(forward)));
  }
  return entries;
}

namespace {

// A batch refused as a whole for what it holds, not for who sent it or when: a bad request (400:
// the relay's invalid_batch, QStash's validation) or too large (413). 401/403 (the token), 404
// (the URL), 408/429/5xx and transport errors may pass once the relay or its configuration does.
bool refused_for_content(const publish_error& e) {
  return e.kind == publish_failure::rejected && (e.status == 400 || e.status == 413);
}

}  // namespace

std::vector<row_outcome> outbox_outcomes(const batch_result& answer, std::size_t rows) {
  if (!answer) {
    const auto& e = answer.error();
    if (!refused_for_content(e)) throw std::runtime_error(e.message);
    if (rows > 1) throw batch_refused(e.message);
    return {row_outcome{.error = e.message, .refused = true}};
  }
  std::vector<row_outcome> out;
  out.reserve(answer->size());
  for (const auto& r : *answer) {
    if (r) {
      out.push_back({.message_id = r->message_id()});
    } else {
      out.push_back({.error = r.error().message, .refused = !r.error().retryable});
      if (!out.back().refused) break;  // keep order: the rest of the batch is sent again later
    }
  }
  return out;
}

outbox_dispatcher::publish_fn make_outbox_publisher(boost::asio::io_context& io, const publisher& pub,
                                                    std::string failure_callback_url,
                                                    const local_relay* local) {
  return [&io, &pub, callback = std::move(failure_callback_url), local](std::span<const pending_event> events,
                                                                        std::stop_token stop) {
    if (const auto* in_process = local != nullptr ? local->get() : nullptr) {
      const auto entries = outbox_batch(events, callback);
      return outbox_outcomes((*in_process)(entries), events.size());
    }
    // The answer is shared with the request, which may outlive an abandoned wait.
    struct pending_answer {
      std::mutex mutex;
      std::condition_variable_any done;
      std::optional<batch_result> answer;
      std::exception_ptr error;
    };
    auto state = std::make_shared<pending_answer>();
    boost::asio::co_spawn(io, pub.batch(outbox_batch(events, callback)),
                          [state](std::exception_ptr e, batch_result r) {
                            {
                              std::lock_guard lock(state->mutex);
                              if (e) {
                                state->error = e;
                              } else {
                                state->answer.emplace(std::move(r));
                              }
                            }
                            state->done.notify_all();
                          });
    std::unique_lock lock(state->mutex);
    if (!state->done.wait(lock, stop, [&] { return state->answer.has_value() || state->error != nullptr; })) {
      throw publish_abandoned("publish abandoned at shutdown");
    }
    if (state->error) std::rethrow_exception(state->error);
    return outbox_outcomes(*state->answer, events.size());
  };
}

}  // namespace shopd::bus
