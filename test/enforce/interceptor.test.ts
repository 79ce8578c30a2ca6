// The enforcer in front of a tiny protected service, against a real jitgate on loopback: who gets in, and
// how fast revocation and expiry cut open streams.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { createEnforcer, type Enforcer } from "../../src/enforce/interceptor.ts";
import { type Caller, type E2eServer, failsWith, startE2eServer, tokenFor, bearerMetadata, orderReadGrant } from "../support/api.ts";
import { firstMessage, ORDERS_ACTIONS, type OrdersService, startOrdersService, streamEnd } from "./orders-service.ts";

interface ReadGrant {
  readonly engineer: Caller;
  readonly grantId: string;
  readonly token: string;
  readonly expiresAt: number;
}

let engineers = 0;

/** A fresh engineer (jitgate allows one live grant per requester and resource) with a read grant and its token. */
async function readGrant(jitgate: E2eServer, seconds: number): Promise<ReadGrant> {
  const engineer = await jitgate.as(`erin-${++engineers}`, ["engineering"]);
  const { grantId, token, tokenExpiresAt } = await orderReadGrant(engineer, seconds);
  return { engineer, grantId, token, expiresAt: tokenExpiresAt };
}

/** Polls `attempt` until it fails with `code`, for at most `withinMs`; returns how long that took. */
async function refusedWithin(withinMs: number, attempt: () => Promise<unknown>, code: grpc.status): Promise<number> {
  const start = Date.now();
  while (Date.now() - start <= withinMs) {
    const err = await attempt().then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    if (err?.code === code) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`not refused with ${grpc.status[code]} within ${withinMs} ms`);
}

describe("the enforcement interceptor (local verification)", () => {
  let jitgate: E2eServer;
  let enforcer: Enforcer;
  let orders: OrdersService;

  before(async () => {
    jitgate = await startE2eServer();
    const serviceToken = await tokenFor(jitgate.dataDir, "orders-service", []);
    enforcer = createEnforcer({
      jitgate: { address: jitgate.jitgate.address, credentials: grpc.credentials.createInsecure() },
      callMetadata: () => bearerMetadata(serviceToken),
      audience: "orders",
      actionOf: (path) => ORDERS_ACTIONS[path],
      minBackoffMs: 50,
    });
    await enforcer.ready();
    orders = await startOrdersService(enforcer);
  });

  after(async () => {
    await orders?.close();
    enforcer?.close();
    await jitgate?.close();
  });

  test("a call without a token is UNAUTHENTICATED and never reaches the handler", async () => {
    const handled = orders.handled;
    const failure = await failsWith(grpc.status.UNAUTHENTICATED, orders.call("Read", undefined));
    assert.match(failure.message, /no access token/);
    assert.equal(orders.handled, handled);
  });

  test("a garbage token is UNAUTHENTICATED with the rejection code", async () => {
    const failure = await failsWith(grpc.status.UNAUTHENTICATED, orders.call("Read", "not.a.token"));
    assert.match(failure.message, /^TOKEN_MALFORMED: /);
  });

  test("a caller's own identity token is not an access token", async () => {
    const identity = await tokenFor(jitgate.dataDir, "erin", ["engineering"]);
    await failsWith(grpc.status.UNAUTHENTICATED, orders.call("Read", identity));
  });

  test("a read token admits Read and refuses Write and unmapped methods", async () => {
    const { token } = await readGrant(jitgate, 600);
    assert.deepEqual(await orders.call("Read", token), { text: "ok Read" });
    const handled = orders.handled;
    const write = await failsWith(grpc.status.PERMISSION_DENIED, orders.call("Write", token));
    assert.match(write.message, /does not allow 'write'/);
    await failsWith(grpc.status.PERMISSION_DENIED, orders.call("Admin", token));
    assert.equal(orders.handled, handled);
  });

  test("once the grant is revoked, new calls are refused within 1 s", async () => {
    const { engineer, grantId, token } = await readGrant(jitgate, 600);
    await orders.call("Read", token);
    await engineer.call("RevokeGrant", { grant_id: grantId, reason: "done with INC-77" });
    const tookMs = await refusedWithin(1000, () => orders.call("Read", token), grpc.status.PERMISSION_DENIED);
    assert.ok(tookMs <= 1000);
    const failure = await failsWith(grpc.status.PERMISSION_DENIED, orders.call("Read", token));
    assert.equal(failure.message, "access revoked");
  });

  test("an open Tail stream ends with 'access revoked' within 1 s of RevokeGrant", async () => {
    const { engineer, grantId, token } = await readGrant(jitgate, 600);
    const tail = orders.tail(token);
    const ended = streamEnd(tail);
    await firstMessage(tail);
    await engineer.call("RevokeGrant", { grant_id: grantId, reason: "done with INC-77" });
    const revokedAt = Date.now();
    const end = await ended;
    assert.equal(end.code, grpc.status.PERMISSION_DENIED);
    assert.equal(end.details, "access revoked");
    assert.ok(end.at - revokedAt <= 1000, `ended ${end.at - revokedAt} ms after the revocation`);
  });

  test("an open Tail stream ends with 'access expired' within 1 s of the token's exp", async () => {
    const { token, expiresAt } = await readGrant(jitgate, 2);
    const tail = orders.tail(token);
    const ended = streamEnd(tail);
    await firstMessage(tail);
    const end = await ended;
    assert.equal(end.code, grpc.status.PERMISSION_DENIED);
    assert.equal(end.details, "access expired");
    assert.ok(Math.abs(end.at - expiresAt) <= 1000, `ended ${end.at - expiresAt} ms after exp`);
  });
});

describe("the enforcement interceptor (remote checks)", () => {
  let jitgate: E2eServer;
  let enforcer: Enforcer;
  let orders: OrdersService;

  before(async () => {
    jitgate = await startE2eServer();
    const serviceToken = await tokenFor(jitgate.dataDir, "orders-service", []);
    enforcer = createEnforcer({
      jitgate: { address: jitgate.jitgate.address, credentials: grpc.credentials.createInsecure() },
      callMetadata: () => bearerMetadata(serviceToken),
      audience: "orders",
      actionOf: (path) => ORDERS_ACTIONS[path],
      mode: "remote",
      resource: "db/orders",
    });
    await enforcer.ready();
    orders = await startOrdersService(enforcer);
  });

  after(async () => {
    await orders?.close();
    enforcer?.close();
    await jitgate?.close();
  });

  test("jitgate's Check admits Read with a read token and refuses Write", async () => {
    const { token } = await readGrant(jitgate, 600);
    assert.deepEqual(await orders.call("Read", token), { text: "ok Read" });
    await failsWith(grpc.status.PERMISSION_DENIED, orders.call("Write", token));
  });

  test("without a token or with garbage the call is UNAUTHENTICATED", async () => {
    await failsWith(grpc.status.UNAUTHENTICATED, orders.call("Read", undefined));
    await failsWith(grpc.status.UNAUTHENTICATED, orders.call("Read", "not.a.token"));
  });

  test("a revoked grant's token is refused at once", async () => {
    const { engineer, grantId, token } = await readGrant(jitgate, 600);
    await orders.call("Read", token);
    await engineer.call("RevokeGrant", { grant_id: grantId, reason: "done with INC-77" });
    await failsWith(grpc.status.PERMISSION_DENIED, orders.call("Read", token));
  });
});
