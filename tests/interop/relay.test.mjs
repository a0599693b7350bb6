// The relay against the official @upstash/qstash SDK: the real `shopd serve --role=relay` binary is
// the SDK's QStash (Client({baseUrl, token})), and a node HTTP server is the destination, verifying
// every delivery with the SDK's Receiver. Needs SHOPD_BINARY; run through run-node-test.sh, which
// installs the pinned packages and clears QSTASH_DEV / QSTASH_REGION.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

import { Client, Receiver } from "@upstash/qstash";

const SHOPD = process.env.SHOPD_BINARY;
assert.ok(SHOPD, "SHOPD_BINARY must name the shopd executable");

const TOKEN = "relay-interop-token";
const CURRENT = "sig_relay_interop_current";
const NEXT = "sig_relay_interop_next";
const WAIT_MS = 15_000;

const receiver = new Receiver({ currentSigningKey: CURRENT, nextSigningKey: NEXT, devMode: false });

let dir;
let relay;
let relayLog = "";
let client;
let baseUrl;
let destination;
let destinationBase;
const deliveries = []; // {path, headers, body, verified}
const failing = new Set(); // paths that answer 500

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function eventually(what, predicate) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}\n--- relay log ---\n${relayLog}`);
    await sleep(25);
  }
}

const deliveriesTo = (p) => deliveries.filter((d) => d.path === p);

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "shopd-relay-interop-"));

  destination = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const url = destinationBase + req.url;
      let verified;
      try {
        verified = await receiver.verify({ signature: req.headers["upstash-signature"], body, url });
      } catch (err) {
        verified = err;
      }
      deliveries.push({ path: req.url, headers: req.headers, body, verified });
      res.statusCode = failing.has(req.url) ? 500 : 200;
      res.end(failing.has(req.url) ? "nope" : "ok");
    });
  });
  await new Promise((r) => destination.listen(0, "127.0.0.1", r));
  destinationBase = `http://127.0.0.1:${destination.address().port}`;

  const port = await freePort();
  relay = spawn(SHOPD, ["serve", "--role=relay"], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: `sqlite:${path.join(dir, "relay.db")}`,
      RELAY_PORT: String(port),
      RELAY_NODE_ID: "interop",
      QSTASH_TOKEN: TOKEN,
      QSTASH_CURRENT_SIGNING_KEY: CURRENT,
      QSTASH_NEXT_SIGNING_KEY: NEXT,
      RELAY_BACKOFF_SCALE: "1",
      RELAY_POLL_INTERVAL_MS: "50",
      LOG_LEVEL: "warn",
      SHUTDOWN_TIMEOUT_MS: "2000",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  relay.stdout.on("data", (d) => (relayLog += d));
  relay.stderr.on("data", (d) => (relayLog += d));
  baseUrl = `http://127.0.0.1:${port}`;
  await eventually("the relay to answer", async () => {
    if (relay.exitCode !== null) assert.fail(`relay exited ${relay.exitCode}\n${relayLog}`);
    try {
      const r = await fetch(`${baseUrl}/v2/keys`, { headers: { authorization: `Bearer ${TOKEN}` } });
      return r.status === 200;
    } catch {
      return false;
    }
  });
  client = new Client({ baseUrl, token: TOKEN, enableTelemetry: false });
});

