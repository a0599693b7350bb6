#!/usr/bin/python3
"""The invariants of the fault-injection tests (tests/integration/fault_test.sh), checked against the
shared database, the SMTP sink's mailbox and the relay's and analytics' APIs once the platform is quiet.

  fault_check.py pending --db DB
      prints how much is still under way: unsent outbox rows + relay messages not finished
      (CREATED, ACTIVE or RETRY); 0 means quiescent.
  fault_check.py undecided --db DB --plan PLAN
      prints how many orderable checkoutIds of the plan the orders role has not decided yet
      (accepted or rejected for want of stock); 0 once every one has been.
  fault_check.py check --db DB --plan PLAN --initial STOCK.json --mail DIR --relay URL
                 --analytics URL [--max-duplicates N]
      checks, printing one line per invariant with its counts, exit status 1 if any fails:
      - one accepted checkout and one order per distinct planned checkoutId, with the planned cart;
        no other order; a checkout with an unknown SKU rejected;
      - stock: one ledger row per order line (applied, or a recorded shortfall when the stock could
        not cover it), stock = initial + the applied deltas = initial - the ordered quantities that
        were applied, never negative;
      - email: one `sent` row per order, every order's message at the SMTP server; duplicates
        (the same Message-ID handed over twice: SMTP accepted it, then the email role was killed
        before recording it) are counted and must not exceed --max-duplicates;
      - every event accounted for: no unsent outbox row; no relay message unfinished; every event an
        outbox published (and every planned command) in its consumer's inbox, or in the relay's DLQ;
        every relay DLQ entry reported to analytics; only refused checkouts in the DLQ (the
        retries outlast the faults the tests inject, and `dead` below accounts for the rest).
  fault_check.py dead --db DB --plan PLAN
      the dead letters that are not refused checkouts (a delivery whose every attempt met its
      destination killed or restarting: possible when a slow machine stretches the restarts over
      the whole retry schedule): prints their DLQ ids, one a line, for `shopd dlq replay`, and why
      each died on stderr; exit status 1 if any of them did not use all its retries or ended on an
      answer that is not transient (an HTTP status below 500), which no fault here explains.

DB is `sqlite:PATH` or a `postgresql://` URL (read with psql).
"""

import argparse
import collections
import email.parser
import json
import os
import sqlite3
import subprocess
import sys
import urllib.request

CONSUMER = {
    "command.checkout": "orders",
    "order.created": "analytics",
    "notification.email": "email",
    "inventory.stock.updated": "inventory",
    "analytics.audit": "analytics",
    "analytics.metric": "analytics",
    "analytics.dlq": "analytics",
}


def text(v):
    if v is None:
        return ""
    return v.decode() if isinstance(v, bytes) else str(v)


class Db:
    def __init__(self, url):
        self.url = url
        self.lite = sqlite3.connect(url[len("sqlite:"):], timeout=30) if url.startswith("sqlite:") else None

    def rows(self, sql):
        if self.lite is not None:
            return [tuple(text(v) for v in r) for r in self.lite.execute(sql)]
        out = subprocess.run(["psql", self.url, "-X", "-v", "ON_ERROR_STOP=1", "-qAt", "-F", "\x1f", "-c", sql],
                             check=True, capture_output=True, text=True).stdout
        return [tuple(line.split("\x1f")) for line in out.splitlines()]

    def value(self, sql):
        return int(self.rows(sql)[0][0])


def pending(db):
    outbox = db.value("SELECT COUNT(*) FROM outbox WHERE sent_at_ms IS NULL")
    relay = db.value("SELECT COUNT(*) FROM relay_messages WHERE state IN ('CREATED', 'ACTIVE', 'RETRY')")
    return outbox + relay


def get_json(url, token):
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.load(res)


def refused_checkouts(db, plan):
    """The planned checkoutIds with an unknown SKU (rejected for good), the eventIds of their
    commands, and the orderable carts."""
    catalogue = {sku for (sku,) in db.rows("SELECT sku FROM products")}
    all_carts = {e["data"]["checkoutId"]: e["data"] for e in plan}
    carts = {cid: cart for cid, cart in all_carts.items() if all(i["sku"] in catalogue for i in cart["items"])}
    refused = set(all_carts) - set(carts)
    refused_events = {e["eventId"] for e in plan if e["data"]["checkoutId"] in refused}
    return refused, refused_events, carts


