#include "shopd/http/server.hpp"

#include "shopd/config/config.hpp"
#include "shopd/obs/log.hpp"
#include "shopd/obs/metrics.hpp"
#include "shopd/obs/thread_name.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <vector>

namespace shopd::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::uint32_t header_limit = 8 * 1024;
/// After an error response the client may still be sending; reading (and dropping) what it sends
/// for a moment before closing keeps the kernel from answering with a reset that would destroy
/// the response in flight.
constexpr auto linger_timeout = 1000ms;
constexpr std::size_t linger_max_bytes = 256 * 1024;
constexpr std::size_t correlation_id_max = 128;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

std::string endpoint_text(const tcp::endpoint& ep) {
  const auto address = ep.address();
  const auto port = std::to_string(ep.port());
  return address.is_v6() ? "[" + address.to_string() + "]:" + port : address.to_string() + ":" + port;
}

std::string_view method_label(verb v) {
  return v == verb::unknown ? std::string_view{"other"} : std::string_view{bhttp::to_string(v)};
}

std::string_view without_query(std::string_view target) {
  return target.substr(0, target.find('?'));
}

/// The body limit of the route a request's header names, or `fallback` (the server's) for a route
/// without one of its own, an unknown route or a wrong method.
std::size_t body_limit_for(const router& routes, const bhttp::request_header<>& header,
                           std::size_t fallback) {
  const auto result = routes.lookup(header.method(), without_query(header.target()));
  const auto* found = std::get_if<router::found>(&result);
  return found != nullptr && found->r->body_limit != 0 ? found->r->body_limit : fallback;
}

/// Visible ASCII and blanks only: what may go back into a response header verbatim.
bool header_safe(std::string_view value) {
  return value.size() <= correlation_id_max && std::all_of(value.begin(), value.end(), [](char ch) {
           const auto c = static_cast<unsigned char>(ch);
           return c == '\t' || (c >= 0x20 && c < 0x7F);
         });
}

double round_ms(steady::duration d) {
  return std::round(std::chrono::duration<double, std::milli>(d).count() * 1000.0) / 1000.0;
}

struct listener_info {
  std::string name;
  std::shared_ptr<const router> routes;
  cors_policy cors;
  obs::gauge& in_flight;
  obs::gauge& connections_open;
  /// Where this listener's blocking work runs: the server's shared pool, or one of its own.
  net::thread_pool& workers;
  /// Connections admitted on this listener and not yet unregistered; guarded by server::impl::mutex_.
  /// Counted per listener so that a flood on one role cannot lock every other role out.
  mutable std::size_t connections = 0;

  /// The request metrics' series, resolved once per (route, method, status) so that counting a
  /// request allocates nothing. Routes are keyed by their pattern's address: the router is
  /// immutable and outlives this.
  struct series_key {
    const char* route;
    verb method;
    unsigned status;
    bool operator==(const series_key&) const = default;
  };
  struct series_hash {
    std::size_t operator()(const series_key& k) const noexcept {
      return std::hash<const void*>{}(k.route) ^ (static_cast<std::size_t>(k.method) << 20U) ^ k.status;
    }
  };
  struct series {
    obs::counter* requests = nullptr;
    obs::histogram* duration = nullptr;
  };
  mutable std::mutex series_mutex{};
  mutable std::unordered_map<series_key, series, series_hash> series_cache{};
};

constexpr std::string_view unmatched_route = "unmatched";
/// The `remote` of the request log for a request this process made to itself (serve_in_process).
constexpr std::string_view in_process_remote = "in-process";

obs::trace_context incoming_trace(const request& req);

/// What a handler gets for `req`: its target split, its correlation id and trace.
request_context context_of(const request& req) {
  const std::string_view target = req.target();
  const auto query_at = target.find('?');
  request_context ctx{req,
                      target.substr(0, query_at),
                      query_at == std::string_view::npos ? std::string_view{} : target.substr(query_at + 1),
                      {},
                      std::string{}};
  if (const auto it = req.find("X-Correlation-Id"); it != req.end() && header_safe(it->value())) {
    ctx.correlation_id = std::string(it->value());
  }
  ctx.trace = incoming_trace(req);
  return ctx;
}

/// The `request` log line of an answered request.
void log_request(const listener_info& info, const request_context& ctx, unsigned st, steady::duration elapsed,
                 std::size_t bytes_in, std::size_t bytes_out, std::string_view remote) {
  const double duration_ms = round_ms(elapsed);
  std::array<obs::field, 10> fields{{{"listener", info.name},
                                     {"method", std::string_view{ctx.req.method_string()}},
                                     {"path", ctx.path},
                                     {"status", st},
                                     {"duration_ms", duration_ms},
                                     {"bytes_in", bytes_in},
                                     {"bytes_out", bytes_out},
                                     {"remote", remote},
                                     {"correlation_id", ctx.correlation_id},
                                     {"trace_id", ctx.trace->trace_id()}}};
  std::span<const obs::field> line(fields);
  if (ctx.correlation_id.empty()) {  // trace_id, the last field, takes correlation_id's place
    fields[fields.size() - 2] = fields.back();
    line = line.first(fields.size() - 1);
  }
  obs::write(obs::level::info, "request", line);
}

struct listener {
  std::shared_ptr<const listener_info> info;
  tcp::acceptor acceptor;
  std::string address;  // as bound, for the logs
};

/// What a deadline does when it expires. Reads get their receive side shut down rather than only
/// cancelled: a composed read (Beast's) between two of its reads has nothing pending to cancel and
/// would otherwise start a fresh read that no deadline covers.
enum class on_expiry { stop_reading, close };

