#!/usr/bin/python3
"""free_ports.py N: N distinct TCP ports on 127.0.0.1 that nothing listens on right now (the kernel's
choice), on one line, for the test and benchmark scripts that start servers.

The ports are held together until all are chosen: taken one at a time, before anything listens on
them, the kernel can hand out the same port twice (seen: a shopd given one port for two roles
failed with "Address already in use")."""
import socket
import sys


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


if __name__ == "__main__":
    print(" ".join(map(str, free_ports(int(sys.argv[1]) if len(sys.argv) > 1 else 1))))
