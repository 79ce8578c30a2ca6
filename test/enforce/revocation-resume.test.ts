// The enforcer's revocation stream against a real jitgate: it resumes after the last seq it saw across a jitgate
// restart, learns at start of revocations made before it listened, and fails closed when it cannot follow them.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import type { Jitgate } from "../../src/app.ts";
import { createEnforcer, type EnforcerOptions } from "../../src/enforce/interceptor.ts";
import { api, type Api, bearerMetadata, type Caller, orderReadGrant, tokenFor } from "../support/api.ts";
import { removeDir, tempDir } from "../support/bundles.ts";
import { startTestJitgate } from "../support/jitgate.ts";
import { ORDERS_ACTIONS, startOrdersService } from "./orders-service.ts";

/** Polls `attempt` until it fails with `code`, for at most `withinMs`. */
async function refusedWithin(withinMs: number, attempt: () => Promise<unknown>, code: grpc.status): Promise<void> {
  const start = Date.now();
  while (Date.now() - start <= withinMs) {
    const err = await attempt().then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    if (err?.code === code) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`not refused with ${grpc.status[code]} within ${withinMs} ms`);
}

/** A jitgate, and the example orders service behind an enforcer that follows it. */
interface Harness {
  readonly dataDir: string;
  readonly client: Api;
  readonly orders: Awaited<ReturnType<typeof startOrdersService>>;
  /** An engineer `name` with an auto-approved read grant on db/orders and a token for it. */
  engineer(name: string): Promise<{ caller: Caller; grantId: string; token: string }>;
  /** Stops jitgate and starts it again on the same address and data directory. */
  restartJitgate(): Promise<void>;
  stopJitgate(): Promise<void>;
  startJitgate(): Promise<void>;
}

/** Runs `fn` with a harness; `before` runs against jitgate before the service and its enforcer exist. */
async function withHarness(
  options: Partial<EnforcerOptions>,
  fn: (h: Harness) => Promise<void>,
  before?: (h: Pick<Harness, "engineer" | "client">) => Promise<void>,
): Promise<void> {
  const dataDir = await tempDir("jitgate-enforce-");
  let jitgate: Jitgate | undefined = await startTestJitgate(dataDir);
  const address = jitgate.address;
  const client = api(address);
  const engineer = async (name: string) => {
    const caller = client.as(await tokenFor(dataDir, name, ["engineering"]));
    return { caller, ...(await orderReadGrant(caller)) };
  };
  await before?.({ engineer, client });
  const serviceToken = await tokenFor(dataDir, "orders-service", ["jitgate-checkers"]);
  const enforcer = createEnforcer({
    jitgate: { address, credentials: grpc.credentials.createInsecure() },
    callMetadata: () => bearerMetadata(serviceToken),
    audience: "orders",
    actionOf: (path) => ORDERS_ACTIONS[path],
    ...options,
  });
  const orders = await startOrdersService(enforcer);
  const h: Harness = {
    dataDir,
    client,
    orders,
    engineer,
    stopJitgate: async () => {
      await jitgate?.close();
      jitgate = undefined;
    },
    startJitgate: async () => {
      jitgate = await startTestJitgate(dataDir, { listen: address });
    },
    restartJitgate: async () => {
      await h.stopJitgate();
      await h.startJitgate();
    },
  };
  try {
    await enforcer.ready();
    await fn(h);
  } finally {
    await orders.close();
    enforcer.close();
    client.close();
    await jitgate?.close();
    await removeDir(dataDir);
  }
}

test("revocations made while jitgate restarted reach the enforcer after it resumes", async () => {
  // A slow, fixed reconnect leaves a window in which jitgate is back but the enforcer is not yet subscribed.
  await withHarness({ minBackoffMs: 1000, maxBackoffMs: 1000 }, async (h) => {
    const [ann, ben, cat] = [await h.engineer("ann"), await h.engineer("ben"), await h.engineer("cat")];
    for (const e of [ann, ben, cat]) await h.orders.call("Read", e.token);
    await ann.caller.call("RevokeGrant", { grant_id: ann.grantId, reason: "done" });
    await refusedWithin(1000, () => h.orders.call("Read", ann.token), grpc.status.PERMISSION_DENIED);

    await h.restartJitgate();
    await ben.caller.call("RevokeGrant", { grant_id: ben.grantId, reason: "done" });
    await cat.caller.call("RevokeGrant", { grant_id: cat.grantId, reason: "done" });

    await refusedWithin(5000, () => h.orders.call("Read", ben.token), grpc.status.PERMISSION_DENIED);
    await refusedWithin(5000, () => h.orders.call("Read", cat.token), grpc.status.PERMISSION_DENIED);
    const failure = await h.orders.call("Read", cat.token).catch((e: grpc.ServiceError) => e);
    assert.equal((failure as grpc.ServiceError).details, "access revoked");
  });
});

test("a service that starts after a grant was revoked refuses its still-unexpired token from the start", async () => {
  let revoked = { token: "" };
  let kept = { token: "" };
  await withHarness(
    {},
    async (h) => {
      // No polling: the revocation made before the service existed is known once the enforcer is ready.
      const failure = await h.orders.call("Read", revoked.token).then(
        () => assert.fail("the revoked grant's token was accepted"),
        (e: grpc.ServiceError) => e,
      );
      assert.deepEqual([failure.code, failure.details], [grpc.status.PERMISSION_DENIED, "access revoked"]);
      await h.orders.call("Read", kept.token);
    },
    async (h) => {
      const dan = await h.engineer("dan");
      kept = await h.engineer("eve");
      await dan.caller.call("RevokeGrant", { grant_id: dan.grantId, reason: "left the team" });
      revoked = dan;
    },
  );
});

test("with jitgate gone longer than the staleness limit the service refuses (UNAVAILABLE), and admits again once it is back", async () => {
  await withHarness({ maxRevocationStalenessMs: 300, minBackoffMs: 100, maxBackoffMs: 200 }, async (h) => {
    const { token } = await h.engineer("fay");
    await h.orders.call("Read", token);
    await h.stopJitgate();
    await refusedWithin(5000, () => h.orders.call("Read", token), grpc.status.UNAVAILABLE);
    await h.startJitgate();
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ok = await h.orders.call("Read", token).then(
        () => true,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) assert.fail("not admitted again within 10 s of jitgate's return");
      await new Promise((r) => setTimeout(r, 50));
    }
  });
});