/// One client connection. Every member is touched only by the I/O thread of the connection's
/// io_context, except during shutdown once the I/O threads are joined.
///
/// One timer serves every deadline of the connection, and it is rescheduled lazily: arming sets a
/// deadline and touches the timer only when the new deadline is earlier than the pending wait; a
/// wait that ends before the current deadline waits again. A keep-alive request then costs about
/// one timer operation instead of an arm and a cancel per read and write.
class connection : public std::enable_shared_from_this<connection> {
 public:
  connection(tcp::socket s, std::shared_ptr<const listener_info> l, std::string peer)
      : socket(std::move(s)), timer(socket.get_executor()), listener(std::move(l)), remote(std::move(peer)) {}

  void arm(std::chrono::milliseconds timeout, on_expiry action) {
    timed_out = false;
    action_ = action;
    deadline_ = steady::now() + timeout;
    if (!waiting_ || timer.expiry() > deadline_) wait_until(deadline_);
  }

  void disarm() { deadline_ = steady::time_point::max(); }

  /// The session is over: drop the pending wait, which would otherwise keep the connection alive
  /// until its deadline.
  void stop_timer() {
    disarm();
    ++wait_id_;
    waiting_ = false;
    timer.cancel();
  }

  /// Shutdown has begun: a connection waiting for its next request goes now; one in the middle
  /// of a request finishes it and then goes.
  void begin_drain() {
    draining = true;
    if (idle) {
      error_code ignored;
      socket.cancel(ignored);
    }
  }

  tcp::socket socket;
  net::steady_timer timer;
  std::shared_ptr<const listener_info> listener;
  std::string remote;
  bool idle = false;
  bool draining = false;
  bool timed_out = false;

 private:
  void wait_until(steady::time_point when) {
    timer.expires_at(when);  // a pending wait ends with operation_aborted and is ignored below
    const auto id = ++wait_id_;
    waiting_ = true;
    timer.async_wait([self = shared_from_this(), id](error_code ec) {
      // Only the latest wait counts: an earlier one may have completed before it was superseded.
      if (id != self->wait_id_) return;
      self->waiting_ = false;
      if (!ec) self->on_wait_over();
    });
  }

  void on_wait_over() {
    if (deadline_ == steady::time_point::max()) return;  // disarmed
    if (steady::now() < deadline_) {
      wait_until(deadline_);  // re-armed later since this wait began
      return;
    }
    timed_out = true;
    error_code ignored;
    socket.cancel(ignored);
    if (action_ == on_expiry::stop_reading) {
      socket.shutdown(tcp::socket::shutdown_receive, ignored);
    } else {
      socket.close(ignored);
    }
  }

  steady::time_point deadline_ = steady::time_point::max();
  on_expiry action_ = on_expiry::close;
  std::uint64_t wait_id_ = 0;
  bool waiting_ = false;
};

/// The error response for a request that could not be read, or nothing when there is nobody or
/// nothing to answer (the peer left, the server is cutting the connection).
std::optional<response> read_failure_response(const error_code& ec, bool timed_out) {
  if (timed_out)
    return json_error(status::request_timeout, "request_timeout", "request not received in time");
  if (ec == bhttp::error::header_limit) {
    return json_error(status::request_header_fields_too_large, "request_header_fields_too_large",
                      "request header larger than 8 KiB");
  }
  if (ec == bhttp::error::body_limit) {
    return json_error(status::payload_too_large, "payload_too_large", "request body too large");
  }
  if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) return std::nullopt;
  if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category()) {
    return json_error(status::bad_request, "bad_request", "malformed HTTP request");
  }
  return std::nullopt;
}

/// A request whose body length its headers do not settle one way: Content-Length twice (equal values
/// too), Transfer-Encoding with Content-Length (either order), or Transfer-Encoding whose last coding
/// is not chunked (RFC 9112 §6.3: 400, then close). A proxy in front that reads such a request
/// differently is how requests get smuggled past it. Beast itself refuses only some of these.
error_code framing_error(const bhttp::request_parser<bhttp::string_body>& parser) {
  const auto& h = parser.get();
  const auto lengths = h.count(field::content_length);
  if (lengths > 1) return bhttp::error::multiple_content_length;
  if (h.count(field::transfer_encoding) > 0 && (lengths > 0 || !parser.chunked()))
    return bhttp::error::bad_transfer_encoding;
  return {};
}

/// Version, keep-alive, framing and the headers every response carries.
void finalize(response& res, unsigned version, bool keep_alive, bool head, std::string_view correlation_id) {
  res.version(version);
  res.keep_alive(keep_alive);
  res.set(field::server, "shopd");
  if (!correlation_id.empty() && header_safe(correlation_id)) res.set("X-Correlation-Id", correlation_id);
  const unsigned code = res.result_int();
  if (code / 100 == 1 || code == 204 || code == 304) {
    res.body().clear();
    res.prepare_payload();
  } else if (head) {
    // HEAD answers with the headers a GET would get, Content-Length included, and no body.
    const auto length = res.body().size();
    res.body().clear();
    res.content_length(length);
  } else {
    res.prepare_payload();
  }
}

/// The request's `traceparent` when there is exactly one and it is valid; otherwise the chain
/// starts here, with a new trace. An invalid header is ignored, as the specification asks.
obs::trace_context incoming_trace(const request& req) {
  if (req.count("traceparent") == 1) {
    if (auto parsed = obs::trace_context::parse(req["traceparent"])) return *parsed;
  }
  return obs::trace_context::start();
}

