#include "shopd/relay/api.hpp"

#include "shopd/relay/engine.hpp"

#include "shopd/bus/publisher.hpp"
#include "shopd/db/database.hpp"
#include "shopd/http/auth.hpp"
#include "shopd/http/router.hpp"
#include "shopd/obs/metrics.hpp"
#include "shopd/relay/publish_request.hpp"
#include "shopd/relay/relay_metrics.hpp"
#include "shopd/relay/responses.hpp"
#include "shopd/relay/store.hpp"
#include "shopd/text/utf8.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <stdexcept>
#include <utility>
#include <vector>

namespace shopd::relay {

using text::is_valid_utf8;

namespace {

namespace json = boost::json;
using http::http_error;
using http::request_context;
using http::status;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------------------------------------
// The query string, with repeated keys (dlqIds=a&dlqIds=b) kept.

using query_list = std::vector<std::pair<std::string, std::string>>;

query_list parse_query(std::string_view query) {
  query_list out;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    out.emplace_back(
        http::percent_decode(pair.substr(0, eq), true),
        eq == std::string_view::npos ? std::string() : http::percent_decode(pair.substr(eq + 1), true));
  }
  return out;
}

std::optional<std::string> first(const query_list& q, std::string_view key) {
  for (const auto& [k, v] : q) {
    if (k == key) return v;
  }
  return std::nullopt;
}

std::vector<std::string> all(const query_list& q, std::string_view key) {
  std::vector<std::string> out;
  for (const auto& [k, v] : q) {
    if (k == key && !v.empty()) out.push_back(v);
  }
  return out;
}

http_error bad_request(std::string message, std::string field = {}) {
  return http_error(status::bad_request, "invalid_request", message, std::move(field));
}

http_error bad_request(const error& e) {
  return http_error(status::bad_request, std::string(to_string(e.code)), e.message, e.field);
}

http_error not_found(std::string message) {
  return http_error(status::not_found, "not_found", message);
}

template <typename Int>
std::optional<Int> integer(const query_list& q, std::string_view key, Int min, Int max) {
  const auto v = first(q, key);
  if (!v) return std::nullopt;
  Int n{};
  const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc{} || end != v->data() + v->size() || n < min || n > max) {
    throw bad_request(std::string(key) + ": must be an integer between " + std::to_string(min) + " and " +
                          std::to_string(max) + ", got \"" + v->substr(0, 40) + "\"",
                      std::string(key));
  }
  return n;
}

// `{"<key>": ["a", "b"]}` in a JSON request body, for the SDKs that send ids that way.
std::vector<std::string> ids_from_body(std::string_view body, std::string_view key) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return {};
  boost::system::error_code ec;
  const auto v = json::parse(body, ec);
  const auto* o = ec ? nullptr : v.if_object();
  if (o == nullptr)
    throw bad_request("the body must be a JSON object like {\"" + std::string(key) + "\": [...]}");
  std::vector<std::string> out;
  if (const auto it = o->find(key); it != o->end()) {
    const auto* a = it->value().if_array();
    if (a == nullptr) throw bad_request(std::string(key) + ": must be an array of strings", std::string(key));
    for (const auto& e : *a) {
      const auto* s = e.if_string();
      if (s == nullptr)
        throw bad_request(std::string(key) + ": must be an array of strings", std::string(key));
      out.emplace_back(*s);
    }
  }
  return out;
}

// The query parameters each selector understands. Anything else is refused: a filter this relay
// does not implement (topicName, label, host, flowControlKey, ...) must not be ignored, or a bulk
// delete or cancel meant for a few entries would hit every one.
constexpr std::array<std::string_view, 11> dlq_parameters{
    "dlqIds", "messageId", "url",   "responseStatus", "callerIp",    "fromDate",
    "toDate", "count",     "order", "cursor",         "qstash_token"};
constexpr std::array<std::string_view, 7> cancel_parameters{"messageIds", "url",    "fromDate",    "toDate",
                                                            "count",      "cursor", "qstash_token"};

template <std::size_t N>
void refuse_unknown(const query_list& q, const std::array<std::string_view, N>& known) {
  for (const auto& [name, value] : q) {
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      throw bad_request("filter " + name.substr(0, 40) + " is not supported by this relay",
                        name.substr(0, 40));
    }
  }
}

