#include "capture_server.hpp"

#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <deque>
#include <list>
#include <mutex>
#include <stdexcept>
#include <type_traits>

namespace shopd::test {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using boost::system::error_code;

using tls_socket = ssl::stream<tcp::socket>;

auto with_ec(error_code& ec) {
  return asio::redirect_error(asio::use_awaitable, ec);
}

tcp::socket& socket_of(tcp::socket& s) {
  return s;
}
tcp::socket& socket_of(tls_socket& s) {
  return s.next_layer();
}

// OpenSSL objects, freed by unique_ptr.
struct openssl_free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
};
template <class T>
using openssl_ptr = std::unique_ptr<T, openssl_free>;

void require(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("make_self_signed: ") + what + " failed");
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

/// Tracks a live session so stop() can close it; lives in the session's coroutine frame.
struct session_ref {
  tcp::socket* socket;
  asio::steady_timer* hang;
};

}  // namespace

// -- captured_request, scripted_reply -----------------------------------------------------------------

std::optional<std::string> captured_request::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (beast::iequals(n, name)) return v;
  }
  return std::nullopt;
}

std::size_t captured_request::header_count(std::string_view name) const {
  std::size_t n = 0;
  for (const auto& h : headers) n += beast::iequals(h.first, name) ? 1 : 0;
  return n;
}

scripted_reply scripted_reply::respond(unsigned status, std::string body, http::header_list headers) {
  return scripted_reply{action::respond, status, std::move(headers), std::move(body)};
}

scripted_reply scripted_reply::json(unsigned status, std::string body) {
  return respond(status, std::move(body), {{"Content-Type", "application/json"}});
}

scripted_reply scripted_reply::respond_then_close(unsigned status, std::string body) {
  return scripted_reply{action::respond_then_close, status, {}, std::move(body)};
}

scripted_reply scripted_reply::drop() {
  return scripted_reply{action::drop, 0, {}, {}};
}

scripted_reply scripted_reply::hang() {
  return scripted_reply{action::hang, 0, {}, {}};
}

scripted_reply scripted_reply::raw(std::string bytes) {
  return scripted_reply{action::raw, 0, {}, std::move(bytes)};
}

// -- certificates ----------------------------------------------------------------------------------

tls_identity make_self_signed(const std::vector<std::string>& subject_alt_names) {
  std::string san;
  for (const auto& name : subject_alt_names) san += (san.empty() ? "" : ",") + name;
  require(!san.empty(), "an empty subjectAltName list");

  openssl_ptr<EVP_PKEY> key(EVP_EC_gen("P-256"));
  require(key != nullptr, "EVP_EC_gen");
  openssl_ptr<X509> cert(X509_new());
  require(cert != nullptr, "X509_new");
  require(X509_set_version(cert.get(), 2) == 1, "X509_set_version");
  static long serial = 1;
  require(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++) == 1, "ASN1_INTEGER_set");
  require(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) != nullptr, "X509_gmtime_adj");
  require(X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400) != nullptr, "X509_gmtime_adj");
  require(X509_set_pubkey(cert.get(), key.get()) == 1, "X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(cert.get());
  const std::string cn = "shopd test " + subject_alt_names.front();
  require(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                     reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) == 1,
          "X509_NAME_add_entry_by_txt");
  require(X509_set_issuer_name(cert.get(), name) == 1, "X509_set_issuer_name");

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  const std::pair<int, std::string> extensions[] = {
      {NID_basic_constraints, "critical,CA:TRUE"},
      {NID_key_usage, "critical,digitalSignature,keyCertSign"},
      {NID_subject_key_identifier, "hash"},
      {NID_subject_alt_name, san},
  };
  for (const auto& [nid, value] : extensions) {
    openssl_ptr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
    require(ext != nullptr, "X509V3_EXT_conf_nid");
    require(X509_add_ext(cert.get(), ext.get(), -1) == 1, "X509_add_ext");
  }
  require(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0, "X509_sign");

  openssl_ptr<BIO> cert_bio(BIO_new(BIO_s_mem()));
  openssl_ptr<BIO> key_bio(BIO_new(BIO_s_mem()));
  require(cert_bio && key_bio, "BIO_new");
  require(PEM_write_bio_X509(cert_bio.get(), cert.get()) == 1, "PEM_write_bio_X509");
  require(PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1,
          "PEM_write_bio_PrivateKey");
  return tls_identity{bio_text(cert_bio.get()), bio_text(key_bio.get())};
}

// -- capture_server -----------------------------------------------------------------------------------

