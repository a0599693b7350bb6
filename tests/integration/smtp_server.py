#!/usr/bin/python3
"""A real SMTP server (aiosmtpd) for shopd's integration tests.

Run with Debian's interpreter, /usr/bin/python3, which has python3-aiosmtpd. The server binds
127.0.0.1 on a free port chosen by the kernel and prints "LISTENING <port>" on stdout once it
accepts connections. It stops on SIGTERM, SIGINT or when its stdin reaches end of file (so it
never outlives a test that died without stopping it), or with --parent-pid when that process is gone).

Modes:
  sink        accept everything; each message is stored in --dir as N.eml (the bytes received
              after DATA) and N.json ({"mail_from", "rcpt_tos", "tls", "auth_login"}), written
              atomically.
  tls-auth    like sink, but STARTTLS (--cert/--key) is required before anything else and AUTH
              (PLAIN or LOGIN) with --user/--password is required before MAIL. With
              --implicit-tls, TLS starts with the connection instead (smtps://).
  reject-rcpt like sink, but RCPT TO --reject ADDRESS gets "550 5.1.1 ... User unknown".
  tempfail    every command after the greeting gets "451 4.3.0 ..." (--stage all), or only the
              end of DATA does (--stage data: the message is received, then refused).
  stall       a server that hangs: connections are accepted and held open, and never get a greeting
              or any other byte (until the server stops and closes them).
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self, directory, reject=None):
        self.directory = directory
        self.reject = {r.lower() for r in (reject or [])}
        # A server restarted on the same directory numbers on from the messages already there,
        # rather than overwrite them.
        numbers = [int(n.split(".")[0]) for n in os.listdir(directory) if n.split(".")[0].isdigit()]
        self.count = max(numbers, default=0)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.directory, str(self.count))
        auth = session.auth_data
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "auth_login": auth.login.decode() if isinstance(auth, LoginPassword) else None,
        }
        # The .json is written last: once it exists, the message is complete.
        write_atomically(base + ".eml", envelope.original_content)
        write_atomically(base + ".json", json.dumps(meta).encode())
        return f"250 2.0.0 Ok: queued as {self.count}"


class TempFail:
    def __init__(self, stage):
        self.stage = stage
        self.reply = "451 4.3.0 Temporary local problem, try again later"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return [self.reply] if self.stage == "all" else responses

    async def handle_HELO(self, server, session, envelope, hostname):
        session.host_name = hostname
        return self.reply if self.stage == "all" else f"250 {server.hostname}"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.stage == "all":
            return self.reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.stage == "all":
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        return self.reply


class Stall(asyncio.Protocol):
    """Accepts, reads and discards, never answers."""

    held = set()

    def connection_made(self, transport):
        self.transport = transport
        Stall.held.add(transport)

    def connection_lost(self, exc):
        Stall.held.discard(self.transport)


def write_atomically(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def make_authenticator(user, password):
    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == user.encode()
              and auth_data.password == password.encode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
    return authenticate


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["sink", "tls-auth", "reject-rcpt", "tempfail", "stall"])
    p.add_argument("--dir", help="where sink modes store messages")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--reject", action="append", default=[])
    p.add_argument("--stage", choices=["all", "data"], default="all")
    p.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    p.add_argument("--parent-pid", type=int,
                   help="stop when this process is gone (instead of when stdin reaches EOF)")
    args = p.parse_args()

    kwargs = {"hostname": "localhost"}
    context = None  # not socket.getfqdn(): no DNS lookups in tests
    if args.mode == "tempfail":
        handler = TempFail(args.stage)
    elif args.mode == "stall":
        handler = None
    else:
        if not args.dir:
            p.error("--dir is required in this mode")
        handler = Sink(args.dir, args.reject if args.mode == "reject-rcpt" else None)
    if args.mode == "tls-auth":
        if not (args.cert and args.key and args.user and args.password is not None):
            p.error("tls-auth needs --cert, --key, --user and --password")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        kwargs.update(auth_required=True, authenticator=make_authenticator(args.user, args.password))
        if args.implicit_tls:
            # aiosmtpd only knows about TLS it negotiated itself; here the whole connection is TLS.
            kwargs.update(auth_require_tls=False)
        else:
            kwargs.update(tls_context=context, require_starttls=True, auth_require_tls=True)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    if args.mode == "stall":
        server = loop.run_until_complete(loop.create_server(Stall, sock=sock))
    else:
        server = loop.run_until_complete(
            loop.create_server(lambda: SMTP(handler, loop=loop, **kwargs), sock=sock,
                               ssl=context if args.implicit_tls else None))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)

    if args.parent_pid:
        def watch_parent():
            try:
                os.kill(args.parent_pid, 0)
                loop.call_later(0.2, watch_parent)
            except ProcessLookupError:
                loop.stop()
        watch_parent()
    else:
        def on_stdin():
            if not os.read(sys.stdin.fileno(), 4096):
                loop.stop()
        loop.add_reader(sys.stdin.fileno(), on_stdin)

    print(f"LISTENING {sock.getsockname()[1]}", flush=True)
    try:
        loop.run_forever()
    finally:
        for transport in list(Stall.held):
            transport.close()
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


if __name__ == "__main__":
    main()