dlq_query dlq_query_from(const query_list& q, std::vector<std::string> body_ids = {}) {
  refuse_unknown(q, dlq_parameters);
  dlq_query f;
  f.dlq_ids = all(q, "dlqIds");
  f.dlq_ids.insert(f.dlq_ids.end(), std::make_move_iterator(body_ids.begin()),
                   std::make_move_iterator(body_ids.end()));
  for (const auto& id : f.dlq_ids) {
    if (!parse_dlq_id(id))
      throw bad_request("dlqIds: \"" + id.substr(0, 40) + "\" is not a DLQ id", "dlqIds");
  }
  f.message_id = first(q, "messageId");
  f.url = first(q, "url");
  f.caller_ip = first(q, "callerIp");
  f.response_status = integer<int>(q, "responseStatus", 0, 999);
  f.from_ms = integer<std::int64_t>(q, "fromDate", 0, std::numeric_limits<std::int64_t>::max());
  f.to_ms = integer<std::int64_t>(q, "toDate", 0, std::numeric_limits<std::int64_t>::max());
  f.count = integer<std::size_t>(q, "count", 1, 100).value_or(100);
  if (const auto order = first(q, "order")) {
    if (*order == "latestFirst") {
      f.latest_first = true;
    } else if (*order != "earliestFirst") {
      throw bad_request("order: must be earliestFirst or latestFirst", "order");
    }
  }
  if (auto cursor = first(q, "cursor"); cursor && !cursor->empty()) {
    if (!parse_dlq_id(*cursor)) throw bad_request("cursor: not a cursor this relay gave out", "cursor");
    f.cursor = std::move(*cursor);
  }
  return f;
}

// The text parts of a message are stored in text columns and JSON documents, which must be UTF-8
// (PostgreSQL refuses anything else); a publisher's header may carry other bytes. The body is bytes
// and is stored as such.
std::optional<error> unstorable(const message_spec& m) {
  const auto bad = [](std::string_view field) {
    return make_error(errc::invalid_header, std::string(field) + ": must be UTF-8 text", std::string(field));
  };
  const auto check_headers = [&](const header_list& headers) -> std::optional<error> {
    for (const auto& h : headers) {
      if (!is_valid_utf8(h.value)) return bad(h.name);
    }
    return std::nullopt;
  };
  if (auto e = check_headers(m.headers)) return e;
  if (auto e = check_headers(m.options.callback.forward_headers)) return e;
  if (auto e = check_headers(m.options.failure_callback.forward_headers)) return e;
  for (const auto& label : m.options.labels) {
    if (!is_valid_utf8(label)) return bad("Upstash-Label");
  }
  if (m.dedup_id && !is_valid_utf8(*m.dedup_id)) return bad("Upstash-Deduplication-Id");
  return std::nullopt;
}

std::optional<std::string_view> optional_cursor(const std::optional<std::string>& c) {
  if (!c) return std::nullopt;
  return std::string_view(*c);
}

// ---------------------------------------------------------------------------------------------

// A message the fast path stored leased to this node, as the engine's claim would read it back.
stored_message leased_message(std::string message_id, message_spec spec, std::int64_t now_ms,
                              std::int64_t lease_until_ms, const std::string& node) {
  if (spec.created_at_ms <= 0) spec.created_at_ms = now_ms;
  return {.message_id = std::move(message_id),
          .spec = std::move(spec),
          .state = message_state::active,
          .retried = 0,
          .lease_owner = node,
          .lease_until_ms = lease_until_ms,
          .last_status = std::nullopt,
          .last_error = std::nullopt,
          .updated_at_ms = now_ms};
}

// How long a message stored under `slot` is leased to this node: stored ACTIVE, handed straight to
// the engine (the fast path); none without a slot (stored CREATED, for a claim).
std::optional<std::int64_t> lease_of(const std::optional<engine::reservation>& slot) {
  return slot ? std::optional(slot->lease_until_ms()) : std::nullopt;
}

class api : public std::enable_shared_from_this<api> {
 public:
  api(std::shared_ptr<relay_store> store, api_options opts, std::weak_ptr<engine> engine,
      relay_metrics& metrics)
      : store_(std::move(store)), opts_(std::move(opts)), engine_(std::move(engine)), metrics_(metrics) {}

