// Check by token against the real server on a fake clock: a token is never honoured at or after its exp (the
// clock tolerance forgives only a token dated slightly ahead), and a forged token is refused alike whether the
// grant it names exists or not, in the answer and in the decision log.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import Database from "better-sqlite3";
import { decodeJwt, generateKeyPair, SignJWT } from "jose";
import { pino } from "pino";
import { type Jitgate, startJitgate } from "../../src/app.ts";
import { loadServeConfig } from "../../src/config.ts";
import { DECISIONS_FILE } from "../../src/store/decision-store.ts";
import { type Api, api, type Caller, failsWith, ms, orderReadGrant, status, tokenFor } from "../support/api.ts";
import { REAL_BUNDLE, removeDir, ROOT, tempDir } from "../support/bundles.ts";

const FROM_OFFICE = { source_ip: "10.1.2.3" };
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

describe("Check by token on the server's clock", () => {
  let dataDir: string;
  let jitgate: Jitgate;
  let client: Api;
  /** jitgate's clock: real time until a test sets it. Callers' dev tokens last an hour, so they outlive every setting. */
  let now: number | undefined;
  let checker: Caller;
  let holders = 0;
  before(async () => {
    dataDir = await tempDir("jitgate-token-check-");
    const config = loadServeConfig({ listen: "127.0.0.1:0", metricsListen: "off", dataDir, bundle: REAL_BUNDLE, dev: true }, {}, ROOT);
    jitgate = await startJitgate(config, pino({ level: "silent" }), { now: () => now ?? Date.now() });
    client = api(jitgate.address);
    checker = await as("svc-orders", ["jitgate-checkers"]);
  });
  after(async () => {
    client?.close();
    await jitgate?.close();
    await removeDir(dataDir);
  });

  const as = async (id: string, groups: readonly string[]) => client.as(await tokenFor(dataDir, id, groups));
  /** A fresh holder's read grant on db/orders (600 s) and a token for it (300 s, so it ends first), on real time. */
  async function tokenOfFreshGrant() {
    now = undefined;
    return orderReadGrant(await as(`tess-${++holders}`, ["engineering"]), 600);
  }
  const checkBy = (token: string, by: Caller = checker) =>
    by.call("Check", { token, resource: "db/orders", action: "read", context: FROM_OFFICE });

  describe("never at or after exp", () => {
    test("a token that expired one second ago is UNAUTHENTICATED, though its grant is still active", async () => {
      const { token, tokenExpiresAt, grant } = await tokenOfFreshGrant();
      now = tokenExpiresAt + 1000;
      assert.ok(ms(grant.expire_time) > now, "the grant outlives the token");
      const failure = await failsWith(status.UNAUTHENTICATED, checkBy(token));
      assert.equal(failure.message, "TOKEN_EXPIRED: access token has expired");
    });

    test("the same token is allowed in its last second, and refused from the second of its exp", async () => {
      const { token, tokenExpiresAt, grantId } = await tokenOfFreshGrant();
      now = tokenExpiresAt - 1000;
      const allowed = await checkBy(token);
      assert.deepEqual([allowed.allow, allowed.grant_id], [true, grantId]);
      now = tokenExpiresAt;
      await failsWith(status.UNAUTHENTICATED, checkBy(token));
    });

    test("a token dated a few seconds ahead of the server's clock (nbf, iat) is allowed: tolerance is for skew", async () => {
      const { token, grantId } = await tokenOfFreshGrant();
      now = (decodeJwt(token).iat as number) * 1000 - 5000;
      const allowed = await checkBy(token);
      assert.deepEqual([allowed.allow, allowed.grant_id], [true, grantId]);
    });
  });

  describe("signature before lookup", () => {
    test("an unsigned or foreign-signed token gets the same answer for a real grant id and a made-up one", async () => {
      const { token, grantId } = await tokenOfFreshGrant();
      const genuine = decodeJwt(token);
      const kid = JSON.parse(Buffer.from(token.split(".")[0] as string, "base64url").toString()).kid as string;
      const foreign = (await generateKeyPair("EdDSA")).privateKey;
      const forgeries: Record<string, (grant: string) => Promise<string>> = {
        "alg none": async (grant) => `${b64({ alg: "none", typ: "at+jwt", kid })}.${b64({ ...genuine, grant_id: grant })}.`,
        "a foreign key under jitgate's kid": (grant) =>
          new SignJWT({ ...genuine, grant_id: grant }).setProtectedHeader({ alg: "EdDSA", typ: "at+jwt", kid }).sign(foreign),
      };
      const probes: { kind: string; real: string; madeUp: string }[] = [];
      for (const [kind, forge] of Object.entries(forgeries)) {
        const real = `probe-real-${probes.length}`;
        const madeUp = `probe-made-up-${probes.length}`;
        probes.push({ kind, real, madeUp });
        const forReal = await failsWith(status.UNAUTHENTICATED, checkBy(await forge(grantId), await as(real, ["jitgate-checkers"])));
        const forMadeUp = await failsWith(
          status.UNAUTHENTICATED,
          checkBy(await forge("00000000-0000-4000-8000-000000000000"), await as(madeUp, ["jitgate-checkers"])),
        );
        assert.deepEqual([forReal.code, forReal.message], [forMadeUp.code, forMadeUp.message], kind);
        assert.match(forReal.message, /^TOKEN_BAD_SIGNATURE: /, kind);
      }

      await jitgate.decisionLog.flush();
      const db = new Database(join(dataDir, DECISIONS_FILE), { readonly: true });
      try {
        const reasonsOf = (caller: string) =>
          (db.prepare("SELECT reasons FROM decisions WHERE caller = ?").all(caller) as { reasons: string }[]).map((r) => r.reasons);
        for (const { kind, real, madeUp } of probes) {
          assert.equal(reasonsOf(real).length, 1, kind);
          assert.deepEqual(reasonsOf(real), reasonsOf(madeUp), kind);
        }
      } finally {
        db.close();
      }
    });
  });
});
