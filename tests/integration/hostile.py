#!/usr/bin/env python3
"""Hostile clients against a running `shopd serve --role=all` (driven by hostile_test.sh).

Each subcommand sends one family of hostile input over raw sockets and checks the documented answer.
Every check prints one line; the exit status is the number of failed checks (capped at 100). The
environment gives the ports, tokens and keys of the platform (lib.sh's platform_env) plus:
  SHOPD_PID   the server process (for its resident memory)
  SKU         a catalogue SKU with stock
"""

import base64
import hashlib
import hmac
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

ENV = os.environ
HOST = "127.0.0.1"
ORDERS = int(ENV.get("ORDERS_PORT", "0"))
INVENTORY = int(ENV.get("INVENTORY_PORT", "0"))
ANALYTICS = int(ENV.get("ANALYTICS_PORT", "0"))
EMAIL = int(ENV.get("EMAIL_PORT", "0"))
TOKEN = ENV.get("SHOPD_API_TOKEN", "")
KEY = ENV.get("QSTASH_CURRENT_SIGNING_KEY", "")
NEXT_KEY = ENV.get("QSTASH_NEXT_SIGNING_KEY", "")
# Every wait below is bounded; this one for whole responses on a healthy connection.
IO_TIMEOUT = 20.0

failures = 0
checks = 0


def check(what, ok, detail=""):
    global failures, checks
    checks += 1
    if ok:
        print(f"ok: {what}")
    else:
        failures += 1
        print(f"FAIL: {what}: {detail}")
    return ok


def check_eq(what, want, got):
    return check(what, want == got, f"expected [{want!r}], got [{got!r}]")


# ---------------------------------------------------------------------------------------------
# HTTP over raw sockets


