#!/usr/bin/python3
"""Start-up time to ready and idle RSS of `shopd serve` per role, as rows for the results table.

   startup.py SHOPD WORK_DIR

Each role starts RUNS times on an already migrated SQLite database; the time is from exec to the
"ready" log line (read from a pipe), the RSS is VmRSS one second after ready. Medians are reported."""
import os
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from free_ports import free_ports  # noqa: E402  (scripts/free_ports.py)

shopd, work = sys.argv[1:3]
RUNS = 5
ROLES = ["orders", "email", "inventory", "analytics", "relay", "all"]


os.makedirs(work, exist_ok=True)
env = dict(os.environ)
env.update({
    "DATABASE_URL": f"sqlite:{work}/shopd.db",
    "QSTASH_TOKEN": "bench-qstash-token",
    "QSTASH_CURRENT_SIGNING_KEY": "sig_bench_current",
    "QSTASH_NEXT_SIGNING_KEY": "sig_bench_next",
    "SHOPD_API_TOKEN": "bench-api-token",
    "MAIL_TRANSPORT": f"file:{work}/mail",
    "LOG_FORMAT": "json",
})
LISTENERS = ["ORDERS", "EMAIL", "INVENTORY", "ANALYTICS", "RELAY"]
for role, port in zip(LISTENERS, free_ports(len(LISTENERS))):
    env[f"{role}_PORT"] = str(port)
    if role == "RELAY":
        env["QSTASH_URL"] = f"http://127.0.0.1:{port}"
    else:
        env[f"{role}_SERVICE_URL"] = f"http://127.0.0.1:{port}"
subprocess.run([shopd, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)


def start_once(role):
    begin = time.perf_counter()
    p = subprocess.Popen([shopd, "serve", f"--role={role}"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        for line in p.stdout:
            if b'"msg":"ready"' in line:
                ready = time.perf_counter() - begin
                break
        else:
            raise SystemExit(f"shopd --role={role} exited before ready")
        time.sleep(1)
        with open(f"/proc/{p.pid}/status") as f:
            rss_kb = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        return ready, rss_kb
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=15)


for role in ROLES:
    runs = [start_once(role) for _ in range(RUNS)]
    ready = statistics.median(r[0] for r in runs) * 1000
    rss = statistics.median(r[1] for r in runs) / 1024
    print(f"start-up --role={role}\ttime to ready (median of {RUNS})\t{ready:.1f} ms\t< 100 ms")
    print(f"start-up --role={role}\tidle RSS\t{rss:.1f} MB\t< 30 MB")
