#pragma once
/// Test helpers for outbound HTTP: a real HTTP/1.1 server (Boost.Beast, plain or TLS) on
/// 127.0.0.1:0 that records every request and answers from a script, a self-signed certificate
/// generator, and an io_context run by background threads for client coroutines.

#include "shopd/http/client.hpp"
#include "temp_dir.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace shopd::test {

/// One request as the server received it.
struct captured_request {
  std::size_t connection = 0;  ///< 1-based number of the accepted connection it arrived on
  std::string method;
  std::string target;         ///< the raw request-target
  http::header_list headers;  ///< in order, names as sent
  std::string body;
  std::string sni;  ///< TLS server name the client sent; empty for none or plain HTTP

  /// The first header named `name` (case-insensitive), or nullopt.
  [[nodiscard]] std::optional<std::string> header(std::string_view name) const;
  /// How many headers are named `name` (case-insensitive).
  [[nodiscard]] std::size_t header_count(std::string_view name) const;
};

/// What the server does with one request.
struct scripted_reply {
  enum class action {
    respond,             ///< answer; keep the connection if the request allows it
    respond_then_close,  ///< answer as if keeping the connection alive, then close it
    drop,                ///< close the connection without answering
    hang,                ///< never answer (until the server stops)
    raw,                 ///< write `body` verbatim, then close the connection
  };
  action what = action::respond;
  unsigned status = 200;
  http::header_list headers;
  std::string body;

  static scripted_reply respond(unsigned status, std::string body = {}, http::header_list headers = {});
  /// `respond` with Content-Type: application/json.
  static scripted_reply json(unsigned status, std::string body);
  static scripted_reply respond_then_close(unsigned status = 200, std::string body = {});
  static scripted_reply drop();
  static scripted_reply hang();
  static scripted_reply raw(std::string bytes);
};

/// PEM text of a certificate and its private key.
struct tls_identity {
  std::string certificate_pem;
  std::string private_key_pem;
};

/// A self-signed CA:TRUE certificate (EC P-256, SHA-256, valid from an hour ago for a day) whose
/// subjectAltName is `subject_alt_names` joined by commas, e.g. {"IP:127.0.0.1", "DNS:localhost"}.
/// Trusting it (as a CA file) makes it verify. Throws std::runtime_error on an OpenSSL failure.
[[nodiscard]] tls_identity make_self_signed(const std::vector<std::string>& subject_alt_names);

/// The server. Replies come from the script (push), in order; once it is empty, from the handler
/// (set_handler), or else `200` with an empty body. Requests are recorded before they are answered,
/// so once a client has its response, requests() includes the request. It runs on its own thread;
/// the accessors may be called from any thread.
class capture_server {
 public:
  /// Plain HTTP.
  capture_server();
  /// HTTPS with this certificate and key.
  explicit capture_server(const tls_identity& identity);
  ~capture_server();  ///< stop()
  capture_server(const capture_server&) = delete;
  capture_server& operator=(const capture_server&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept;
  /// "http://127.0.0.1:PORT" (or https) followed by `path`.
  [[nodiscard]] std::string url(std::string_view path = "/") const;

  void push(scripted_reply reply);
  void set_handler(std::function<scripted_reply(const captured_request&)> handler);

  [[nodiscard]] std::vector<captured_request> requests() const;
  /// Connections accepted so far (TLS: before the handshake).
  [[nodiscard]] std::size_t connections() const;

  /// Close the listener and every connection (hanging ones included) and join the thread. Idempotent.
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// An io_context run by `threads` background threads, kept running until destruction (which stops
/// it and joins). For client coroutines in tests: run() blocks the calling thread for one result.
class io_threads {
 public:
  explicit io_threads(unsigned threads = 2);
  ~io_threads();
  io_threads(const io_threads&) = delete;
  io_threads& operator=(const io_threads&) = delete;

  [[nodiscard]] boost::asio::io_context& context() noexcept { return ioc_; }

  template <class T>
  T run(boost::asio::awaitable<T> work) {
    return boost::asio::co_spawn(ioc_, std::move(work), boost::asio::use_future).get();
  }

 private:
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::vector<std::thread> threads_;
};

}  // namespace shopd::test
