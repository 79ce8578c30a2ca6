// Every error code the API answers, each caused by a real call: the code, the message and the details a
// client would see. (PERMISSION_DENIED and FAILED_PRECONDITION of reviews and revocations are in
// lifecycle.test.ts and grants.test.ts.)
import assert from "node:assert/strict";
import { connect } from "node:http2";
import { after, before, describe, test } from "node:test";
import { issueDevToken } from "../../src/identity/dev-issuer.ts";
import { accessServiceDefinition, loadAccessPackage } from "../../src/proto/loader.ts";
import { removeDir, tempDir } from "../support/bundles.ts";
import { type Caller, type E2eServer, failsWith, type RequestAccessRequest, startE2eServer, status, tokenFor } from "../support/api.ts";

const ORDERS = "db/orders";
const WHY = "investigating stuck orders in production";
const TICKET = "INC-1234";

const orderRead = (change: Partial<RequestAccessRequest> = {}): RequestAccessRequest => ({
  resource: ORDERS,
  actions: ["read"],
  duration: { seconds: 600 },
  justification: WHY,
  ticket: TICKET,
  ...change,
});

describe("error codes", () => {
  let server: E2eServer;
  let erin: Caller;
  before(async () => {
    server = await startE2eServer();
    erin = await server.as("erin", ["engineering"]);
  });
  after(() => server.close());

  test("a duration of 0 is INVALID_ARGUMENT naming duration", async () => {
    const failure = await failsWith(status.INVALID_ARGUMENT, erin.call("RequestAccess", orderRead({ duration: { seconds: 0 } })));
    assert.match(failure.message, /^duration: /);
    assert.equal(failure.details?.field, "duration");
  });

  test("an action the resource does not offer is INVALID_ARGUMENT naming actions", async () => {
    const failure = await failsWith(status.INVALID_ARGUMENT, erin.call("RequestAccess", orderRead({ actions: ["drop"] })));
    assert.match(failure.message, /^actions: the resource does not allow this action \(action=drop\)/);
    assert.equal(failure.details?.field, "actions");
  });

  test("a missing justification on db/orders is INVALID_ARGUMENT naming justification", async () => {
    const failure = await failsWith(status.INVALID_ARGUMENT, erin.call("RequestAccess", orderRead({ justification: "" })));
    assert.match(failure.message, /^justification: the justification is shorter than the required minimum/);
    assert.equal(failure.details?.field, "justification");
  });

  test("a missing ticket on db/orders is INVALID_ARGUMENT naming ticket", async () => {
    const failure = await failsWith(status.INVALID_ARGUMENT, erin.call("RequestAccess", orderRead({ ticket: "" })));
    assert.match(failure.message, /^ticket: a ticket reference is required/);
    assert.equal(failure.details?.field, "ticket");
  });

  test("an invalid request is refused without being recorded", async () => {
    const ian = await server.as("ian", ["engineering"]);
    await failsWith(status.INVALID_ARGUMENT, ian.call("RequestAccess", orderRead({ ticket: "" })));
    assert.deepEqual((await ian.call("ListAccessRequests", { requester: "ian" })).requests, []);
  });

  test("a call without a token is UNAUTHENTICATED", async () => {
    const failure = await failsWith(status.UNAUTHENTICATED, server.client.as(undefined).call("ListGrants", {}));
    assert.match(failure.message, /no caller identity/);
  });

  test("a call with a garbage token is UNAUTHENTICATED", async () => {
    const failure = await failsWith(status.UNAUTHENTICATED, server.client.as("not-a-token").call("ListGrants", {}));
    assert.match(failure.message, /malformed token/);
  });

  test("a call with an expired token is UNAUTHENTICATED, and so is a watch", async () => {
    const expired = await issueDevToken({
      dataDir: server.dataDir,
      subject: "erin",
      groups: ["engineering"],
      ttlSeconds: 60,
      now: Date.now() - 3600_000,
    });
    const failure = await failsWith(status.UNAUTHENTICATED, server.client.as(expired).call("RequestAccess", orderRead()));
    assert.match(failure.message, /expired/);
    assert.doesNotMatch(failure.message, /\n\s+at /, "no stack trace");

    const watch = server.client.as(expired).watch({});
    const ended = await watch.next().then(
      () => assert.fail("a watch with an expired token delivered an event"),
      (err: { code?: number }) => err,
    );
    assert.equal(ended.code, status.UNAUTHENTICATED);
  });

  test("a token signed by another dev issuer is UNAUTHENTICATED", async () => {
    const foreignDir = await tempDir();
    try {
      const foreign = await issueDevToken({ dataDir: foreignDir, subject: "erin", groups: ["jitgate-admins"], ttlSeconds: 60 });
      await failsWith(status.UNAUTHENTICATED, server.client.as(foreign).call("RevokeSubject", { subject: "erin" }));
    } finally {
      await removeDir(foreignDir);
    }
  });

  test("an unknown request id is NOT_FOUND (to those who may read every request)", async () => {
    const auditor = await server.as("audrey", ["jitgate-auditors"]);
    const failure = await failsWith(status.NOT_FOUND, auditor.call("GetAccessRequest", { id: "no-such-request" }));
    assert.match(failure.message, /no-such-request/);
    // To anyone else an unknown request and someone else's look alike.
    const hidden = await failsWith(status.PERMISSION_DENIED, erin.call("GetAccessRequest", { id: "no-such-request" }));
    assert.match(hidden.message, /no-such-request is not one you may read/);
    await failsWith(
      status.PERMISSION_DENIED,
      erin.call("ReviewAccessRequest", { id: "no-such-request", decision: "REVIEW_DECISION_APPROVE" }),
    );
    await failsWith(status.NOT_FOUND, auditor.call("ReviewAccessRequest", { id: "no-such-request", decision: "REVIEW_DECISION_APPROVE" }));
    await failsWith(status.PERMISSION_DENIED, erin.call("RevokeGrant", { grant_id: "no-such-grant" }));
    const admin = await server.as("adela", ["jitgate-admins"]);
    await failsWith(status.NOT_FOUND, admin.call("RevokeGrant", { grant_id: "no-such-grant" }));
  });

  test("cancelling a request that is no longer pending is FAILED_PRECONDITION", async () => {
    const cal = await server.as("cal", ["engineering"]);
    const pending = await cal.call("RequestAccess", orderRead({ actions: ["write"] }));
    const cancelled = await cal.call("CancelAccessRequest", { id: pending.id, reason: "not needed" });
    assert.equal(cancelled.state, "CANCELLED");
    const again = await failsWith(status.FAILED_PRECONDITION, cal.call("CancelAccessRequest", { id: pending.id }));
    assert.match(again.message, /CANCELLED/);
  });

  test("only the requester may cancel a request: PERMISSION_DENIED for anyone else", async () => {
    const cid = await server.as("cid", ["engineering"]);
    const pending = await cid.call("RequestAccess", orderRead({ actions: ["write"] }));
    await failsWith(status.PERMISSION_DENIED, erin.call("CancelAccessRequest", { id: pending.id }));
    assert.equal((await cid.call("GetAccessRequest", { id: pending.id })).state, "PENDING");
  });

  test("a second identical pending request is ALREADY_EXISTS (duplicate_pending) naming the first", async () => {
    const dan = await server.as("dan", ["engineering"]);
    const first = await dan.call("RequestAccess", orderRead({ actions: ["write"] }));
    assert.equal(first.state, "PENDING");
    const failure = await failsWith(status.ALREADY_EXISTS, dan.call("RequestAccess", orderRead({ actions: ["write"] })));
    assert.match(failure.message, /a pending request already covers these actions/);
    assert.match(failure.message, new RegExp(first.id));
    const { requests } = await dan.call("ListAccessRequests", { requester: "dan" });
    assert.equal(requests.length, 1, "the duplicate is not recorded");
  });
});