def connect(port, timeout=IO_TIMEOUT, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((HOST, port))
    return s


class Reader:
    """Reads HTTP/1.1 responses (Content-Length framed, as shopd frames them) off one socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
        self.buf += chunk
        return bool(chunk)

    def response(self):
        """(status, headers dict with lowercase names, body bytes), or None when the server closed
        the connection before a whole response arrived."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            if not self._fill():
                return None
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    def closed(self):
        """True when the server closes the connection with nothing more sent."""
        while not self.buf:
            try:
                if not self._fill():
                    return True
            except socket.timeout:
                return False
        return False


def build(method, target, headers=None, body=b"", port=None, length=True):
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {target} HTTP/1.1", f"Host: {HOST}:{port or 0}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if length and body is not None and "Transfer-Encoding" not in (headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def call(port, method, target, headers=None, body=b"", raw=None):
    """One request on a fresh connection: (status, headers, body as bytes); status 0 when the
    connection was closed without an answer."""
    s = connect(port)
    try:
        try:
            s.sendall(raw if raw is not None else build(method, target, headers, body, port))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (413, 431) and stopped reading: the answer is still there
        r = Reader(s).response()
        return r if r else (0, {}, b"")
    finally:
        s.close()


def jbody(resp):
    try:
        return json.loads(resp[2])
    except ValueError:
        return None


def auth(extra=None):
    h = {"Authorization": f"Bearer {TOKEN}"}
    h.update(extra or {})
    return h


def healthy(port=ORDERS):
    return call(port, "GET", "/healthz")[0] == 200


def metric(name, labels):
    """The value of one sample of the process's /metrics (read on the inventory listener)."""
    text = call(INVENTORY, "GET", "/metrics")[2].decode()
    want = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split(" ")[1])
    return None


def wait_until(condition, secs):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


TCP_ESTABLISHED = 1


def tcp_state(sock):
    """tcpi_state, the first byte of struct tcp_info (Linux)."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------------------------
# QStash signatures (reference/qstash-protocol.md §3), made here so that every field can be forged


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(body, url, key=KEY, alg="HS256", iat=None, exp=None, nbf=0, iss="Upstash", body_hash=None,
        unsigned=False):
    now = int(time.time()) if iat is None else iat
    header = {"alg": alg, "typ": "JWT"}
    claims = {"iss": iss, "sub": url, "exp": now + 300 if exp is None else exp, "nbf": nbf, "iat": now,
              "jti": "jwt_hostile" + str(time.monotonic_ns()),
              "body": body_hash or base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode()}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    if unsigned:
        return signing_input + "."
    mac = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


def webhook_url(port):
    return f"http://127.0.0.1:{port}/api/webhook"


def deliver(port, body, token=None, headers=None):
    if isinstance(body, str):
        body = body.encode()
    h = {"Content-Type": "application/json", "Upstash-Message-Id": "msg_hostile"}
    if token is not False:
        h["Upstash-Signature"] = token if token is not None else jwt(body, webhook_url(port))
    h.update(headers or {})
    return call(port, "POST", "/api/webhook", h, body)


def envelope(event_type, data, event_id=None, correlation_id="hostile"):
    return json.dumps({
        "eventId": event_id or "evt-hostile-" + str(time.monotonic_ns()),
        "eventType": event_type, "version": 1, "timestamp": "2026-11-24T10:00:00.000Z",
        "source": "cli", "correlationId": correlation_id, "data": data})


def checkout_data(checkout_id, sku, qty=1, email="ada@example.test", name="Ada Lovelace", **extra):
    d = {"checkoutId": checkout_id, "customer": {"email": email, "name": name},
         "items": [{"sku": sku, "quantity": qty}], "currency": "EUR"}
    d.update(extra)
    return d


def is_error_json(resp, code=None):
    doc = jbody(resp)
    return isinstance(doc, dict) and isinstance(doc.get("error"), str) and (code is None or doc.get("code") == code)


# ---------------------------------------------------------------------------------------------
# Sections


def section_limits():
    limit = int(ENV["HTTP_BODY_LIMIT"])
    # Declared: refused from the headers alone, before any body byte is sent.
    r = call(ORDERS, "POST", "/api/checkout", raw=build("POST", "/api/checkout",
             {"Content-Type": "application/json", "Content-Length": str(limit + 1)}, b"", ORDERS, length=False))
    check_eq("declared Content-Length over HTTP_BODY_LIMIT -> 413", 413, r[0])
    check("413 is the JSON error payload_too_large", is_error_json(r, "payload_too_large"), r[2])
    # Declared, with the body actually sent: the answer arrives before the server stops reading.
    r = call(ORDERS, "POST", "/api/webhook", {"Content-Type": "application/json"}, b"[" * (limit + 10))
    check_eq("a body over the limit on the webhook -> 413", 413, r[0])
    # Expect: 100-continue with an oversize length: 413 instead of 100, then the connection closed.
    s = connect(ORDERS)
    s.sendall(build("POST", "/api/checkout", {"Expect": "100-continue", "Content-Length": str(limit * 4)}, b"",
                    ORDERS, length=False))
    rd = Reader(s)
    r = rd.response()
    check_eq("Expect: 100-continue over the limit -> 413, no 100", 413, r[0] if r else None)
    check("Expect: 100-continue over the limit: closed after the 413", rd.closed(), rd.buf[:200])
    s.close()
    # Streamed (chunked): the total is counted as it arrives.
    s = connect(ORDERS)
    s.sendall(build("POST", "/api/checkout", {"Transfer-Encoding": "chunked"}, b"", ORDERS, length=False))
    rd = Reader(s)
    sent = 0
    chunk = b"x" * 4096
    try:
        while sent <= limit + 8192:
            s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = rd.response()
    check_eq("chunked body growing over the limit -> 413", 413, r[0] if r else None)
    s.close()
    # Many small chunks each under the limit still count towards it.
    s = connect(ORDERS)
    s.sendall(build("POST", "/api/products", auth({"Transfer-Encoding": "chunked"}), b"", ORDERS, length=False))
    try:
        s.sendall(b"".join(b"400\r\n" + b"y" * 1024 + b"\r\n" for _ in range(limit // 1024 + 2)) + b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = Reader(s).response()
    check_eq("1 KiB chunks adding up over the limit -> 413", 413, r[0] if r else None)
    s.close()
    # Headers: one huge header, many small ones, a huge request line.
    r = call(ORDERS, "GET", "/healthz", {"X-Big": "a" * 9000})
    check_eq("one 9000-byte header -> 431", 431, r[0])
    check("431 is the JSON error request_header_fields_too_large",
          is_error_json(r, "request_header_fields_too_large"), r[2])
    r = call(ORDERS, "GET", "/healthz", {f"X-H{i}": "v" * 40 for i in range(400)})
    check_eq("400 headers of 40 bytes -> 431", 431, r[0])
    check("431 for many headers is request_header_fields_too_large", is_error_json(r, "request_header_fields_too_large"),
          r[2])
    r = call(ORDERS, "GET", "/healthz?" + "q" * 9000)
    check_eq("a 9000-byte request target -> 431", 431, r[0])
    check("431 for a long target is request_header_fields_too_large",
          is_error_json(r, "request_header_fields_too_large"), r[2])
    r = call(ORDERS, "GET", "/healthz", raw=b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
             b"Content-Length: 7\r\n\r\nhello")
    check_eq("two different Content-Lengths -> 400", 400, r[0])
    r = call(ORDERS, "GET", "/healthz", raw=b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
             b"Content-Length: 3\r\n\r\n0\r\n\r\n")
    check("Transfer-Encoding with Content-Length is refused (smuggling) -> 400", r[0] == 400, r[0])
    # The same in every spelling: equal lengths twice, the other order, a coding other than chunked.
    for what, head in [
            ("the same Content-Length twice", b"Content-Length: 5\r\nContent-Length: 5\r\n"),
            ("Content-Length before Transfer-Encoding", b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
            ("Transfer-Encoding: gzip with Content-Length", b"Transfer-Encoding: gzip\r\nContent-Length: 5\r\n"),
            ("Transfer-Encoding: gzip alone", b"Transfer-Encoding: gzip\r\n"),
            ("chunked, then gzip last", b"Transfer-Encoding: chunked, gzip\r\n")]:
        r = call(ORDERS, "POST", "/healthz", raw=b"POST /healthz HTTP/1.1\r\nHost: x\r\n" + head + b"\r\nhello")
        check_eq(f"{what} -> 400", 400, r[0])
        check(f"{what}: the JSON error bad_request", is_error_json(r, "bad_request"), r[2])
    r = call(ORDERS, "GET", "/healthz", raw=b"\x00\x01\x02 / HTTP/1.1\r\n\r\n")
    check_eq("binary garbage as a request line -> 400", 400, r[0])
    check("the orders role still answers /healthz", healthy())


def section_slow():
    header_timeout = int(ENV["HTTP_HEADER_TIMEOUT_MS"]) / 1000
    read_timeout = int(ENV["HTTP_READ_TIMEOUT_MS"]) / 1000
    # Slowloris: a request line and headers trickled a byte at a time, for longer than the header
    # timeout. Meanwhile other clients are served.
    request = build("GET", "/healthz", {"X-Slow": "s" * 200}, b"", ORDERS)
    s = connect(ORDERS)
    served = 0
    cut = None
    start = time.monotonic()
    for i, byte in enumerate(request[:-4]):
        try:
            s.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            cut = i
            break
        if i % 5 == 0 and healthy():
            served += 1
        time.sleep(0.02)
        if time.monotonic() - start > header_timeout * 3 + 5:
            break
        s.setblocking(False)
        try:
            peek = s.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            peek = None
        except ConnectionResetError:
            peek = b""
        s.setblocking(True)
        s.settimeout(IO_TIMEOUT)
        if peek is not None:
            cut = i
            break
    r = Reader(s).response()
    check("a client trickling its headers is cut before it finishes them", cut is not None, "never cut")
    check_eq("... with 408", 408, r[0] if r else None)
    check("... as the JSON error request_timeout", r is not None and is_error_json(r, "request_timeout"), r)
    check("... and the connection closed", Reader(s).closed() if r else True)
    check("other clients were served while it trickled", served > 0, served)
    s.close()

    # A body sent slower than HTTP_READ_TIMEOUT_MS allows: 408.
    s = connect(ORDERS)
    s.sendall(build("POST", "/api/checkout", {"Content-Type": "application/json", "Content-Length": "400"},
                    b"", ORDERS, length=False))
    start = time.monotonic()
    r = None
    while time.monotonic() - start < read_timeout * 3 + 5:
        try:
            s.sendall(b" ")
        except (BrokenPipeError, ConnectionResetError):
            break
        s.settimeout(0.1)
        try:
            r = Reader(s).response()
            break
        except socket.timeout:
            pass
    s.settimeout(IO_TIMEOUT)
    if r is None:
        r = Reader(s).response()
    check_eq("a body trickled slower than HTTP_READ_TIMEOUT_MS -> 408", 408, r[0] if r else None)
    check("a trickled body's 408 is request_timeout", r is not None and is_error_json(r, "request_timeout"),
          r[2][:200] if r else None)
    s.close()

    # A connection that sends nothing is closed without an answer after the header timeout.
    s = connect(ORDERS, timeout=header_timeout * 3 + 20)
    rd = Reader(s)
    start = time.monotonic()
    check("a silent new connection is closed without an answer", rd.closed(),
          f"after {time.monotonic() - start:.1f} s: received {rd.buf[:200]!r}")
    s.close()
    check("the orders role still answers /healthz", healthy())


def section_connections():
    """Against an instance of its own with HTTP_MAX_CONNECTIONS set low (no other traffic)."""
    limit = int(ENV["HTTP_MAX_CONNECTIONS"])
    held = []
    for i in range(limit):
        s = connect(ORDERS)
        s.sendall(build("GET", "/healthz", {}, b"", ORDERS))
        r = Reader(s).response()
        if not check(f"idle keep-alive connection {i + 1} of {limit} served", r is not None and r[0] == 200, r):
            break
        held.append(s)
    check_eq("the orders listener holds HTTP_MAX_CONNECTIONS connections", float(limit),
             metric("shopd_http_connections_open", {"listener": "orders"}))
    extra = connect(ORDERS)
    try:
        extra.sendall(build("GET", "/healthz", {}, b"", ORDERS))
    except (BrokenPipeError, ConnectionResetError):
        pass
    check("one more connection is closed at once, unanswered", Reader(extra).response() is None)
    extra.close()
    check("the other roles' listeners are not affected", healthy(INVENTORY) and healthy(ANALYTICS))
    # The held connections still work.
    held[0].sendall(build("GET", "/healthz", {}, b"", ORDERS))
    r = Reader(held[0]).response()
    check("a held connection is still served", r is not None and r[0] == 200, r)
    for s in held:
        s.close()
    check("after they close, the orders listener serves again",
          wait_until(lambda: call(ORDERS, "GET", "/healthz")[0] == 200, 10))

    # A slow reader: it asks for far more than the socket buffers hold and drains it at 20 KB/s.
    # Each response must be taken within HTTP_WRITE_TIMEOUT_MS, so the server gives up on it
    # (the open-connection gauge of this otherwise idle instance says when) long before it is done.
    open_conns = lambda: metric("shopd_http_connections_open", {"listener": "orders"})
    check("no connection left open on orders", wait_until(lambda: open_conns() == 0, 30), open_conns())
    one = len(call(ORDERS, "GET", "/metrics")[2])
    # At most 2000 requests (60 KB: they fit the socket buffers, so sending never blocks), asking
    # for more than the kernel can buffer on both sides (a few MiB).
    count = min(2000, (32 * 1024 * 1024) // max(one, 1) + 1)
    print(f"info: slow reader asks for {count} x {one} bytes")
    s = connect(ORDERS, rcvbuf=4096)
    s.sendall(build("GET", "/metrics", {}, b"", ORDERS, length=False) * count)
    received = [0]
    stop = threading.Event()

    def drain():
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                chunk = s.recv(1024)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            received[0] += len(chunk)
            time.sleep(0.05)

    reader = threading.Thread(target=drain)
    reader.start()
    given_up = wait_until(lambda: open_conns() == 0, int(ENV["HTTP_WRITE_TIMEOUT_MS"]) / 1000 * 4 + 20)
    stop.set()
    reader.join()
    s.close()
    check("a slow reader is cut at the write timeout", given_up)
    check(f"... before it took the {count * one // 1024} KiB it asked for", received[0] < count * one,
          received[0])
    check("the orders listener serves on", healthy())


def section_pipeline():
    n = 500
    s = connect(ORDERS)
    reqs = []
    for i in range(n):
        target = ["/healthz", "/api/webhook", "/no/such/path", "/readyz"][i % 4]
        reqs.append(build("GET", target, {"X-Correlation-Id": f"pipe-{i}"}, b"", ORDERS, length=False))
    sender = threading.Thread(target=lambda: s.sendall(b"".join(reqs)))
    sender.start()
    rd = Reader(s)
    in_order = 0
    statuses_ok = 0
    for i in range(n):
        r = rd.response()
        if r is None:
            break
        if r[1].get("x-correlation-id") == f"pipe-{i}":
            in_order += 1
        want = 404 if i % 4 == 2 else 200
        if r[0] == want:
            statuses_ok += 1
    sender.join()
    check_eq(f"{n} pipelined requests answered in order", n, in_order)
    check_eq(f"{n} pipelined requests each with its own status", n, statuses_ok)
    s.sendall(build("GET", "/healthz", {"Connection": "close"}, b"", ORDERS))
    r = rd.response()
    check("the connection serves on afterwards", r is not None and r[0] == 200, r)
    s.close()

    # A pipelined flood whose sender never reads: the server stops at its socket buffers and cuts
    # the connection at HTTP_WRITE_TIMEOUT_MS; its memory does not follow the flood.
    pid = int(ENV["SHOPD_PID"])
    rss_before = rss_kib(pid)
    one = len(call(ORDERS, "GET", "/metrics")[2])
    count = max(2000, (256 * 1024 * 1024) // max(one, 1))
    s = connect(ORDERS, rcvbuf=4096)
    s.settimeout(0.5)
    flood = build("GET", "/metrics", {}, b"", ORDERS, length=False)
    sent = 0
    blob = flood * 64
    deadline = time.monotonic() + 15
    while sent < count and time.monotonic() < deadline:
        try:
            s.sendall(blob)
            sent += 64
        except socket.timeout:
            break  # the server no longer reads: its response writes are blocked
        except (BrokenPipeError, ConnectionResetError):
            break
    print(f"info: flood of {sent} pipelined GET /metrics ({one} bytes each) never read")
    check("other clients are served while the flood's writes are blocked", healthy())
    # Closed by the server: the kernel's TCP state of this socket leaves ESTABLISHED (a FIN or, with
    # requests still unread on the server's side, a reset), whatever the other connections do.
    cut = wait_until(lambda: tcp_state(s) != TCP_ESTABLISHED, int(ENV["HTTP_WRITE_TIMEOUT_MS"]) / 1000 * 4 + 20)
    rss_after = rss_kib(pid)
    print(f"info: server RSS {rss_before} KiB before, {rss_after} KiB after the flood")
    check("the never-reading client's connection is closed by the server", cut)
    check("the server's memory stays bounded (< 64 MiB growth) although "
          f"{sent * one // (1024 * 1024)} MiB of responses were asked for",
          rss_after - rss_before < 64 * 1024, f"{rss_before} -> {rss_after} KiB")
    s.close()
    check("the orders role still answers /healthz", healthy())


def hostile_json_bodies(sku):
    """(name, body bytes): documents the strict parser refuses, or that decode to refused values."""
    good = checkout_data("chk-json", sku)

    def with_(**kw):
        d = json.loads(json.dumps(good))
        d.update(kw)
        return json.dumps(d).encode()

    def qty(v):
        return json.dumps(good).replace('"quantity": 1', '"quantity": ' + v).encode()

    return [
        ("empty body", b""),
        ("not JSON", b"checkoutId=1&sku=x"),
        ("truncated JSON", json.dumps(good).encode()[:-3]),
        ("trailing comma", b'{"a":1,}'),
        ("a JSON array", b"[1,2,3]"),
        ("100000 nested [", b"[" * 100000),
        ("50000 nested {\"a\":", b'{"a":' * 50000),
        ("100001 values", b"[" + b"0," * 100000 + b"0]"),
        ("a 1e400 quantity", qty("1e400")),
        ("a 2^64 quantity", qty("18446744073709551616")),
        ("a 2^64-1 quantity", qty("18446744073709551615")),
        ("a -0 quantity", qty("-0")),
        ("a 30-digit quantity", qty("123456789012345678901234567890")),
        ("a 1.5 quantity", qty("1.5")),
        ("a string quantity", qty('"1"')),
        ("a price of 1e400", json.dumps(good)[:-1].encode() + b',"priceCents":1e400}'),
        ("invalid UTF-8 in the name", json.dumps(good).encode().replace(b"Ada Lovelace", b"Ada \xff\xfe Lovelace")),
        ("an overlong UTF-8 encoding", json.dumps(good).encode().replace(b"Ada Lovelace", b"Ada \xc0\xaf")),
        ("a lone surrogate escape", json.dumps(good).encode().replace(b"Ada Lovelace", b"Ada \\ud800")),
        ("a raw NUL byte in a string", json.dumps(good).encode().replace(b"Ada Lovelace", b"Ada\x00Lovelace")),
        ("an escaped NUL in the name", with_(customer={"email": "ada@example.test", "name": "Ada\u0000Lovelace"})),
        ("an escaped NUL in the email", with_(customer={"email": "ada\u0000@example.test", "name": "Ada"})),
        ("an escaped NUL in the sku", with_(items=[{"sku": sku + "\u0000", "quantity": 1}])),
        ("a NUL in the checkoutId", with_(checkoutId="chk\u0000x")),
        ("duplicate keys", json.dumps(good)[:-1].encode() + b',"currency":"USD"}'),
        ("a byte order mark", b"\xef\xbb\xbf" + json.dumps(good).encode()),
        ("two documents", json.dumps(good).encode() * 2),
        ("a 70000-byte string", with_(note="n" * 70000)),
        ("a name of spaces only", with_(customer={"email": "ada@example.test", "name": "\u00a0\u202f\u3000\ufeff"})),
    ]


# The field a refusal of POST /api/checkout names, for the bodies whose fault is in one place.
CHECKOUT_FIELD_AT_FAULT = {
    "100000 nested [": "[0]" * 32,
    "a 2^64 quantity": "items[0].quantity",
    "a string quantity": "items[0].quantity",
    "an escaped NUL in the name": "customer.name",
    "an escaped NUL in the email": "customer.email",
    "an escaped NUL in the sku": "items[0].sku",
    "a NUL in the checkoutId": "checkoutId",
    "duplicate keys": "currency",
    "a name of spaces only": "customer.name",
}


def section_json():
    sku = ENV["SKU"]
    bodies = hostile_json_bodies(sku)
    for name, body in bodies:
        for ctype in ("application/json", "text/plain"):
            r = call(ORDERS, "POST", "/api/checkout", {"Content-Type": ctype}, body)
            check(f"POST /api/checkout, {name} ({ctype}) -> 400 invalid_payload",
                  r[0] == 400 and is_error_json(r, "invalid_payload"), r[:1] + (r[2][:200],))
            if name in CHECKOUT_FIELD_AT_FAULT:
                check_eq(f"POST /api/checkout, {name}: the field named", CHECKOUT_FIELD_AT_FAULT[name],
                         (jbody(r) or {}).get("field"))
            if name == "a name of spaces only":
                check_eq(f"POST /api/checkout, {name}: why", "customer.name must not be blank",
                         (jbody(r) or {}).get("error"))
    # Content-Type is not consulted (QStash delivers whatever the publisher sent): the body is JSON or
    # it is refused.
    pid = os.getpid()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/xml", None):
        cid = f"chk-ctype-{pid}-{(ctype or 'none').replace('/', '-')}"
        h = {"Content-Type": ctype} if ctype else {}
        r = call(ORDERS, "POST", "/api/checkout", h, json.dumps(checkout_data(cid, sku)))
        check(f"POST /api/checkout, a JSON body labelled {ctype} -> 202", r[0] == 202, r[:1] + (r[2][:200],))
        body = envelope("command.checkout", checkout_data(cid + "-hook", sku)).encode()
        r = deliver(ORDERS, body, headers={"Content-Type": ctype or "application/octet-stream"})
        check(f"webhook, a JSON delivery labelled {ctype} -> 200", r[0] == 200, r[:1] + (r[2][:200],))
    # The admin APIs, with the bearer token.
    for name, body in bodies:
        r = call(INVENTORY, "POST", "/api/products", auth({"Content-Type": "application/json"}), body)
        check(f"POST /api/products, {name} -> 400", r[0] == 400 and is_error_json(r, "invalid_body"),
              r[:1] + (r[2][:200],))
        r = call(INVENTORY, "POST", f"/api/stock/{sku}/adjust", auth({"Content-Type": "application/json"}), body)
        check(f"POST /api/stock/{{sku}}/adjust, {name} -> 400", r[0] == 400 and is_error_json(r, "invalid_body"),
              r[:1] + (r[2][:200],))
    product = {"sku": "HOSTILE-P1", "name": "Hostile", "priceCents": 100, "currency": "EUR"}
    for name, value in (("1e400", "1e400"), ("2^64", "18446744073709551616"), ("2^63", "9223372036854775808"),
                        ("-2^63", "-9223372036854775808"), ("-0", "-0"), ("-0.0", "-0.0"),
                        ("30 digits", "123456789012345678901234567890"), ("0.5", "0.5"), ("1e2", "1e2")):
        body = json.dumps(product).replace('"priceCents": 100', '"priceCents": ' + value).encode()
        r = call(INVENTORY, "POST", "/api/products", auth(), body)
        # -0 is the integer 0 (a free product); every other value is not an integer in range.
        if value == "-0":
            check(f"POST /api/products with priceCents {name} -> 200/201, price 0",
                  r[0] in (200, 201) and (jbody(r) or {}).get("priceCents") == 0, r[:1] + (r[2][:200],))
        else:
            check(f"POST /api/products with priceCents {name} -> 400", r[0] == 400 and is_error_json(r, "invalid_body"),
                  r[:1] + (r[2][:200],))
        r = call(INVENTORY, "POST", f"/api/stock/{sku}/adjust", auth(),
                 '{"delta": ' + value + ', "reason": "adjustment"}')
        check(f"POST /api/stock/{{sku}}/adjust with delta {name} -> 400", r[0] == 400 and is_error_json(r),
              r[:1] + (r[2][:200],))
    r = call(INVENTORY, "POST", "/api/products", {"Content-Type": "application/json"}, json.dumps(product))
    check_eq("POST /api/products without the bearer token -> 401", 401, r[0])
    for bad in ("Bearer " + TOKEN + "x", "Bearer " + TOKEN[:-1], "Bearer ' OR '1'='1", "Basic " + TOKEN, TOKEN):
        r = call(ORDERS, "GET", "/api/orders?email=ada%40example.test", {"Authorization": bad})
        check("GET /api/orders with a wrong bearer token -> 401 + WWW-Authenticate",
              r[0] == 401 and r[1].get("www-authenticate") == "Bearer", r[:2])
    r = call(INVENTORY, "POST", "/api/products", auth({"Content-Type": "application/x-www-form-urlencoded"}),
             "sku=X&name=Y")
    check_eq("POST /api/products with a form body -> 400", 400, r[0])

    # The webhook, signed correctly so that each body reaches the parser: 489, never retried.
    for name, body in bodies:
        r = deliver(ORDERS, body)
        check(f"webhook, {name} -> 489 + Upstash-NonRetryable-Error",
              r[0] == 489 and r[1].get("upstash-nonretryable-error") == "true" and is_error_json(r),
              r[:1] + (r[2][:200],))
    # The same hostile bytes as the `data` of a well-formed envelope, spliced in verbatim.
    for name, body in bodies:
        wrapped = envelope("command.checkout", {}).encode()
        assert wrapped.endswith(b'"data": {}}')
        r = deliver(ORDERS, wrapped[:-3] + body + b"}")
        check(f"webhook, an envelope whose data is {name} -> 489 + Upstash-NonRetryable-Error",
              r[0] == 489 and r[1].get("upstash-nonretryable-error") == "true" and is_error_json(r),
              r[:1] + (r[2][:200],))
    for bad in ('{"eventId":"e1","eventType":"command.checkout","version":1e400}',
                '{"eventId":"e1","eventId":"e2"}', '{"version":18446744073709551616}'):
        r = deliver(ORDERS, bad)
        check(f"webhook, envelope {bad[:40]}... -> 489", r[0] == 489 and is_error_json(r), r[:1] + (r[2][:200],))
    r = deliver(ORDERS, envelope("order.created", {}))
    check("webhook, an event type the role does not consume -> 489", r[0] == 489, r[:1] + (r[2][:200],))
    # Analytics' failure callback is a signed endpoint too.
    callback = f"http://127.0.0.1:{ANALYTICS}/api/dlq/callback"
    for name, body in bodies[:8]:
        r = call(ANALYTICS, "POST", "/api/dlq/callback",
                 {"Upstash-Signature": jwt(body, callback), "Content-Type": "application/json"}, body)
        check(f"failure callback, {name} -> 4xx", 400 <= r[0] < 500 and r[0] != 401, r[:1] + (r[2][:200],))
    check("the orders role still answers /healthz", healthy())


def section_signatures():
    sku = ENV["SKU"]
    url = webhook_url(ORDERS)
    chk = "chk-sig-replay-" + str(os.getpid())
    body = envelope("command.checkout", checkout_data(chk, sku), event_id="evt-" + chk, correlation_id=chk).encode()
    token = jwt(body, url)
    first = deliver(ORDERS, body, token)
    check_eq("a signed delivery -> 200 processed", (200, "processed"), (first[0], (jbody(first) or {}).get("status")))
    again = deliver(ORDERS, body, token)
    check_eq("the same signed delivery replayed -> 200 duplicate", (200, "duplicate"),
             (again[0], (jbody(again) or {}).get("status")))
    resigned = deliver(ORDERS, body)
    check_eq("the same event under a fresh signature -> 200 duplicate", (200, "duplicate"),
             (resigned[0], (jbody(resigned) or {}).get("status")))
    orders = call(ORDERS, "GET", "/api/orders?email=ada%40example.test&limit=100", auth())
    ids = [o["orderId"] for o in (jbody(orders) or {}).get("orders", []) if o.get("checkoutId") == chk]
    check_eq("... and exactly one order came of it", 1, len(ids))
    # Forged or stale tokens: 401, the reason in the log (never in the answer).
    other = envelope("command.checkout", checkout_data(chk + "-forged", sku)).encode()
    now = int(time.time())
    cases = [
        ("missing header", False, "missing"),
        ("empty header", "", "missing"),
        ("garbage", "not.a.jwt", "malformed"),
        ("two segments", "eyJhbGciOiJIUzI1NiJ9.e30", "malformed"),
        ("over 8 KiB", "a" * 8100, None),
        ("alg=none, unsigned", jwt(other, url, alg="none", unsigned=True), "bad_algorithm"),
        ("alg=none with a MAC", jwt(other, url, alg="none"), "bad_algorithm"),
        ("alg=HS512", jwt(other, url, alg="HS512"), "bad_algorithm"),
        ("signed with a wrong key", jwt(other, url, key="sig_attacker"), "bad_signature"),
        ("signature of another body", jwt(body, url), "body_mismatch"),
        ("a body hash that is not the body's", jwt(other, url, body_hash="A" * 43 + "="), "body_mismatch"),
        ("expired", jwt(other, url, iat=now - 1000, exp=now - 600), "expired"),
        ("not yet valid", jwt(other, url, nbf=now + 600, exp=now + 900), "not_yet_valid"),
        ("another role's URL as sub", jwt(other, webhook_url(INVENTORY)), "wrong_subject"),
        ("sub with a different path", jwt(other, url + "/../webhook"), "wrong_subject"),
        ("wrong issuer", jwt(other, url, iss="Mallory"), "wrong_issuer"),
    ]
    for name, tok, reason in cases:
        r = deliver(ORDERS, other, tok)
        if name == "over 8 KiB":
            check(f"signature {name} -> 401 or 431", r[0] in (401, 431), r[:1] + (r[2][:200],))
            continue
        check(f"signature {name} -> 401 unauthorized", r[0] == 401 and is_error_json(r, "unauthorized"),
              r[:1] + (r[2][:200],))
        rejected = metric("shopd_webhook_signature_rejected_total", {"role": "orders", "reason": reason})
        check(f"... counted under reason {reason}", rejected is not None and rejected >= 1, rejected)
    r = deliver(ORDERS, other, jwt(other, url, key=NEXT_KEY))
    check("a token signed with the next key is accepted", r[0] == 200, r[:1] + (r[2][:200],))
    check("the orders role still answers /healthz", healthy())


SQL_META = "'\";--/*\\%_"


def section_sql():
    sku = ENV["SKU"]
    pid = os.getpid()
    # Every metacharacter the id rule allows, in the checkoutId; all of them in name and note.
    chk = f"chk-sql-{pid}-'\";--/*\\%_*/"
    email = f"o'brien--/*%_*/{pid}@example.test"   # the address rule forbids ; " \ but allows the rest
    name = "Robert'); DROP TABLE orders;-- \" /* \\ % _"
    note = "1' OR '1'='1'; DELETE FROM checkouts; -- /* */ \\ % _"
    address = {"line1": "1 O'Reilly St; --", "city": "Sm\"ith /* %_", "country": "GB"}
    body = json.dumps(checkout_data(chk, sku, email=email, name=name, note=note, shippingAddress=address))
    r = call(ORDERS, "POST", "/api/checkout", {"Content-Type": "application/json"}, body)
    check_eq("a checkout with SQL metacharacters in every text field -> 202", 202, r[0])
    location = r[1].get("location", "")
    check("its Location percent-encodes the checkoutId", location.startswith("/api/checkouts/") and "'" not in
          location and "%" in location, location)
    st = lambda: (jbody(call(ORDERS, "GET", location, auth())) or {}).get("status")
    check("the checkout is accepted", wait_until(lambda: st() == "accepted", 30), st())
    q = "/api/orders?email=" + urllib.parse.quote(email, safe="")
    orders = (jbody(call(ORDERS, "GET", q, auth())) or {}).get("orders", [])
    check_eq("GET /api/orders?email=<metacharacters> finds exactly that order", 1, len(orders))
    if orders:
        o = orders[0]
        check_eq("checkoutId stored verbatim", chk, o.get("checkoutId"))
        check_eq("customer name stored verbatim", name, o.get("customer", {}).get("name"))
        check_eq("customer email stored verbatim", email, o.get("customer", {}).get("email"))
        check_eq("note stored verbatim", note, o.get("note"))
        check_eq("address stored verbatim", address["line1"], (o.get("shippingAddress") or {}).get("line1"))
        got = call(ORDERS, "GET", "/api/orders/" + urllib.parse.quote(o["orderId"], safe=""), auth())
        check_eq("GET /api/orders/{id} answers 200", 200, got[0])
        emails = call(EMAIL, "GET", "/api/emails?orderId=" + urllib.parse.quote(o["orderId"], safe=""), auth())
        check_eq("GET /api/emails?orderId= answers 200", 200, emails[0])

    # The same through a signed delivery straight to the webhook.
    chk2 = f"chk-sqlw-{pid}-'%_--;"
    r = deliver(ORDERS, envelope("command.checkout", checkout_data(chk2, sku, email=email, name=name),
                                 correlation_id=chk2))
    check_eq("a delivered checkout with metacharacters -> 200 processed", 200, r[0])
    got = jbody(call(ORDERS, "GET", "/api/checkouts/" + urllib.parse.quote(chk2, safe=""), auth())) or {}
    check_eq("... accepted under its verbatim id", "accepted", got.get("status"))

    # Fields whose rules forbid them: refused with 400 naming the field.
    for field, data in (
        ("items[0].sku", checkout_data("chk-sql-sku", "X' OR '1'='1")),
        ("items[0].sku", checkout_data("chk-sql-sku2", "%")),
        ("customer.email", checkout_data("chk-sql-mail", sku, email="a';--@example.test")),
        ("customer.email", checkout_data("chk-sql-mail2", sku, email='a"b@example.test')),
        ("checkoutId", checkout_data("chk sql with spaces", sku)),
        ("currency", dict(checkout_data("chk-sql-cur", sku), currency="E'R")),
    ):
        r = call(ORDERS, "POST", "/api/checkout", {"Content-Type": "application/json"}, json.dumps(data))
        check(f"POST /api/checkout with metacharacters in {field} -> 400 naming it",
              r[0] == 400 and (jbody(r) or {}).get("field") == field, r[:1] + (r[2][:200],))
    # A SKU that is valid but unknown (LIKE wildcards must not match anything).
    r = call(ORDERS, "POST", "/api/checkout", {"Content-Type": "application/json"},
             json.dumps(checkout_data("chk-sql-wild", sku[:3] + "_" + sku[4:])))
    check("a SKU with a _ where another SKU has a letter is unknown, not a wildcard -> 400",
          r[0] == 400 and "sku" in (jbody(r) or {}).get("field", ""), r[:1] + (r[2][:200],))

    # Query parameters.
    def enc(text):
        return urllib.parse.quote(text, safe="")
    cases = [
        (ORDERS, "/api/orders?email=" + enc("' OR '1'='1"), (400,)),
        (ORDERS, "/api/orders?email=" + enc("%@example.test"), (200,)),
        (ORDERS, "/api/orders?email=" + enc("_@example.test"), (200,)),
        (ORDERS, "/api/orders?email=" + enc(email) + "&cursor=" + enc("'; DROP TABLE orders; --"), (400,)),
        (ORDERS, "/api/orders?email=" + enc(email) + "&limit=" + enc("1; --"), (400,)),
        (ORDERS, "/api/orders?email=" + enc(email) + "&limit=18446744073709551616", (400,)),
        (ORDERS, "/api/checkouts/" + enc("' OR 1=1 --"), (400,)),
        (ORDERS, "/api/checkouts/" + enc(SQL_META), (200,)),
        (ORDERS, "/api/orders/" + enc(SQL_META), (404,)),
        (ANALYTICS, "/api/audit?entityId=" + enc(SQL_META), (200,)),
        (ANALYTICS, "/api/audit?action=" + enc("x' OR '1'='1"), (400, 200)),
        (ANALYTICS, "/api/audit?correlationId=" + enc(chk), (200,)),
        (ANALYTICS, "/api/audit?since=" + enc("0; DROP TABLE audit"), (400,)),
        (ANALYTICS, "/api/audit?since=" + enc("99999999999999999999"), (400,)),
        (ANALYTICS, "/api/audit?cursor=" + enc("'--"), (400,)),
        (ANALYTICS, "/api/audit?limit=" + enc("%_"), (400,)),
        (ANALYTICS, "/api/dlq?cursor=" + enc("/*"), (400,)),
        (ANALYTICS, "/api/dlq?limit=-0", (400,)),
        (ANALYTICS, "/api/metrics/summary?since=" + enc("';"), (400, 200)),
        (EMAIL, "/api/emails?orderId=" + enc(SQL_META), (200, 400)),
        (EMAIL, "/api/emails?to=" + enc("' OR 1=1"), (200, 400)),
        (EMAIL, "/api/emails/" + enc("1 OR 1=1"), (400, 404)),
        (INVENTORY, "/api/products?active=" + enc("true' --"), (400,)),
        (INVENTORY, "/api/products?cursor=" + enc("\\"), (400,)),
        (INVENTORY, "/api/products/" + enc("X' OR '1'='1"), (400, 404)),
        (INVENTORY, "/api/products/" + enc("%"), (400, 404)),
        (INVENTORY, "/api/stock/" + enc("_") + "/movements", (404,)),
        (INVENTORY, "/api/stock/" + enc(sku) + "/movements?cursor=" + enc("';"), (400,)),
    ]
    for port, target, want in cases:
        r = call(port, "GET", target, auth())
        check(f"GET {target} -> {'/'.join(map(str, want))}", r[0] in want and is_error_json(r) == (r[0] >= 400),
              r[:1] + (r[2][:200],))
    audit = jbody(call(ANALYTICS, "GET", "/api/audit?entityId=" + enc(SQL_META), auth())) or {}
    check_eq("an entityId of metacharacters matches nothing", [], audit.get("records"))
    nobody = jbody(call(ORDERS, "GET", "/api/orders?email=" + enc("%@example.test"), auth())) or {}
    check_eq("a % address matches no other customer's orders", [], nobody.get("orders"))
    got = jbody(call(ORDERS, "GET", "/api/checkouts/" + enc(SQL_META), auth())) or {}
    check_eq("a checkoutId of metacharacters is simply pending", "pending", got.get("status"))
    # Admin writes with metacharacters where the rules allow them.
    r = call(INVENTORY, "POST", "/api/products", auth(),
             json.dumps({"sku": "HOSTILE-SQL_1", "name": name, "priceCents": 100, "currency": "EUR", "stock": 5}))
    check("POST /api/products with a metacharacter name -> 201", r[0] in (200, 201), r[:1] + (r[2][:200],))
    p = jbody(call(INVENTORY, "GET", "/api/products/HOSTILE-SQL_1")) or {}
    check_eq("... the name stored verbatim", name, p.get("name"))
    r = call(INVENTORY, "POST", f"/api/stock/{sku}/adjust", auth(),
             json.dumps({"delta": 1, "reason": "restock", "note": note}))
    check_eq("POST /api/stock/{sku}/adjust with a metacharacter note -> 200", 200, r[0])
    # Tables intact: the catalogue is whole and orders are still listed.
    products = (jbody(call(INVENTORY, "GET", "/api/products?limit=100")) or {}).get("products", [])
    check("the catalogue is intact", len(products) >= 9 and any(p["sku"] == sku for p in products), len(products))
    check("the orders role still answers /healthz", healthy())


SECTIONS = {"limits": section_limits, "slow": section_slow, "connections": section_connections,
            "pipeline": section_pipeline, "json": section_json, "signatures": section_signatures,
            "sql": section_sql}

if __name__ == "__main__":
    socket.setdefaulttimeout(IO_TIMEOUT)
    for name in sys.argv[1:]:
        print(f"== {name}")
        SECTIONS[name]()
    print(f"hostile.py {' '.join(sys.argv[1:])}: {checks} checks, {failures} failed")
    sys.exit(min(failures, 100))
