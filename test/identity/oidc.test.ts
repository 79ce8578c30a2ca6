import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type CryptoKey, errors, exportJWK, exportSPKI, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";
import { InvalidArgument, Unauthenticated, Unavailable } from "../../src/errors.ts";
import { type Authenticator, createAuthenticator } from "../../src/identity/authenticator.ts";
import { type IdentityInput, parseIdentityConfig } from "../../src/identity/config.ts";
import { issueDevToken } from "../../src/identity/dev-issuer.ts";

const ISSUER = "https://idp.example.com/realms/ops";
const AUDIENCE = "jitgate";
const NOW_MS = Date.UTC(2026, 10, 23, 12, 0, 0);
const NOW = NOW_MS / 1000;
const clock = { now: () => NOW_MS };

interface Keys {
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
}
let dir: string;
let jwksFile: string;
let rsa: Keys;
let ec: Keys;
let stranger: Keys;
let auth: Authenticator;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "jitgate-oidc-"));
  rsa = await generateKeyPair("RS256", { extractable: true });
  ec = await generateKeyPair("ES256", { extractable: true });
  stranger = await generateKeyPair("ES256", { extractable: true });
  // The RSA key is published without `alg` or `kid`, as some providers do: only the allowlist stops RS512.
  const rsaJwk: JWK = await exportJWK(rsa.publicKey);
  const ecJwk: JWK = { ...(await exportJWK(ec.publicKey)), kid: "ec-1", alg: "ES256", use: "sig" };
  jwksFile = join(dir, "jwks.json");
  await writeFile(jwksFile, JSON.stringify({ keys: [rsaJwk, ecJwk] }));
  auth = await authenticator();
});
after(() => rm(dir, { recursive: true, force: true }));

function authenticator(oidc: NonNullable<IdentityInput["oidc"]> = {}, extra: IdentityInput = {}): Promise<Authenticator> {
  const config = parseIdentityConfig({ oidc: { issuer: ISSUER, audience: AUDIENCE, jwksFile, ...oidc }, ...extra }, dir);
  return createAuthenticator(config, { clock });
}

const baseClaims = (): JWTPayload => ({ iss: ISSUER, aud: AUDIENCE, sub: "alice", iat: NOW, exp: NOW + 300, groups: ["oncall"] });

function sign(
  claims: JWTPayload,
  key: CryptoKey | Uint8Array = rsa.privateKey,
  header: { alg: string; kid?: string } = { alg: "RS256" },
): Promise<string> {
  return new SignJWT(claims).setProtectedHeader(header).sign(key);
}

function call(authorization?: string | string[]) {
  return { authorization: [authorization ?? []].flat(), peerCertificate: undefined };
}

