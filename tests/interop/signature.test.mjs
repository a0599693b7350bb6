// Upstash-Signature interop: shopd's signer against the official SDK's Receiver, and shopd's verifier
// against tokens minted with jose exactly as QStash mints them (reference/qstash-protocol.md §3).
// Needs JWT_TOOL = path of the jwt_tool executable (tests/interop/jwt_tool.cpp); run through
// run-node-test.sh, which installs the pinned packages and clears QSTASH_DEV / QSTASH_REGION.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

import { Receiver } from "@upstash/qstash";
import { SignJWT, UnsecuredJWT, decodeJwt, decodeProtectedHeader } from "jose";

const run = promisify(execFile);
const JWT_TOOL = process.env.JWT_TOOL;
assert.ok(JWT_TOOL, "JWT_TOOL must name the jwt_tool executable");

const CURRENT = "sig_interop_current_7kYjw48mhY7k";
const NEXT = "sig_interop_next_5ZB6DVzB1wjE8S6r";
const OTHER = "sig_interop_other_29RJ6rAjqNGcy6c";
const URL = "http://127.0.0.1:3001/api/webhook";
// Non-ASCII on purpose: the SDK hashes the UTF-8 encoding of the string, shopd the raw bytes.
const BODY = JSON.stringify({ eventType: "order.created", data: { customer: "Zoë ✓ 日本", qty: 2 } });

const receiver = new Receiver({ currentSigningKey: CURRENT, nextSigningKey: NEXT, devMode: false });

let dir;
let files = 0;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "shopd-sig-interop-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function bodyFile(body) {
  const file = path.join(dir, `body-${files++}`);
  await writeFile(file, body); // strings are written as UTF-8, the bytes the SDK hashes
  return file;
}

async function shopdSign(key, url, body) {
  const { stdout } = await run(JWT_TOOL, ["sign", key, url, await bodyFile(body)]);
  return stdout.trimEnd();
}