def dead_letters(db):
    """The relay's DLQ as {dlq_id: entry}; an entry holds the eventId of its body (None for a body
    that is no envelope), its retries, its last answer and how long it lived."""
    out = {}
    for dlq_id, body, retried, max_retries, status, error, created, failed in db.rows(
            "SELECT d.dlq_id, m.body, m.retried, m.max_retries, d.response_status, m.last_error, "
            "m.created_at_ms, d.failed_at_ms FROM relay_dlq d JOIN relay_messages m ON m.message_id = d.message_id"):
        if db.lite is None and body.startswith("\\x"):
            body = bytes.fromhex(body[2:]).decode()
        try:
            event_id = json.loads(body).get("eventId")
        except (ValueError, AttributeError):
            event_id = None
        out[dlq_id] = {
            "event_id": event_id,
            "retried": int(retried),
            "max_retries": int(max_retries),
            "status": int(status) if status else None,
            "why": (f"{dlq_id} ({event_id}): retried {retried} of {max_retries}, last status {status or 'none'}, "
                    f"last error {error or 'none'!r}, dead {(int(failed) - int(created)) / 1000:.1f} s after publish"),
        }
    return out


def dead(args):
    """The `dead` command: see the module's help."""
    db = Db(args.db)
    with open(args.plan) as f:
        plan = json.load(f)
    _, refused_events, _ = refused_checkouts(db, plan)
    unexplained = 0
    for dlq_id, d in sorted(dead_letters(db).items()):
        if d["event_id"] in refused_events:
            continue
        transient = d["status"] is None or d["status"] >= 500
        explained = transient and d["retried"] == d["max_retries"]
        print(f"{'dead' if explained else 'UNEXPLAINED'}: {d['why']}", file=sys.stderr)
        if explained:
            print(dlq_id)
        else:
            unexplained += 1
    return 1 if unexplained else 0


class Checker:
    def __init__(self):
        self.failures = 0

    def check(self, what, ok, detail):
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}", flush=True)
        if not ok:
            self.failures += 1


def sample(items, n=5):
    items = sorted(items)
    return ", ".join(str(i) for i in items[:n]) + (" ..." if len(items) > n else "")


