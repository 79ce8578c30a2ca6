// The enforcer in front of a tiny protected service, against a real jitgate on loopback: who gets in, and
// how fast revocation and expiry cut open streams.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { decodeJwt } from "jose";
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
    const serviceToken = await tokenFor(jitgate.dataDir, "orders-service", ["jitgate-checkers"]);
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
    const serviceToken = await tokenFor(jitgate.dataDir, "orders-service", ["jitgate-checkers"]);
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

describe("the enforcement interceptor: never at or past a token's exp, by the enforcer's own clock", () => {
  let jitgate: E2eServer;
  let enforcer: Enforcer;
  let orders: OrdersService;
  /** The enforcer's clock, set by each test; jitgate itself runs on real time. */
  let enforcerNow = Date.now();

  before(async () => {
    jitgate = await startE2eServer();
    const serviceToken = await tokenFor(jitgate.dataDir, "orders-service", ["jitgate-checkers"]);
    enforcer = createEnforcer({
      jitgate: { address: jitgate.jitgate.address, credentials: grpc.credentials.createInsecure() },
      callMetadata: () => bearerMetadata(serviceToken),
      audience: "orders",
      actionOf: (path) => ORDERS_ACTIONS[path],
      minBackoffMs: 50,
      now: () => enforcerNow,
    });
    await enforcer.ready();
    orders = await startOrdersService(enforcer);
  });

  after(async () => {
    await orders?.close();
    enforcer?.close();
    await jitgate?.close();
  });

  test("a token that expired one second ago is refused for a unary call and for a stream, before any handler runs", async () => {
    const { token, expiresAt } = await readGrant(jitgate, 600);
    enforcerNow = expiresAt + 1000;
    const handled = orders.handled;
    const unary = await failsWith(grpc.status.UNAUTHENTICATED, orders.call("Read", token));
    assert.equal(unary.message, "TOKEN_EXPIRED: access token has expired");
    const stream = await streamEnd(orders.tail(token));
    assert.deepEqual([stream.code, stream.details], [grpc.status.UNAUTHENTICATED, "TOKEN_EXPIRED: access token has expired"]);
    assert.equal(orders.handled, handled);
  });

  test("a token admitted (and remembered) a second before its exp is refused from its exp on, unary and streaming", async () => {
    const { token, expiresAt } = await readGrant(jitgate, 600);
    enforcerNow = expiresAt - 1000;
    assert.deepEqual(await orders.call("Read", token), { text: "ok Read" });
    enforcerNow = expiresAt;
    const handled = orders.handled;
    assert.match((await failsWith(grpc.status.UNAUTHENTICATED, orders.call("Read", token))).message, /^TOKEN_EXPIRED: /);
    assert.equal((await streamEnd(orders.tail(token))).code, grpc.status.UNAUTHENTICATED);
    assert.equal(orders.handled, handled);
  });

  test("a stream admitted a second before its token's exp runs, then ends with 'access expired', not after a tolerance", async () => {
    const { token, expiresAt } = await readGrant(jitgate, 600);
    // Frozen here, so the stream has one second of real time: its 20 s deadline would end it if exp were stretched.
    enforcerNow = expiresAt - 1000;
    const tail = orders.tail(token);
    const ended = streamEnd(tail);
    await firstMessage(tail);
    const end = await ended;
    assert.deepEqual([end.code, end.details], [grpc.status.PERMISSION_DENIED, "access expired"]);
  });

  test("in remote mode, a call jitgate's Check allows is still refused once the enforcer's clock is at the token's exp", async () => {
    const serviceToken = await tokenFor(jitgate.dataDir, "orders-service", ["jitgate-checkers"]);
    const remote = createEnforcer({
      jitgate: { address: jitgate.jitgate.address, credentials: grpc.credentials.createInsecure() },
      callMetadata: () => bearerMetadata(serviceToken),
      audience: "orders",
      actionOf: (path) => ORDERS_ACTIONS[path],
      mode: "remote",
      resource: "db/orders",
      now: () => enforcerNow,
    });
    const service = await startOrdersService(remote);
    try {
      await remote.ready();
      const { token, expiresAt } = await readGrant(jitgate, 600);
      enforcerNow = expiresAt - 1000;
      assert.deepEqual(await service.call("Read", token), { text: "ok Read" });
      enforcerNow = expiresAt;
      const handled = service.handled;
      assert.equal((await failsWith(grpc.status.PERMISSION_DENIED, service.call("Read", token))).message, "access expired");
      assert.equal((await streamEnd(service.tail(token))).details, "access expired");
      assert.equal(service.handled, handled);
    } finally {
      await service.close();
      remote.close();
    }
  });

  test("a token whose nbf and iat are a few seconds ahead of the enforcer's clock is admitted, unary and streaming", async () => {
    const { token } = await readGrant(jitgate, 600);
    enforcerNow = (decodeJwt(token).iat as number) * 1000 - 5000;
    assert.deepEqual(await orders.call("Read", token), { text: "ok Read" });
    const tail = orders.tail(token);
    const ended = streamEnd(tail);
    await firstMessage(tail);
    tail.cancel();
    assert.equal((await ended).code, grpc.status.CANCELLED);
  });
});
