// Bench-only load generator: publishes N `command.checkout` events to the relay (QStash's
// `POST /v2/publish/<destination>`) at a fixed rate or as fast as the relay accepts them, over a few
// keep-alive connections, and records when each was published.
//
//   shopd_bench_loader RELAY_HOST RELAY_PORT TOKEN DESTINATION COUNT RATE CONNECTIONS OUT.csv
//
// RATE 0 means no pacing. Checkout i goes to customer bench-<i>@example.test, which is how the
// analysis matches an email to its publish time. OUT.csv: `index,publish_unix_us,status`. Prints one
// line `BENCH published=N seconds=S rate=R failed=F`; exits 1 if any publish was refused.
#include "shopd/bus/envelope.hpp"
#include "shopd/bus/events.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using namespace shopd;

struct job {
  std::string event_id;
  std::string body;
  std::int64_t published_us = 0;
  unsigned status = 0;
};

std::int64_t unix_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct settings {
  std::string host;
  std::string port;
  std::string token;
  std::string target;  // /v2/publish/<destination>
  std::size_t count = 0;
  double rate = 0;
  unsigned connections = 1;
  std::string out;
};

// One connection: takes the next job, waits for its slot in the schedule, publishes it.
void run_connection(const settings& cfg, std::vector<job>& jobs, std::atomic<std::size_t>& next,
                    std::chrono::steady_clock::time_point start) {
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  tcp::socket socket(ioc);
  asio::connect(socket, resolver.resolve(cfg.host, cfg.port));
  socket.set_option(tcp::no_delay(true));
  beast::flat_buffer buffer;
  for (;;) {
    const auto i = next.fetch_add(1);
    if (i >= jobs.size()) break;
    auto& j = jobs[i];
    if (cfg.rate > 0) {
      std::this_thread::sleep_until(start + std::chrono::microseconds(static_cast<std::int64_t>(
                                                static_cast<double>(i) * 1e6 / cfg.rate)));
    }
    bhttp::request<bhttp::string_body> req{bhttp::verb::post, cfg.target, 11};
    req.set(bhttp::field::host, cfg.host + ":" + cfg.port);
    req.set(bhttp::field::authorization, "Bearer " + cfg.token);
    req.set(bhttp::field::content_type, "application/json");
    req.set("Upstash-Deduplication-Id", j.event_id);
    req.body() = j.body;
    req.prepare_payload();
    j.published_us = unix_us();
    bhttp::write(socket, req);
    bhttp::response<bhttp::string_body> res;
    bhttp::read(socket, buffer, res);
    j.status = res.result_int();
    if (!res.keep_alive()) {
      socket.close();
      socket = tcp::socket(ioc);
      asio::connect(socket, resolver.resolve(cfg.host, cfg.port));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 9) {
    std::fprintf(stderr, "usage: %s RELAY_HOST RELAY_PORT TOKEN DESTINATION COUNT RATE CONNECTIONS OUT.csv\n",
                 argv[0]);
    return 2;
  }
  try {
    settings cfg{.host = argv[1],
                 .port = argv[2],
                 .token = argv[3],
                 .target = std::string("/v2/publish/") + argv[4],
                 .count = std::stoul(argv[5]),
                 .rate = std::stod(argv[6]),
                 .connections = static_cast<unsigned>(std::stoul(argv[7])),
                 .out = argv[8]};

    // Every body is built before the clock starts.
    std::vector<job> jobs(cfg.count);
    const auto run_tag = std::to_string(unix_us());
    for (std::size_t i = 0; i < cfg.count; ++i) {
      const std::string checkout_id = "bench-" + run_tag + "-" + std::to_string(i);
      json::object data{
          {"checkoutId", checkout_id},
          {"customer",
           {{"email", "bench-" + std::to_string(i) + "@example.test"}, {"name", "Bench Customer"}}},
          {"items", json::array{json::object{{"sku", "MUG-LOGO"}, {"quantity", 1}}}},
          {"currency", "EUR"}};
      const auto ev = bus::make_envelope(bus::event_types::checkout_command, "bench", data, checkout_id);
      jobs[i].event_id = ev.event_id;
      jobs[i].body = bus::serialize(ev);
    }

    std::atomic<std::size_t> next{0};
    std::vector<std::thread> threads;
    std::vector<std::exception_ptr> errors(cfg.connections);
    const auto start = std::chrono::steady_clock::now();
    for (unsigned c = 0; c < cfg.connections; ++c) {
      threads.emplace_back([&, c] {
        try {
          run_connection(cfg, jobs, next, start);
        } catch (...) {
          errors[c] = std::current_exception();
        }
      });
    }
    for (auto& t : threads) t.join();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (const auto& e : errors) {
      if (e) std::rethrow_exception(e);
    }

    std::ofstream out(cfg.out);
    out << "index,publish_unix_us,status\n";
    std::size_t failed = 0;
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      if (jobs[i].status < 200 || jobs[i].status >= 300) ++failed;
      out << i << ',' << jobs[i].published_us << ',' << jobs[i].status << '\n';
    }
    if (!out) throw std::runtime_error("cannot write " + cfg.out);
    std::printf("BENCH published=%zu seconds=%.3f rate=%.1f failed=%zu\n", jobs.size(), seconds,
                static_cast<double>(jobs.size()) / seconds, failed);
    return failed == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shopd_bench_loader: %s\n", e.what());
    return 1;
  }
}