def check(args):
    db = Db(args.db)
    c = Checker()
    with open(args.plan) as f:
        plan = json.load(f)
    with open(args.initial) as f:
        initial = json.load(f)
    refused, refused_events, carts = refused_checkouts(db, plan)

    # -- orders ---------------------------------------------------------------------------------
    checkouts = db.rows("SELECT checkout_id, status, order_id FROM checkouts")
    accepted = {cid: oid for cid, status, oid in checkouts if status == "accepted"}
    rejected = {cid for cid, status, _ in checkouts if status != "accepted"}
    orders = collections.Counter(cid for (cid,) in db.rows("SELECT checkout_id FROM orders"))
    missing = set(carts) - set(accepted)
    c.check("one accepted checkout per distinct checkoutId", not missing and rejected == refused,
            f"{len(accepted)} accepted of {len(carts)} orderable, {len(rejected)} rejected of {len(refused)} "
            f"with an unknown SKU ({len(plan)} published, {len(plan) - len(carts) - len(refused)} repeats); "
            f"missing: {sample(missing) or 'none'}; wrongly rejected: {sample(rejected - refused) or 'none'}; "
            f"wrongly accepted: {sample(refused & set(accepted)) or 'none'}")
    doubled = [cid for cid, n in orders.items() if n != 1]
    stray = set(orders) - set(carts)
    c.check("one order per checkoutId", not doubled and not stray and set(orders) == set(carts),
            f"{sum(orders.values())} orders; doubled: {sample(doubled) or 'none'}; "
            f"unplanned: {sample(stray) or 'none'}")
    lines = collections.defaultdict(dict)
    for oid, sku, qty in db.rows("SELECT order_id, sku, quantity FROM order_items"):
        lines[oid][sku] = int(qty)
    wrong_cart = [cid for cid, oid in accepted.items()
                  if cid in carts and lines.get(oid) != {i["sku"]: i["quantity"] for i in carts[cid]["items"]}]
    c.check("each order holds its planned cart", not wrong_cart, f"differing: {sample(wrong_cart) or 'none'}")

    # -- stock ----------------------------------------------------------------------------------
    ledger = collections.defaultdict(list)
    for oid, sku, requested, applied, status in db.rows(
            "SELECT order_id, sku, requested_delta, applied_delta, status FROM stock_movements "
            "WHERE reason = 'order'"):
        ledger[(oid, sku)].append((int(requested), int(applied), status))
    expected_lines = {(oid, sku): qty for oid, skus in lines.items() for sku, qty in skus.items()}
    bad_rows = []
    shortfalls = 0
    for key, qty in expected_lines.items():
        rows = ledger.get(key, [])
        if len(rows) != 1:
            bad_rows.append(f"{key}: {len(rows)} rows")
            continue
        requested, applied, status = rows[0]
        if requested != -qty or not ((status == "applied" and applied == -qty) or
                                     (status == "shortfall" and applied == 0)):
            bad_rows.append(f"{key}: {rows[0]}")
        shortfalls += status == "shortfall"
    extra_rows = set(ledger) - set(expected_lines)
    c.check("one stock movement per order line (applied or shortfall)", not bad_rows and not extra_rows,
            f"{len(expected_lines)} lines, {shortfalls} shortfalls recorded; wrong: {sample(bad_rows) or 'none'}; "
            f"for no order line: {sample(extra_rows) or 'none'}")
    stock = {sku: int(s) for sku, s in db.rows("SELECT sku, stock FROM products")}
    applied_sum = collections.Counter()
    for sku, total in db.rows("SELECT sku, SUM(applied_delta) FROM stock_movements WHERE reason = 'order' GROUP BY sku"):
        applied_sum[sku] = int(total)
    ordered_applied = collections.Counter()
    for (oid, sku), rows in ledger.items():
        if len(rows) == 1 and rows[0][2] == "applied":
            ordered_applied[sku] += -rows[0][0]
    bad_stock = [f"{sku}: {stock.get(sku)} != {n} - {ordered_applied[sku]}" for sku, n in initial.items()
                 if stock.get(sku) != n - ordered_applied[sku] or stock.get(sku) != n + applied_sum[sku]
                 or stock.get(sku, -1) < 0]
    c.check("stock = initial - applied order quantities, never negative", not bad_stock,
            " ".join(f"{sku}={stock.get(sku)}" for sku in sorted(initial)) +
            (f"; wrong: {sample(bad_stock)}" if bad_stock else ""))
    shortfall_audits = db.value("SELECT COUNT(*) FROM audit_log WHERE action = 'stock.shortfall'")
    c.check("every shortfall audited at analytics", shortfall_audits == shortfalls,
            f"{shortfall_audits} stock.shortfall audit records for {shortfalls} shortfalls")

    # -- email ----------------------------------------------------------------------------------
    emails = db.rows("SELECT order_id, status, message_id FROM emails")
    per_order = collections.Counter(oid for oid, status, _ in emails if status == "sent")
    order_ids = set(accepted.values())
    bad_email = [oid for oid in order_ids if per_order.get(oid) != 1]
    c.check("one sent email per order", not bad_email and len(emails) == len(order_ids),
            f"{sum(per_order.values())} sent of {len(emails)} email rows for {len(order_ids)} orders; "
            f"wrong: {sample(bad_email) or 'none'}")
    handed = collections.Counter()
    parser = email.parser.BytesHeaderParser()
    for name in os.listdir(args.mail):
        if name.endswith(".eml"):
            with open(os.path.join(args.mail, name), "rb") as f:
                handed[parser.parse(f)["Message-ID"].strip()] += 1
    recorded = {mid for _, status, mid in emails if status == "sent"}
    unsent = recorded - set(handed)
    unknown = set(handed) - recorded
    duplicates = sum(handed.values()) - len(handed)
    c.check("every order's email at the SMTP server", not unsent and not unknown,
            f"{sum(handed.values())} messages, {len(handed)} distinct Message-IDs; never received: "
            f"{sample(unsent) or 'none'}; not recorded: {sample(unknown) or 'none'}")
    c.check("duplicate emails within the documented window", duplicates <= args.max_duplicates,
            f"{duplicates} duplicate hand-overs (at most {args.max_duplicates} allowed)")

    # -- every event accounted for --------------------------------------------------------------
    unsent_rows = db.value("SELECT COUNT(*) FROM outbox WHERE sent_at_ms IS NULL")
    states = collections.Counter(s for (s,) in db.rows("SELECT state FROM relay_messages"))
    stuck = sum(states[s] for s in ("CREATED", "ACTIVE", "RETRY"))
    c.check("no outbox row unsent, no relay message unfinished", unsent_rows == 0 and stuck == 0,
            f"{unsent_rows} unsent outbox rows; relay messages by state: {dict(sorted(states.items()))}")
    inbox = {(consumer, eid) for consumer, eid in db.rows("SELECT consumer, event_id FROM inbox")}
    letters = dead_letters(db)
    dead = {d["event_id"] for d in letters.values()}
    events = [(etype, eid) for etype, eid in db.rows("SELECT event_type, event_id FROM outbox")]
    events += [("command.checkout", e["eventId"]) for e in plan]
    lost = [f"{etype} {eid}" for etype, eid in events if (CONSUMER[etype], eid) not in inbox and eid not in dead]
    c.check("every event in its consumer's inbox or in the DLQ", not lost,
            f"{len(events)} events ({len(plan)} commands), {len(dead)} dead-lettered; lost: {sample(lost) or 'none'}")
    # Retries outlast every fault injected here: only what can never succeed may be dead.
    wrongly_dead = dead - refused_events
    c.check("only refused checkouts in the DLQ", not wrongly_dead,
            f"{len(dead & refused_events)} refused checkout commands dead-lettered; "
            f"others: {sample(wrongly_dead) or 'none'}")
    for d in sorted(letters.values(), key=lambda d: d["why"]):
        if d["event_id"] in wrongly_dead:
            print(f"     {d['why']}")
    relay_dlq = []
    cursor = ""
    while True:  # the relay's DLQ API, page by page
        page = get_json(args.relay + "/v2/dlq?count=100" + (f"&cursor={cursor}" if cursor else ""),
                        args.qstash_token)
        relay_dlq += page.get("messages", [])
        cursor = page.get("cursor")
        if not cursor:
            break
    # A failure callback that itself failed has nobody left to report it to.
    callbacks = {mid for (mid,) in db.rows("SELECT message_id FROM relay_messages WHERE kind = 'failure_callback'")}
    reported = {mid for (mid,) in db.rows("SELECT source_message_id FROM dead_letters")}
    unreported = [m["messageId"] for m in relay_dlq if m["messageId"] not in reported | callbacks]
    c.check("every relay DLQ entry reported to analytics", not unreported,
            f"{len(relay_dlq)} in the relay's DLQ (API), {len(reported)} dead letters at analytics; "
            f"unreported: {sample(unreported) or 'none'}")
    return c.failures


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["pending", "undecided", "check", "dead"])
    p.add_argument("--db", required=True)
    p.add_argument("--plan")
    p.add_argument("--initial")
    p.add_argument("--mail")
    p.add_argument("--relay")
    p.add_argument("--qstash-token", default=os.environ.get("QSTASH_TOKEN", ""))
    p.add_argument("--api-token", default=os.environ.get("SHOPD_API_TOKEN", ""))
    p.add_argument("--max-duplicates", type=int, default=0)
    args = p.parse_args()
    if args.command == "pending":
        print(pending(Db(args.db)))
        return 0
    if args.command == "undecided":
        db = Db(args.db)
        with open(args.plan) as f:
            _, _, carts = refused_checkouts(db, json.load(f))
        decided = {cid for (cid,) in db.rows("SELECT checkout_id FROM checkouts")}
        print(len(set(carts) - decided))
        return 0
    if args.command == "dead":
        return dead(args)
    failures = check(args)
    print(f"invariants: {'all hold' if failures == 0 else str(failures) + ' violated'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