std::vector<verb> with_implicit_head(std::vector<verb> methods) {
  if (std::find(methods.begin(), methods.end(), verb::get) != methods.end() &&
      std::find(methods.begin(), methods.end(), verb::head) == methods.end()) {
    methods.push_back(verb::head);
  }
  return methods;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

server_options server_options::from_config(const config::settings& s) {
  const auto non_negative = [](std::int64_t v) { return v < 0 ? 0 : v; };
  server_options o;
  o.body_limit = static_cast<std::size_t>(non_negative(s.http_body_limit));
  o.header_timeout = std::chrono::milliseconds{non_negative(s.http_header_timeout_ms)};
  o.read_timeout = std::chrono::milliseconds{non_negative(s.http_read_timeout_ms)};
  o.write_timeout = std::chrono::milliseconds{non_negative(s.http_write_timeout_ms)};
  o.idle_timeout = std::chrono::milliseconds{non_negative(s.http_idle_timeout_ms)};
  o.shutdown_timeout = std::chrono::milliseconds{non_negative(s.shutdown_timeout_ms)};
  o.drain_delay = std::chrono::milliseconds{non_negative(s.shutdown_drain_delay_ms)};
  o.max_connections = static_cast<std::size_t>(non_negative(s.http_max_connections));
  o.io_threads = static_cast<unsigned>(non_negative(s.io_threads));
  o.worker_threads = static_cast<unsigned>(non_negative(s.worker_threads));
  return o;
}

// Threading: one io_context per I/O thread, each run by that thread alone. A connection lives on
// one of them (assigned round-robin at accept) for its whole life, so its coroutine, its timer and
// its socket never need a strand, and readiness never wakes another thread. The first io_context
// also carries the acceptors, the signal set and the components given io_context() (HTTP clients,
// timers).
//
// Member order is destruction order reversed: the worker pool and then the io_contexts are
// destroyed after the acceptors and signal set that live on them, and before the state that
// unfinished sessions (destroyed with them) still touch.
struct server::impl {
  impl(server_options o, obs::registry& metrics)
      : opts_(std::move(o)),
        requests_total_(metrics.counter_family(
            "shopd_http_requests_total", "HTTP requests answered, by listener, method, route and status.",
            {"listener", "method", "route", "status"})),
        request_duration_(metrics.histogram_family(
            "shopd_http_request_duration_seconds",
            "Time from the first byte of a request to its response being ready, by listener and route.",
            {"listener", "route"})),
        in_flight_(metrics.gauge_family("shopd_http_requests_in_flight",
                                        "Requests being handled, by listener.", {"listener"})),
        connections_open_(metrics.gauge_family("shopd_http_connections_open",
                                               "Open client connections, by listener.", {"listener"})),
        workers_(std::max(1u, opts_.worker_threads)) {
    const unsigned n =
        opts_.io_threads == 0 ? std::max(1u, std::thread::hardware_concurrency()) : opts_.io_threads;
    io_contexts_.reserve(n);
    // Concurrency hint 1: each is run by one thread (other threads still post to it safely).
    for (unsigned i = 0; i < n; ++i) io_contexts_.push_back(std::make_unique<net::io_context>(1));
    name_workers(workers_, std::max(1u, opts_.worker_threads), "shopd-work-");
  }

  // One naming task per worker thread: each waits until all are running, so no thread runs two.
  static void name_workers(net::thread_pool& pool, unsigned threads, const std::string& prefix) {
    const auto n = static_cast<std::ptrdiff_t>(threads);
    // Shared: a task may still be leaving arrive_and_wait when this function has returned.
    const auto all_named = std::make_shared<std::latch>(n + 1);
    for (std::ptrdiff_t i = 0; i < n; ++i) {
      net::post(pool, [all_named, i, prefix] {
        obs::name_this_thread(prefix + std::to_string(i));
        all_named->arrive_and_wait();
      });
    }
    all_named->arrive_and_wait();
  }

  ~impl() {
    if (stopper_.joinable()) stopper_.join();
  }

  std::uint16_t listen(listener_spec spec);
  void start();
  void request_stop(bool drain);
  void skip_drain();
  void watch_signals();
  void wait_stopped();
  [[nodiscard]] bool on_server_thread();
  [[nodiscard]] bool on_io_thread() const noexcept;

  void spawn_accept_loop(listener& l);
  net::awaitable<void> accept_loop(listener& l);
  void admit(listener& l, tcp::socket socket);
  net::awaitable<void> run_session(std::shared_ptr<connection> c);
  net::awaitable<bool> serve_one(connection& c, beast::flat_buffer& buffer, steady::time_point request_start,
                                 std::chrono::milliseconds header_time);
  net::awaitable<response> answer(const listener_info& info, request_context& ctx, const bool* draining,
                                  std::string_view& route_label);
  net::awaitable<response> dispatch(const listener_info& info, request_context& ctx,
                                    std::string_view& route_label);
  net::awaitable<response> serve_in_process(std::uint16_t port, request req);
  net::awaitable<std::size_t> write_response(connection& c, response& res);
  net::awaitable<void> linger_close(connection& c);
  template <typename F>
  auto guarded(const listener_info& info, const route& r, request_context& ctx, F&& work) -> decltype(work());
  void record(const listener_info& info, verb method, std::string_view route, unsigned status,
              steady::duration elapsed);
  void unregister(connection& c);
  void shutdown();
  void close_acceptors();

  server_options opts_;
  obs::family<obs::counter>& requests_total_;
  obs::family<obs::histogram>& request_duration_;
  obs::family<obs::gauge>& in_flight_;
  obs::family<obs::gauge>& connections_open_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;                   // connections_ emptied, or the server stopped
  std::unordered_set<connection*> connections_;  // owned by their sessions
  std::vector<std::function<void()>> drain_callbacks_;
  std::vector<std::function<void()>> stop_callbacks_;
  bool started_ = false;
  bool stop_requested_ = false;
  bool drain_ = false;       // wait the drain delay before closing the listeners
  bool drain_over_ = false;  // a second signal cut the drain delay short
  bool stopped_ = false;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> closing_{false};  // the listeners are closing: new connections are not served
  std::atomic<std::thread::id> stopper_id_{};

  std::vector<std::unique_ptr<net::io_context>> io_contexts_;  // [0]: acceptors, signals, clients
  std::atomic<std::size_t> next_context_{0};                   // round-robin for new connections
  net::thread_pool workers_;
  // The pools of listeners with workers of their own (listener_spec::own_workers); guarded by mutex_.
  std::vector<std::unique_ptr<net::thread_pool>> own_workers_;
  std::vector<std::unique_ptr<listener>> listeners_;
  // By bound port, for serve_in_process; guarded by mutex_.
  std::unordered_map<std::uint16_t, std::shared_ptr<const listener_info>> by_port_;
  std::optional<net::signal_set> signals_;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::vector<std::thread> io_threads_;
  std::thread stopper_;
};

std::uint16_t server::impl::listen(listener_spec spec) {
  const std::string where = "listen " + spec.address + ":" + std::to_string(spec.port);
  const auto fail = [&](const error_code& ec) { throw std::system_error(std::error_code(ec), where); };

  error_code ec;
  const auto address = net::ip::make_address(spec.address, ec);
  if (ec) fail(ec);
  const tcp::endpoint endpoint{address, spec.port};
  tcp::acceptor acceptor(*io_contexts_.front());
  acceptor.open(endpoint.protocol(), ec);
  if (ec) fail(ec);
  acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (ec) fail(ec);
  acceptor.bind(endpoint, ec);
  if (ec) fail(ec);
  acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) fail(ec);
  const auto bound = acceptor.local_endpoint(ec);
  if (ec) fail(ec);

  std::unique_ptr<net::thread_pool> own;
  if (spec.own_workers > 0) {
    own = std::make_unique<net::thread_pool>(spec.own_workers);
    name_workers(*own, spec.own_workers, spec.name + "-work-");
  }
  // Built in place: it holds a mutex, so it cannot be moved into make_shared.
  std::shared_ptr<const listener_info> info(
      new listener_info{spec.name, spec.routes ? std::move(spec.routes) : std::make_shared<const router>(),
                        std::move(spec.cors), in_flight_.with({spec.name}),
                        connections_open_.with({spec.name}), own ? *own : workers_});
  auto l = std::make_unique<listener>(listener{std::move(info), std::move(acceptor), endpoint_text(bound)});
  {
    std::lock_guard lock(mutex_);
    if (stop_requested_) fail(net::error::operation_aborted);  // `own`, idle, is stopped and joined
    if (own) own_workers_.push_back(std::move(own));
    by_port_.emplace(bound.port(), l->info);
    auto& ref = *listeners_.emplace_back(std::move(l));
    obs::info("listening", {{"listener", ref.info->name}, {"address", ref.address}});
    if (started_) spawn_accept_loop(ref);
  }
  return bound.port();
}