describe("a call whose deadline has passed", () => {
  let server: E2eServer;
  before(async () => {
    server = await startE2eServer();
  });
  after(() => server.close());

  test("is DEADLINE_EXCEEDED and not started: a RequestAccess sent with a 1 ns deadline stores nothing", async () => {
    const token = await tokenFor(server.dataDir, "frank", ["engineering"]);
    const method = accessServiceDefinition(loadAccessPackage()).RequestAccess;
    assert.ok(method);
    const body = method.requestSerialize({
      resource: ORDERS,
      actions: ["read"],
      duration: { seconds: 600 },
      justification: WHY,
      ticket: TICKET,
    });
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), body]);
    frame.writeUInt32BE(body.length, 1);
    const session = connect(`http://${server.jitgate.address}`);
    try {
      // A raw HTTP/2 call: a grpc-js client refuses to send a call whose deadline has already passed.
      const stream = session.request({
        ":method": "POST",
        ":path": "/jit.v1.AccessService/RequestAccess",
        "content-type": "application/grpc",
        te: "trailers",
        "grpc-timeout": "1n",
        authorization: `Bearer ${token}`,
      });
      let grpcStatus = "";
      stream.on("response", (h) => (grpcStatus ||= String(h["grpc-status"] ?? "")));
      stream.on("trailers", (t) => (grpcStatus = String(t["grpc-status"] ?? "")));
      stream.resume();
      stream.end(frame);
      await new Promise((ok, fail) => stream.once("close", ok).once("error", fail));
      assert.equal(grpcStatus, String(status.DEADLINE_EXCEEDED));
    } finally {
      session.close();
    }
    const frank = await server.as("frank", ["engineering"]);
    assert.deepEqual((await frank.call("ListAccessRequests", {})).requests, [], "nothing was stored");
  });
});
