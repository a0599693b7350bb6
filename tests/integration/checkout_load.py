#!/usr/bin/python3
"""A seeded checkout load for shopd's fault-injection tests (tests/integration/fault_test.sh).

It draws a plan from --seed (the same seed gives the same plan: print it to reproduce a failure),
writes it to --plan as JSON, then publishes every checkout as a `command.checkout` event through the
relay's QStash API (`POST /v2/publish/<orders webhook>`), exactly as `shopd publish` does: the
eventId doubles as the deduplication id and analytics' DLQ callback is the failure callback.

The plan holds several SKUs, 1 to 3 lines per cart with small random quantities, some carts far
beyond the stock (deliberate shortfalls), a few with an unknown SKU (rejected without retries, so
they end in the DLQ) and some checkoutIds published again with the same cart
under a new eventId (a client retrying a checkout). A publish the relay did not acknowledge (the
relay is being killed and restarted, or answers 5xx) is sent again with the same eventId until it is
acknowledged, as a client would; so every planned event reaches the relay at least once.

Prints one summary line: seed, checkouts, distinct checkoutIds, repeats, publish retries.
"""

import argparse
import concurrent.futures
import datetime
import json
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def make_plan(rng, count, skus, prefix):
    plan = []
    carts = {}
    for i in range(count):
        if carts and rng.random() < 0.08:
            checkout_id = rng.choice(sorted(carts))  # a client retry: same checkoutId, same cart
            repeat = True
        else:
            checkout_id = f"{prefix}-{i:05d}"
            lines = rng.sample(skus, rng.randint(1, min(3, len(skus))))
            items = []
            for sku in lines:
                quantity = rng.randint(1, 3)
                if rng.random() < 0.03:
                    quantity = rng.randint(500, 2000)  # far beyond any stock: a shortfall
                items.append({"sku": sku, "quantity": quantity})
            if rng.random() < 0.01:  # not in the catalogue: refused for good, into the DLQ
                items.append({"sku": "NO-SUCH-SKU", "quantity": 1})
            carts[checkout_id] = {
                "checkoutId": checkout_id,
                "customer": {"email": f"c{i % 97}@example.test", "name": f"Customer {i % 97}"},
                "items": items,
                "currency": "EUR",
            }
            repeat = False
        plan.append({"eventId": f"{prefix}-ev-{i:05d}", "repeat": repeat, "data": carts[checkout_id]})
    return plan


def envelope(entry):
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "eventId": entry["eventId"],
        "eventType": "command.checkout",
        "version": 1,
        "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "source": "loadgen",
        "correlationId": entry["data"]["checkoutId"],
        "data": entry["data"],
    }


class Publisher:
    def __init__(self, relay, token, destination, failure_callback, deadline, rate):
        self.start = time.monotonic()
        self.rate = rate
        self.url = relay.rstrip("/") + "/v2/publish/" + destination
        self.token = token
        self.failure_callback = failure_callback
        self.deadline = deadline
        self.retries = 0

    def publish(self, indexed):
        index, entry = indexed
        if self.rate > 0:  # paced: checkout i starts i/rate seconds after the first
            time.sleep(max(0.0, self.start + index / self.rate - time.monotonic()))
        body = json.dumps(envelope(entry)).encode()
        headers = {
            "Authorization": "Bearer " + self.token,
            "Content-Type": "application/json",
            "Upstash-Deduplication-Id": entry["eventId"],
            "Upstash-Failure-Callback": self.failure_callback,
        }
        while True:
            try:
                req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=10) as res:
                    answer = json.load(res)
                    if "messageId" not in answer:
                        raise RuntimeError(f"publish answered without a messageId: {answer}")
                    return
            except urllib.error.HTTPError as e:
                if e.code < 500:  # the request itself is wrong: retrying cannot help
                    raise RuntimeError(f"publish of {entry['eventId']} refused: {e.code} {e.read()[:300]!r}")
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass  # the relay is down or was killed mid-request
            self.retries += 1
            if time.monotonic() > self.deadline:
                raise RuntimeError(f"publish of {entry['eventId']} not acknowledged before the deadline")
            time.sleep(0.05)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--relay", required=True, help="the relay's base URL")
    p.add_argument("--token", required=True, help="QSTASH_TOKEN")
    p.add_argument("--destination", required=True, help="the orders webhook URL")
    p.add_argument("--failure-callback", required=True)
    p.add_argument("--skus", required=True, help="comma-separated SKUs to order")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--plan", required=True, help="where to write the plan (JSON)")
    p.add_argument("--prefix", default="chk")
    p.add_argument("--rate", type=float, default=0, help="checkouts per second (0: as fast as possible)")
    p.add_argument("--timeout", type=float, default=180, help="seconds for the whole load")
    args = p.parse_args()

    plan = make_plan(random.Random(args.seed), args.count, args.skus.split(","), args.prefix)
    with open(args.plan, "w") as f:
        json.dump(plan, f)
    pub = Publisher(args.relay, args.token, args.destination, args.failure_callback,
                    time.monotonic() + args.timeout, args.rate)
    with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
        for _ in pool.map(pub.publish, enumerate(plan)):
            pass
    distinct = len({e["data"]["checkoutId"] for e in plan})
    repeats = sum(1 for e in plan if e["repeat"])
    print(f"load: seed={args.seed} checkouts={len(plan)} distinct={distinct} repeats={repeats} "
          f"publish_retries={pub.retries}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        print(f"load: {e}", file=sys.stderr)
        sys.exit(1)