void server::impl::start() {
  std::lock_guard lock(mutex_);
  if (started_ || stop_requested_) return;
  started_ = true;
  for (auto& ioc : io_contexts_) work_.push_back(net::make_work_guard(*ioc));
  for (auto& l : listeners_) spawn_accept_loop(*l);
  io_threads_.reserve(io_contexts_.size());
  for (auto& ioc : io_contexts_) {
    io_threads_.emplace_back([&ioc = *ioc] {
      // Request lines are written once per loop iteration, not once per request: the flush is
      // posted behind the completions the loop is handling now.
      obs::begin_batching([&ioc] { net::post(ioc, [] { obs::flush_batch(); }); });
      // A handler that throws makes run() return; log it and keep serving.
      for (;;) {
        try {
          ioc.run();
          break;
        } catch (const std::exception& e) {
          obs::error("uncaught exception on an I/O thread", {{"error", e.what()}});
        }
      }
      obs::end_batching();
    });
    obs::name_thread(io_threads_.back(), "shopd-io-" + std::to_string(io_threads_.size() - 1));
  }
}

void server::impl::spawn_accept_loop(listener& l) {
  net::co_spawn(l.acceptor.get_executor(), accept_loop(l), [name = l.info->name](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      obs::error("accept loop failed", {{"listener", name}, {"error", ex.what()}});
    }
  });
}

net::awaitable<void> server::impl::accept_loop(listener& l) {
  for (;;) {
    auto& target = *io_contexts_[next_context_.fetch_add(1, std::memory_order_relaxed) % io_contexts_.size()];
    auto [ec, socket] = co_await l.acceptor.async_accept(target, use_tuple);
    if (ec) {
      if (ec == net::error::operation_aborted || !l.acceptor.is_open()) co_return;
      obs::warn("accept failed", {{"listener", l.info->name}, {"error", ec.message()}});
      // Errors such as EMFILE persist for a while; pausing beats spinning on them.
      net::steady_timer pause(co_await net::this_coro::executor, 50ms);
      co_await pause.async_wait(use_tuple);
      if (!l.acceptor.is_open()) co_return;
      continue;
    }
    admit(l, tcp::socket(std::move(socket)));
  }
}