// "ok", or the reason name jwt_tool prints ("expired: the token has expired ...").
async function shopdVerify(token, { url = "", body = BODY, current = CURRENT, next = NEXT } = {}) {
  try {
    await run(JWT_TOOL, ["verify", current, next, url, await bodyFile(body), token]);
    return "ok";
  } catch (err) {
    if (err.code !== 1) throw err;
    return err.stdout.split(":")[0];
  }
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

// QStash's body claim: base64url SHA-256 with '=' padding (node's base64url omits it; a 32-byte
// digest always needs exactly one).
const bodyClaim = (body) => createHash("sha256").update(body).digest("base64url") + "=";

// A token made the way QStash makes one for the bytes `content`, with any claim overridable.
async function qstashToken({ key = CURRENT, alg = "HS256", content = BODY, ...claims } = {}) {
  const iat = claims.iat ?? nowSeconds();
  const payload = {
    iss: "Upstash",
    sub: URL,
    exp: iat + 300,
    nbf: 0,
    iat,
    jti: `jwt_${randomBytes(16).toString("hex")}`,
    body: bodyClaim(content),
    ...claims,
  };
  return new SignJWT(payload).setProtectedHeader({ alg, typ: "JWT" }).sign(new TextEncoder().encode(key));
}

// (1) shopd signs, the SDK verifies.

test("shopd's token has QStash's header and claims", async () => {
  const token = await shopdSign(CURRENT, URL, BODY);
  assert.deepEqual(decodeProtectedHeader(token), { alg: "HS256", typ: "JWT" });
  const claims = decodeJwt(token);
  assert.deepEqual(Object.keys(claims), ["iss", "sub", "exp", "nbf", "iat", "jti", "body"]);
  assert.equal(claims.iss, "Upstash");
  assert.equal(claims.sub, URL);
  assert.equal(claims.nbf, 0);
  assert.equal(claims.exp - claims.iat, 300);
  assert.ok(Math.abs(claims.iat - nowSeconds()) <= 5);
  assert.match(claims.jti, /^jwt_[0-9A-Za-z]{22}$/);
  assert.equal(claims.body, bodyClaim(BODY));
  assert.equal(claims.body.length, 44);
});

test("the SDK Receiver accepts shopd's token signed with the current key", async () => {
  const signature = await shopdSign(CURRENT, URL, BODY);
  assert.equal(await receiver.verify({ signature, body: BODY, url: URL }), true);
  assert.equal(await receiver.verify({ signature, body: BODY }), true);
});

test("the SDK Receiver accepts shopd's token signed with the next key", async () => {
  const signature = await shopdSign(NEXT, URL, BODY);
  assert.equal(await receiver.verify({ signature, body: BODY, url: URL }), true);
  assert.equal(await receiver.verify({ signature, body: BODY }), true);
});

test("the SDK Receiver accepts shopd's token for an empty body", async () => {
  const signature = await shopdSign(CURRENT, URL, "");
  assert.equal(await receiver.verify({ signature, body: "", url: URL }), true);
});

test("the SDK Receiver rejects shopd's token for a different body", async () => {
  const signature = await shopdSign(CURRENT, URL, BODY);
  await assert.rejects(receiver.verify({ signature, body: BODY.replace("2", "3"), url: URL }), {
    name: "SignatureError",
    message: /body hash does not match/,
  });
});

test("the SDK Receiver rejects shopd's token for a different URL, or another key", async () => {
  const signature = await shopdSign(CURRENT, URL, BODY);
  await assert.rejects(receiver.verify({ signature, body: BODY, url: `${URL}/other` }), {
    name: "SignatureError",
    message: /invalid subject/,
  });
  const foreign = await shopdSign(OTHER, URL, BODY);
  await assert.rejects(receiver.verify({ signature: foreign, body: BODY }), { name: "SignatureError" });
});

// (2) jose signs as QStash does, shopd verifies.

test("control: the SDK Receiver accepts the QStash-style jose token", async () => {
  assert.equal(await receiver.verify({ signature: await qstashToken(), body: BODY, url: URL }), true);
});

test("shopd accepts QStash-style tokens", async () => {
  assert.equal(await shopdVerify(await qstashToken()), "ok");
  assert.equal(await shopdVerify(await qstashToken(), { url: URL }), "ok");
  assert.equal(await shopdVerify(await qstashToken({ key: NEXT }), { url: URL }), "ok");
  assert.equal(await shopdVerify(await qstashToken({ content: "" }), { body: "" }), "ok");
  // Older QStash tokens set nbf = iat; the SDK also strips padding from the body claim.
  const iat = nowSeconds();
  assert.equal(await shopdVerify(await qstashToken({ iat, nbf: iat })), "ok");
  assert.equal(await shopdVerify(await qstashToken({ body: bodyClaim(BODY).replace(/=+$/, "") })), "ok");
});

test("shopd rejects a tampered body", async () => {
  const token = await qstashToken();
  assert.equal(await shopdVerify(token, { body: BODY.replace("2", "3") }), "body_mismatch");
  assert.equal(await shopdVerify(token, { body: `${BODY} ` }), "body_mismatch");
});

test("shopd rejects an expired token", async () => {
  const iat = nowSeconds() - 3600;
  assert.equal(await shopdVerify(await qstashToken({ iat })), "expired");
});

test("shopd rejects a token made with neither the current nor the next key", async () => {
  assert.equal(await shopdVerify(await qstashToken({ key: OTHER })), "bad_signature");
});

test("shopd rejects a token for another URL when it checks the URL", async () => {
  const token = await qstashToken({ sub: "http://127.0.0.1:3002/api/webhook" });
  assert.equal(await shopdVerify(token, { url: URL }), "wrong_subject");
  assert.equal(await shopdVerify(token), "ok");
});

test("shopd rejects a token from another issuer", async () => {
  assert.equal(await shopdVerify(await qstashToken({ iss: "NotUpstash" })), "wrong_issuer");
});

test("shopd rejects a token that is not valid yet", async () => {
  assert.equal(await shopdVerify(await qstashToken({ nbf: nowSeconds() + 3600 })), "not_yet_valid");
});

test("shopd pins HS256 where jose would accept HS512 or none", async () => {
  const hs512 = await qstashToken({ alg: "HS512" });
  assert.equal(await receiver.verify({ signature: hs512, body: BODY }), true); // the SDK's laxity
  assert.equal(await shopdVerify(hs512), "bad_algorithm");
  const none = new UnsecuredJWT(decodeJwt(await qstashToken())).encode();
  assert.equal(await shopdVerify(none), "bad_algorithm");
});
