// Overload over gRPC: past its in-flight limits (per process, per connection) jitgate refuses a call at once
// with RESOURCE_EXHAUSTED instead of queueing it into a timeout, a call its client gave up on gives its place
// back, RequestAccess is rate limited per requester, and an oversized message is refused before decoding.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import type { Jitgate } from "../../src/app.ts";
import type { ServeFlags } from "../../src/config.ts";
import { accessServiceDefinition, loadAccessPackage } from "../../src/proto/loader.ts";
import { type Api, api, bearerMetadata, failsWith, status, tokenFor } from "../support/api.ts";
import { removeDir, tempDir } from "../support/bundles.ts";
import { healthStatus, startTestJitgate } from "../support/jitgate.ts";

const auditor = { id: "test-auditor", groups: ["jitgate-auditors"] };
/** db/orders write needs two approvals: with `wait` the call stays in flight until its deadline. */
const heldRequest = {
  resource: "db/orders",
  actions: ["write"],
  duration: { seconds: 1800 },
  justification: "held in flight until its deadline",
  ticket: "CHG-1",
  wait: true,
};
const readOrders = {
  resource: "db/orders",
  actions: ["read"],
  duration: { seconds: 600 },
  justification: "reading stuck orders",
  ticket: "INC-1",
};

async function startServer(flags: ServeFlags): Promise<{ jitgate: Jitgate; dataDir: string; client: Api; close(): Promise<void> }> {
  const dataDir = await tempDir("jitgate-admission-");
  const jitgate = await startTestJitgate(dataDir, flags);
  const client = api(jitgate.address);
  return {
    jitgate,
    dataDir,
    client,
    async close() {
      client.close();
      await jitgate.close();
      await removeDir(dataDir);
    },
  };
}

/** Resolves once `count` requests are pending, read in-process: over gRPC the poll itself would be refused. */
async function pendingRequests(jitgate: Jitgate, count: number): Promise<void> {
  const until = Date.now() + 5_000;
  while ((await jitgate.access.listRequests(auditor, { state: "PENDING" }, { size: 10, token: "" })).items.length < count) {
    if (Date.now() > until) throw new Error(`fewer than ${count} pending requests within 5 s`);
    await delay(10);
  }
}

/** A failure that comes back within `ms`: refused at once, not after a wait. */
async function refusedWithin<T>(ms: number, call: Promise<T>) {
  const started = Date.now();
  const failure = await failsWith(status.RESOURCE_EXHAUSTED, call);
  const took = Date.now() - started;
  assert.ok(took < ms, `refused after ${took} ms`);
  return failure;
}