after(async () => {
  if (relay && relay.exitCode === null) {
    const exited = new Promise((r) => relay.once("exit", r));
    relay.kill("SIGTERM");
    await exited;
  }
  if (destination) await new Promise((r) => destination.close(r));
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("keys: the SDK's dev-mode probe shape", async () => {
  const r = await fetch(`${baseUrl}/v2/keys`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.deepEqual(await r.json(), { current: CURRENT, next: NEXT });
  const denied = await fetch(`${baseUrl}/v2/keys`, { headers: { authorization: "Bearer nope" } });
  assert.equal(denied.status, 401);
});

test("publishJSON with delay, retries, deduplicationId, callback and failureCallback", async () => {
  const options = {
    url: `${destinationBase}/orders?src=sdk`,
    body: { hello: "wörld", n: 1 },
    delay: 1,
    retries: 2,
    deduplicationId: "interop-dedup-1",
    callback: `${destinationBase}/callback`,
    failureCallback: `${destinationBase}/failure`,
    headers: { "x-trace": "trace-1" },
  };
  const published = await client.publishJSON(options);
  assert.match(published.messageId, /^msg_/);
  assert.notEqual(published.deduplicated, true);

  const again = await client.publishJSON(options);
  assert.equal(again.messageId, published.messageId);
  assert.equal(again.deduplicated, true);

  // Still waiting out its delay: the SDK reads it back.
  const message = await client.messages.get(published.messageId);
  assert.equal(message.messageId, published.messageId);
  assert.equal(message.url, options.url);
  assert.equal(message.maxRetries, 2);
  assert.equal(message.callback, options.callback);
  assert.equal(message.failureCallback, options.failureCallback);
  assert.ok(message.notBefore >= message.createdAt + 1000);
  assert.equal(JSON.parse(message.body).hello, "wörld");

  const [delivery] = await eventually("the delivery", () => deliveriesTo("/orders?src=sdk").length && deliveriesTo("/orders?src=sdk"));
  assert.equal(delivery.verified, true, String(delivery.verified));
  assert.equal(delivery.headers["upstash-message-id"], published.messageId);
  assert.equal(delivery.headers["upstash-retried"], "0");
  assert.equal(delivery.headers["x-trace"], "trace-1");
  assert.equal(delivery.headers["content-type"], "application/json");
  assert.deepEqual(JSON.parse(delivery.body), options.body);

  const [cb] = await eventually("the callback", () => deliveriesTo("/callback").length && deliveriesTo("/callback"));
  assert.equal(cb.verified, true, String(cb.verified));
  const cbBody = JSON.parse(cb.body);
  assert.equal(cbBody.sourceMessageId, published.messageId);
  assert.equal(cbBody.status, 200);
  assert.equal(Buffer.from(cbBody.body, "base64").toString(), "ok");
  assert.equal(cbBody.url, options.url);
  assert.equal(deliveriesTo("/failure").length, 0);
  assert.equal(deliveriesTo("/orders?src=sdk").length, 1); // the duplicate was not delivered
});

test("failures go to the DLQ with a failure callback; the SDK lists and retries it", async () => {
  failing.add("/flaky");
  const published = await client.publishJSON({
    url: `${destinationBase}/flaky`,
    body: { attempt: "all" },
    retries: 1,
    retryDelay: "10",
    failureCallback: `${destinationBase}/flaky-failed`,
  });
  const [failure] = await eventually("the failure callback", () => deliveriesTo("/flaky-failed").length && deliveriesTo("/flaky-failed"));
  assert.equal(failure.verified, true, String(failure.verified));
  const fb = JSON.parse(failure.body);
  assert.equal(fb.sourceMessageId, published.messageId);
  assert.equal(fb.status, 500);
  assert.equal(fb.retried, 1);
  assert.equal(fb.maxRetries, 1);
  assert.deepEqual(JSON.parse(Buffer.from(fb.sourceBody, "base64").toString()), { attempt: "all" });
  assert.ok(fb.dlqId);
  const attempts = deliveriesTo("/flaky");
  assert.equal(attempts.length, 2);
  assert.deepEqual(attempts.map((a) => a.headers["upstash-retried"]), ["0", "1"]);
  for (const a of attempts) assert.equal(a.verified, true);

  const listed = await client.dlq.listMessages();
  const entry = listed.messages.find((m) => m.messageId === published.messageId);
  assert.ok(entry, JSON.stringify(listed));
  assert.equal(entry.dlqId, fb.dlqId);
  assert.equal(entry.responseStatus, 500);
  assert.equal(entry.responseBody, "nope");
  assert.equal(entry.url, `${destinationBase}/flaky`);
  assert.equal(listed.cursor, undefined);

  const filtered = await client.dlq.listMessages({ filter: { responseStatus: 500, url: `${destinationBase}/flaky` } });
  assert.equal(filtered.messages.length, 1);

  failing.delete("/flaky");
  const retried = await client.dlq.retry(entry.dlqId);
  assert.equal(retried.responses.length, 1);
  const newId = retried.responses[0].messageId;
  assert.notEqual(newId, published.messageId);
  await eventually("the retried delivery", () =>
    deliveriesTo("/flaky").some((d) => d.headers["upstash-message-id"] === newId),
  );
  const after = await client.dlq.listMessages({ dlqIds: [entry.dlqId] });
  assert.equal(after.messages.length, 0);
});

test("batchJSON: every element becomes its own delivered message", async () => {
  const results = await client.batchJSON([
    { url: `${destinationBase}/batch-1`, body: { n: 1 } },
    { url: `${destinationBase}/batch-2`, body: { n: 2 }, headers: { "x-n": "2" } },
  ]);
  assert.equal(results.length, 2);
  for (const r of results) assert.match(r.messageId, /^msg_/);
  const [one] = await eventually("batch-1", () => deliveriesTo("/batch-1").length && deliveriesTo("/batch-1"));
  const [two] = await eventually("batch-2", () => deliveriesTo("/batch-2").length && deliveriesTo("/batch-2"));
  assert.equal(one.verified, true);
  assert.equal(two.verified, true);
  assert.equal(one.headers["upstash-message-id"], results[0].messageId);
  assert.equal(two.headers["x-n"], "2");
  assert.deepEqual(JSON.parse(two.body), { n: 2 });
});

test("a delayed message can be cancelled and is never delivered", async () => {
  const published = await client.publishJSON({ url: `${destinationBase}/never`, body: {}, delay: 3600 });
  const cancelled = await client.messages.cancel(published.messageId);
  assert.equal(cancelled.cancelled, 1);
  await assert.rejects(client.messages.get(published.messageId), (err) => err.status === 404);
  assert.equal(deliveriesTo("/never").length, 0);
});
