#!/usr/bin/python3
"""A delivery destination for the relay's process-level tests (standard library only).

Listens on 127.0.0.1 (a free port unless --port), prints "LISTENING <port>" once it accepts, and
appends one line per request to --log: "<Upstash-Message-Id> <Upstash-Retried> <path>", flushed
before answering. The first --hold requests are never answered (the connection stays open until
the process ends): a delivery caught mid-flight; with --hold-ms they are answered after that many
milliseconds instead: a slow destination. Every answer is 200 with --body (default "ok").
"""

import argparse
import http.server
import sys
import threading


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--hold", type=int, default=0)
    parser.add_argument("--hold-ms", type=int, default=None)
    parser.add_argument("--body", default="ok")
    args = parser.parse_args()
    body = args.body.encode("utf-8")

    lock = threading.Lock()
    state = {"hold": args.hold}
    log = open(args.log, "a", buffering=1, encoding="utf-8")
    forever = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            with lock:
                log.write("%s %s %s\n" % (self.headers.get("Upstash-Message-Id", "-"),
                                          self.headers.get("Upstash-Retried", "-"), self.path))
                log.flush()
                hold = state["hold"] > 0
                if hold:
                    state["hold"] -= 1
            if hold:
                if args.hold_ms is None:
                    forever.wait()
                    return
                forever.wait(args.hold_ms / 1000.0)
            self.send_response(200)
            self.send_header("Content-Type", "application/json" if body[:1] in (b"[", b"{") else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

        def log_message(self, *_args) -> None:  # the request log is --log
            pass

    class Server(http.server.ThreadingHTTPServer):
        # The listen backlog: socketserver's default of 5 overflows when relays open their delivery
        # slots' connections at once (64 per destination each); attempts whose connection did not
        # make it failed before they reached this server and were retried (relay_process_test
        # found 1-30 of 200 messages retried in about half of its runs).
        request_queue_size = 1024

    server = Server(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("LISTENING %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
