// Local admission with its cache of verified tokens: the cache saves signature checks, never a decision.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from "jose";
import { type Admission, localAdmission } from "../../src/enforce/admission.ts";
import { KeyCache } from "../../src/enforce/key-cache.ts";
import type { RevocationFeed } from "../../src/enforce/revocations.ts";

const T0 = Date.UTC(2026, 10, 23, 10, 0, 0);

describe("local admission", () => {
  let token: string;
  let jwks: object;
  before(async () => {
    const { publicKey, privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
    const jwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(jwk);
    jwks = { keys: [{ ...jwk, kid, alg: "EdDSA", use: "sig" }] };
    token = await new SignJWT({ client_id: "alice", grant_id: "g1", scope: "read", actions: ["read"] })
      .setProtectedHeader({ alg: "EdDSA", kid, typ: "at+jwt" })
      .setIssuer("jitgate")
      .setSubject("alice")
      .setAudience("orders")
      .setIssuedAt(T0 / 1000)
      .setNotBefore(T0 / 1000)
      .setExpirationTime(T0 / 1000 + 300)
      .setJti("t1")
      .sign(privateKey);
  });

  function admitter(now: () => number, revoked: Set<string>, stream = { downForMs: 0 }) {
    const keys = new KeyCache({ jwks: async () => jwks }, { now });
    return localAdmission({
      actionOf: (path) => (path === "/o/Read" ? "read" : undefined),
      revocations: { isRevoked: (id: string) => revoked.has(id), unknownForMs: () => stream.downForMs } as unknown as RevocationFeed,
      keys,
      verify: { issuer: "jitgate", audience: "orders", now },
      maxRevocationStalenessMs: 30_000,
    });
  }
  const call = (bearer: string) => {
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${bearer}`);
    return { methodPath: "/o/Read", metadata, deadline: Infinity, sourceIp: undefined };
  };
  const code = (a: Admission) => (a.admitted ? "ADMITTED" : grpc.status[a.code]);

  test("a valid token is refused (UNAVAILABLE) while revocations have not been followed for too long", async () => {
    const stream = { downForMs: 0 };
    const admit = admitter(() => T0 + 1_000, new Set(), stream);
    assert.equal(code(await admit(call(token))), "ADMITTED");
    stream.downForMs = 30_000;
    assert.equal(code(await admit(call(token))), "ADMITTED", "a jitgate restart within the limit is ridden out");
    stream.downForMs = 30_001;
    const refused = await admit(call(token));
    assert.equal(code(refused), "UNAVAILABLE");
    assert.match(refused.admitted ? "" : refused.details, /revocations cannot be followed/);
    stream.downForMs = Infinity;
    assert.equal(code(await admit(call(token))), "UNAVAILABLE", "never followed yet");
    stream.downForMs = 0;
    assert.equal(code(await admit(call(token))), "ADMITTED");
  });

  test("a cached token is still refused once its grant is revoked, and once it expires", async () => {
    let now = T0 + 1_000;
    const revoked = new Set<string>();
    const admit = admitter(() => now, revoked);
    assert.equal(code(await admit(call(token))), "ADMITTED");
    assert.equal(code(await admit(call(token))), "ADMITTED");
    revoked.add("g1");
    assert.equal(code(await admit(call(token))), "PERMISSION_DENIED");
    revoked.clear();
    now = T0 + 300_000 - 1;
    assert.equal(code(await admit(call(token))), "ADMITTED", "the last millisecond before exp");
    // At exp itself: neither the cache nor the 30 s clock tolerance keeps it alive.
    now = T0 + 300_000;
    const expired = await admit(call(token));
    assert.equal(code(expired), "UNAUTHENTICATED");
    assert.match((expired as { details: string }).details, /^TOKEN_EXPIRED: /);
  });

  test("a token that expired one second ago is refused on first sight; one dated a few seconds ahead is admitted", async () => {
    assert.equal(code(await admitter(() => T0 + 301_000, new Set())(call(token))), "UNAUTHENTICATED");
    const early = await admitter(() => T0 - 5_000, new Set())(call(token));
    assert.equal(code(early), "ADMITTED", "nbf and iat within the clock tolerance");
  });

  test("an admitted call is bounded by the token's exp exactly, with no tolerance added", async () => {
    const admitted = await admitter(() => T0 + 1_000, new Set())(call(token));
    assert.deepEqual(admitted, { admitted: true, grantId: "g1", expiresAt: T0 + 300_000 });
  });

  test("a token differing from a cached one by one character is verified afresh and refused", async () => {
    const admit = admitter(() => T0 + 1_000, new Set());
    assert.equal(code(await admit(call(token))), "ADMITTED");
    const parts = token.split(".");
    const payload = JSON.parse(Buffer.from(parts[1] as string, "base64url").toString());
    payload.actions = ["read", "write"];
    const tampered = [parts[0], Buffer.from(JSON.stringify(payload)).toString("base64url"), parts[2]].join(".");
    assert.equal(code(await admit(call(tampered))), "UNAUTHENTICATED");
  });
});
