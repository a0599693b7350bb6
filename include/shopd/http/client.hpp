#pragma once
/// The outbound HTTP/1.1 client (Boost.Beast, C++20 coroutines): deliveries and callbacks of the
/// relay, and the publisher's calls to the relay or to Upstash QStash.
///
/// URLs are `http://` or `https://` (Boost.URL; a `#fragment` is not sent). HTTPS verifies the peer
/// against the system trust store (plus `client_options::ca_file`) and checks the host name or IP
/// address against the certificate; SNI is sent for host names. TLS 1.2 is the minimum.
///
/// Connections are kept alive and reused: each origin (scheme, host, port) has a pool of idle
/// connections, at most `max_idle_per_origin`, each closed after `idle_expiry` (or sooner when the
/// server announces a shorter `Keep-Alive: timeout=N`). A connection returns to its pool only after a
/// complete response that allows keep-alive. Idle connections are checked for a peer close when
/// taken, and swept in the background.
///
/// Stale connections: a server may close an idle connection just as a request is sent on it. When a
/// request sent on a pooled connection fails while writing or reading before a single byte of the
/// response arrived (and not by timeout), it is sent once more on a fresh connection. The server may
/// therefore receive such a request twice — harmless under the at-least-once model every shopd
/// consumer is built for (they deduplicate on the event id / Upstash-Message-Id). Requests on fresh
/// connections are never retried.
///
/// Timeouts: `client_request::timeout` bounds the whole request (resolve, connect, TLS handshake,
/// write, read, and the stale-connection retry). Response bodies over `client_options::body_limit`
/// fail with a `read` error.
///
/// Threading: `client` is a cheap handle; copies share one pool. `send` may be called from any number
/// of coroutines on any threads at once. Each connection's I/O runs on its own strand of the
/// executor given at construction; the caller's coroutine resumes on its own executor. Pending
/// requests keep the shared state alive, but the executor's execution context (the io_context) must
/// outlive every handle and every pending request.
///
/// Errors: `send` never throws for network or protocol failures; it returns a `client_error`.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace shopd::http {

/// Header fields in order; names as sent or received (compare them case-insensitively).
using header_list = std::vector<std::pair<std::string, std::string>>;

struct client_request {
  boost::beast::http::verb method = boost::beast::http::verb::get;
  std::string url;      ///< absolute http:// or https:// URL, used as given (not re-encoded)
  header_list headers;  ///< added after Host and User-Agent, which they replace when present
  std::string body;     ///< sent with a Content-Length (none for an empty GET/HEAD/DELETE/...)
  std::chrono::milliseconds timeout{30'000};  ///< the whole request, retry included
};

struct client_response {
  unsigned status = 0;
  header_list headers;
  std::string body;

  /// The value of the first header named `name` (case-insensitive), or nullopt.
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const noexcept;
};

/// Where a request failed.
enum class client_stage : std::uint8_t {
  request,        ///< invalid URL or header; nothing was sent
  resolve,        ///< host name lookup
  connect,        ///< TCP connect
  tls_handshake,  ///< TLS handshake, certificate verification included
  write,          ///< sending the request
  read,           ///< receiving the response (body limit, malformed response, peer closed)
};

/// The name of a stage as used in messages: "connect", "tls handshake", ...
[[nodiscard]] std::string_view to_string(client_stage s) noexcept;

struct client_error {
  boost::system::error_code code;  ///< beast::error::timeout when the request timed out
  client_stage stage = client_stage::request;
  /// One line: "<stage> <host>:<port>: <reason>", e.g. "connect 127.0.0.1:9: Connection refused",
  /// "read 127.0.0.1:8080: timed out after 500 ms",
  /// "tls handshake 127.0.0.1:8443: certificate verify failed (self-signed certificate)".
  std::string message;