  void authorize(const request_context& ctx) const {
    const auto& token = opts_.token;
    const auto given = http::bearer_token(ctx.req[http::field::authorization]);
    if (given && http::token_equals(*given, token)) return;
    if (const auto q = ctx.query_param("qstash_token"); q && http::token_equals(*q, token)) return;
    throw http_error(status::unauthorized, "unauthorized", "missing or invalid QStash token")
        .with_header("WWW-Authenticate", "Bearer");
  }

  http::response publish(request_context& ctx) {
    std::vector<header_view> headers;
    for (const auto& f : ctx.req) headers.push_back({f.name_string(), f.value()});
    const auto now = now_ms();
    publish_input in{.target = ctx.req.target(),
                     .headers = headers,
                     .body = ctx.req.body(),
                     .caller_ip = {},
                     .now_ms = now};
    auto spec = parse_publish(in, opts_.limits);
    if (!spec) throw bad_request(spec.error());
    if (auto e = unstorable(*spec)) throw bad_request(*e);
    const auto eng = engine_.lock();
    auto slot = eng ? eng->reserve(*spec, now) : std::nullopt;
    const auto accepted = store_->insert(*spec, now, opts_.dedup_window_ms, lease_of(slot));
    auto res =
        http::json_response(accepted.deduplicated ? status::accepted : status::created,
                            publish_response(accepted.message_id, spec->destination, accepted.deduplicated));
    if (!accepted.deduplicated) {
      metrics_.published.inc();
      hand_over(eng.get(), std::move(slot), accepted.message_id, std::move(*spec), now);
    }
    return res;
  }

  http::response batch(request_context& ctx) {
    const auto outcomes = publish_batch(ctx.req.body());
    return http::json_response(status::ok, batch_response(outcomes));
  }

  // `/v2/batch` without HTTP: the outcomes, in input order. Throws http_error for a body that is
  // not a batch, db::transient_error when the database is busy.
  std::vector<batch_outcome> publish_batch(std::string_view body) {
    const auto now = now_ms();
    auto parsed = parse_batch(body, {}, now, opts_.limits);
    if (!parsed) throw bad_request(parsed.error());
    std::vector<message_spec> specs;
    for (auto& r : *parsed) {
      if (!r) continue;
      if (auto e = unstorable(*r)) {
        r = *e;
      } else {
        specs.push_back(*r);
      }
    }
    const auto eng = engine_.lock();
    std::vector<std::optional<engine::reservation>> slots;
    std::vector<std::optional<std::int64_t>> leases;
    if (eng) {
      slots.reserve(specs.size());
      leases.reserve(specs.size());
      for (const auto& spec : specs) {
        slots.push_back(eng->reserve(spec, now));
        leases.push_back(lease_of(slots.back()));
      }
    }
    const auto accepted = store_->insert_all(specs, now, opts_.dedup_window_ms, leases);
    std::vector<batch_outcome> outcomes;
    std::size_t next = 0;
    for (auto& r : *parsed) {
      batch_outcome o;
      if (r) {
        const auto& a = accepted[next++];
        o.message_id = a.message_id;
        o.url = r->destination;
        o.deduplicated = a.deduplicated;
      } else {
        o.error = r.error().message;
      }
      outcomes.push_back(std::move(o));
    }
    for (std::size_t i = 0; i < specs.size(); ++i) {
      if (accepted[i].deduplicated) continue;
      metrics_.published.inc();
      hand_over(eng.get(), slots.empty() ? std::nullopt : std::move(slots[i]), accepted[i].message_id,
                std::move(specs[i]), now);
    }
    return outcomes;
  }

  // One batch element stored inside the caller's transaction `tx` (bus::local_stage_fn).
  std::optional<bus::staged_event> stage(soci::session& tx, const bus::batch_entry& entry) {
    const auto now = now_ms();
    const auto fields = bus::publish_headers(entry.options);
    std::vector<header_view> headers;
    headers.reserve(fields.size());
    for (const auto& [name, value] : fields) headers.push_back({name, value});
    auto spec =
        build_message_spec(entry.destination, headers, {}, entry.body.value_or(""), {}, now, opts_.limits);
    if (!spec || unstorable(*spec)) return std::nullopt;
    auto eng = engine_.lock();
    auto slot = eng ? eng->reserve(*spec, now) : std::nullopt;
    bus::staged_event staged{.message_id = store_->insert_new_in(tx, *spec, now, lease_of(slot)),
                             .after_commit = {}};
    // std::function wants a copyable callable: the slot (move-only) and the spec ride in shared state.
    struct handed {
      std::optional<engine::reservation> slot;
      message_spec spec;
    };
    auto state = std::make_shared<handed>(handed{std::move(slot), std::move(*spec)});
    staged.after_commit = [self = shared_from_this(), eng = std::move(eng), state, id = staged.message_id,
                           now] {
      self->metrics_.published.inc();
      self->hand_over(eng.get(), std::move(state->slot), id, std::move(state->spec), now);
    };
    return staged;
  }

