// Checks by token in the access domain, on the real policy and a real SQLite file with a fake clock: nothing a
// token claims is looked up before its signature verifies, its audience must be its grant's, and it is never
// honoured at or after its exp.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import { type CryptoKey, generateKeyPair, SignJWT } from "jose";
import type { Access } from "../../src/access/access.ts";
import type { Caller, DecisionRecord } from "../../src/access/model.ts";
import { Unauthenticated } from "../../src/errors.ts";
import type { TokenService } from "../../src/tokens/index.ts";
import { type AccessDomain, type AccessDomains, openAccessDomains } from "../support/access-domain.ts";

const T0 = Date.UTC(2026, 10, 23, 10, 0, 0);
const T0_S = T0 / 1000;
const alice: Caller = { id: "alice", groups: ["engineering"] };
const readOrders = {
  resource: "db/orders",
  actions: ["read"],
  durationS: 600,
  justification: "reading stuck orders for INC-77",
  ticket: "INC-77",
  emergency: false,
  clientKey: "",
};
const question = { resource: "db/orders", action: "read", context: { source_ip: "10.1.2.3" }, caller: "svc-orders" };
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

describe("checks by token", () => {
  let domains: AccessDomains;
  let tokens: TokenService;
  let kid: string;
  let attacker: CryptoKey;
  let domain: AccessDomain;
  let access: Access;
  let now = T0;
  let decisions: DecisionRecord[];
  /** Every grant id the domain looked up in the store, in order. */
  let lookedUp: string[];
  before(async () => {
    domains = await openAccessDomains(() => now);
    tokens = domains.tokens;
    kid = (await tokens.jwks()).keys[0]?.kid as string;
    attacker = (await generateKeyPair("EdDSA")).privateKey;
  });
  after(() => domains.remove());
  beforeEach((t) => {
    now = T0;
    lookedUp = [];
    domain = domains.open({
      file: join(domains.dir, `${t.name.replace(/\W+/g, "-").slice(0, 60)}.db`),
      storeView: (store) =>
        new Proxy(store, {
          get(target, prop) {
            if (prop === "grant") {
              return (id: string) => {
                lookedUp.push(id);
                return target.grant(id);
              };
            }
            const value: unknown = Reflect.get(target, prop);
            return typeof value === "function" ? value.bind(target) : value;
          },
        }),
    });
    ({ access, decisions } = domain);
  });
  afterEach(() => domain.close());

  /** Claims as jitgate signs them, for `grantId`. */
  const claims = (grantId: string) => ({
    iss: "jitgate",
    sub: "alice",
    aud: "orders",
    iat: T0_S,
    nbf: T0_S,
    exp: T0_S + 300,
    jti: `jti-${grantId}`,
    client_id: "alice",
    grant_id: grantId,
    scope: "read",
    actions: ["read"],
  });
  const forgeries: Record<string, (grantId: string) => Promise<string>> = {
    "alg none": async (grantId) => `${b64({ alg: "none", typ: "at+jwt", kid })}.${b64(claims(grantId))}.`,
    "signed with a foreign key under jitgate's kid": (grantId) =>
      new SignJWT(claims(grantId)).setProtectedHeader({ alg: "EdDSA", typ: "at+jwt", kid }).sign(attacker),
    "signed with a foreign key under its own kid": (grantId) =>
      new SignJWT(claims(grantId)).setProtectedHeader({ alg: "EdDSA", typ: "at+jwt", kid: "attacker-key" }).sign(attacker),
  };

  /** The error a check by `token` fails with, and the reason its decision record gives. */
  async function refusal(token: string): Promise<{ error: string; reason: unknown }> {
    const before = decisions.length;
    const err = await access.checkToken({ ...question, token }).then(
      () => assert.fail("the token was accepted"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof Unauthenticated, `expected Unauthenticated, got ${String(err)}`);
    assert.equal(decisions.length, before + 1, "one decision record per check");
    return { error: err.message, reason: decisions.at(-1)?.reasons };
  }

  for (const [kind, forge] of Object.entries(forgeries)) {
    test(`a forged token (${kind}) gets the same refusal whether its grant id exists or not, and nothing is looked up`, async () => {
      const realGrant = (await access.requestAccess(alice, readOrders)).grantId as string;
      lookedUp = [];
      const real = await refusal(await forge(realGrant));
      const madeUp = await refusal(await forge("grant-that-never-existed"));
      assert.deepEqual(real, madeUp);
      assert.match(real.error, /^TOKEN_(BAD_SIGNATURE|UNKNOWN_KEY): /);
      assert.deepEqual(lookedUp, [], "no grant was looked up for a token whose signature failed");
    });
  }

  test("a genuine token is allowed (the positive control for the forgeries)", async () => {
    const grantId = (await access.requestAccess(alice, readOrders)).grantId as string;
    const { token } = await access.issueToken(alice, grantId);
    const allowed = await access.checkToken({ ...question, token });
    assert.deepEqual([allowed.allow, allowed.grantId], [true, grantId]);
  });

  test("a token jitgate signed for another audience than its grant's is refused as a wrong audience", async () => {
    const grant = await access.getGrant((await access.requestAccess(alice, readOrders)).grantId as string);
    const { token } = await tokens.issue({ ...grant, audience: "payments" });
    const refused = await refusal(token);
    assert.match(refused.error, /^TOKEN_WRONG_AUDIENCE: /);
    assert.deepEqual(
      (refused.reason as { code: string }[]).map((r) => r.code),
      ["token_invalid"],
    );
  });

  test("a token is refused from the second of its exp, though its grant is still active", async () => {
    const grantId = (await access.requestAccess(alice, readOrders)).grantId as string;
    const { token, expiresAt } = await access.issueToken(alice, grantId);
    assert.ok(expiresAt < T0 + 600_000, "the token ends before its grant");
    now = expiresAt - 1;
    assert.equal((await access.checkToken({ ...question, token })).allow, true);
    now = expiresAt;
    assert.match((await refusal(token)).error, /^TOKEN_EXPIRED: /);
    now = expiresAt + 1000;
    assert.match((await refusal(token)).error, /^TOKEN_EXPIRED: /);
  });
});
