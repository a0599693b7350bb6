#include "shopd/http/client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <exception>
#include <initializer_list>
#include <mutex>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <variant>

namespace shopd::http {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
namespace urls = boost::urls;
using tcp = boost::asio::ip::tcp;
using steady = std::chrono::steady_clock;
using boost::system::error_code;

using plain_stream = beast::tcp_stream;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;
using request_message = bhttp::request<bhttp::string_body>;

auto use_awaitable_ec(error_code& ec) {
  return asio::redirect_error(asio::use_awaitable, ec);
}

/// What the client needs from a URL.
struct target {
  bool tls = false;
  bool host_is_ip = false;
  std::string host;  // lowercase, IPv6 without brackets: resolve, SNI, verification
  std::uint16_t port = 0;
  std::string host_header;  // host[:port] as the Host header wants it
  std::string peer;         // host:port in error messages
  std::string origin;       // pool key
  std::string request_target;
};

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); });
  return out;
}

boost::system::result<target, std::string> parse_target(std::string_view url) {
  auto parsed = urls::parse_uri(url);
  if (!parsed) return "invalid URL \"" + std::string(url) + "\": " + parsed.error().message();
  const urls::url_view& u = *parsed;
  target t;
  if (u.scheme_id() == urls::scheme::https) {
    t.tls = true;
  } else if (u.scheme_id() != urls::scheme::http) {
    return "unsupported URL scheme \"" + std::string(u.scheme()) + "\" (http or https)";
  }
  switch (u.host_type()) {
    case urls::host_type::name:
      t.host = lowercase(u.host());
      break;
    case urls::host_type::ipv4:
    case urls::host_type::ipv6:
      t.host = lowercase(u.host_address());
      t.host_is_ip = true;
      break;
    default:
      return "unsupported host in URL \"" + std::string(url) + "\"";
  }
  if (t.host.empty()) return "no host in URL \"" + std::string(url) + "\"";
  const std::uint16_t default_port = t.tls ? 443 : 80;
  t.port = default_port;
  if (u.has_port() && !u.port().empty()) {
    t.port = u.port_number();
    if (t.port == 0) return "invalid port in URL \"" + std::string(url) + "\"";
  }
  const bool v6 = u.host_type() == urls::host_type::ipv6;
  const std::string host_part = v6 ? "[" + t.host + "]" : t.host;
  t.peer = host_part + ":" + std::to_string(t.port);
  t.host_header = t.port == default_port ? host_part : t.peer;
  t.origin = std::string(t.tls ? "https://" : "http://") + t.peer;
  t.request_target = u.encoded_target();
  if (t.request_target.empty() || t.request_target.front() != '/') t.request_target.insert(0, 1, '/');
  return t;
}

bool is_token_char(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

/// Empty when every header can be sent as given; otherwise why not.
std::string check_headers(const header_list& headers) {
  for (const auto& [name, value] : headers) {
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return is_token_char(c); })) {
      return "invalid header name \"" + name + "\"";
    }
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      return "invalid value for header \"" + name + "\"";
    }
    // The body is framed by the client alone; a caller's framing header would contradict it.
    if (beast::iequals(name, "content-length") || beast::iequals(name, "transfer-encoding")) {
      return "header \"" + name + "\" is set by the client";
    }
  }
  return {};
}

request_message build_message(const target& t, client_request& req, const std::string& user_agent) {
  request_message msg{req.method, t.request_target, 11};
  bool has_host = false;
  bool has_agent = false;
  for (const auto& [name, value] : req.headers) {
    has_host = has_host || beast::iequals(name, "host");
    has_agent = has_agent || beast::iequals(name, "user-agent");
  }
  if (!has_host) msg.set(bhttp::field::host, t.host_header);
  if (!has_agent) msg.set(bhttp::field::user_agent, user_agent);
  for (const auto& [name, value] : req.headers) msg.insert(name, value);
  msg.body() = std::move(req.body);
  msg.prepare_payload();
  return msg;
}