void server::impl::admit(listener& l, tcp::socket socket) {
  error_code ec;
  const auto peer = socket.remote_endpoint(ec);
  auto c = std::make_shared<connection>(std::move(socket), l.info,
                                        ec ? std::string("unknown") : endpoint_text(peer));
  bool admitted = false;
  {
    std::lock_guard lock(mutex_);
    if (l.info->connections < opts_.max_connections) {
      ++l.info->connections;
      connections_.insert(c.get());
      c->draining = closing_.load();
      admitted = true;
    }
  }
  if (!admitted) {
    obs::warn(
        "connection limit reached; closing new connection",
        {{"listener", l.info->name}, {"remote", c->remote}, {"max_connections", opts_.max_connections}});
    c->socket.close(ec);
    return;
  }
  c->socket.set_option(tcp::no_delay(true), ec);
  l.info->connections_open.inc();
  auto executor = c->socket.get_executor();
  net::co_spawn(executor, run_session(std::move(c)), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      obs::error("connection failed", {{"error", ex.what()}});
    }
  });
}

void server::impl::unregister(connection& c) {
  c.listener->connections_open.dec();
  std::lock_guard lock(mutex_);
  --c.listener->connections;
  connections_.erase(&c);
  if (connections_.empty()) cv_.notify_all();
}

net::awaitable<void> server::impl::run_session(std::shared_ptr<connection> c) {
  // Unregisters however the session ends, including when its frame is destroyed at shutdown.
  struct registration {
    registration(impl& s, connection& c) : self(s), conn(c) {}
    registration(const registration&) = delete;
    registration& operator=(const registration&) = delete;
    ~registration() { self.unregister(conn); }
    impl& self;
    connection& conn;
  } const guard{*this, *c};

  beast::flat_buffer buffer;
  bool first = true;
  const auto accepted_at = steady::now();
  for (;;) {
    if (buffer.size() == 0) {
      // Waiting for a request: a fresh connection gets the header timeout (it holds a slot and has
      // said nothing yet), a kept-alive one the idle timeout. Either way nothing was asked, so a
      // timeout or a drain closes without an answer.
      if (c->draining) break;
      c->idle = true;
      c->arm(first ? opts_.header_timeout : opts_.idle_timeout, on_expiry::stop_reading);
      auto [ec] = co_await c->socket.async_wait(tcp::socket::wait_read, use_tuple);
      c->disarm();
      c->idle = false;
      if (ec || c->timed_out || c->draining) break;
    }
    // A new connection's header timeout runs from the accept, not from its first byte: otherwise a
    // client sending one byte just before it expires would get a second one.
    auto header_time = opts_.header_timeout;
    if (first) {
      const auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - accepted_at);
      header_time = std::max(header_time - spent, std::chrono::milliseconds{1});
    }
    first = false;
    if (!co_await serve_one(*c, buffer, steady::now(), header_time)) break;
  }
  c->stop_timer();
  error_code ignored;
  c->socket.shutdown(tcp::socket::shutdown_both, ignored);
  c->socket.close(ignored);
}

net::awaitable<bool> server::impl::serve_one(connection& c, beast::flat_buffer& buffer,
                                             steady::time_point request_start,
                                             std::chrono::milliseconds header_time) {
  const listener_info& info = *c.listener;
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(header_limit);
  // A route may accept larger bodies than the server's limit (router::limit_body). Beast refuses an
  // over-long Content-Length as the header ends, so the parser starts with the widest limit and the
  // request's own is set once its route is known, before any body octet is parsed.
  const std::size_t widest_limit = std::max(opts_.body_limit, info.routes->largest_body_limit());
  parser.body_limit(static_cast<std::uint64_t>(widest_limit));
  std::size_t bytes_in = 0;

  c.arm(header_time, on_expiry::stop_reading);
  auto [ec, n] = co_await bhttp::async_read_header(c.socket, buffer, parser, use_tuple);
  c.disarm();
  bytes_in += n;
  if (!ec) ec = framing_error(parser);
  if (!ec && !parser.is_done() && widest_limit != opts_.body_limit) {
    const std::size_t limit = body_limit_for(*info.routes, parser.get(), opts_.body_limit);
    if (const auto length = parser.content_length(); length && *length > limit) {
      ec = bhttp::error::body_limit;
    } else {
      parser.body_limit(static_cast<std::uint64_t>(limit));
    }
  }
  if (!ec && !parser.is_done()) {
    if (beast::iequals(parser.get()[field::expect], "100-continue")) {
      bhttp::response<bhttp::empty_body> go_on{status::continue_, parser.get().version()};
      c.arm(opts_.write_timeout, on_expiry::close);
      auto [wec, wn] = co_await bhttp::async_write(c.socket, go_on, use_tuple);
      c.disarm();
      if (wec) co_return false;
    }
    c.arm(opts_.read_timeout, on_expiry::stop_reading);
    std::tie(ec, n) = co_await bhttp::async_read(c.socket, buffer, parser, use_tuple);
    c.disarm();
    bytes_in += n;
  }

  if (ec) {
    auto res = read_failure_response(ec, c.timed_out);
    if (!res) co_return false;
    const auto& partial = parser.get();
    const auto path = without_query(partial.target());
    const unsigned st = res->result_int();
    finalize(*res, 11, false, false, {});
    record(info, partial.method(), unmatched_route, st, steady::now() - request_start);
    const bool timed_out = c.timed_out;
    const std::size_t bytes_out = co_await write_response(c, *res);
    obs::info("request", {{"listener", info.name},
                          {"method", std::string_view{partial.method_string()}},
                          {"path", path},
                          {"status", st},
                          {"duration_ms", round_ms(steady::now() - request_start)},
                          {"bytes_in", bytes_in},
                          {"bytes_out", bytes_out},
                          {"remote", c.remote},
                          {"error", ec.message()}});
    // After a timeout the receive side is already shut; otherwise the client may still be sending.
    if (!timed_out) co_await linger_close(c);
    co_return false;
  }

  request req = parser.release();
  request_context ctx = context_of(req);
  std::string_view route_label = unmatched_route;
  response res = co_await answer(info, ctx, &c.draining, route_label);
  const bool keep_alive = res.keep_alive();
  const unsigned st = res.result_int();
  record(info, req.method(), route_label, st, steady::now() - request_start);
  const std::size_t bytes_out = co_await write_response(c, res);
  log_request(info, ctx, st, steady::now() - request_start, bytes_in, bytes_out, c.remote);
  co_return bytes_out > 0 && keep_alive;
}

