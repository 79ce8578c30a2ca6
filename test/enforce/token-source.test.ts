// The client side: a token source reuses its token while it is fresh and renews it shortly before expiry.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { AccessTokenSource } from "../../src/enforce/token-source.ts";
import { type E2eServer, startE2eServer, tokenFor, bearerMetadata, orderReadGrant } from "../support/api.ts";

describe("access token source for clients", () => {
  let server: E2eServer;
  let grantId: string;
  let holderToken: string;
  before(async () => {
    server = await startE2eServer();
    holderToken = await tokenFor(server.dataDir, "cleo", ["engineering"]);
    grantId = (await orderReadGrant(server.client.as(holderToken))).grantId;
  });
  after(() => server.close());

  test("one token is reused while fresh; a new one is fetched inside the renewal margin", async () => {
    let now = Date.now();
    const source = new AccessTokenSource({
      jitgate: { address: server.jitgate.address, credentials: grpc.credentials.createInsecure() },
      callMetadata: () => bearerMetadata(holderToken),
      grantId,
      renewBeforeMs: 30_000,
      now: () => now,
    });
    try {
      const [a, b] = await Promise.all([source.token(), source.token()]);
      assert.equal(a, b, "concurrent callers share one fetch");
      assert.equal(await source.token(), a);
      const exp = JSON.parse(Buffer.from(a.split(".")[1] as string, "base64url").toString()).exp * 1000;
      now = exp - 29_000;
      // Tokens carry whole seconds; wait for the next one so the renewed token differs in iat.
      await new Promise((r) => setTimeout(r, 1_100));
      const renewed = await source.token();
      assert.notEqual(renewed, a);
    } finally {
      source.close();
    }
  });

  test("a grant the holder does not have yields the server's error, not a token", async () => {
    const source = new AccessTokenSource({
      jitgate: { address: server.jitgate.address, credentials: grpc.credentials.createInsecure() },
      callMetadata: () => new grpc.Metadata(),
      grantId,
    });
    try {
      await assert.rejects(source.token(), { code: grpc.status.UNAUTHENTICATED });
    } finally {
      source.close();
    }
  });
});