/// `Keep-Alive: timeout=N` -> N seconds; nullopt when absent or unreadable.
std::optional<std::chrono::seconds> keep_alive_timeout(std::string_view value) {
  const auto pos = value.find("timeout=");
  if (pos == std::string_view::npos) return std::nullopt;
  const char* first = value.data() + pos + 8;
  long long n = 0;
  auto [ptr, ec] = std::from_chars(first, value.data() + value.size(), n);
  if (ec != std::errc{} || ptr == first || n < 0) return std::nullopt;
  return std::chrono::seconds(n);
}

/// One connection: its strand (all of its I/O runs there), its stream and its read buffer.
struct connection {
  connection(const target& t, const asio::any_io_executor& ex, ssl::context& tls)
      : strand(asio::make_strand(ex)), origin(t.origin) {
    if (t.tls) {
      stream.emplace<tls_stream>(strand, tls);
    } else {
      stream.emplace<plain_stream>(strand);
    }
  }

  plain_stream& tcp() {
    if (auto* p = std::get_if<plain_stream>(&stream)) return *p;
    return beast::get_lowest_layer(std::get<tls_stream>(stream));
  }

  /// An idle connection is dead when the peer closed it or sent anything unasked (for TLS, a
  /// close_notify alert): peek without blocking.
  bool peer_gone() {
    auto& sock = tcp().socket();
    if (!sock.is_open()) return true;
    char byte = 0;
    const auto n = ::recv(sock.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
    return true;
  }

  asio::any_io_executor strand;
  std::string origin;
  std::variant<std::monostate, plain_stream, tls_stream> stream;
  beast::flat_buffer buffer;
  steady::time_point expires;
};

/// The outcome of one try on one connection.
struct attempt {
  std::optional<client_response> response;
  bool reusable = false;
  std::optional<std::chrono::seconds> keep_alive_hint;

  error_code ec;
  client_stage stage = client_stage::request;
  std::string detail;  // replaces ec.message() in the error text when set
  bool response_started = false;

  attempt& fail(client_stage s, error_code e) {
    stage = s;
    ec = e;
    return *this;
  }
};

/// ssl::host_name_verification, plus a verify error OpenSSL can report (it leaves X509_V_OK).
class host_verifier {
 public:
  host_verifier(const std::string& host, bool is_ip) : check_(host), is_ip_(is_ip) {}

  bool operator()(bool preverified, ssl::verify_context& ctx) const {
    const bool ok = check_(preverified, ctx);
    if (preverified && !ok) {
      X509_STORE_CTX_set_error(ctx.native_handle(),
                               is_ip_ ? X509_V_ERR_IP_ADDRESS_MISMATCH : X509_V_ERR_HOSTNAME_MISMATCH);
    }
    return ok;
  }

