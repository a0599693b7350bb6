#!/usr/bin/python3
"""Throughput (to the last delivery and to the last email) and publish-to-email latency of one e2e run,
   as rows for the results table.

   e2e_stats.py PUBLISHED.csv MAIL_DIR LABEL RATE LAST_DELIVERY_MS DELIVERED_BEFORE DELIVERED_AFTER BACKLOG

LAST_DELIVERY_MS: when the relay finished its last delivery (Unix ms); DELIVERED_*: the relay's
shopd_relay_delivered_total before the first publish and after the last delivery; BACKLOG: messages
and outbox rows still unfinished when the run stopped waiting (0 when everything was delivered).

An email is matched to its checkout by its recipient, bench-<index>@example.test; its time is the
file's mtime (the file transport writes, fsyncs and renames it into place)."""
import csv
import os
import re
import sys

(published_csv, mail_dir, label, rate,
 last_delivery_ms, delivered_before, delivered_after, backlog) = sys.argv[1:9]
published = {}
with open(published_csv) as f:
    for row in csv.DictReader(f):
        published[int(row["index"])] = int(row["publish_unix_us"]) / 1e6

recipient = re.compile(rb"bench-(\d+)@example\.test")
written = {}
for name in os.listdir(mail_dir) if os.path.isdir(mail_dir) else []:
    if not name.endswith(".eml"):
        continue
    path = os.path.join(mail_dir, name)
    with open(path, "rb") as f:
        m = recipient.search(f.read(4096))
    if m:
        written[int(m.group(1))] = os.stat(path).st_mtime_ns / 1e9

latencies = sorted(written[i] - published[i] for i in written if i in published)


def pct(p):
    return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000


def row(metric, value, target=""):
    print(f"{label}\t{metric}\t{value}\t{target}")


row("emails written / checkouts", f"{len(written)} / {len(published)}")
if latencies:
    first, last = min(published.values()), max(written.values())
    # The rate the platform sustains: a checkout is done when every event it caused is delivered
    # (its email is written sooner; at max rate the analytics deliveries queue behind for seconds).
    if backlog == "0" and last_delivery_ms:
        done = max(last, int(last_delivery_ms) / 1000)
        deliveries = float(delivered_after) - float(delivered_before)
        target = "≥ 2000" if rate == "0" and "sqlite" in label else ""
        row("checkouts/s, first publish to last delivery", f"{len(written) / (done - first):.0f}", target)
        row("relay deliveries/s, first publish to last delivery", f"{deliveries / (done - first):.0f}")
    else:
        left = f"not reached: {backlog} messages or outbox rows left"
        row("checkouts/s, first publish to last delivery", left)
    row("checkouts/s, first publish to last email", f"{len(written) / (last - first):.0f}")
    target = "p99 < 50 ms" if rate == "500" and "sqlite" in label else ""
    row("publish → email p50 / p99 / max", f"{pct(50):.1f} / {pct(99):.1f} / {latencies[-1] * 1000:.1f} ms", target)