async function refusal(promise: Promise<unknown>, kind: new (...args: never[]) => Error = Unauthenticated): Promise<Error> {
  const err = await promise.then(
    () => assert.fail("the caller was accepted"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof kind, `expected ${kind.name}, got ${String(err)}`);
  return err;
}

const refusedToken = (token: string, a: Authenticator = auth) => refusal(a.authenticate(call(`Bearer ${token}`)));
const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

describe("OIDC bearer tokens: accepted", () => {
  test("an RS256 token gives the caller from sub and groups from the groups claim", async () => {
    assert.deepEqual(await auth.authenticate(call(`Bearer ${await sign(baseClaims())}`)), { id: "alice", groups: ["oncall"] });
  });

  test("an ES256 token with a kid, under a lowercase scheme", async () => {
    const token = await sign({ ...baseClaims(), sub: "bob" }, ec.privateKey, { alg: "ES256", kid: "ec-1" });
    assert.equal((await auth.authenticate(call(`bearer ${token}`))).id, "bob");
  });

  test("groups from a dotted claim path, as Keycloak puts realm roles", async () => {
    const keycloak = await authenticator({ groupsClaim: "realm_access.roles" });
    const token = await sign({ ...baseClaims(), groups: undefined, realm_access: { roles: ["dba", "oncall"] } });
    assert.deepEqual((await keycloak.authenticate(call(`Bearer ${token}`))).groups, ["dba", "oncall"]);
  });

  test("groups from a string separated by single spaces (a comma is part of a name), from a claim whose name holds dots", async () => {
    const scoped = await authenticator({ groupsClaim: "https://example.com/groups" });
    const token = await sign({ ...baseClaims(), "https://example.com/groups": "dba oncall,sre dba" });
    assert.deepEqual((await scoped.authenticate(call(`Bearer ${token}`))).groups, ["dba", "oncall,sre"]);
  });

  test("group names are kept exactly as sent: never case-folded, an inner space kept, an empty string is no groups", async () => {
    const groupsOf = async (groups: unknown) => (await auth.authenticate(call(`Bearer ${await sign({ ...baseClaims(), groups })}`))).groups;
    const exact = ["Jitgate-Admins", "jitgate-admins", "Domain Admins"];
    assert.deepEqual(await groupsOf(exact), exact);
    assert.deepEqual(await groupsOf(""), []);
    assert.deepEqual(await groupsOf([]), []);
  });

  test("no groups claim means no groups; a configured subject claim names the caller", async () => {
    const byEmail = await authenticator({ subjectClaim: "email" });
    const token = await sign({ ...baseClaims(), groups: undefined, email: "alice@example.com" });
    assert.deepEqual(await byEmail.authenticate(call(`Bearer ${token}`)), { id: "alice@example.com", groups: [] });
  });

  test("a token whose nbf and iat are a few seconds in the future is accepted (within the clock tolerance)", async () => {
    const token = await sign({ ...baseClaims(), iat: NOW + 5, nbf: NOW + 5 });
    assert.equal((await auth.authenticate(call(`Bearer ${token}`))).id, "alice");
  });

  test("a token in its last millisecond before exp is accepted", async () => {
    const lastMs = await createAuthenticator(parseIdentityConfig({ oidc: { issuer: ISSUER, audience: AUDIENCE, jwksFile } }, dir), {
      clock: { now: () => (NOW + 300) * 1000 - 1 },
    });
    assert.equal((await lastMs.authenticate(call(`Bearer ${await sign(baseClaims())}`))).id, "alice");
  });
});

describe("OIDC bearer tokens: remembered once verified", () => {
  test("a verified token is refused once it expires, even though it was accepted before", async () => {
    const moving = { t: NOW_MS, now: () => moving.t };
    const config = parseIdentityConfig({ oidc: { issuer: ISSUER, audience: AUDIENCE, jwksFile } }, dir);
    const remembering = await createAuthenticator(config, { clock: moving });
    const token = await sign({ ...baseClaims(), exp: NOW + 30 });
    assert.equal((await remembering.authenticate(call(`Bearer ${token}`))).id, "alice");
    moving.t = NOW_MS + 30_000 - 1;
    assert.equal((await remembering.authenticate(call(`Bearer ${token}`))).id, "alice");
    // From exp on: neither the remembered caller nor the clock tolerance keeps it alive.
    moving.t = NOW_MS + 30_000;
    await assert.rejects(remembering.authenticate(call(`Bearer ${token}`)), /: token expired$/);
  });
});

describe("OIDC bearer tokens: refused", () => {
  test("an expired token, keeping jose's error as the cause", async () => {
    const err = await refusedToken(await sign({ ...baseClaims(), exp: NOW - 61 }));
    assert.match(err.message, /^token expired$/);
    assert.ok(err.cause instanceof errors.JWTExpired);
  });

  test("a token that expired one second ago, or expires this very moment: the clock tolerance never stretches exp", async () => {
    for (const exp of [NOW - 1, NOW]) {
      assert.equal(
        (await refusedToken(await sign({ ...baseClaims(), iat: NOW - 300, exp }))).message,
        "token expired",
        `exp ${exp - NOW} s`,
      );
    }
    const generous = await authenticator({ clockToleranceS: 60 });
    assert.equal((await refusedToken(await sign({ ...baseClaims(), iat: NOW - 300, exp: NOW - 1 }), generous)).message, "token expired");
  });

  test("a token whose nbf is beyond the tolerance", async () => {
    assert.match((await refusedToken(await sign({ ...baseClaims(), nbf: NOW + 120 }))).message, /not valid yet/);
  });

  test("a token issued more than 24 hours ago, even if it has not expired", async () => {
    assert.match((await refusedToken(await sign({ ...baseClaims(), iat: NOW - 25 * 3600 }))).message, /too old/);
  });

  test("a token from another issuer", async () => {
    assert.match((await refusedToken(await sign({ ...baseClaims(), iss: "https://evil.example.com" }))).message, /wrong issuer/);
  });

  test("a token for another audience", async () => {
    assert.match((await refusedToken(await sign({ ...baseClaims(), aud: "other-service" }))).message, /wrong audience/);
  });

  test("a token whose payload was changed after signing", async () => {
    const [header, , signature] = (await sign(baseClaims())).split(".");
    const forged = `${header}.${b64url({ ...baseClaims(), sub: "root", groups: ["admin"] })}.${signature}`;
    assert.match((await refusedToken(forged)).message, /signature is invalid/);
  });

  test("a token with a kid that is not in the key set", async () => {
    const token = await sign(baseClaims(), stranger.privateKey, { alg: "ES256", kid: "ec-2" });
    assert.match((await refusedToken(token)).message, /unknown key/);
  });

  test("a token signed by a key that is not in the key set", async () => {
    const other = await generateKeyPair("RS256");
    assert.match((await refusedToken(await sign(baseClaims(), other.privateKey))).message, /signature is invalid/);
  });

  test("an unsecured token (alg: none)", async () => {
    const token = `${b64url({ alg: "none", typ: "JWT" })}.${b64url(baseClaims())}.`;
    assert.match((await refusedToken(token)).message, /algorithm is not allowed/);
  });

  test("an HS256 token keyed with the issuer's public key", async () => {
    const secret = new TextEncoder().encode(await exportSPKI(rsa.publicKey));
    assert.match((await refusedToken(await sign(baseClaims(), secret, { alg: "HS256" }))).message, /algorithm is not allowed/);
  });

  test("RS512 against an RSA key published without alg, outside the allowlist", async () => {
    const rs512 = await generateKeyPair("RS512");
    const token = await new SignJWT(baseClaims()).setProtectedHeader({ alg: "RS512" }).sign(rs512.privateKey);
    const err = await refusedToken(token);
    assert.match(err.message, /algorithm is not allowed \(accepted: RS256, ES256, EdDSA, PS256\)/);
    assert.ok(err.cause instanceof errors.JOSEAlgNotAllowed);
  });

  test("a token over 16 KiB, before any parsing", async () => {
    const token = await sign({ ...baseClaims(), padding: "x".repeat(17_000) });
    assert.match((await refusedToken(token)).message, /token too large/);
  });

  test("a token without sub", async () => {
    assert.match((await refusedToken(await sign({ ...baseClaims(), sub: undefined }))).message, /token has no 'sub' claim/);
  });

  test("groups with surrounding whitespace, invisible characters or empty names refuse the token, never echoing them", async () => {
    const cases: [unknown, RegExp][] = [
      [["jitgate-admins "], /group 1 has surrounding whitespace/],
      [["oncall", " jitgate-admins"], /group 2 has surrounding whitespace/],
      [["jitgate-admins\u00a0"], /group 1 has surrounding whitespace/],
      [["jitgate-admins\n"], /group 1 holds an invisible, control or format character \(U\+000A at position 14\)/],
      [["jitgate\u200badmins"], /U\+200B at position 7/],
      [["jitgate-admins\u2028"], /U\+2028/],
      [["\u00adjitgate-admins"], /U\+00AD at position 0/],
      [["jitgate-admins\u034f"], /U\+034F/],
      [[""], /group 1 is empty/],
      ["dba  oncall", /group 2 is empty/],
      [" jitgate-admins", /group 1 is empty/],
      ["jitgate-admins ", /group 2 is empty/],
      ["dba\toncall", /U\+0009/],
    ];
    for (const [groups, reason] of cases) {
      const err = await refusedToken(await sign({ ...baseClaims(), groups }));
      assert.match(err.message, /^token claim 'groups' is refused: /, JSON.stringify(groups));
      assert.match(err.message, reason, JSON.stringify(groups));
      assert.ok(!err.message.includes("jitgate-admins") && !err.message.includes("oncall"), "the value is never echoed");
    }
  });

  test("a token whose subject is not a string, or whose groups are not strings", async () => {
    assert.match(
      (await refusedToken(await sign({ ...baseClaims(), sub: 42 as unknown as string }))).message,
      /token claim 'sub' is not a usable (subject|caller id)/,
    );
    assert.match((await refusedToken(await sign({ ...baseClaims(), groups: [1, 2] }))).message, /is not a list of groups/);
    assert.match((await refusedToken(await sign({ ...baseClaims(), sub: "alice " }))).message, /not a usable (subject|caller id)/);
  });

  test("a token without exp or iat", async () => {
    assert.match((await refusedToken(await sign({ ...baseClaims(), exp: undefined }))).message, /no 'exp' claim/);
    assert.match((await refusedToken(await sign({ ...baseClaims(), iat: undefined }))).message, /no 'iat' claim/);
  });

  test("malformed authorization headers", async () => {
    const cases: [string | string[], RegExp][] = [
      ["Basic YWxpY2U6c2VjcmV0", /malformed authorization header: expected 'Bearer <token>'/],
      ["Bearer", /malformed authorization header/],
      ["Bearer ", /malformed authorization header/],
      ["Bearer a.b", /malformed token: not a compact JWS/],
      ["Bearer a.b.c d", /malformed authorization header/],
      [["Bearer a.b.c", "Bearer d.e.f"], /sent more than once/],
      ["Bearer e30.e30.sig", /^malformed token: not a signed JWT$/],
    ];
    for (const [header, message] of cases) {
      assert.match((await refusal(auth.authenticate(call(header)))).message, message, String(header));
    }
  });

  test("no token and no certificate", async () => {
    const err = await refusal(auth.authenticate(call()));
    assert.equal(err.message, "no caller identity: send 'authorization: Bearer <token>' or a client certificate");
  });
});

describe("OIDC keys and issuers", () => {
  test("a JWKS file holding a private key is refused at start-up", async () => {
    const file = join(dir, "private.json");
    await writeFile(file, JSON.stringify({ keys: [await exportJWK(rsa.privateKey)] }));
    const err = await refusal(authenticator({ jwksFile: file }), InvalidArgument);
    assert.match(err.message, /^--oidc-jwks-file \(JITGATE_OIDC_JWKS_FILE\): .*not a JSON Web Key Set of public keys/);
    assert.match(
      (await refusal(authenticator({ jwksFile: join(dir, "absent.json") }), InvalidArgument)).message,
      /not a readable JSON file/,
    );
  });

  test("keys from a JWKS URL; an unreachable key set is Unavailable, not the caller's fault", async () => {
    let up = true;
    const jwks = JSON.stringify({ keys: [await exportJWK(rsa.publicKey)] });
    const server: Server = createServer((_req, res) => {
      res.writeHead(up ? 200 : 503, { "content-type": "application/json" });
      res.end(up ? jwks : "{}");
    });
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    try {
      const address = server.address() as { port: number };
      const remote = await authenticator({ jwksFile: undefined, jwksUrl: `http://127.0.0.1:${address.port}/certs` });
      assert.equal((await remote.authenticate(call(`Bearer ${await sign(baseClaims())}`))).id, "alice");
      up = false;
      const fresh = await authenticator({ jwksFile: undefined, jwksUrl: `http://127.0.0.1:${address.port}/certs` });
      const err = await refusal(fresh.authenticate(call(`Bearer ${await sign(baseClaims())}`)), Unavailable);
      assert.match(err.message, /cannot fetch the identity provider's signing keys/);
    } finally {
      server.close();
    }
  });

  test("with OIDC and dev mode on, each issuer's tokens go to its own verifier", async () => {
    const dataDir = join(dir, "data");
    const both = await authenticator({}, { dev: true, dataDir });
    assert.match(both.describe(), new RegExp(`OIDC issuer ${ISSUER}.*DEV MODE`));
    const dev = await issueDevToken({ dataDir, subject: "dev-alice", groups: ["dba"], ttlSeconds: 60, now: NOW_MS });
    assert.deepEqual(await both.authenticate(call(`Bearer ${dev}`)), { id: "dev-alice", groups: ["dba"] });
    assert.equal((await both.authenticate(call(`Bearer ${await sign(baseClaims())}`))).id, "alice");
    const forged = await sign({ ...baseClaims(), iss: "jitgate-dev", aud: "jitgate" });
    assert.match((await refusedToken(forged, both)).message, /algorithm is not allowed \(accepted: EdDSA\)/);
    const noIssuer = await sign({ ...baseClaims(), iss: undefined });
    assert.match((await refusedToken(noIssuer, both)).message, /token has no 'iss' claim/);
    const elsewhere = await sign({ ...baseClaims(), iss: "https://evil.example.com" });
    assert.match((await refusedToken(elsewhere, both)).message, /wrong issuer \(expected one of/);
  });
});
