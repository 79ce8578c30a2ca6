import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decodeProtectedHeader } from "jose";
import { TokenRejected } from "../../src/enforce/verify.ts";
import { FailedPrecondition, InvalidArgument, Unauthenticated } from "../../src/errors.ts";
import { parseTokenConfig, type TokenInput, TokenService } from "../../src/tokens/index.ts";
import { fakeClock, grant, refusal, T0, tempDirs } from "./fixtures.ts";

const freshDir = tempDirs("service");

function configRefusal(input: TokenInput): InvalidArgument {
  try {
    parseTokenConfig(input, "/srv/jitgate");
  } catch (err) {
    assert.ok(err instanceof InvalidArgument, `expected an InvalidArgument, got ${String(err)}`);
    return err;
  }
  return assert.fail("the configuration was accepted");
}

describe("token configuration", () => {
  test("defaults: issuer jitgate, 300 s, EdDSA, 30 s tolerance; the data directory resolved against the working directory", () => {
    const config = parseTokenConfig({ dataDir: "data" }, "/srv/jitgate");
    assert.deepEqual(config, {
      dataDir: "/srv/jitgate/data",
      keysDir: "/srv/jitgate/data/signing-keys",
      issuer: "jitgate",
      ttlS: 300,
      algorithm: "EdDSA",
      clockToleranceS: 30,
    });
    assert.ok(Object.isFrozen(config));
  });

  test("a shared signing-keys directory (replicas) is taken as given, resolved against the working directory", () => {
    assert.equal(parseTokenConfig({ dataDir: "data", keysDir: "../shared/keys" }, "/srv/jitgate").keysDir, "/srv/shared/keys");
  });

  test("values from the environment are text: a TTL, an algorithm in any case, a tolerance", () => {
    const config = parseTokenConfig(
      { dataDir: "/d", ttlS: "3600", algorithm: "es256", clockToleranceS: "60", issuer: "https://jit.example" },
      "/",
    );
    assert.deepEqual(config, {
      dataDir: "/d",
      keysDir: "/d/signing-keys",
      issuer: "https://jit.example",
      ttlS: 3600,
      algorithm: "ES256",
      clockToleranceS: 60,
    });
  });

  test("a TTL outside 1..3600 s is refused, naming --token-ttl (JITGATE_TOKEN_TTL)", () => {
    for (const ttlS of ["3601", "0", "5m", 1.5]) {
      const err = configRefusal({ dataDir: "d", ttlS });
      assert.equal(err.field, "--token-ttl (JITGATE_TOKEN_TTL)");
      assert.match(err.message, /from 1 to 3600/);
    }
  });

  test("an algorithm other than EdDSA or ES256 is refused, naming --token-alg (JITGATE_TOKEN_ALG)", () => {
    for (const algorithm of ["RS256", "HS256", "none"]) {
      const err = configRefusal({ dataDir: "d", algorithm });
      assert.equal(err.field, "--token-alg (JITGATE_TOKEN_ALG)");
      assert.match(err.message, /is not one of EdDSA, ES256/);
    }
  });

  test("an issuer with spaces is refused, naming --token-issuer (JITGATE_TOKEN_ISSUER); a tolerance over 60 s too", () => {
    assert.equal(configRefusal({ dataDir: "d", issuer: "jit gate" }).field, "--token-issuer (JITGATE_TOKEN_ISSUER)");
    assert.equal(configRefusal({ dataDir: "d", clockToleranceS: 61 }).field, "--token-clock-tolerance (JITGATE_TOKEN_CLOCK_TOLERANCE)");
    assert.equal(configRefusal({}).field, "--data-dir (JITGATE_DATA_DIR)");
  });
});

