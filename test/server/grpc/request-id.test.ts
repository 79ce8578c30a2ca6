// Every call has a request id: the caller's x-request-id when it sent a sensible one, else a fresh one, returned
// in the response headers on success and on failure alike.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { accessServiceDefinition, loadAccessPackage } from "../../../src/proto/loader.ts";
import { type E2eServer, startE2eServer, tokenFor } from "../../support/api.ts";

type Unary = (req: object, md: grpc.Metadata, cb: (err: grpc.ServiceError | null) => void) => grpc.ClientUnaryCall;

describe("request ids", () => {
  let server: E2eServer;
  let client: grpc.Client & { GetJwks: Unary; GetAccessRequest: Unary };
  let token: string;
  before(async () => {
    server = await startE2eServer();
    const Client = grpc.makeGenericClientConstructor(accessServiceDefinition(loadAccessPackage()), "AccessService");
    client = new Client(server.jitgate.address, grpc.credentials.createInsecure()) as unknown as typeof client;
    token = await tokenFor(server.dataDir, "tess", ["engineering"]);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  /** The x-request-id response header of one call, and whether it failed. */
  function requestIdOf(method: "GetJwks" | "GetAccessRequest", request: object, sent?: string): Promise<{ id: unknown; failed: boolean }> {
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${token}`);
    if (sent !== undefined) md.set("x-request-id", sent);
    return new Promise((resolve) => {
      let id: unknown;
      const call = client[method](request, md, (err) => resolve({ id, failed: err !== null }));
      call.on("metadata", (headers) => {
        id = headers.get("x-request-id")[0];
      });
    });
  }

  test("the caller's own request id comes back", async () => {
    assert.deepEqual(await requestIdOf("GetJwks", {}, "checkout-7f3a.2"), { id: "checkout-7f3a.2", failed: false });
  });

  test("without one, or with one that is not sensible, the server makes one up", async () => {
    const made = await requestIdOf("GetJwks", {});
    assert.match(String(made.id), /^[0-9a-f-]{36}$/);
    const replaced = await requestIdOf("GetJwks", {}, "x".repeat(200));
    assert.match(String(replaced.id), /^[0-9a-f-]{36}$/);
    assert.notEqual(made.id, replaced.id);
  });

  test("a failed call carries its request id too", async () => {
    assert.deepEqual(await requestIdOf("GetAccessRequest", { id: "no-such-request" }, "trace-1"), { id: "trace-1", failed: true });
  });
});