  // A new message is stored: hand it to the engine when it was stored leased under `slot`, or
  // tell the engine there is work for a claim.
  void hand_over(engine* eng, std::optional<engine::reservation> slot, const std::string& message_id,
                 message_spec spec, std::int64_t now) {
    if (!eng) return;
    if (!slot) {
      eng->stored(spec, now);
      return;
    }
    const auto until = slot->lease_until_ms();
    eng->deliver(std::move(*slot),
                 leased_message(message_id, std::move(spec), now, until, store_->node_id()));
  }

  http::response get_message(request_context& ctx) {
    const auto id = ctx.param("messageId");
    const auto m = store_->get(id);
    if (!m || (m->state != message_state::created && m->state != message_state::active &&
               m->state != message_state::retry)) {
      throw not_found("message " + std::string(id.substr(0, 64)) + " not found");
    }
    return http::json_response(status::ok, message_json(m->message_id, m->spec));
  }

  http::response cancel_message(request_context& ctx) {
    const auto id = ctx.param("messageId");
    if (store_->cancel(id, now_ms()) != relay_store::cancel_outcome::cancelled) {
      throw not_found("message " + std::string(id.substr(0, 64)) + " not found or already finished");
    }
    return http::json_response(status::ok, cancel_response(1));
  }

  http::response cancel_messages(request_context& ctx) {
    const auto q = parse_query(ctx.query);
    refuse_unknown(q, cancel_parameters);
    cancel_query f;
    f.message_ids = all(q, "messageIds");
    auto body_ids = ids_from_body(ctx.req.body(), "messageIds");
    f.message_ids.insert(f.message_ids.end(), body_ids.begin(), body_ids.end());
    f.url = first(q, "url");
    f.from_ms = integer<std::int64_t>(q, "fromDate", 0, std::numeric_limits<std::int64_t>::max());
    f.to_ms = integer<std::int64_t>(q, "toDate", 0, std::numeric_limits<std::int64_t>::max());
    const auto n = store_->cancel_many(f, now_ms());
    return http::json_response(status::ok, cancel_response(static_cast<std::int64_t>(n)));
  }

  http::response list_dlq(request_context& ctx) {
    const auto f = dlq_query_from(parse_query(ctx.query));
    const auto page = store_->dlq_list(f);
    json::array messages;
    for (const auto& item : page.items) messages.push_back(dlq_message_json(item.entry, item.message.spec));
    return http::json_response(status::ok,
                               dlq_list_response(std::move(messages), optional_cursor(page.cursor)));
  }

  http::response get_dlq(request_context& ctx) {
    const auto id = ctx.param("dlqId");
    const auto item = parse_dlq_id(id) ? store_->dlq_get(id) : std::nullopt;
    if (!item) throw not_found("DLQ message " + std::string(id.substr(0, 64)) + " not found");
    return http::json_response(status::ok, dlq_message_json(item->entry, item->message.spec));
  }

  http::response delete_dlq(request_context& ctx) {
    const auto id = ctx.param("dlqId");
    if (!parse_dlq_id(id) || !store_->dlq_delete(id)) {
      throw not_found("DLQ message " + std::string(id.substr(0, 64)) + " not found");
    }
    return http::json_response(status::ok, dlq_delete_response(1, std::nullopt));
  }

  http::response delete_dlq_many(request_context& ctx) {
    const auto f = dlq_query_from(parse_query(ctx.query), ids_from_body(ctx.req.body(), "dlqIds"));
    const auto [deleted, cursor] = store_->dlq_delete_many(f);
    return http::json_response(
        status::ok, dlq_delete_response(static_cast<std::int64_t>(deleted), optional_cursor(cursor)));
  }

