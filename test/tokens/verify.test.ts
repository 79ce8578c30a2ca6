import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { before, describe, test } from "node:test";
import {
  calculateJwkThumbprint,
  type CryptoKey,
  errors,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JSONWebKeySet,
  type JWTPayload,
  SignJWT,
} from "jose";
import {
  accessTokenKeySet,
  MAX_ACCESS_TOKEN_BYTES,
  TokenRejected,
  type TokenRejectedCode,
  type VerifyAccessTokenOptions,
  verifyAccessToken,
  verifyAccessTokenOfAnyAudience,
} from "../../src/enforce/verify.ts";
import type { SigningKey } from "../../src/tokens/keys.ts";
import { fakeClock, openRing, refusal, T0, tempDirs } from "./fixtures.ts";

const freshDir = tempDirs("verify");
const T0_S = Math.floor(T0 / 1000);
const NOW = T0 + 10_000;
const OPTIONS: VerifyAccessTokenOptions = { issuer: "jitgate", audience: "orders-db", now: () => NOW };

let key: SigningKey;
let jwks: JSONWebKeySet;
let attacker: { privateKey: CryptoKey; publicKey: CryptoKey };
before(async () => {
  const ring = await openRing(freshDir(), fakeClock());
  key = await ring.signingKey();
  jwks = await ring.jwks();
  attacker = await generateKeyPair("EdDSA");
});

const CLAIMS = {
  iss: "jitgate",
  sub: "alice",
  aud: "orders-db",
  iat: T0_S,
  nbf: T0_S,
  exp: T0_S + 300,
  client_id: "alice",
  grant_id: "grant-1",
  scope: "read write",
  actions: ["read", "write"],
};