 private:
  ssl::host_name_verification check_;
  bool is_ip_;
};

/// The resolver cannot be interrupted (getaddrinfo runs on a private thread and cancel() only takes
/// effect when it returns), so the coroutine waits on a timer that either the lookup or the deadline
/// completes; a late lookup finishes into this shared state, unobserved.
struct resolve_state {
  explicit resolve_state(const asio::any_io_executor& ex) : resolver(ex), wake(ex) {}
  tcp::resolver resolver;
  asio::steady_timer wake;
  tcp::resolver::results_type results;
  error_code ec;
  bool done = false;
};

asio::awaitable<std::vector<tcp::endpoint>> resolve(const target& t, steady::time_point deadline,
                                                    error_code& ec) {
  std::vector<tcp::endpoint> endpoints;
  if (t.host_is_ip) {
    const auto address = asio::ip::make_address(t.host, ec);
    if (!ec) endpoints.emplace_back(address, t.port);
    co_return endpoints;
  }
  auto state = std::make_shared<resolve_state>(co_await asio::this_coro::executor);
  state->wake.expires_at(deadline);
  state->resolver.async_resolve(t.host, std::to_string(t.port),
                                [state](error_code e, tcp::resolver::results_type r) {
                                  state->ec = e;
                                  state->results = std::move(r);
                                  state->done = true;
                                  state->wake.cancel();
                                });
  error_code wait_ec;
  co_await state->wake.async_wait(use_awaitable_ec(wait_ec));
  if (!state->done) {
    state->resolver.cancel();
    ec = beast::error::timeout;
    co_return endpoints;
  }
  ec = state->ec;
  for (const auto& entry : state->results) endpoints.push_back(entry.endpoint());
  co_return endpoints;
}

/// Connect (when `fresh`), send `msg` and read the response, on the connection's strand.
template <class Stream>
asio::awaitable<attempt> exchange(Stream& stream, connection& c, const target& t, const request_message& msg,
                                  steady::time_point deadline, bool fresh, const client_options& opts) {
  attempt a;
  error_code ec;
  plain_stream& layer = c.tcp();
  if (fresh) {
    const auto endpoints = co_await resolve(t, deadline, ec);
    if (ec) co_return a.fail(client_stage::resolve, ec);
    layer.expires_at(deadline);
    co_await layer.async_connect(endpoints, use_awaitable_ec(ec));
    if (ec) co_return a.fail(client_stage::connect, ec);
    error_code ignored;
    layer.socket().set_option(tcp::no_delay(true), ignored);
    if constexpr (std::is_same_v<Stream, tls_stream>) {
      // SNI carries host names only (RFC 6066); certificates for IP addresses are matched by IP SAN.
      if (!t.host_is_ip && SSL_set_tlsext_host_name(stream.native_handle(), t.host.c_str()) != 1) {
        co_return a.fail(client_stage::tls_handshake,
                         error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category()));
      }
      stream.set_verify_callback(host_verifier(t.host, t.host_is_ip), ec);
      if (ec) co_return a.fail(client_stage::tls_handshake, ec);
      layer.expires_at(deadline);
      co_await stream.async_handshake(ssl::stream_base::client, use_awaitable_ec(ec));
      if (ec) {
        a.fail(client_stage::tls_handshake, ec);
        const long verify = SSL_get_verify_result(stream.native_handle());
        if (verify != X509_V_OK) {
          a.detail = std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
        }
        co_return a;
      }
    }
  }

  layer.expires_at(deadline);
  co_await bhttp::async_write(stream, msg, use_awaitable_ec(ec));
  if (ec) co_return a.fail(client_stage::write, ec);

  for (;;) {
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(opts.body_limit);
    parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(opts.header_limit, UINT32_MAX)));
    if (msg.method() == bhttp::verb::head) parser.skip(true);
    layer.expires_at(deadline);
    co_await bhttp::async_read(stream, c.buffer, parser, use_awaitable_ec(ec));
    if (ec) {
      a.response_started = a.response_started || parser.got_some() || c.buffer.size() > 0;
      co_return a.fail(client_stage::read, ec);
    }
    auto& res = parser.get();
    const unsigned status = res.result_int();
    if (status >= 100 && status < 200 && status != 101) {  // interim response: the final one follows
      a.response_started = true;
      continue;
    }
    layer.expires_never();
    a.reusable = parser.keep_alive() && msg.keep_alive() && c.buffer.size() == 0;
    if (auto ka = res.find(bhttp::field::keep_alive); ka != res.end())
      a.keep_alive_hint = keep_alive_timeout(ka->value());
    client_response out;
    out.status = status;
    out.headers.reserve(static_cast<std::size_t>(std::distance(res.begin(), res.end())));
    for (const auto& f : res) out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    out.body = std::move(res.body());
    a.response = std::move(out);
    co_return a;
  }
}

bool worth_retrying(const attempt& a) {
  return (a.stage == client_stage::write || a.stage == client_stage::read) && !a.response_started &&
         a.ec != beast::error::timeout;
}

client_error to_error(const attempt& a, const target& t, std::chrono::milliseconds timeout) {
  std::string reason;
  if (a.ec == beast::error::timeout) {
    reason = "timed out after " + std::to_string(timeout.count()) + " ms";
  } else if (!a.detail.empty()) {
    reason = a.detail;
  } else {
    reason = a.ec.message();
  }
  return client_error{a.ec, a.stage, std::string(to_string(a.stage)) + " " + t.peer + ": " + reason};
}

using response_message = bhttp::response<bhttp::string_body>;