// A request read in full, on its way to a response: the route's handler (or the server's own answer),
// CORS, and the fields finalize() sets. `draining`: the connection's flag, read once the handler is
// done (a drain that began meanwhile closes the connection); nullptr when there is no connection.
net::awaitable<response> server::impl::answer(const listener_info& info, request_context& ctx,
                                              const bool* draining, std::string_view& route_label) {
  const request& req = ctx.req;
  response res;
  {
    // A scope, not inc/dec: the frame may be destroyed mid-request when shutdown cuts it.
    struct in_flight_scope {
      explicit in_flight_scope(obs::gauge& g) : gauge(g) { gauge.inc(); }
      in_flight_scope(const in_flight_scope&) = delete;
      in_flight_scope& operator=(const in_flight_scope&) = delete;
      ~in_flight_scope() { gauge.dec(); }
      obs::gauge& gauge;
    } const scope(info.in_flight);
    res = co_await dispatch(info, ctx, route_label);
  }

  if (!is_preflight(req)) decorate(info.cors, req, res);
  // A handler may ask for the connection to be closed (Connection: close); the client may too.
  const bool keep_alive =
      req.keep_alive() && res.keep_alive() && (draining == nullptr || !*draining) && !stopping_.load();
  finalize(res, req.version(), keep_alive, req.method() == verb::head, ctx.correlation_id);
  co_return res;
}

// A request from this process to one of its own listeners (http::client_options::in_process): what a
// connection does once it has read the request, with the limits it applies while reading.
net::awaitable<response> server::impl::serve_in_process(std::uint16_t port, request req) {
  const auto request_start = steady::now();
  std::shared_ptr<const listener_info> found;
  {
    std::lock_guard lock(mutex_);  // listen() may add listeners while the server runs
    if (const auto it = by_port_.find(port); it != by_port_.end()) found = it->second;
  }
  if (!found) throw std::logic_error("serve_in_process: no listener on port " + std::to_string(port));
  const listener_info& info = *found;

  std::size_t header_bytes = req.method_string().size() + req.target().size() + 12;  // request line
  for (const auto& f : req) header_bytes += f.name_string().size() + f.value().size() + 4;
  const std::size_t bytes_in = header_bytes + req.body().size();
  std::optional<response> refused;
  if (header_bytes > header_limit) {
    refused = read_failure_response(bhttp::error::header_limit, false);
  } else if (req.body().size() > body_limit_for(*info.routes, req, opts_.body_limit)) {
    refused = read_failure_response(bhttp::error::body_limit, false);
  }
  if (refused) {
    // As on a connection: refused before any route saw it, and the connection would be closed.
    finalize(*refused, 11, false, false, {});
    const unsigned st = refused->result_int();
    record(info, req.method(), unmatched_route, st, steady::now() - request_start);
    obs::info("request", {{"listener", info.name},
                          {"method", std::string_view{req.method_string()}},
                          {"path", without_query(req.target())},
                          {"status", st},
                          {"duration_ms", round_ms(steady::now() - request_start)},
                          {"bytes_in", bytes_in},
                          {"bytes_out", refused->body().size()},
                          {"remote", in_process_remote}});
    co_return std::move(*refused);
  }

  request_context ctx = context_of(req);
  std::string_view route_label = unmatched_route;
  response res = co_await answer(info, ctx, nullptr, route_label);
  const unsigned st = res.result_int();
  record(info, req.method(), route_label, st, steady::now() - request_start);
  log_request(info, ctx, st, steady::now() - request_start, bytes_in, res.body().size(), in_process_remote);
  co_return res;
}

net::awaitable<response> server::impl::dispatch(const listener_info& info, request_context& ctx,
                                                std::string_view& route_label) {
  const request& req = ctx.req;
  const router& routes = *info.routes;
  if (is_preflight(req))
    co_return preflight_response(info.cors, req, with_implicit_head(routes.methods_for(ctx.path)));

  auto result = routes.lookup(req.method(), ctx.path);
  if (req.method() == verb::head && !std::holds_alternative<router::found>(result)) {
    // HEAD is served by the GET route; finalize() drops the body.
    if (auto as_get = routes.lookup(verb::get, ctx.path); std::holds_alternative<router::found>(as_get)) {
      result = std::move(as_get);
    }
  }
  if (std::holds_alternative<router::not_found>(result)) {
    co_return json_error(status::not_found, "not_found", "no such resource");
  }
  if (const auto* wrong = std::get_if<router::method_not_allowed>(&result)) {
    std::string allow;
    for (const verb v : with_implicit_head(wrong->allowed)) {
      if (!allow.empty()) allow += ", ";
      allow += bhttp::to_string(v);
    }
    auto res =
        json_error(status::method_not_allowed, "method_not_allowed", "method not allowed for this resource");
    res.set(field::allow, allow);
    co_return res;
  }

  auto& match = std::get<router::found>(result);
  const route& r = *match.r;
  route_label = r.pattern;
  ctx.params = std::move(match.params);
  if (r.deferring) {
    auto first = guarded(info, r, ctx, [&] { return r.deferring(ctx); });
    auto* rest = std::get_if<deferred>(&first);
    if (rest == nullptr) co_return std::get<response>(std::move(first));
    co_return co_await net::co_spawn(
        info.workers, [&]() -> net::awaitable<response> { co_return guarded(info, r, ctx, *rest); },
        net::use_awaitable);
  }
  const auto run = [&] { return r.fn(ctx); };
  if (r.exec == execution::io) co_return guarded(info, r, ctx, run);
  co_return co_await net::co_spawn(
      info.workers, [&]() -> net::awaitable<response> { co_return guarded(info, r, ctx, run); },
      net::use_awaitable);
}

