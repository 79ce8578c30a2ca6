// RequestAccess with `wait`: the call holds until reviewers decide, or ends DEADLINE_EXCEEDED at its
// deadline with the request left pending; and idempotent retries with client_request_id.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { type AccessRequest, type Caller, type E2eServer, failsWith, startE2eServer, status } from "../support/api.ts";

const ORDERS = "db/orders";
const WHY = "migrating the orders schema for release";
const TICKET = "CHG-77";

const writeRequest = (extra: { wait?: boolean; client_request_id?: string; actions?: string[] } = {}) => ({
  resource: ORDERS,
  actions: ["write"],
  duration: { seconds: 1800 },
  justification: WHY,
  ticket: TICKET,
  ...extra,
});

/**
 * The requester's pending request once it exists. A waiting RequestAccess answers only when decided, so its
 * id is found by listing; nothing announces the request, hence the bounded poll.
 */
async function pendingRequestOf(caller: Caller, requester: string): Promise<AccessRequest> {
  const until = Date.now() + 5_000;
  for (;;) {
    const { requests } = await caller.call("ListAccessRequests", { state: "PENDING", requester, resource: ORDERS });
    if (requests.length === 1) return requests[0] as AccessRequest;
    assert.equal(requests.length, 0, "at most one pending request");
    if (Date.now() > until) throw new Error(`no pending request of ${requester} within 5 s`);
    await delay(10);
  }
}

describe("waiting for a decision, and retries", () => {
  let server: E2eServer;
  before(async () => {
    server = await startE2eServer();
  });
  after(() => server.close());

  test("a waiting RequestAccess returns APPROVED with the grant once both approvers have approved", async () => {
    const wendy = await server.as("wendy", ["engineering"]);
    const bob = await server.as("bob", ["dba"]);
    const carol = await server.as("carol", ["security"]);
    let settled = false;
    const waiting = wendy.call("RequestAccess", writeRequest({ wait: true }), { deadlineMs: 20_000 }).finally(() => {
      settled = true;
    });

    const pending = await pendingRequestOf(bob, "wendy");
    const approve = { id: pending.id, decision: "REVIEW_DECISION_APPROVE" } as const;
    assert.equal((await bob.call("ReviewAccessRequest", approve)).state, "PENDING");
    assert.equal(settled, false, "one approval of two does not end the wait");
    const approved = await carol.call("ReviewAccessRequest", approve);
    assert.equal(approved.state, "APPROVED");

    const answer = await waiting;
    assert.equal(answer.id, pending.id);
    assert.equal(answer.state, "APPROVED");
    assert.ok(answer.grant);
    assert.equal(answer.grant.id, approved.grant?.id);
    assert.equal(answer.grant.status, "GRANT_STATUS_ACTIVE");
  });

  test("a waiting RequestAccess ends DEADLINE_EXCEEDED at its deadline and the request stays PENDING", async () => {
    const walt = await server.as("walt", ["engineering"]);
    const started = Date.now();
    await failsWith(status.DEADLINE_EXCEEDED, walt.call("RequestAccess", writeRequest({ wait: true }), { deadlineMs: 1_000 }));
    const took = Date.now() - started;
    assert.ok(took >= 900 && took < 5_000, `the call ended after ${took} ms`);

    const { requests } = await walt.call("ListAccessRequests", { state: "PENDING", requester: "walt" });
    assert.equal(requests.length, 1);
    const kept = await walt.call("GetAccessRequest", { id: (requests[0] as AccessRequest).id });
    assert.equal(kept.state, "PENDING");
    assert.equal(kept.grant, null);
  });

  test("a retry with the same client_request_id returns the first request instead of making another", async () => {
    const ivy = await server.as("ivy", ["engineering"]);
    const first = await ivy.call("RequestAccess", writeRequest({ client_request_id: "ivy-change-1" }));
    assert.equal(first.state, "PENDING");
    assert.equal(first.client_request_id, "ivy-change-1");
    const retry = await ivy.call("RequestAccess", writeRequest({ client_request_id: "ivy-change-1" }));
    assert.equal(retry.id, first.id);
    assert.equal(retry.state, "PENDING");

    const { requests } = await ivy.call("ListAccessRequests", { requester: "ivy" });
    assert.deepEqual(
      requests.map((r) => r.id),
      [first.id],
    );
  });

  test("the same client_request_id for a different request is ALREADY_EXISTS", async () => {
    const ike = await server.as("ike", ["engineering"]);
    const first = await ike.call("RequestAccess", writeRequest({ client_request_id: "ike-change-1" }));
    const clash = await failsWith(
      status.ALREADY_EXISTS,
      ike.call("RequestAccess", writeRequest({ client_request_id: "ike-change-1", actions: ["write", "admin"] })),
    );
    assert.match(clash.message, /ike-change-1/);
    assert.match(clash.message, new RegExp(first.id));
    const { requests } = await ike.call("ListAccessRequests", { requester: "ike" });
    assert.equal(requests.length, 1);
  });

  test("a retry of a denied request with the same client_request_id is denied again", async () => {
    // A client whose first answer was lost retries; it must get the same answer, PERMISSION_DENIED.
    const eve = await server.as("eve", ["engineering"]);
    const emergency = { ...writeRequest({ client_request_id: "eve-emergency-1" }), emergency: true };
    const denied = await failsWith(status.PERMISSION_DENIED, eve.call("RequestAccess", emergency));
    const retried = await failsWith(status.PERMISSION_DENIED, eve.call("RequestAccess", emergency));
    assert.equal(retried.details?.request_id, denied.details?.request_id);
  });
});
