// Groups are exact, over the API: only a caller whose token carries exactly "jitgate-admins" is an admin; a
// token carrying "jitgate-admins " (trailing space) is refused outright, and look-alikes are not admins.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { SignJWT } from "jose";
import { DEV_AUDIENCE, DEV_ISSUER } from "../../src/identity/config.ts";
import { loadOrCreateDevKey } from "../../src/identity/dev-issuer.ts";
import { type E2eServer, failsWith, startE2eServer, status } from "../support/api.ts";

describe("admin groups are matched exactly", () => {
  let server: E2eServer;
  before(async () => {
    server = await startE2eServer();
  });
  after(() => server?.close());

  /** A dev token whose groups claim is exactly `groups`, as an identity provider might send it. */
  async function tokenWithGroupsClaim(subject: string, groups: unknown): Promise<string> {
    const key = await loadOrCreateDevKey(server.dataDir);
    const iat = Math.floor(Date.now() / 1000);
    return new SignJWT({ groups })
      .setProtectedHeader({ alg: "EdDSA", kid: key.kid, typ: "JWT" })
      .setIssuer(DEV_ISSUER)
      .setAudience(DEV_AUDIENCE)
      .setSubject(subject)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 600)
      .setJti(randomUUID())
      .sign(key.privateKey);
  }
  const revokeSam = async (groups: unknown) =>
    server.client.as(await tokenWithGroupsClaim("mallory", groups)).call("RevokeSubject", { subject: "sam", reason: "incident" });

  test("a member of exactly 'jitgate-admins' may revoke a subject (the control)", async () => {
    assert.deepEqual((await revokeSam(["jitgate-admins"])).revoked, []);
  });

  test("a token whose groups hold 'jitgate-admins ' is UNAUTHENTICATED, naming the claim but not the value", async () => {
    const failure = await failsWith(status.UNAUTHENTICATED, revokeSam(["jitgate-admins "]));
    assert.equal(failure.message, "token claim 'groups' is refused: group 1 has surrounding whitespace");
  });

  test("'Jitgate-Admins', and a comma-joined string 'jitgate-admins,ops', are not the admin group", async () => {
    await failsWith(status.PERMISSION_DENIED, revokeSam(["Jitgate-Admins"]));
    await failsWith(status.PERMISSION_DENIED, revokeSam("jitgate-admins,ops"));
  });
});