// Runs handler code: an exception becomes its response here, never reaches the session.
template <typename F>
auto server::impl::guarded(const listener_info& info, const route& r, request_context& ctx, F&& work)
    -> decltype(work()) {
  const auto internal_error = [&](std::string_view what) {
    // The text stays in the log: it may hold anything (SQL, paths, secrets), so it never reaches
    // the client.
    if (ctx.correlation_id.empty()) {
      obs::error("handler failed", {{"listener", info.name}, {"route", r.pattern}, {"error", what}});
    } else {
      obs::error("handler failed", {{"listener", info.name},
                                    {"route", r.pattern},
                                    {"error", what},
                                    {"correlation_id", ctx.correlation_id}});
    }
    return json_error(status::internal_server_error, "internal_error", "internal server error");
  };
  // Everything the handler logs or emits belongs to the request's trace. It runs to completion on
  // this thread (no co_await), so a thread-local scope is exact.
  const obs::trace_scope trace(*ctx.trace);
  try {
    return std::forward<F>(work)();
  } catch (const http_error& e) {
    return e.to_response();
  } catch (const std::exception& e) {
    return internal_error(e.what());
  } catch (...) {
    return internal_error("unknown exception");
  }
}

net::awaitable<std::size_t> server::impl::write_response(connection& c, response& res) {
  c.arm(opts_.write_timeout, on_expiry::close);
  auto [ec, n] = co_await bhttp::async_write(c.socket, res, use_tuple);
  c.disarm();
  co_return ec ? 0 : n;
}

net::awaitable<void> server::impl::linger_close(connection& c) {
  error_code ec;
  c.socket.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) co_return;
  c.idle = true;  // a drain may cut this short
  c.arm(linger_timeout, on_expiry::stop_reading);
  std::array<char, 4096> scratch{};
  std::size_t total = 0;
  while (total < linger_max_bytes && !c.draining) {
    auto [rec, n] = co_await c.socket.async_read_some(net::buffer(scratch), use_tuple);
    if (rec) break;
    total += n;
  }
  c.disarm();
  c.idle = false;
}

void server::impl::record(const listener_info& info, verb method, std::string_view route, unsigned code,
                          steady::duration elapsed) {
  listener_info::series found;
  {
    std::lock_guard lock(info.series_mutex);
    const listener_info::series_key key{route.data(), method, code};
    auto it = info.series_cache.find(key);
    if (it == info.series_cache.end()) {
      const listener_info::series fresh{&requests_total_.with({info.name, std::string(method_label(method)),
                                                               std::string(route), std::to_string(code)}),
                                        &request_duration_.with({info.name, std::string(route)})};
      it = info.series_cache.emplace(key, fresh).first;
    }
    found = it->second;
  }
  found.requests->inc();
  found.duration->observe(std::chrono::duration<double>(elapsed).count());
}

bool server::impl::on_server_thread() {
  if (on_io_thread() || workers_.get_executor().running_in_this_thread() ||
      std::this_thread::get_id() == stopper_id_.load()) {
    return true;
  }
  std::lock_guard lock(mutex_);
  return std::any_of(own_workers_.begin(), own_workers_.end(),
                     [](const auto& pool) { return pool->get_executor().running_in_this_thread(); });
}

bool server::impl::on_io_thread() const noexcept {
  return std::any_of(io_contexts_.begin(), io_contexts_.end(),
                     [](const auto& ioc) { return ioc->get_executor().running_in_this_thread(); });
}

void server::impl::request_stop(bool drain) {
  std::lock_guard lock(mutex_);
  if (stop_requested_) return;
  stop_requested_ = true;
  drain_ = drain;
  stopping_.store(true);
  stopper_ = std::thread([this] {
    obs::name_this_thread("shopd-stop");
    shutdown();
  });
}

void server::impl::skip_drain() {
  {
    std::lock_guard lock(mutex_);
    drain_over_ = true;
  }
  cv_.notify_all();
}

// SIGTERM is how service managers and orchestrators stop a process: it drains first. SIGINT is
// someone at a terminal pressing Ctrl-C, who wants it gone now; so does a second signal.
void server::impl::watch_signals() {
  signals_->async_wait([this](const boost::system::error_code& ec, int signal_number) {
    if (ec) return;
    bool again = false;
    {
      std::lock_guard lock(mutex_);
      again = stop_requested_;
    }
    obs::info("signal received", {{"signal", signal_number}});
    if (again) {
      skip_drain();
    } else {
      request_stop(signal_number == SIGTERM);
    }
    watch_signals();
  });
}

void server::impl::wait_stopped() {
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [&] { return stopped_; });
}

