#pragma once
/// Shared by the integration tests: a small synchronous HTTP/1.1 client whose every operation has
/// a deadline (a hung server fails the test instead of hanging it), and a real shopd::http::server
/// on 127.0.0.1 with a free port that is stopped when the fixture goes away.

#include "shopd/http/server.hpp"
#include "shopd/obs/metrics.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shopd::test {

inline constexpr std::chrono::milliseconds default_timeout{5000};

/// One client connection to 127.0.0.1:port. Not thread-safe. Operations throw std::runtime_error
/// when they do not complete within the timeout, std::system_error on other I/O errors.
class http_client {
 public:
  explicit http_client(std::uint16_t port, std::chrono::milliseconds timeout = default_timeout);
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;
  ~http_client();

  /// Send `req` as is, after filling in Host and, unless framing is set, Content-Length.
  void send(http::request req);
  /// Send bytes verbatim (pipelining, malformed or partial requests).
  void send_raw(std::string_view bytes);

  /// The next response; nullopt when the server closed the connection before sending one.
  /// `after_head`: the response answers a HEAD request (headers only, whatever Content-Length says).
  [[nodiscard]] std::optional<http::response> try_read(bool after_head = false);
  /// The next response; throws when the connection was closed instead.
  [[nodiscard]] http::response read(bool after_head = false);

  /// Waits for the server to close the connection: true on end of stream (or reset) with nothing
  /// more received, false when bytes arrive instead.
  [[nodiscard]] bool closed_by_server();

  /// send() then read().
  [[nodiscard]] http::response request(http::verb method, std::string target, std::string body = {},
                                       std::vector<std::pair<std::string, std::string>> headers = {});

 private:
  /// Runs the operation `start` begins until it completes or the timeout passes.
  boost::system::error_code run(
      const std::function<void(std::function<void(boost::system::error_code)>)>& start,
      std::string_view what);

  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
  std::chrono::milliseconds timeout_;
};

/// A text/plain response with `body`: what the servers under test answer.
[[nodiscard]] http::response text_response(std::string body, http::status st = http::status::ok);

/// True when a TCP connection to 127.0.0.1:port is accepted by the kernel (refused: false).
[[nodiscard]] bool can_connect(std::uint16_t port);

/// Polls `condition` until it holds or `timeout` passes; returns its last value. For state that
/// has no event to wait on (a gauge going back to 0 after the peer closed).
[[nodiscard]] bool eventually(const std::function<bool()>& condition,
                              std::chrono::milliseconds timeout = default_timeout);

/// The value of one sample of `r` as rendered (`name`, or `name{labels}` spelled as rendered), or
/// nullopt when the registry has none.
[[nodiscard]] std::optional<double> sample(const obs::registry& r, std::string_view series);

/// Options for tests: few threads and timeouts long enough never to fire by accident on a loaded
/// machine; tests of a timeout shorten that one.
[[nodiscard]] http::server_options test_options();

/// A real server with its own metrics registry. listen() then start(); stopped on destruction.
class test_server {
 public:
  explicit test_server(http::server_options opts = test_options());
  /// Listens as "api" with `routes` and starts at once.
  explicit test_server(std::shared_ptr<const http::router> routes, http::server_options opts = test_options(),
                       http::cors_policy cors = {});
  test_server(const test_server&) = delete;
  test_server& operator=(const test_server&) = delete;
  ~test_server();

  std::uint16_t listen(std::string name, std::shared_ptr<const http::router> routes,
                       http::cors_policy cors = {});
  void start() { server_.start(); }

  /// The port of the first listener.
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] http::server& server() { return server_; }
  [[nodiscard]] obs::registry& metrics() { return registry_; }

 private:
  obs::registry registry_;  // outlives the server, which reports into it
  http::server server_;
  std::uint16_t port_ = 0;
};

}  // namespace shopd::test