/// What an in-process exchange (client_options::in_process) gives the caller: the response, as
/// read from a socket, or the failure of the function that answered.
client_result in_process_result(const std::exception_ptr& failed, response_message res,
                                const std::string& peer, std::size_t body_limit) {
  if (failed) {
    std::string why = "the in-process handler failed";
    try {
      std::rethrow_exception(failed);
    } catch (const std::exception& e) {
      why += std::string(": ") + e.what();
    } catch (...) {
    }
    return client_error{make_error_code(bhttp::error::partial_message), client_stage::read,
                        "read " + peer + ": " + why};
  }
  if (res.body().size() > body_limit) {
    const auto ec = make_error_code(bhttp::error::body_limit);
    return client_error{ec, client_stage::read, "read " + peer + ": " + ec.message()};
  }
  client_response out;
  out.status = res.result_int();
  for (const auto& f : res) out.headers.emplace_back(f.name_string(), f.value());
  out.body = std::move(res.body());
  return out;
}

client_error request_error(const std::string& why) {
  return client_error{make_error_code(boost::system::errc::invalid_argument), client_stage::request,
                      "request: " + why};
}

}  // namespace

struct client::impl : std::enable_shared_from_this<client::impl> {
  impl(asio::any_io_executor executor, client_options o)
      : ex(std::move(executor)),
        opts(std::move(o)),
        user_agent(opts.user_agent.empty() ? std::string("shopd/") + SHOPD_VERSION : opts.user_agent),
        tls(ssl::context::tls_client),
        sweep_timer(asio::make_strand(ex)) {
    SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
    if (!opts.ca_file.empty()) {
      error_code ec;
      tls.load_verify_file(opts.ca_file, ec);
      if (ec) throw std::system_error(ec, "http client: CA file " + opts.ca_file);
    }
    tls.set_verify_mode(ssl::verify_peer);
  }

  static asio::awaitable<client_result> send(std::shared_ptr<impl> self, client_request req) {
    auto t = parse_target(req.url);
    if (!t) co_return request_error(t.error());
    if (auto why = check_headers(req.headers); !why.empty()) co_return request_error(why);
    if (const in_process_fn* local = self->in_process_for(*t)) {
      request_message msg = build_message(*t, req, self->user_agent);
      co_return co_await asio::co_spawn(
          asio::make_strand(self->ex),
          exchange_in_process(*local, std::move(msg), *t, req.timeout, self->opts.body_limit),
          asio::use_awaitable);
    }
    const auto deadline = steady::now() + req.timeout;
    const request_message msg = build_message(*t, req, self->user_agent);

    auto conn = self->acquire(t->origin);
    const bool reused = conn != nullptr;
    auto& tls_ctx = t->tls ? self->tls_context() : self->tls;
    if (!reused) conn = std::make_unique<connection>(*t, self->ex, tls_ctx);
    attempt a = co_await self->start(*conn, *t, msg, deadline, !reused);
    if (!a.response && reused && worth_retrying(a)) {
      conn = std::make_unique<connection>(*t, self->ex, tls_ctx);
      a = co_await self->start(*conn, *t, msg, deadline, true);
    }
    if (!a.response) co_return to_error(a, *t, req.timeout);
    if (a.reusable) self->release(std::move(conn), a.keep_alive_hint);
    co_return std::move(*a.response);
  }

  /// The function answering requests to `t` in this process, or nullptr: send it.
  [[nodiscard]] const in_process_fn* in_process_for(const target& t) const noexcept {
    return opts.in_process ? opts.in_process->find(t.tls, t.host, t.port) : nullptr;
  }

  /// One request answered in this process; runs on a strand of its own. The answer is awaited for
  /// the request's timeout at most; one that comes later is dropped, as a socket's would be.
  static asio::awaitable<client_result> exchange_in_process(in_process_fn fn, request_message msg, target t,
                                                            std::chrono::milliseconds timeout,
                                                            std::size_t body_limit) {
    struct pending {
      explicit pending(const asio::any_io_executor& ex) : signal(ex) {}
      asio::steady_timer signal;
      std::optional<client_result> result;
    };
    const auto strand = co_await asio::this_coro::executor;
    auto state = std::make_shared<pending>(strand);
    state->signal.expires_after(timeout);
    asio::co_spawn(strand, fn(std::move(msg)),
                   [state, peer = t.peer, body_limit](std::exception_ptr e, response_message res) {
                     state->result.emplace(in_process_result(e, std::move(res), peer, body_limit));
                     state->signal.cancel();
                   });
    error_code ec;
    co_await state->signal.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (state->result) co_return std::move(*state->result);
    co_return client_error{make_error_code(beast::error::timeout), client_stage::read,
                           "read " + t.peer + ": timed out after " + std::to_string(timeout.count()) + " ms"};
  }

