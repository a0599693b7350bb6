#pragma once
/// The shared HTTP/1.1 server (Boost.Beast, C++20 coroutines): one per process, any number of
/// listeners (one per role), each with its own router and CORS policy.
///
/// Per connection: keep-alive; a parser rebuilt for each request with the body limit (413 over it;
/// a route may have its own, router::limit_body) and an 8 KiB header limit (431); an idle timeout
/// between requests (connection closed silently), a header timeout and a body timeout (408, then
/// closed) and a write timeout; requests on one connection are answered in order, one at a time
/// (pipelined requests wait in the read buffer).
/// A new connection that sends nothing is closed silently after the header timeout; one that starts
/// must have sent its headers within the header timeout of being accepted. Malformed
/// requests get 400 and are closed. Handlers marked `execution::blocking` run on the worker pool
/// (the listener's own, when listener_spec::own_workers gives it one), never on an I/O thread; a
/// deferring handler starts on the I/O thread and hands what blocks to that pool.
///
/// Responses: HEAD is served by the GET route, without the body; an OPTIONS preflight is answered
/// from the listener's CORS policy; no route is 404, a wrong method 405 with `Allow`; an
/// `http_error` from a handler becomes its response, any other exception a 500 `internal_error`
/// whose text is logged, never sent. The session sets version, keep-alive, Content-Length and
/// `Server`. A request's `X-Correlation-Id` (at most 128 visible ASCII characters) seeds
/// `request_context::correlation_id`; a non-empty one is echoed in the response.
///
/// Observability: one `request` log line per request, and in the registry
/// `shopd_http_requests_total{listener,method,route,status}` (route: the pattern, or "unmatched"),
/// `shopd_http_request_duration_seconds{listener,route}`, `shopd_http_requests_in_flight{listener}`
/// and `shopd_http_connections_open{listener}`.
///
/// Threading: IO_THREADS I/O threads, each running its own io_context; a connection stays on the one
/// it was given at accept (round-robin), so nothing of a connection needs a strand. listen() and
/// on_stop() before start(); stop(), stopping() and post_blocking() from any thread. Errors: listen() throws
/// std::system_error naming the address; nothing else throws.

#include "shopd/http/cors.hpp"
#include "shopd/http/router.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
class thread_pool;
}  // namespace boost::asio

namespace shopd::config {
struct settings;
}
namespace shopd::obs {
class registry;
}

namespace shopd::http {

struct server_options {
  std::size_t body_limit = 1024 * 1024;
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds read_timeout{30'000};
  std::chrono::milliseconds write_timeout{30'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds shutdown_timeout{10'000};
  /// After a signal, how long the server goes on serving, not ready, before it closes its listeners.
  std::chrono::milliseconds drain_delay{0};
  std::size_t max_connections = 10'000;  ///< per listener; further ones are accepted and closed at once
  unsigned io_threads = 0;               ///< 0: one per core
  unsigned worker_threads = 8;

  [[nodiscard]] static server_options from_config(const config::settings& s);
};

struct listener_spec {
  std::string name;  ///< the role; `listener` label of the metrics and the request log
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  ///< 0 picks a free port; listen() returns the one bound
  std::shared_ptr<const router> routes;
  cors_policy cors;
  /// 0: this listener's blocking work runs on the server's shared worker pool. N > 0: on a pool of N
  /// threads of its own (a bulkhead), so that handlers waiting on something outside the process
  /// (an SMTP server, a disk's fsync) cannot take every worker from the other listeners' roles.
  unsigned own_workers = 0;
};

class server {
 public:
  /// `metrics` must outlive the server.
  server(server_options opts, obs::registry& metrics);
  ~server();  ///< stops (as stop()) and joins every thread; not from a server thread
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Bind and listen now; returns the bound port. Throws std::system_error("listen ADDR:PORT: ...").
  std::uint16_t listen(listener_spec spec);

  /// Start the I/O threads and the worker pool and begin accepting. Returns at once.
  void start();

  /// SIGTERM starts a shutdown with the drain delay (as stop() does, but waiting `drain_delay`
  /// after the on_drain callbacks); SIGINT (Ctrl-C) one without it; a later signal cuts it short.
  void stop_on_signals();

  /// Run `fn` first when a shutdown begins, before the drain delay (readiness turns off here).
  void on_drain(std::function<void()> fn);

  /// Run `fn` when the drain delay is over, before the listeners close (dispatchers and workers
  /// finish or hand back their work here, while the listeners still serve).
  void on_stop(std::function<void()> fn);

  /// Graceful shutdown: run the on_drain callbacks; after a signal, go on serving for the drain
  /// delay (every response then says `Connection: close`); run the on_stop callbacks; stop
  /// accepting, close idle connections, let in-flight requests finish for up to shutdown_timeout,
  /// then close the rest and join the threads. Called by code, stop() has no drain delay. Blocking handlers
  /// still running are waited for; work still queued on the worker pool by then is dropped. Idempotent;
  /// blocks until done unless called from a server thread (a handler, an on_stop callback), where it only
  /// starts the shutdown: wait() then tells when it is over.
  void stop();

  /// Block until the server has stopped (after stop() or a signal).
  void wait();

  [[nodiscard]] bool stopping() const noexcept;

  /// Run `fn` on the worker pool.
  void post_blocking(std::function<void()> fn);

  /// Answer `req` as the listener bound to `port` answers a request read from a connection (the
  /// body and header limits, routing, the handler on the thread its route asks for, CORS, metrics,
  /// the request log with `remote` "in-process"), without a socket: the way this process's requests
  /// to its own listeners take (http::client_options::in_process). The caller's coroutine runs what an
  /// I/O thread would run; call it from one of the server's I/O threads. The awaitable never throws
  /// for what a handler does; throws std::logic_error when no listener is bound to `port`.
  [[nodiscard]] boost::asio::awaitable<response> serve_in_process(std::uint16_t port, request req);

  /// True on one of the server's I/O threads (where `io` handlers run), false elsewhere.
  [[nodiscard]] bool on_io_thread() const noexcept;

  /// For components that need their own async work on the server's threads (clients, timers): the
  /// first I/O thread's context, which also runs the acceptors.
  [[nodiscard]] boost::asio::io_context& io_context() noexcept;
  [[nodiscard]] boost::asio::thread_pool& workers() noexcept;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace shopd::http