  http::response retry_dlq(request_context& ctx) {
    const auto id = ctx.param("dlqId");
    const auto new_id = parse_dlq_id(id) ? store_->dlq_retry(id, now_ms()) : std::nullopt;
    if (!new_id) throw not_found("DLQ message " + std::string(id.substr(0, 64)) + " not found");
    metrics_.published.inc();
    notify();
    return http::json_response(status::created, dlq_retry_response(*new_id));
  }

  http::response retry_dlq_many(request_context& ctx) {
    const auto f = dlq_query_from(parse_query(ctx.query), ids_from_body(ctx.req.body(), "dlqIds"));
    const auto [ids, cursor] = store_->dlq_retry_many(f, now_ms());
    if (!ids.empty()) {
      metrics_.published.inc(static_cast<double>(ids.size()));
      notify();
    }
    return http::json_response(status::created, dlq_retry_bulk_response(ids, optional_cursor(cursor)));
  }

  http::response keys(request_context&) const {
    json::object o;
    o["current"] = opts_.keys.current;
    o["next"] = opts_.keys.next;
    return http::json_response(status::ok, o);
  }

 private:
  void notify() const {
    if (const auto eng = engine_.lock()) eng->notify();
  }

  std::shared_ptr<relay_store> store_;
  api_options opts_;
  std::weak_ptr<engine> engine_;
  relay_metrics metrics_;
};

// Every route: the token first, then the handler; a database that is busy or unreachable is a
// 503 the caller may retry, never a 500.
template <typename Handler>
http::handler guarded(std::shared_ptr<api> a, Handler h) {
  return [a = std::move(a), h](request_context& ctx) -> http::response {
    a->authorize(ctx);
    try {
      return ((*a).*h)(ctx);
    } catch (const db::transient_error&) {
      throw http_error(status::service_unavailable, "unavailable", "the relay's database is busy; try again")
          .with_header("Retry-After", "1");
    }
  };
}

}  // namespace

local_ways add_api_routes(http::router& routes, std::shared_ptr<relay_store> store, api_options opts,
                          std::weak_ptr<engine> engine, relay_metrics& metrics) {
  if (opts.token.empty()) throw std::invalid_argument("the relay API needs a token (QSTASH_TOKEN)");
  auto a = std::make_shared<api>(std::move(store), std::move(opts), std::move(engine), metrics);
  using http::verb;
  routes.add(verb::post, "/v2/publish/{destination...}", guarded(a, &api::publish));
  routes.add(verb::post, "/v2/enqueue/{queue}/{destination...}", guarded(a, &api::publish));
  routes.add(verb::post, "/v2/batch", guarded(a, &api::batch));
  routes.add(verb::get, "/v2/messages/{messageId}", guarded(a, &api::get_message));
  routes.add(verb::delete_, "/v2/messages/{messageId}", guarded(a, &api::cancel_message));
  routes.add(verb::delete_, "/v2/messages", guarded(a, &api::cancel_messages));
  routes.add(verb::get, "/v2/dlq", guarded(a, &api::list_dlq));
  routes.add(verb::delete_, "/v2/dlq", guarded(a, &api::delete_dlq_many));
  routes.add(verb::get, "/v2/dlq/{dlqId}", guarded(a, &api::get_dlq));
  routes.add(verb::delete_, "/v2/dlq/{dlqId}", guarded(a, &api::delete_dlq));
  routes.add(verb::post, "/v2/dlq/retry", guarded(a, &api::retry_dlq_many));
  routes.add(verb::post, "/v2/dlq/retry/{dlqId}", guarded(a, &api::retry_dlq));
  routes.add(verb::get, "/v2/keys", guarded(a, &api::keys));
  return {
      // The same batch as the route's, answered as the route's answer is read by a publisher.
      .batch =
          [a](std::span<const bus::batch_entry> entries) {
            const auto outcomes = a->publish_batch(bus::batch_body(entries));
            return bus::parse_batch_response(
                http::client_response{
                    .status = 200, .headers = {}, .body = json::serialize(batch_response(outcomes))},
                entries.size());
          },
      .stage = [a](soci::session& tx, const bus::batch_entry& entry) { return a->stage(tx, entry); },
  };
}

}  // namespace shopd::relay