/** A token signed with the ring's key (or `signer`); `undefined` in `claims` or `header` removes that member. */
function sign(claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}, signer: CryptoKey | Uint8Array = key.privateKey) {
  const payload = Object.fromEntries(Object.entries({ ...CLAIMS, jti: randomUUID(), ...claims }).filter(([, v]) => v !== undefined));
  const protectedHeader = Object.fromEntries(
    Object.entries({ alg: key.alg, kid: key.kid, typ: "at+jwt", ...header }).filter(([, v]) => v !== undefined),
  );
  return new SignJWT(payload as JWTPayload).setProtectedHeader(protectedHeader as { alg: string }).sign(signer);
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

async function rejected(
  token: string,
  code: TokenRejectedCode,
  opts: Partial<VerifyAccessTokenOptions> = {},
  keys: Parameters<typeof verifyAccessToken>[1] = jwks,
) {
  const err = await refusal(verifyAccessToken(token, keys, { ...OPTIONS, ...opts }));
  assert.ok(err instanceof TokenRejected, `expected a TokenRejected, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  for (const part of token.split(".").filter((p) => p.length > 8))
    assert.ok(!err.message.includes(part), "the message never echoes the token");
  return err;
}

describe("verifying access tokens: accepted", () => {
  test("a valid EdDSA token gives its subject, audience, grant, actions, jti, times and kid", async () => {
    const token = await sign({ jti: "jti-1" });
    assert.deepEqual(await verifyAccessToken(token, jwks, OPTIONS), {
      subject: "alice",
      audience: "orders-db",
      grantId: "grant-1",
      actions: ["read", "write"],
      jti: "jti-1",
      issuedAt: T0_S * 1000,
      expiresAt: (T0_S + 300) * 1000,
      kid: key.kid,
    });
  });

  test("a valid ES256 token verifies against its JWKS", async () => {
    const ring = await openRing(freshDir(), fakeClock(), { algorithm: "ES256" });
    const es = await ring.signingKey();
    const token = await sign({}, { alg: "ES256", kid: es.kid }, es.privateKey);
    assert.equal((await verifyAccessToken(token, await ring.jwks(), OPTIONS)).kid, es.kid);
  });

  test("a key resolver, a JWKS object and a single public key are all accepted as keys", async () => {
    const token = await sign();
    const [publicJwk] = jwks.keys;
    assert.ok(publicJwk);
    const { importJWK } = await import("jose");
    for (const keys of [accessTokenKeySet(jwks), jwks, await importJWK(publicJwk, "EdDSA")]) {
      assert.equal((await verifyAccessToken(token, keys as Parameters<typeof verifyAccessToken>[1], OPTIONS)).grantId, "grant-1");
    }
  });

  test("a token issued (nbf and iat) up to the clock tolerance in the future is accepted, and refused without tolerance", async () => {
    const now = Math.floor(NOW / 1000);
    const early = await sign({ iat: now + 5, nbf: now + 5, exp: now + 300 });
    const earlyIat = await sign({ iat: now + 5, nbf: undefined, exp: now + 300 });
    for (const token of [early, earlyIat]) assert.equal((await verifyAccessToken(token, jwks, OPTIONS)).subject, "alice");
    assert.equal((await verifyAccessToken(early, jwks, { ...OPTIONS, now: () => NOW - 20_000 })).subject, "alice");
    await rejected(early, "TOKEN_NOT_YET_VALID", { clockToleranceS: 0 });
  });

  test("a service answering to several audiences accepts a token for any of them", async () => {
    assert.equal((await verifyAccessToken(await sign(), jwks, { ...OPTIONS, audience: ["billing", "orders-db"] })).audience, "orders-db");
  });

  test("without an audience to pin (jitgate's own Check), the token's single audience is returned after every other check", async () => {
    const anyAudience = { issuer: "jitgate", now: () => NOW };
    assert.equal((await verifyAccessTokenOfAnyAudience(await sign({ aud: "payments" }), jwks, anyAudience)).audience, "payments");
    const refusedWith = async (token: string, code: TokenRejectedCode) => {
      const err = await refusal(verifyAccessTokenOfAnyAudience(token, jwks, anyAudience));
      assert.ok(err instanceof TokenRejected && err.code === code, `${code}: ${err.message}`);
    };
    await refusedWith(await sign({}, { kid: key.kid }, attacker.privateKey), "TOKEN_BAD_SIGNATURE");
    await refusedWith(await sign({ aud: undefined }), "TOKEN_CLAIMS_INVALID");
    await refusedWith(await sign({ aud: ["orders-db", "payments"] }), "TOKEN_CLAIMS_INVALID");
    await refusedWith(await sign({ iss: "https://evil.example" }), "TOKEN_WRONG_ISSUER");
  });
});

describe("verifying access tokens: refused", () => {
  test("alg none, hand-crafted, is refused with or without a signature", async () => {
    const body = b64({ ...CLAIMS, jti: randomUUID() });
    await rejected(`${b64({ alg: "none", typ: "at+jwt", kid: key.kid })}.${body}.`, "TOKEN_BAD_SIGNATURE");
    await rejected(`${b64({ alg: "none", typ: "at+jwt" })}.${body}.c2ln`, "TOKEN_BAD_SIGNATURE");
  });

  test("HS256 signed with the public key as the HMAC secret is refused, against a JWKS and against the key itself", async () => {
    const { importJWK } = await import("jose");
    const publicKey = (await importJWK(jwks.keys[0] ?? {}, "EdDSA")) as CryptoKey;
    for (const secret of [new TextEncoder().encode(await exportSPKI(publicKey)), new TextEncoder().encode(JSON.stringify(jwks.keys[0]))]) {
      const token = await sign({}, { alg: "HS256" }, secret);
      await rejected(token, "TOKEN_BAD_SIGNATURE");
      await rejected(token, "TOKEN_BAD_SIGNATURE", {}, publicKey);
    }
  });

  test("ES512 and RS256 tokens are refused even when the key set holds the matching key without an alg", async () => {
    for (const alg of ["ES512", "RS256"]) {
      const pair = await generateKeyPair(alg, { extractable: true });
      const publicJwk = await exportJWK(pair.publicKey);
      const kid = await calculateJwkThumbprint(publicJwk);
      const token = await sign({}, { alg, kid }, pair.privateKey);
      const err = await rejected(token, "TOKEN_BAD_SIGNATURE", {}, { keys: [...jwks.keys, { ...publicJwk, kid }] });
      assert.match(err.message, /algorithm is not allowed \(allowed: EdDSA, ES256\)/);
    }
  });

  test("a token from another issuer, or for another audience, is refused", async () => {
    await rejected(await sign({ iss: "https://evil.example" }), "TOKEN_WRONG_ISSUER");
    await rejected(await sign({ aud: "payments" }), "TOKEN_WRONG_AUDIENCE");
    await rejected(await sign(), "TOKEN_WRONG_AUDIENCE", { audience: "payments" });
  });

  test("a tampered payload is refused: its signature no longer matches", async () => {
    const [header, , signature] = (await sign()).split(".");
    const forged = b64({ ...CLAIMS, jti: randomUUID(), actions: ["read", "write", "admin"], scope: "read write admin" });
    await rejected(`${header}.${forged}.${signature}`, "TOKEN_BAD_SIGNATURE");
  });

  test("a token is refused from the moment of its exp: the clock tolerance never stretches exp", async () => {
    const now = Math.floor(NOW / 1000);
    const expiredOneSecondAgo = await sign({ iat: now - 300, nbf: now - 300, exp: now - 1 });
    for (const clockToleranceS of [0, 30, 60]) {
      const err = await rejected(expiredOneSecondAgo, "TOKEN_EXPIRED", { clockToleranceS });
      assert.equal(err.message, "access token has expired");
    }
    const endsNow = await sign({ iat: now - 300, nbf: now - 300, exp: now });
    await rejected(endsNow, "TOKEN_EXPIRED", { now: () => now * 1000 });
    assert.equal((await verifyAccessToken(endsNow, jwks, { ...OPTIONS, now: () => now * 1000 - 1 })).subject, "alice");
    // The same holds without an audience to check (jitgate's own Check).
    await assert.rejects(verifyAccessTokenOfAnyAudience(expiredOneSecondAgo, jwks, { issuer: "jitgate", now: () => NOW }), /has expired/);
  });

  test("an expired token, and a token older than the longest lifetime, are refused, keeping jose's error as cause", async () => {
    const err = await rejected(await sign({ exp: Math.floor(NOW / 1000) - 31 }), "TOKEN_EXPIRED");
    assert.ok(err.cause instanceof errors.JWTExpired);
    const old = await sign({ iat: T0_S - 2 * 3600, nbf: T0_S - 2 * 3600, exp: T0_S + 60 });
    assert.match((await rejected(old, "TOKEN_EXPIRED")).message, /too old/);
  });

  test("a token whose nbf or iat is further in the future than the tolerance is refused", async () => {
    const future = Math.floor(NOW / 1000) + 31;
    await rejected(await sign({ iat: future, nbf: future, exp: future + 300 }), "TOKEN_NOT_YET_VALID");
    await rejected(await sign({ iat: future, nbf: undefined, exp: future + 300 }), "TOKEN_NOT_YET_VALID");
  });

  test("a token signed by a rotated-out key (retired and past its window) is refused as an unknown key", async () => {
    const clock = fakeClock();
    const ring = await openRing(freshDir(), clock);
    const old = await ring.signingKey();
    const token = await sign({}, { kid: old.kid }, old.privateKey);
    await ring.rotate();
    assert.equal((await verifyAccessToken(token, await ring.jwks(), OPTIONS)).kid, old.kid, "still published right after rotation");
    clock.advance((300 + 30 + 1) * 1000 + 1000);
    await rejected(token, "TOKEN_UNKNOWN_KEY", {}, await ring.jwks());
  });

  test("an unknown kid is refused, whether the attacker signs with their own key or relabels ours", async () => {
    const attackerKid = await calculateJwkThumbprint(await exportJWK(attacker.publicKey));
    await rejected(await sign({}, { kid: attackerKid }, attacker.privateKey), "TOKEN_UNKNOWN_KEY");
    await rejected(await sign({}, { kid: "not-a-published-kid" }), "TOKEN_UNKNOWN_KEY");
    await rejected(await sign({}, { kid: key.kid }, attacker.privateKey), "TOKEN_BAD_SIGNATURE");
  });

  test("a plain JWT (typ JWT, or no typ) is refused: only at+jwt access tokens are accepted", async () => {
    await rejected(await sign({}, { typ: "JWT" }), "TOKEN_WRONG_TYPE");
    await rejected(await sign({}, { typ: undefined }), "TOKEN_WRONG_TYPE");
  });

  test("a token missing grant_id, client_id, jti, sub or exp is refused, naming the claim", async () => {
    for (const claim of ["grant_id", "client_id", "jti", "sub", "exp"]) {
      const err = await rejected(await sign({ [claim]: undefined }), "TOKEN_CLAIMS_INVALID");
      assert.ok(err.message.includes(`'${claim}'`), err.message);
    }
  });

  test("jitgate's claims with the wrong type or shape are refused", async () => {
    const cases: Record<string, unknown>[] = [
      { grant_id: 42 },
      { grant_id: "" },
      { client_id: ["alice"] },
      { sub: 7 },
      { jti: 12 },
      { actions: "read write" },
      { actions: ["read", 2] },
      { actions: [] },
      { scope: ["read", "write"] },
      { scope: "read write admin" },
      { aud: ["orders-db", "payments"] },
      { exp: T0_S + 7200 },
    ];
    for (const claims of cases) await rejected(await sign(claims), "TOKEN_CLAIMS_INVALID", { maxTokenTtlS: 3600 });
    await rejected(await sign({ exp: T0_S + 600 }), "TOKEN_CLAIMS_INVALID", { maxTokenTtlS: 300 });
  });

  test("an empty, oversized or garbled token is refused before it is parsed", async () => {
    await rejected("", "TOKEN_MISSING");
    const big = await sign({ padding: "x".repeat(MAX_ACCESS_TOKEN_BYTES) });
    await rejected(big, "TOKEN_TOO_LARGE");
    await rejected("not-a-token", "TOKEN_MALFORMED");
    await rejected(`${b64("just a string")}.e30.c2ln`, "TOKEN_MALFORMED");
    await rejected(`${b64({ alg: "EdDSA", typ: "at+jwt" })}.${b64(CLAIMS)}.c2ln`, "TOKEN_MALFORMED");
  });

  test("jku, x5u, x5c and embedded jwk headers pointing at the attacker's key are neither fetched nor trusted", async () => {
    let fetched = 0;
    const attackerJwk = { ...(await exportJWK(attacker.publicKey)), alg: "EdDSA", use: "sig" };
    const attackerKid = await calculateJwkThumbprint(attackerJwk);
    const server = createServer((_req, res) => {
      fetched++;
      res.setHeader("content-type", "application/json").end(JSON.stringify({ keys: [{ ...attackerJwk, kid: attackerKid }] }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
    try {
      const headers = [
        { jku: url, kid: attackerKid },
        { x5u: url, kid: attackerKid },
        { jwk: attackerJwk, kid: attackerKid },
        { jwk: attackerJwk, kid: key.kid },
        { x5c: ["MIIB"], kid: key.kid },
      ];
      for (const header of headers) await rejected(await sign({}, header, attacker.privateKey), "TOKEN_MALFORMED");
    } finally {
      server.close();
    }
    assert.equal(fetched, 0, "nothing was fetched");
  });

  test("a key resolver that cannot answer is not a rejection: its own error comes through (callers fail closed)", async () => {
    const outage = new Error("JWKS endpoint unreachable");
    const err = await refusal(
      verifyAccessToken(
        await sign(),
        async () => {
          throw outage;
        },
        OPTIONS,
      ),
    );
    assert.equal(err, outage);
  });

  test("unsafe options are refused outright: tolerance over 60 s, TTL over 3600 s, a key set with private keys", async () => {
    const token = await sign();
    await assert.rejects(verifyAccessToken(token, jwks, { ...OPTIONS, clockToleranceS: 120 }), RangeError);
    await assert.rejects(verifyAccessToken(token, jwks, { ...OPTIONS, maxTokenTtlS: 86_400 }), RangeError);
    const privateJwk = await exportJWK((await generateKeyPair("EdDSA", { extractable: true })).privateKey);
    assert.throws(() => accessTokenKeySet({ keys: [privateJwk] }), /private or symmetric/);
  });
});