struct capture_server::impl {
  explicit impl(const tls_identity* identity) {
    if (identity != nullptr) {
      tls.emplace(ssl::context::tls_server);
      tls->use_certificate_chain(asio::buffer(identity->certificate_pem));
      tls->use_private_key(asio::buffer(identity->private_key_pem), ssl::context::pem);
    }
    tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen();
    port = acceptor.local_endpoint().port();
    asio::co_spawn(ioc, accept_loop(), asio::detached);
    thread = std::thread([this] { ioc.run(); });
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      error_code ec;
      tcp::socket socket = co_await acceptor.async_accept(with_ec(ec));
      if (ec) {
        if (stopping) co_return;
        continue;
      }
      std::size_t number = 0;
      {
        std::lock_guard lock(mu);
        number = ++accepted;
      }
      if (tls) {
        asio::co_spawn(ioc, session(tls_socket(std::move(socket), *tls), number), asio::detached);
      } else {
        asio::co_spawn(ioc, session(std::move(socket), number), asio::detached);
      }
    }
  }

  template <class Stream>
  asio::awaitable<void> session(Stream stream, std::size_t number) {
    tcp::socket& socket = socket_of(stream);
    asio::steady_timer hang(ioc, asio::steady_timer::time_point::max());
    const auto registration = sessions.insert(sessions.end(), session_ref{&socket, &hang});
    struct unregister {
      std::list<session_ref>& list;
      std::list<session_ref>::iterator it;
      ~unregister() { list.erase(it); }
    } guard{sessions, registration};
    if (stopping) co_return;

    error_code ec;
    std::string sni;
    if constexpr (std::is_same_v<Stream, tls_socket>) {
      co_await stream.async_handshake(ssl::stream_base::server, with_ec(ec));
      if (ec) co_return;
      if (const char* name = SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name))
        sni = name;
    }

    beast::flat_buffer buffer;
    for (;;) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.body_limit(64 * 1024 * 1024);
      co_await bhttp::async_read(stream, buffer, parser, with_ec(ec));
      if (ec) co_return;
      auto req = parser.release();

      captured_request captured;
      captured.connection = number;
      captured.method = std::string(req.method_string());
      captured.target = std::string(req.target());
      for (const auto& f : req)
        captured.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
      captured.body = req.body();
      captured.sni = sni;
      const scripted_reply reply = record(std::move(captured));

      switch (reply.what) {
        case scripted_reply::action::respond:
        case scripted_reply::action::respond_then_close: {
          bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(reply.status), req.version()};
          for (const auto& [name, value] : reply.headers) res.insert(name, value);
          res.body() = reply.body;
          if (res.find(bhttp::field::connection) == res.end()) {  // a scripted Connection header wins
            res.keep_alive(reply.what == scripted_reply::action::respond_then_close || req.keep_alive());
          }
          res.prepare_payload();
          co_await bhttp::async_write(stream, res, with_ec(ec));
          if (ec || reply.what == scripted_reply::action::respond_then_close || !res.keep_alive()) {
            close(socket);
            co_return;
          }
          break;
        }
        case scripted_reply::action::drop:
          close(socket);
          co_return;
        case scripted_reply::action::hang:
          co_await hang.async_wait(with_ec(ec));
          co_return;
        case scripted_reply::action::raw:
          co_await asio::async_write(stream, asio::buffer(reply.body), with_ec(ec));
          close(socket);
          co_return;
      }
    }
  }

  static void close(tcp::socket& socket) {
    error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

  scripted_reply record(captured_request captured) {
    std::function<scripted_reply(const captured_request&)> fallback;
    {
      std::lock_guard lock(mu);
      log.push_back(captured);
      if (!script.empty()) {
        scripted_reply next = std::move(script.front());
        script.pop_front();
        return next;
      }
      fallback = handler;
    }
    return fallback ? fallback(captured) : scripted_reply::respond(200);
  }

  void stop() {
    if (!thread.joinable()) return;
    asio::post(ioc, [this] {
      stopping = true;
      error_code ignored;
      acceptor.close(ignored);
      for (auto& s : sessions) {
        s.hang->cancel();
        s.socket->close(ignored);
      }
    });
    thread.join();
  }

  // Shared with the test thread, under `mu`.
  mutable std::mutex mu;
  std::deque<scripted_reply> script;
  std::function<scripted_reply(const captured_request&)> handler;
  std::vector<captured_request> log;
  std::size_t accepted = 0;

  // Server thread only (sessions may only be touched there).
  std::list<session_ref> sessions;
  bool stopping = false;

  std::optional<ssl::context> tls;
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::uint16_t port = 0;
  std::thread thread;
};

capture_server::capture_server() : impl_(std::make_unique<impl>(nullptr)) {}

capture_server::capture_server(const tls_identity& identity) : impl_(std::make_unique<impl>(&identity)) {}

capture_server::~capture_server() {
  stop();
}

std::uint16_t capture_server::port() const noexcept {
  return impl_->port;
}

std::string capture_server::url(std::string_view path) const {
  return std::string(impl_->tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(impl_->port) +
         std::string(path);
}

void capture_server::push(scripted_reply reply) {
  std::lock_guard lock(impl_->mu);
  impl_->script.push_back(std::move(reply));
}

void capture_server::set_handler(std::function<scripted_reply(const captured_request&)> handler) {
  std::lock_guard lock(impl_->mu);
  impl_->handler = std::move(handler);
}

std::vector<captured_request> capture_server::requests() const {
  std::lock_guard lock(impl_->mu);
  return impl_->log;
}

std::size_t capture_server::connections() const {
  std::lock_guard lock(impl_->mu);
  return impl_->accepted;
}

void capture_server::stop() {
  impl_->stop();
}

// -- io_threads ---------------------------------------------------------------------------------------

io_threads::io_threads(unsigned threads) : guard_(asio::make_work_guard(ioc_)) {
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
}

io_threads::~io_threads() {
  guard_.reset();
  ioc_.stop();
  for (auto& t : threads_) t.join();
}

}  // namespace shopd::test