describe("token service", () => {
  const open = (clock = fakeClock(), input: TokenInput = {}) =>
    TokenService.open(parseTokenConfig({ dataDir: freshDir(), ...input }, "/"), clock);

  test("a token it issues verifies for the grant's audience, with the service's own JWKS", async () => {
    const service = await open();
    const issued = await service.issue(grant());
    const verified = await service.verify(issued.token, "orders-db");
    assert.equal(verified.jti, issued.jti);
    assert.equal(verified.expiresAt, issued.expiresAt);
    assert.deepEqual(
      (await service.jwks()).keys.map((k) => k.kid),
      [issued.kid],
    );
  });

  test("a refused token is Unauthenticated, its message starting with the stable code, the TokenRejected kept as cause", async () => {
    const service = await open();
    const { token } = await service.issue(grant());
    const err = await refusal(service.verify(token, "payments"));
    assert.ok(err instanceof Unauthenticated);
    assert.match(err.message, /^TOKEN_WRONG_AUDIENCE: /);
    assert.ok(err.cause instanceof TokenRejected);
    assert.ok(!err.message.includes(token));
  });

  test("verifyIssued verifies a token for whichever audience it was issued to, and refuses one it did not sign", async () => {
    const service = await open();
    const issued = await service.issue(grant({ audience: "payments" }));
    const verified = await service.verifyIssued(issued.token);
    assert.deepEqual([verified.audience, verified.grantId, verified.jti], ["payments", "grant-1", issued.jti]);
    const elsewhere = await (await open()).issue(grant());
    const err = await refusal(service.verifyIssued(elsewhere.token));
    assert.ok(err instanceof Unauthenticated);
    assert.match(err.message, /^TOKEN_(BAD_SIGNATURE|UNKNOWN_KEY): /);
  });

  test("a token is refused from the second of its exp, by verify and verifyIssued alike", async () => {
    const clock = fakeClock();
    const service = await open(clock);
    const { token, expiresAt } = await service.issue(grant());
    clock.t = expiresAt - 1;
    assert.equal((await service.verifyIssued(token)).subject, "alice");
    clock.t = expiresAt;
    assert.match((await refusal(service.verifyIssued(token))).message, /^TOKEN_EXPIRED: /);
    clock.t = expiresAt + 1000;
    assert.match((await refusal(service.verify(token, "orders-db"))).message, /^TOKEN_EXPIRED: /);
  });

  test("a token verified once is known by its exact text: any other text is checked anew and refused if forged", async () => {
    const clock = fakeClock();
    const service = await open(clock);
    const { token, jti } = await service.issue(grant());
    assert.equal((await service.verifyIssued(token)).jti, jti);
    const [header, payload, signature] = token.split(".") as [string, string, string];
    const flipped = `${signature.slice(0, -2)}${signature.at(-2) === "A" ? "B" : "A"}${signature.at(-1)}`;
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as Record<string, unknown>;
    const widened = Buffer.from(JSON.stringify({ ...claims, act: ["read", "write", "admin"] })).toString("base64url");
    for (const forged of [`${header}.${payload}.${flipped}`, `${header}.${widened}.${signature}`, `${token} `]) {
      assert.match((await refusal(service.verifyIssued(forged))).message, /^TOKEN_/, forged.slice(-12));
    }
    // And the genuine token, known, is still refused from its exp (the known claims are never served past it).
    clock.t += 10 * 60_000;
    assert.match((await refusal(service.verifyIssued(token))).message, /^TOKEN_EXPIRED: /);
  });

  test("a grant with no time left gets FailedPrecondition", async () => {
    const service = await open();
    await assert.rejects(service.issue(grant({ expiresAt: T0 + 500 })), FailedPrecondition);
  });

  test("after rotation new tokens carry the new kid and the old ones still verify until they expire", async () => {
    const clock = fakeClock();
    const service = await open(clock, { ttlS: "60" });
    const before = await service.issue(grant());
    clock.advance(5000);
    const rotated = await service.rotate();
    const after = await service.issue(grant());
    assert.equal(decodeProtectedHeader(after.token).kid, rotated.kid);
    assert.equal(rotated.previousKid, before.kid);
    assert.equal((await service.verify(before.token, "orders-db")).kid, before.kid);
    // The old key stays published for TTL + tolerance + the 1 s refresh interval after the rotation.
    clock.advance((60 + 30 + 1) * 1000 - 1);
    const err = await refusal(service.verify(before.token, "orders-db"));
    assert.match(err.message, /^TOKEN_EXPIRED: /);
    clock.advance(1);
    assert.match((await refusal(service.verify(before.token, "orders-db"))).message, /^TOKEN_UNKNOWN_KEY: /);
  });

  test("a replica sharing the key directory takes a token signed by a key added since it last looked, at once", async () => {
    const clock = fakeClock();
    const keysDir = `${freshDir()}/shared-keys`;
    const config = parseTokenConfig({ dataDir: freshDir(), keysDir }, "/");
    const signer = await TokenService.open(config, clock);
    const verifier = await TokenService.open(parseTokenConfig({ dataDir: freshDir(), keysDir }, "/"), clock);
    // The clock stands still: the verifier's periodic refresh never falls due, so only the look for an
    // unknown key can find the new one.
    const rotated = await signer.rotate();
    const { token } = await signer.issue(grant());
    assert.equal(decodeProtectedHeader(token).kid, rotated.kid);
    assert.equal((await verifier.verifyIssued(token)).subject, "alice");
  });

  test("the ES256 option issues ES256 tokens", async () => {
    const service = await open(fakeClock(), { algorithm: "ES256" });
    const { token } = await service.issue(grant());
    assert.equal(decodeProtectedHeader(token).alg, "ES256");
    assert.equal((await service.verify(token, "orders-db")).subject, "alice");
  });
});