describe("admission over gRPC", () => {
  let server: Awaited<ReturnType<typeof startServer>>;
  before(async () => {
    server = await startServer({ maxInFlight: "2", requestRate: "3/m" });
  });
  after(() => server?.close());

  test("with two calls in flight at --max-in-flight 2, a third is refused at once; places come back at their deadlines", async () => {
    const holders = await Promise.all(
      ["wendy", "walt"].map(async (id) => server.client.as(await tokenFor(server.dataDir, id, ["engineering"]))),
    );
    const checker = server.client.as(await tokenFor(server.dataDir, "orders-service", ["jitgate-checkers"]));
    const held = holders.map((h) => failsWith(status.DEADLINE_EXCEEDED, h.call("RequestAccess", heldRequest, { deadlineMs: 3_000 })));
    await pendingRequests(server.jitgate, 2);

    const refused = await refusedWithin(1_000, checker.call("GetJwks", {}));
    assert.equal(refused.message, "jitgate is at its limit of 2 calls in flight; retry with backoff");
    await refusedWithin(1_000, checker.call("Check", { subject: "alice", resource: "db/orders", action: "read" }));
    // A watch is a call in flight too, refused the same way.
    const watch = checker.watch({});
    await assert.rejects(watch.next(2_000), (err: grpc.ServiceError) => err.code === status.RESOURCE_EXHAUSTED);
    // Health is never refused: a load balancer must still see this server serving while it is at its limit.
    assert.equal(await healthStatus(server.jitgate.address, ""), "SERVING");
    assert.equal(await healthStatus(server.jitgate.address, "jit.v1.AccessService"), "SERVING");

    // The waits end at their deadlines (the requests stay pending) and give their places back.
    await Promise.all(held);
    const until = Date.now() + 2_000;
    for (;;) {
      try {
        await checker.call("GetJwks", {});
        break;
      } catch (err) {
        // The server may see the cancellation a moment after the client does.
        if ((err as grpc.ServiceError).code !== status.RESOURCE_EXHAUSTED || Date.now() > until) throw err;
        await delay(20);
      }
    }
    const metrics = await server.jitgate.metrics.metricsText();
    const refusals = Number(/^jitgate_refused_total\{reason="in_flight"\} (\d+)$/m.exec(metrics)?.[1]);
    assert.ok(refusals >= 3, `jitgate_refused_total{reason="in_flight"} is ${refusals}`);
  });

  test("RequestAccess past --request-rate 3/m is refused naming the limit and when to retry; other requesters go on", async () => {
    const carol = server.client.as(await tokenFor(server.dataDir, "carol", ["engineering"]));
    const dave = server.client.as(await tokenFor(server.dataDir, "dave", ["engineering"]));
    assert.equal((await carol.call("RequestAccess", readOrders)).state, "APPROVED");
    // Whatever the answer, each request counts: a duplicate too.
    await failsWith(status.ALREADY_EXISTS, carol.call("RequestAccess", readOrders));
    await failsWith(status.ALREADY_EXISTS, carol.call("RequestAccess", readOrders));
    const refused = await refusedWithin(1_000, carol.call("RequestAccess", readOrders));
    assert.equal(refused.message, "access requests by carol are over the limit of 3 per minute (bursts of 3); retry in 20 s");
    assert.equal((await dave.call("RequestAccess", readOrders)).state, "APPROVED");
    // Reads are not rate limited.
    assert.equal((await carol.call("ListGrants", {})).grants.length, 1);
  });
});

describe("per-connection admission and message size over gRPC", () => {
  let server: Awaited<ReturnType<typeof startServer>>;
  before(async () => {
    server = await startServer({ maxInFlight: "8", maxInFlightPerConnection: "1", maxMessageBytes: "16384" });
  });
  after(() => server?.close());

  type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;
  const AccessClient = grpc.makeGenericClientConstructor(accessServiceDefinition(loadAccessPackage()), "AccessService");
  /** A client on a connection of its own (grpc-js shares connections between clients unless told not to). */
  const ownConnection = async (id: string, groups: string[]) => {
    const client = new AccessClient(server.jitgate.address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    const md = bearerMetadata(await tokenFor(server.dataDir, id, groups));
    return {
      call: (method: string, request: object, deadlineMs = 5_000) =>
        new Promise((resolve, reject) =>
          ((client as unknown as Record<string, Unary>)[method] as Unary).call(
            client,
            request,
            md,
            { deadline: Date.now() + deadlineMs },
            (err, res) => (err ? reject(err) : resolve(res)),
          ),
        ),
      close: () => client.close(),
    };
  };

  test("a connection at --max-in-flight-per-connection 1 is refused at once while another connection is served", async () => {
    const busy = await ownConnection("wanda", ["engineering"]);
    const other = await ownConnection("orders-service", ["jitgate-checkers"]);
    try {
      const held = failsWith(status.DEADLINE_EXCEEDED, busy.call("RequestAccess", heldRequest, 2_000));
      await pendingRequests(server.jitgate, 1);
      const refused = await refusedWithin(1_000, busy.call("GetJwks", {}));
      assert.match(refused.message, /^this connection is at jitgate's limit of 1 calls in flight per connection; retry with backoff$/);
      await other.call("GetJwks", {});
      await held;
    } finally {
      busy.close();
      other.close();
    }
  });

  test("a message over --max-message-bytes is refused with RESOURCE_EXHAUSTED before it is decoded", async () => {
    const checker = server.client.as(await tokenFor(server.dataDir, "orders-service", ["jitgate-checkers"]));
    const context = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, "x".repeat(256)]));
    const refused = await refusedWithin(1_000, checker.call("Check", { subject: "alice", resource: "db/orders", action: "read", context }));
    assert.match(refused.message, /message larger than max/);
  });
});