  asio::awaitable<attempt> start(connection& c, const target& t, const request_message& msg,
                                 steady::time_point deadline, bool fresh) {
    if (auto* plain = std::get_if<plain_stream>(&c.stream)) {
      return asio::co_spawn(c.strand, exchange(*plain, c, t, msg, deadline, fresh, opts),
                            asio::use_awaitable);
    }
    return asio::co_spawn(c.strand,
                          exchange(std::get<tls_stream>(c.stream), c, t, msg, deadline, fresh, opts),
                          asio::use_awaitable);
  }

  /// The most recently used live idle connection to `origin`, or nullptr.
  std::unique_ptr<connection> acquire(const std::string& origin) {
    for (;;) {
      std::unique_ptr<connection> c;
      {
        std::lock_guard lock(mu);
        auto it = idle.find(origin);
        if (it == idle.end()) return nullptr;
        c = std::move(it->second.back());
        it->second.pop_back();
        --idle_count;
        if (it->second.empty()) idle.erase(it);
      }
      if (c->expires > steady::now() && !c->peer_gone()) return c;
    }
  }

  void release(std::unique_ptr<connection> c, std::optional<std::chrono::seconds> hint) {
    auto keep = std::chrono::duration_cast<std::chrono::milliseconds>(opts.idle_expiry);
    // Leave a second of margin under the server's own idle timeout, as its clock started earlier.
    if (hint) keep = std::min<std::chrono::milliseconds>(keep, *hint - std::chrono::seconds(1));
    if (opts.max_idle_per_origin == 0 || keep <= std::chrono::milliseconds::zero()) return;
    c->expires = steady::now() + keep;
    std::unique_ptr<connection> evicted;
    std::lock_guard lock(mu);
    auto& list = idle[c->origin];
    if (list.size() >= opts.max_idle_per_origin) {
      evicted = std::move(list.front());
      list.erase(list.begin());
      --idle_count;
    }
    list.push_back(std::move(c));
    ++idle_count;
    arm_sweep();
  }

  /// Requires `mu`.
  void arm_sweep() {
    if (sweeping || idle_count == 0) return;
    sweeping = true;
    const auto interval = std::clamp<std::chrono::milliseconds>(
        opts.idle_expiry, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
    sweep_timer.expires_after(interval);
    sweep_timer.async_wait([weak = weak_from_this(), generation = ++sweep_generation](error_code) {
      if (auto self = weak.lock()) self->sweep(generation);
    });
  }

  void sweep(std::uint64_t generation) {
    std::vector<std::unique_ptr<connection>> dead;
    std::lock_guard lock(mu);
    if (generation != sweep_generation) return;  // cancelled by close_idle()
    sweeping = false;
    const auto now = steady::now();
    for (auto it = idle.begin(); it != idle.end();) {
      auto& list = it->second;
      for (auto& c : list) {
        if (c->expires <= now || c->peer_gone()) dead.push_back(std::move(c));
      }
      std::erase(list, nullptr);
      it = list.empty() ? idle.erase(it) : std::next(it);
    }
    idle_count -= dead.size();
    arm_sweep();
  }

  void close_idle() {
    decltype(idle) closing;
    std::lock_guard lock(mu);
    closing.swap(idle);
    idle_count = 0;
    if (sweeping) {
      sweeping = false;
      ++sweep_generation;
      sweep_timer.cancel();
    }
  }

  asio::any_io_executor ex;
  client_options opts;
  std::string user_agent;
  ssl::context tls;
  std::once_flag system_cas_loaded;

  // The system's CA bundle takes tens to hundreds of milliseconds to parse: it is loaded by the first
  // https request instead of at construction, where it delayed the readiness of every role (their
  // webhooks and the relay's deliveries are mostly plain http on a private network). A failure
  // leaves the store without them, so the handshake fails with a verification error.
  ssl::context& tls_context() {
    std::call_once(system_cas_loaded, [this] {
      error_code ec;
      tls.set_default_verify_paths(ec);
    });
    return tls;
  }

  std::mutex mu;
  std::unordered_map<std::string, std::vector<std::unique_ptr<connection>>> idle;  // back = most recent
  std::size_t idle_count = 0;
  bool sweeping = false;
  std::uint64_t sweep_generation = 0;
  asio::steady_timer sweep_timer;
};

std::optional<std::string_view> client_response::header(std::string_view name) const noexcept {
  for (const auto& [n, v] : headers) {
    if (beast::iequals(n, name)) return std::string_view(v);
  }
  return std::nullopt;
}

std::string_view to_string(client_stage s) noexcept {
  switch (s) {
    case client_stage::request:
      return "request";
    case client_stage::resolve:
      return "resolve";
    case client_stage::connect:
      return "connect";
    case client_stage::tls_handshake:
      return "tls handshake";
    case client_stage::write:
      return "write";
    case client_stage::read:
      return "read";
  }
  return "request";
}

bool client_error::timed_out() const noexcept {
  return code == beast::error::timeout;
}

void throw_exception_from_error(const client_error& e, const boost::source_location&) {
  throw std::system_error(e.code, e.message);
}

client::client(asio::any_io_executor ex, client_options opts)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(opts))) {}

