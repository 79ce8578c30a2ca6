import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader } from "jose";
import { verifyAccessToken } from "../../src/enforce/verify.ts";
import { FailedPrecondition } from "../../src/errors.ts";
import { issueAccessToken } from "../../src/tokens/issue.ts";
import { fakeClock, grant, openRing, refusal, T0, tempDirs } from "./fixtures.ts";

const freshDir = tempDirs("issue");
const OPTS = { issuer: "jitgate", ttlS: 300, now: T0 + 250 };
const T0_S = Math.floor(T0 / 1000);

describe("issuing access tokens", () => {
  test("a token carries exactly the RFC 9068 claims and jitgate's grant claims, with an at+jwt header", async () => {
    const ring = await openRing(freshDir(), fakeClock());
    const issued = await issueAccessToken(ring, grant(), OPTS);
    const header = decodeProtectedHeader(issued.token);
    const [publicJwk] = (await ring.jwks()).keys;
    assert.ok(publicJwk);
    assert.deepEqual(header, { alg: "EdDSA", kid: await calculateJwkThumbprint(publicJwk), typ: "at+jwt" });
    assert.equal(issued.kid, header.kid);

    const claims = decodeJwt(issued.token);
    assert.deepEqual(claims, {
      iss: "jitgate",
      sub: "alice",
      aud: "orders-db",
      iat: T0_S,
      nbf: T0_S,
      exp: T0_S + 300,
      jti: issued.jti,
      client_id: "alice",
      grant_id: "grant-1",
      scope: "read write",
      actions: ["read", "write"],
    });
    for (const claim of ["iat", "nbf", "exp"] as const) assert.ok(Number.isInteger(claims[claim]), `${claim} is whole seconds`);
    assert.match(issued.jti, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(issued.expiresAt, (T0_S + 300) * 1000);
    assert.equal(issued.issuedAt, T0_S * 1000);
  });

  test("every token gets a fresh jti", async () => {
    const ring = await openRing(freshDir(), fakeClock());
    const jtis = await Promise.all([1, 2, 3].map(async () => (await issueAccessToken(ring, grant(), OPTS)).jti));
    assert.equal(new Set(jtis).size, 3);
  });

  test("a grant that lives longer than the TTL gives a token that ends at now + TTL", async () => {
    const ring = await openRing(freshDir(), fakeClock());
    const issued = await issueAccessToken(ring, grant({ expiresAt: T0 + 3600_000 }), { ...OPTS, ttlS: 120 });
    assert.equal(decodeJwt(issued.token).exp, T0_S + 120);
  });

  test("a grant that ends before now + TTL gives a token that ends with it, never after (rounded down)", async () => {
    const ring = await openRing(freshDir(), fakeClock());
    const issued = await issueAccessToken(ring, grant({ expiresAt: T0 + 90_999 }), OPTS);
    assert.equal(decodeJwt(issued.token).exp, T0_S + 90);
    assert.ok(issued.expiresAt <= T0 + 90_999);
  });

  test("a grant with no whole second left, expired or revoked gets no token", async () => {
    const ring = await openRing(freshDir(), fakeClock());
    const cases = [
      [grant({ expiresAt: T0 + 900 }), /has no whole second left/],
      [grant({ expiresAt: T0 + 250 }), /has expired/],
      [grant({ expiresAt: T0 - 60_000 }), /has expired/],
      [grant({ revokedAt: T0 }), /is revoked/],
    ] as const;
    for (const [g, message] of cases) {
      const err = await refusal(issueAccessToken(ring, g, OPTS));
      assert.ok(err instanceof FailedPrecondition, String(err));
      assert.match(err.message, message);
    }
  });

  test("a grant whose action contains a space gets no token (the scope would read it as two)", async () => {
    const ring = await openRing(freshDir(), fakeClock());
    const err = await refusal(issueAccessToken(ring, grant({ actions: ["read", "drop table"] }), OPTS));
    assert.ok(err instanceof FailedPrecondition);
    assert.match(err.message, /'drop table'/);
  });

  test("the ES256 option signs with a P-256 key, and the token verifies", async () => {
    const ring = await openRing(freshDir(), fakeClock(), { algorithm: "ES256" });
    const issued = await issueAccessToken(ring, grant(), OPTS);
    assert.equal(decodeProtectedHeader(issued.token).alg, "ES256");
    const verified = await verifyAccessToken(issued.token, await ring.jwks(), { issuer: "jitgate", audience: "orders-db", now: () => T0 });
    assert.equal(verified.kid, issued.kid);
    assert.equal(verified.grantId, "grant-1");
  });
});
