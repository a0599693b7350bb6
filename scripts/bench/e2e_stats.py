#!/usr/bin/python3
"""Publish-to-email latency and throughput of one e2e run, as rows for the results table.

   e2e_stats.py PUBLISHED.csv MAIL_DIR LABEL RATE

An email is matched to its checkout by its recipient, bench-<index>@example.test; its time is the
file's mtime (the file transport writes, fsyncs and renames it into place)."""
import csv
import os
import re
import sys

published_csv, mail_dir, label, rate = sys.argv[1:5]
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
    target = "≥ 2000" if rate == "0" and "sqlite" in label else ""
    row("checkouts/s, first publish to last email", f"{len(written) / (last - first):.0f}", target)
    target = "p99 < 50 ms" if rate == "500" and "sqlite" in label else ""
    row("publish → email p50 / p99 / max", f"{pct(50):.1f} / {pct(99):.1f} / {latencies[-1] * 1000:.1f} ms", target)