  /// True when the request ran out of time (at any stage).
  [[nodiscard]] bool timed_out() const noexcept;
};

/// `result.value()` on an error throws std::system_error(code, message).
[[noreturn]] void throw_exception_from_error(const client_error& e, const boost::source_location& loc);

using client_result = boost::system::result<client_response, client_error>;

/// Answers a request in this process instead of sending it (client_options::in_process), e.g.
/// http::server::serve_in_process for one of the process's own listeners.
/// (The types are http::response and http::request of message.hpp, spelled out: this header's
/// client_stage::request would shadow the latter.)
using in_process_fn =
    std::function<boost::asio::awaitable<boost::beast::http::response<boost::beast::http::string_body>>(
        boost::beast::http::request<boost::beast::http::string_body>)>;

/// The listeners of this process whose requests its clients answer in-process instead of sending
/// them over a socket (client_options::in_process): a plain http:// request to a listener's port,
/// on a host that reaches its bind address (reaches_bind_address), goes to that listener's function
/// (http::server::serve_in_process). This is how the relay's deliveries and callbacks reach the
/// roles it shares a process with. Filled at start-up, before any client sends; read without a lock
/// afterwards.
class in_process_listeners {
 public:
  void add(std::string bind_address, std::uint16_t port, in_process_fn fn);
  /// The function answering requests to `host`:`port`, or nullptr: send them.
  [[nodiscard]] const in_process_fn* find(bool tls, std::string_view host, std::uint16_t port) const noexcept;

 private:
  struct entry {
    std::string bind_address;
    std::uint16_t port;
    in_process_fn fn;
  };
  std::vector<entry> entries_;
};

struct client_options {
  std::size_t body_limit = 10 * 1024 * 1024;      ///< response body bytes
  std::size_t header_limit = 64 * 1024;           ///< response header bytes
  std::size_t max_idle_per_origin = 32;           ///< 0 disables connection reuse
  std::chrono::milliseconds idle_expiry{30'000};  ///< an idle connection is closed after this
  /// PEM file of extra trusted CA certificates (in addition to the system store), e.g. a test CA.
  std::string ca_file;
  /// Sent unless the request has its own User-Agent; empty means "shopd/<version>".
  std::string user_agent;
  /// Requests to these listeners are answered in-process: `fn` gets the request as it would be sent
  /// (Host, User-Agent, Content-Length set) and runs on a strand of the client's executor; the
  /// request's timeout bounds the wait for its response (a later one is dropped), the body limit
  /// applies to it, and nothing is retried. Null: every request goes over a socket.
  std::shared_ptr<const in_process_listeners> in_process;
};

class client {
 public:
  /// Throws std::system_error when the TLS context cannot be set up (unreadable `ca_file`).
  explicit client(boost::asio::any_io_executor ex, client_options opts = {});
  explicit client(boost::asio::io_context& ioc, client_options opts = {});

  /// Send one request and read its response. Never throws for I/O failures (see client_error); the
  /// client handle may be destroyed while the returned awaitable is pending.
  [[nodiscard]] boost::asio::awaitable<client_result> send(client_request req) const;

  /// Close every idle connection now and stop the background sweep (e.g. at shutdown, so that an
  /// io_context::run() that waits for its work to finish is not held up by the pool). Connections in
  /// use are returned to the pool as usual afterwards.
  void close_idle() const;

  /// Idle connections currently pooled, over all origins (for tests and metrics).
  [[nodiscard]] std::size_t idle_connections() const;

  /// The options this client was built with.
  [[nodiscard]] const client_options& options() const noexcept;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

/// True when a request to `host` reaches a listener bound to `bind_address` on this machine: the
/// same address, or `localhost` / 127.0.0.1 / ::1 for a loopback or wildcard bind (a host name other
/// than localhost, or another address of the machine, is not recognised). `host` lowercase, IPv6
/// with or without brackets.
[[nodiscard]] bool reaches_bind_address(std::string_view host, std::string_view bind_address) noexcept;

/// Run `work` with a client of its own on a private io_context, blocking the calling thread until it
/// finishes, and rethrow what it throws (CLI commands; handlers that block on the worker pool). No
/// connection is kept. Must not be called from a thread running an io_context the work depends on.
void run_blocking(client_options opts,
                  const std::function<boost::asio::awaitable<void>(const client&)>& work);

/// Send one request with run_blocking.
[[nodiscard]] client_result send_blocking(client_request req, client_options opts = {});

}  // namespace shopd::http
