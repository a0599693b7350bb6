#pragma once
/// Where a piece of request handling runs (see http::router and bus::event_router).

namespace shopd::http {

/// `io` work must not block (no database, no SMTP, no sleeping): it runs on the I/O thread that
/// read the request. `blocking` work runs on the server's worker pool.
enum class execution { io, blocking };

}  // namespace shopd::http
