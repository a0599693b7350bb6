#!/usr/bin/python3
"""Run one instance of an installed systemd unit the way systemd would, without systemd or root.

  run-unit.py --root ROOT --unit UNIT_FILE --instance NAME --run-dir DIR

Reads the [Service] section of UNIT_FILE, substitutes %i/%I (the instance) and %%, and maps every
absolute path it names (ExecStart's binary and arguments, EnvironmentFile=, WorkingDirectory=,
StateDirectory=) into ROOT, the temporary root the package was installed into. Then, as systemd
does for Type=notify: creates StateDirectory= below ROOT/var/lib and sets $STATE_DIRECTORY, starts
ExecStart= in WorkingDirectory= with only the variables of EnvironmentFile= (parsed by systemd's
rules) plus PATH, NOTIFY_SOCKET (a datagram socket this process listens on) and WATCHDOG_USEC (from
WatchdogSec=). It writes the service's pid to DIR/NAME.pid, every notification it receives to
DIR/NAME.notify (one per line, newlines inside shown as ' | '), and, once the service exits, its
exit status to DIR/NAME.exit (negative: killed by that signal). The service is killed should this
process die first. Unsupported settings that would change how the service runs are an error.
"""

import argparse
import ctypes
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys

# Settings this runner reproduces, and settings that only restrict or describe the service (a
# sandbox a test cannot apply without root); anything else in [Service] is refused.
HANDLED = {"Type", "ExecStart", "EnvironmentFile", "WorkingDirectory", "StateDirectory", "WatchdogSec",
           "NotifyAccess", "KillSignal"}
RESTRICTIONS = re.compile(
    r"^(User|Group|DynamicUser|StateDirectoryMode|Restart|RestartSec|RestartPreventExitStatus|TimeoutStopSec|"
    r"Limit[A-Z]+|NoNewPrivileges|Protect[A-Za-z]+|Private[A-Za-z]+|ProcSubset|Restrict[A-Za-z]+|"
    r"LockPersonality|MemoryDenyWriteExecute|RemoveIPC|UMask|CapabilityBoundingSet|AmbientCapabilities|"
    r"SystemCall[A-Za-z]+|DevicePolicy|KeyringMode|IPAddress[A-Za-z]+)$")


def die(msg):
    print(f"run-unit: {msg}", file=sys.stderr)
    sys.exit(2)


def parse_unit(path, instance):
    service, section = {}, None
    for raw in open(path, encoding="utf-8"):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
            continue
        if section != "[Service]":
            continue
        key, _, value = line.partition("=")
        value = re.sub(r"%(.)", lambda m: {"i": instance, "I": instance, "%": "%"}.get(m.group(1)) or
                       die(f"unsupported specifier %{m.group(1)} in {key}"), value.strip())
        service.setdefault(key.strip(), []).append(value)
    for key in service:
        if key not in HANDLED and not RESTRICTIONS.match(key):
            die(f"{path}: [Service] {key}= is not something this runner can reproduce")
    return service


def one(service, key, default=None):
    values = service.get(key, [])
    if len(values) > 1:
        die(f"{key}= given {len(values)} times")
    return values[0] if values else default


def env_file(path):
    """systemd's EnvironmentFile= rules: KEY=VALUE, # or ; comment lines, quotes, backslash escapes."""
    env = {}
    for n, raw in enumerate(open(path, encoding="utf-8"), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, eq, value = line.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            die(f"{path}:{n}: not KEY=VALUE")
        value = value.strip()
        if value[:1] in ("'", '"'):  # a quoted value: the quotes go, escapes apply inside "..."
            try:
                parts = shlex.split(value, comments=False, posix=True)
            except ValueError as e:
                die(f"{path}:{n}: {e}")
            value = "".join(parts)
        env[key.strip()] = value  # unquoted: taken as is, spaces and a trailing '# ...' included
    return env


def seconds(text):
    m = re.fullmatch(r"(\d+)\s*(s|sec|min|m|ms)?", text)
    if not m:
        die(f"WatchdogSec={text} not understood")
    n, unit = int(m.group(1)), m.group(2) or "s"
    return n * {"s": 1, "sec": 1, "min": 60, "m": 60, "ms": 0.001}[unit]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--unit", required=True)
    ap.add_argument("--instance", required=True)
    ap.add_argument("--run-dir", required=True)
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    rooted = lambda p: root + p if p.startswith("/") else p  # noqa: E731

    service = parse_unit(a.unit, a.instance)
    if one(service, "Type") != "notify":
        die("only Type=notify units are supported")
    # Arguments that are paths, alone or as --option=/path, move into ROOT too.
    argv = [re.sub(r"^(--[A-Za-z0-9-]+=)?(/.*)$", lambda m: (m.group(1) or "") + rooted(m.group(2)), arg)
            for arg in shlex.split(one(service, "ExecStart") or die("no ExecStart="))]
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    for spec in service.get("EnvironmentFile", []):
        optional = spec.startswith("-")
        path = rooted(spec.lstrip("-"))
        if not os.path.exists(path):
            if optional:
                continue
            die(f"EnvironmentFile {path} does not exist")
        env.update(env_file(path))
    state = one(service, "StateDirectory")
    if state:
        env["STATE_DIRECTORY"] = rooted("/var/lib/" + state)
        os.makedirs(env["STATE_DIRECTORY"], mode=0o750, exist_ok=True)
    cwd = rooted(one(service, "WorkingDirectory", "/"))
    if not os.path.isdir(cwd):
        die(f"WorkingDirectory {cwd} does not exist")
    watchdog = one(service, "WatchdogSec")
    if watchdog:
        env["WATCHDOG_USEC"] = str(int(seconds(watchdog) * 1_000_000))

    run = a.run_dir
    sock_path = os.path.join(run, a.instance + ".sock")
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    env["NOTIFY_SOCKET"] = sock_path
    log = open(os.path.join(run, a.instance + ".notify"), "a", buffering=1, encoding="utf-8")

    def receive(block):
        sock.setblocking(block)
        try:
            data = sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return False
        log.write(data.decode("utf-8", "replace").replace("\n", " | ") + "\n")
        return True

    libc = ctypes.CDLL(None, use_errno=True)
    child = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                             preexec_fn=lambda: libc.prctl(1, signal.SIGKILL))  # PR_SET_PDEATHSIG
    with open(os.path.join(run, a.instance + ".pid"), "w") as f:
        f.write(f"{child.pid}\n")
    for sig in (signal.SIGTERM, signal.SIGINT):  # systemd's `stop` goes to the service, so does ours
        signal.signal(sig, lambda s, _f: child.send_signal(s))
    while child.poll() is None:
        if select.select([sock], [], [], 0.1)[0]:
            receive(False)
    while receive(False):  # what it sent before exiting
        pass
    with open(os.path.join(run, a.instance + ".exit"), "w") as f:
        f.write(f"{child.returncode}\n")


if __name__ == "__main__":
    main()