client::client(asio::io_context& ioc, client_options opts) : client(ioc.get_executor(), std::move(opts)) {}

asio::awaitable<client_result> client::send(client_request req) const {
  return impl::send(impl_, std::move(req));
}

void in_process_listeners::add(std::string bind_address, std::uint16_t port, in_process_fn fn) {
  entries_.push_back({std::move(bind_address), port, std::move(fn)});
}

const in_process_fn* in_process_listeners::find(bool tls, std::string_view host,
                                                std::uint16_t port) const noexcept {
  if (tls) return nullptr;
  for (const auto& e : entries_) {
    if (e.port == port && reaches_bind_address(host, e.bind_address)) return &e.fn;
  }
  return nullptr;
}

void client::close_idle() const {
  impl_->close_idle();
}

std::size_t client::idle_connections() const {
  std::lock_guard lock(impl_->mu);
  return impl_->idle_count;
}

const client_options& client::options() const noexcept {
  return impl_->opts;
}

bool reaches_bind_address(std::string_view host, std::string_view bind_address) noexcept {
  const auto unbracketed = [](std::string_view h) {
    return h.size() >= 2 && h.front() == '[' && h.back() == ']' ? h.substr(1, h.size() - 2) : h;
  };
  const auto one_of = [](std::string_view s, std::initializer_list<std::string_view> names) {
    return std::find(names.begin(), names.end(), s) != names.end();
  };
  const std::string_view h = unbracketed(host);
  const std::string_view bind = unbracketed(bind_address);
  if (h == bind) return true;
  if (h == "localhost") return one_of(bind, {"127.0.0.1", "::1", "0.0.0.0", "::"});
  if (h == "127.0.0.1") return one_of(bind, {"localhost", "0.0.0.0", "::"});
  if (h == "::1") return one_of(bind, {"localhost", "::"});
  return false;
}

void run_blocking(client_options opts, const std::function<asio::awaitable<void>(const client&)>& work) {
  opts.max_idle_per_origin = 0;  // one call: nothing to reuse, and no sweep timer to outlive it
  asio::io_context ioc(1);
  const client c(ioc, std::move(opts));
  std::exception_ptr failure;
  asio::co_spawn(ioc, work(c), [&](std::exception_ptr e) { failure = std::move(e); });
  ioc.run();
  if (failure) std::rethrow_exception(failure);
}

client_result send_blocking(client_request req, client_options opts) {
  std::optional<client_result> out;
  run_blocking(std::move(opts), [&](const client& c) -> asio::awaitable<void> {
    out.emplace(co_await c.send(std::move(req)));
  });
  return std::move(*out);
}

}  // namespace shopd::http
