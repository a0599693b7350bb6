#include "test_support.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <array>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace shopd::test {
namespace {

namespace net = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

tcp::endpoint loopback(std::uint16_t port) {
  return {net::ip::make_address_v4("127.0.0.1"), port};
}

bool is_closed(const error_code& ec) {
  return ec == net::error::eof || ec == net::error::connection_reset || ec == bhttp::error::end_of_stream ||
         ec == net::error::broken_pipe;
}

}  // namespace

http_client::http_client(std::uint16_t port, std::chrono::milliseconds timeout)
    : socket_(ioc_), timeout_(timeout) {
  error_code ec;
  socket_.connect(loopback(port), ec);
  if (ec) throw std::system_error(std::error_code(ec), "connect 127.0.0.1:" + std::to_string(port));
}

http_client::~http_client() {
  error_code ignored;
  socket_.close(ignored);
}

error_code http_client::run(const std::function<void(std::function<void(error_code)>)>& start,
                            std::string_view what) {
  std::optional<error_code> result;
  start([&](error_code ec) { result = ec; });
  ioc_.restart();
  ioc_.run_for(timeout_);
  if (!result) {
    error_code ignored;
    socket_.cancel(ignored);
    ioc_.restart();
    ioc_.run();
    throw std::runtime_error(std::string(what) + ": no completion within " +
                             std::to_string(timeout_.count()) + " ms");
  }
  return *result;
}

void http_client::send(http::request req) {
  if (req.find(http::field::host) == req.end()) req.set(http::field::host, "127.0.0.1");
  if (req.find(http::field::content_length) == req.end() &&
      req.find(http::field::transfer_encoding) == req.end() && !req.body().empty()) {
    req.prepare_payload();
  }
  const auto ec = run(
      [&](auto done) { bhttp::async_write(socket_, req, [done](error_code e, std::size_t) { done(e); }); },
      "write request");
  if (ec) throw std::system_error(std::error_code(ec), "write request");
}

void http_client::send_raw(std::string_view bytes) {
  const auto ec = run(
      [&](auto done) {
        net::async_write(socket_, net::buffer(bytes.data(), bytes.size()),
                         [done](error_code e, std::size_t) { done(e); });
      },
      "write");
  if (ec) throw std::system_error(std::error_code(ec), "write");
}

std::optional<http::response> http_client::try_read(bool after_head) {
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  if (after_head) parser.skip(true);
  const auto ec = run(
      [&](auto done) {
        bhttp::async_read(socket_, buffer_, parser, [done](error_code e, std::size_t) { done(e); });
      },
      "read response");
  if (is_closed(ec)) return std::nullopt;
  if (ec) throw std::system_error(std::error_code(ec), "read response");
  return parser.release();
}

http::response http_client::read(bool after_head) {
  auto res = try_read(after_head);
  if (!res) throw std::runtime_error("read response: the server closed the connection");
  return std::move(*res);
}

bool http_client::closed_by_server() {
  if (buffer_.size() > 0) return false;
  std::array<char, 512> scratch{};
  std::size_t received = 0;
  const auto ec = run(
      [&](auto done) {
        socket_.async_read_some(net::buffer(scratch), [&received, done](error_code e, std::size_t n) {
          received = n;
          done(e);
        });
      },
      "wait for close");
  if (is_closed(ec)) return true;
  if (ec) throw std::system_error(std::error_code(ec), "wait for close");
  // Keep what arrived for a later read.
  auto dest = buffer_.prepare(received);
  std::memcpy(dest.data(), scratch.data(), received);
  buffer_.commit(received);
  return false;
}

http::response http_client::request(http::verb method, std::string target, std::string body,
                                    std::vector<std::pair<std::string, std::string>> headers) {
  http::request req{method, target, 11};
  for (auto& [name, value] : headers) req.set(name, value);
  req.body() = std::move(body);
  if (!req.body().empty() || method == http::verb::post || method == http::verb::put) req.prepare_payload();
  send(std::move(req));
  return read(method == http::verb::head);
}

http::response text_response(std::string body, http::status st) {
  http::response res{st, 11};
  res.set(http::field::content_type, "text/plain");
  res.body() = std::move(body);
  return res;
}

bool can_connect(std::uint16_t port) {
  net::io_context ioc;
  tcp::socket socket(ioc);
  error_code ec;
  socket.connect(loopback(port), ec);
  return !ec;
}

std::optional<double> sample(const obs::registry& r, std::string_view series) {
  const auto text = r.render();
  const auto at = text.find("\n" + std::string(series) + " ");
  if (at == std::string::npos) return std::nullopt;
  return std::stod(text.substr(at + series.size() + 2));
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(std::chrono::milliseconds{2});
  }
  return true;
}

http::server_options test_options() {
  http::server_options o;
  o.body_limit = 64 * 1024;
  o.header_timeout = std::chrono::milliseconds{10'000};
  o.read_timeout = std::chrono::milliseconds{10'000};
  o.write_timeout = std::chrono::milliseconds{10'000};
  o.idle_timeout = std::chrono::milliseconds{10'000};
  o.shutdown_timeout = std::chrono::milliseconds{5'000};
  o.max_connections = 64;
  o.io_threads = 2;
  o.worker_threads = 2;
  return o;
}

test_server::test_server(http::server_options opts) : server_(std::move(opts), registry_) {}

test_server::test_server(std::shared_ptr<const http::router> routes, http::server_options opts,
                         http::cors_policy cors)
    : server_(std::move(opts), registry_) {
  listen("api", std::move(routes), std::move(cors));
  start();
}

test_server::~test_server() {
  server_.stop();
}

std::uint16_t test_server::listen(std::string name, std::shared_ptr<const http::router> routes,
                                  http::cors_policy cors) {
  http::listener_spec spec;
  spec.name = std::move(name);
  spec.address = "127.0.0.1";
  spec.port = 0;
  spec.routes = std::move(routes);
  spec.cors = std::move(cors);
  const auto port = server_.listen(std::move(spec));
  if (port_ == 0) port_ = port;
  return port;
}

}  // namespace shopd::test