void server::impl::close_acceptors() {
  std::vector<std::future<void>> closed;
  {
    std::lock_guard lock(mutex_);
    for (auto& l : listeners_) {
      if (!started_) {
        error_code ignored;
        l->acceptor.close(ignored);
        continue;
      }
      // The acceptor belongs to its I/O thread; close it there.
      auto done = std::make_shared<std::promise<void>>();
      closed.push_back(done->get_future());
      net::post(l->acceptor.get_executor(), [&acceptor = l->acceptor, done] {
        error_code ignored;
        acceptor.close(ignored);
        done->set_value();
      });
    }
  }
  for (auto& f : closed) f.wait_for(opts_.shutdown_timeout);
}

void server::impl::shutdown() {
  stopper_id_.store(std::this_thread::get_id());
  std::vector<std::function<void()>> drain_callbacks;
  std::vector<std::function<void()>> stop_callbacks;
  bool drain = false;
  {
    std::lock_guard lock(mutex_);
    drain_callbacks = drain_callbacks_;
    stop_callbacks = stop_callbacks_;
    drain = drain_ && opts_.drain_delay.count() > 0;
  }
  const auto run_all = [](std::vector<std::function<void()>>& callbacks) {
    for (auto& fn : callbacks) {
      try {
        fn();
      } catch (const std::exception& e) {
        obs::error("stop callback failed", {{"error", e.what()}});
      }
    }
  };
  obs::info("server stopping", {{"drain_delay_ms", drain ? opts_.drain_delay.count() : 0},
                                {"shutdown_timeout_ms", opts_.shutdown_timeout.count()}});
  run_all(drain_callbacks);
  if (drain) {
    // Readiness is off now; load balancers need a moment to notice and route elsewhere, and until
    // then whatever they still send is served.
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, opts_.drain_delay, [&] { return drain_over_; })) {
      lock.unlock();
      obs::info("drain delay over");
    } else {
      lock.unlock();
      obs::info("drain delay cut short by a second signal");
    }
  }
  // One SHUTDOWN_TIMEOUT_MS for what follows: the stop callbacks (the relay's deliveries, the
  // outboxes' batches, which count from here too) and then the connections share it, so a stop
  // takes at most the drain delay plus this (plus the handlers running at the end), which the unit's
  // TimeoutStopSec must cover.
  const auto stop_deadline = steady::now() + opts_.shutdown_timeout;
  run_all(stop_callbacks);
  closing_.store(true);
  close_acceptors();

  std::vector<std::shared_ptr<connection>> open;
  {
    std::lock_guard lock(mutex_);
    for (auto* c : connections_) {
      if (auto sp = c->weak_from_this().lock()) open.push_back(std::move(sp));
    }
  }
  for (auto& c : open) {
    auto executor = c->socket.get_executor();
    net::post(executor, [c = std::move(c)] { c->begin_drain(); });
  }
  open.clear();
  {
    std::unique_lock lock(mutex_);
    cv_.wait_until(lock, stop_deadline, [&] { return connections_.empty(); });
  }

  work_.clear();
  for (auto& ioc : io_contexts_) ioc->stop();
  for (auto& t : io_threads_) t.join();
  io_threads_.clear();

  // With the I/O threads gone nothing else touches the sockets: cut what outlived the drain.
  std::size_t cut = 0;
  {
    std::lock_guard lock(mutex_);
    for (auto* c : connections_) {
      error_code ignored;
      c->socket.close(ignored);
      ++cut;
    }
  }
  if (cut > 0) obs::warn("shutdown timeout: connections cut", {{"connections", cut}});

  // Running handlers finish; blocking work still queued is dropped. listen() adds no pool now
  // (stop_requested_ is set).
  workers_.stop();
  for (auto& pool : own_workers_) pool->stop();
  workers_.join();
  for (auto& pool : own_workers_) pool->join();

  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
  }
  cv_.notify_all();
  obs::info("server stopped");
}

// ---------------------------------------------------------------------------------------------

server::server(server_options opts, obs::registry& metrics)
    : impl_(std::make_shared<impl>(std::move(opts), metrics)) {}

server::~server() {
  stop();
}

std::uint16_t server::listen(listener_spec spec) {
  return impl_->listen(std::move(spec));
}

void server::start() {
  impl_->start();
}

void server::stop_on_signals() {
  std::lock_guard lock(impl_->mutex_);
  if (impl_->signals_) return;
  impl_->signals_.emplace(*impl_->io_contexts_.front(), SIGINT, SIGTERM);
  impl_->watch_signals();
}

void server::on_drain(std::function<void()> fn) {
  std::lock_guard lock(impl_->mutex_);
  impl_->drain_callbacks_.push_back(std::move(fn));
}

void server::on_stop(std::function<void()> fn) {
  std::lock_guard lock(impl_->mutex_);
  impl_->stop_callbacks_.push_back(std::move(fn));
}

void server::stop() {
  impl_->request_stop(false);
  // From a server thread (a handler, a signal) joining would wait on ourselves: the stopper
  // thread does the work and wait() observes it.
  if (!impl_->on_server_thread()) impl_->wait_stopped();
}

void server::wait() {
  impl_->wait_stopped();
}

bool server::stopping() const noexcept {
  return impl_->stopping_.load();
}

void server::post_blocking(std::function<void()> fn) {
  net::post(impl_->workers_, [fn = std::move(fn)] {
    try {
      fn();
    } catch (const std::exception& e) {
      obs::error("background task failed", {{"error", e.what()}});
    }
  });
}

net::awaitable<response> server::serve_in_process(std::uint16_t port, request req) {
  return impl_->serve_in_process(port, std::move(req));
}

bool server::on_io_thread() const noexcept {
  return impl_->on_io_thread();
}

boost::asio::io_context& server::io_context() noexcept {
  return *impl_->io_contexts_.front();
}

boost::asio::thread_pool& server::workers() noexcept {
  return impl_->workers_;
}

}  // namespace shopd::http
