// Access tokens over the API: issued to a grant's holder, verifiable offline against GetJwks, accepted by
// Check in place of a subject, and refused once their grant is revoked; revocations reach a stream.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { verifyAccessToken } from "../../src/enforce/verify.ts";
import { accessServiceDefinition, loadAccessPackage } from "../../src/proto/loader.ts";
import {
  type Caller,
  type E2eServer,
  failsWith,
  ms,
  reasonCodes,
  startE2eServer,
  status,
  tokenFor,
  orderReadGrant,
} from "../support/api.ts";

const FROM_OFFICE = { source_ip: "10.1.2.3" };

describe("access tokens", () => {
  let server: E2eServer;
  let holder: Caller;
  let other: Caller;
  let admin: Caller;
  let grant: { id: string; expire_time: { seconds: string | number; nanos: number } | null };
  before(async () => {
    server = await startE2eServer();
    holder = await server.as("tess", ["engineering"]);
    other = await server.as("otto", ["engineering"]);
    admin = await server.as("ada", ["jitgate-admins"]);
    grant = (await orderReadGrant(holder)).grant;
  });
  after(() => server.close());

  test("the holder gets a token that verifies offline against GetJwks and never outlives its grant", async () => {
    const issued = await holder.call("IssueToken", { grant_id: grant.id });
    const jwks = JSON.parse((await other.call("GetJwks", {})).jwks_json);
    const verified = await verifyAccessToken(issued.token, jwks, { issuer: "jitgate", audience: "orders" });
    assert.deepEqual([verified.subject, verified.grantId, [...verified.actions]], ["tess", grant.id, ["read"]]);
    assert.ok(ms(issued.expire_time) <= ms(grant.expire_time as never));
    assert.equal(verified.expiresAt, ms(issued.expire_time));
  });

  test("only the grant's holder gets tokens for it", async () => {
    const refused = await failsWith(status.PERMISSION_DENIED, other.call("IssueToken", { grant_id: grant.id }));
    // An unknown grant and someone else's look alike: the refusal names neither the holder nor whether it exists.
    const unknown = await failsWith(status.PERMISSION_DENIED, holder.call("IssueToken", { grant_id: "no-such-grant" }));
    assert.equal(unknown.message.replace("no-such-grant", "<id>"), refused.message.replace(grant.id, "<id>"));
  });

  test("Check takes a token instead of a subject, and refuses it once the grant is revoked", async () => {
    const { token } = await holder.call("IssueToken", { grant_id: grant.id });
    const check = (action: string) => other.call("Check", { token, resource: "db/orders", action, context: FROM_OFFICE });
    const allowed = await check("read");
    assert.deepEqual([allowed.allow, allowed.grant_id], [true, grant.id]);
    assert.deepEqual(reasonCodes((await check("write")).reasons), ["action_not_in_token"]);

    const revocations = watchRevocations(server.jitgate.address, await tokenFor(server.dataDir, "verifier", ["jitgate-checkers"]));
    await revocations.live;
    await admin.call("RevokeGrant", { grant_id: grant.id, reason: "token test" });
    const event = await revocations.next;
    revocations.close();
    assert.equal(event.grant_id, grant.id);
    assert.deepEqual(reasonCodes((await check("read")).reasons), ["grant_revoked"]);
    await failsWith(status.FAILED_PRECONDITION, holder.call("IssueToken", { grant_id: grant.id }));
  });

  test("a token that does not verify is UNAUTHENTICATED", async () => {
    const failure = await failsWith(status.UNAUTHENTICATED, other.call("Check", { token: "a.b.c", resource: "db/orders", action: "read" }));
    assert.match(failure.message, /TOKEN_/);
  });

  /** WatchRevocations with a dev token; resolves with the first event. */
  function watchRevocations(address: string, token: string) {
    const Client = grpc.makeGenericClientConstructor(accessServiceDefinition(loadAccessPackage()), "AccessService");
    const client = new Client(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      WatchRevocations: (req: object, md: grpc.Metadata) => grpc.ClientReadableStream<{ grant_id: string }>;
    };
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${token}`);
    const stream = client.WatchRevocations({ after_seq: "0" }, md);
    return {
      // The server sends headers once the watch is subscribed.
      live: new Promise((resolve) => stream.once("metadata", resolve)),
      next: new Promise<{ grant_id: string }>((resolve, reject) => {
        stream.once("data", resolve);
        stream.once("error", reject);
      }),
      close: () => {
        stream.cancel();
        client.close();
      },
    };
  }
});
