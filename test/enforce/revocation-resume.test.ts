// The enforcer's revocation stream across a jitgate restart: it reconnects and resumes after the last seq it
// saw, so revocations made while it was disconnected still reach it.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import type { Jitgate } from "../../src/app.ts";
import { createEnforcer } from "../../src/enforce/interceptor.ts";
import { api, type Caller, tokenFor, bearerMetadata, orderReadGrant } from "../support/api.ts";
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

test("revocations made while jitgate restarted reach the enforcer after it resumes", async () => {
  const dataDir = await tempDir("jitgate-enforce-");
  let jitgate: Jitgate = await startTestJitgate(dataDir);
  const address = jitgate.address;
  const client = api(address);
  const serviceToken = await tokenFor(dataDir, "orders-service", []);
  const enforcer = createEnforcer({
    jitgate: { address, credentials: grpc.credentials.createInsecure() },
    callMetadata: () => bearerMetadata(serviceToken),
    audience: "orders",
    actionOf: (path) => ORDERS_ACTIONS[path],
    // A slow, fixed reconnect leaves a window in which jitgate is back but the enforcer is not yet subscribed.
    minBackoffMs: 1000,
    maxBackoffMs: 1000,
  });
  const orders = await startOrdersService(enforcer);
  try {
    await enforcer.ready();
    const holders: { engineer: Caller; grantId: string; token: string }[] = [];
    for (const name of ["ann", "ben", "cat"]) {
      const engineer = client.as(await tokenFor(dataDir, name, ["engineering"]));
      const { grantId, token } = await orderReadGrant(engineer);
      await orders.call("Read", token);
      holders.push({ engineer, grantId, token });
    }
    const [ann, ben, cat] = holders as [(typeof holders)[0], (typeof holders)[0], (typeof holders)[0]];
    await ann.engineer.call("RevokeGrant", { grant_id: ann.grantId, reason: "done" });
    await refusedWithin(1000, () => orders.call("Read", ann.token), grpc.status.PERMISSION_DENIED);

    await jitgate.close();
    jitgate = await startTestJitgate(dataDir, { listen: address });
    await ben.engineer.call("RevokeGrant", { grant_id: ben.grantId, reason: "done" });
    await cat.engineer.call("RevokeGrant", { grant_id: cat.grantId, reason: "done" });

    await refusedWithin(5000, () => orders.call("Read", ben.token), grpc.status.PERMISSION_DENIED);
    await refusedWithin(5000, () => orders.call("Read", cat.token), grpc.status.PERMISSION_DENIED);
    const failure = await orders.call("Read", cat.token).catch((e: grpc.ServiceError) => e);
    assert.equal((failure as grpc.ServiceError).details, "access revoked");
  } finally {
    await orders.close();
    enforcer.close();
    client.close();
    await jitgate.close();
    await removeDir(dataDir);
  }
});

test("a service that starts after a grant was revoked refuses its still-unexpired token from the start", async () => {
  const dataDir = await tempDir("jitgate-enforce-");
  const jitgate = await startTestJitgate(dataDir);
  const client = api(jitgate.address);
  const engineer = client.as(await tokenFor(dataDir, "dan", ["engineering"]));
  const revoked = await orderReadGrant(engineer);
  const kept = await orderReadGrant(client.as(await tokenFor(dataDir, "eve", ["engineering"])));
  await engineer.call("RevokeGrant", { grant_id: revoked.grantId, reason: "left the team" });
  const enforcer = createEnforcer({
    jitgate: { address: jitgate.address, credentials: grpc.credentials.createInsecure() },
    callMetadata: () => bearerMetadata(serviceToken),
    audience: "orders",
    actionOf: (path) => ORDERS_ACTIONS[path],
  });
  const serviceToken = await tokenFor(dataDir, "orders-service", []);
  const orders = await startOrdersService(enforcer);
  try {
    await enforcer.ready();
    // No polling: the revocation made before the service existed is known once the enforcer is ready.
    const failure = await orders.call("Read", revoked.token).then(
      () => assert.fail("the revoked grant's token was accepted"),
      (e: grpc.ServiceError) => e,
    );
    assert.deepEqual([failure.code, failure.details], [grpc.status.PERMISSION_DENIED, "access revoked"]);
    await orders.call("Read", kept.token);
  } finally {
    await orders.close();
    enforcer.close();
    client.close();
    await jitgate.close();
    await removeDir(dataDir);
  }
});

test("with jitgate gone longer than the staleness limit the service refuses (UNAVAILABLE), and admits again once it is back", async () => {
  const dataDir = await tempDir("jitgate-enforce-");
  let jitgate: Jitgate = await startTestJitgate(dataDir);
  const address = jitgate.address;
  const client = api(address);
  const serviceToken = await tokenFor(dataDir, "orders-service", []);
  const { token } = await orderReadGrant(client.as(await tokenFor(dataDir, "fay", ["engineering"])));
  const enforcer = createEnforcer({
    jitgate: { address, credentials: grpc.credentials.createInsecure() },
    callMetadata: () => bearerMetadata(serviceToken),
    audience: "orders",
    actionOf: (path) => ORDERS_ACTIONS[path],
    maxRevocationStalenessMs: 300,
    minBackoffMs: 100,
    maxBackoffMs: 200,
  });
  const orders = await startOrdersService(enforcer);
  try {
    await enforcer.ready();
    await orders.call("Read", token);
    await jitgate.close();
    await refusedWithin(5000, () => orders.call("Read", token), grpc.status.UNAVAILABLE);
    jitgate = await startTestJitgate(dataDir, { listen: address });
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ok = await orders.call("Read", token).then(
        () => true,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) assert.fail("not admitted again within 10 s of jitgate's return");
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await orders.close();
    enforcer.close();
    client.close();
    await jitgate.close();
    await removeDir(dataDir);
  }
});
