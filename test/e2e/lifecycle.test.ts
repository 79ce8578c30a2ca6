// The access lifecycle through the real server: auto-approval, two-group approval with the review rules,
// a recorded denial, and break-glass. One server (loopback, SQLite in a temp dir) per file; each test has
// its own subjects.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type E2eServer, failsWith, ms, reasonCodes, startE2eServer, status } from "../support/api.ts";

const ORDERS = "db/orders";
const WHY = "investigating stuck orders in production";
const TICKET = "INC-1234";
const FROM_OFFICE = { source_ip: "10.1.2.3" };

describe("access lifecycle", () => {
  let server: E2eServer;
  before(async () => {
    server = await startE2eServer();
  });
  after(() => server.close());

  test("an engineer's read on db/orders is auto-approved with a grant that Check honours and ListGrants lists", async () => {
    const erin = await server.as("erin", ["engineering"]);
    const request = await erin.call("RequestAccess", {
      resource: ORDERS,
      actions: ["read"],
      duration: { seconds: 600 },
      justification: WHY,
      ticket: TICKET,
    });
    assert.equal(request.state, "APPROVED");
    assert.deepEqual(reasonCodes(request.reasons), ["auto_approved"]);
    const grant = request.grant;
    assert.ok(grant, "an approved request carries its grant");
    assert.equal(grant.status, "GRANT_STATUS_ACTIVE");
    assert.equal(grant.subject, "erin");
    assert.equal(grant.resource, ORDERS);
    assert.deepEqual(grant.actions, ["read"]);
    assert.equal(grant.request_id, request.id);
    assert.equal(ms(grant.expire_time) - ms(grant.create_time), 600_000);

    const check = await erin.call("Check", {
      subject: "erin",
      subject_groups: ["engineering"],
      resource: ORDERS,
      action: "read",
      context: FROM_OFFICE,
    });
    assert.equal(check.allow, true);
    assert.equal(check.grant_id, grant.id);
    assert.equal(ms(check.grant_expire_time), ms(grant.expire_time));
    assert.equal(check.standing, false);
    assert.notEqual(check.decision_id, "");
    assert.equal(check.policy_revision, server.jitgate.engine.active?.revision);
    assert.equal(check.policy_revision, request.policy_revision);

    const listed = await erin.call("ListGrants", { subject: "erin" });
    assert.deepEqual(
      listed.grants.map((g) => g.id),
      [grant.id],
    );
  });

  test("a write needs one dba and one security approval from people other than the requester", async () => {
    const alice = await server.as("alice", ["engineering", "dba"]);
    const bob = await server.as("bob", ["dba"]);
    const carol = await server.as("carol", ["security"]);
    const dave = await server.as("dave", ["security"]);
    const pending = await alice.call("RequestAccess", {
      resource: ORDERS,
      actions: ["write"],
      duration: { seconds: 1800 },
      justification: WHY,
      ticket: TICKET,
    });
    assert.equal(pending.state, "PENDING");
    assert.equal(pending.grant, null);
    assert.deepEqual(pending.approvals, [
      { group: "dba", required: 1, received: 0 },
      { group: "security", required: 1, received: 0 },
    ]);
    const approve = { id: pending.id, decision: "REVIEW_DECISION_APPROVE" } as const;

    const selfReview = await failsWith(status.PERMISSION_DENIED, alice.call("ReviewAccessRequest", approve));
    assert.ok(reasonCodes(selfReview.details?.reasons).includes("self_review"), selfReview.message);
    assert.equal(selfReview.details?.request_id, pending.id);

    const afterBob = await bob.call("ReviewAccessRequest", { ...approve, comment: "looks right" });
    assert.equal(afterBob.state, "PENDING");
    assert.deepEqual(afterBob.approvals, [
      { group: "dba", required: 1, received: 1 },
      { group: "security", required: 1, received: 0 },
    ]);
    assert.deepEqual(afterBob.reviews[0]?.counts_toward, ["dba"]);

    const twice = await failsWith(status.PERMISSION_DENIED, bob.call("ReviewAccessRequest", approve));
    assert.ok(reasonCodes(twice.details?.reasons).includes("already_reviewed"), twice.message);

    const approved = await carol.call("ReviewAccessRequest", approve);
    assert.equal(approved.state, "APPROVED");
    assert.match(approved.state_reason, /bob/);
    assert.match(approved.state_reason, /carol/);
    assert.ok(approved.grant);
    assert.equal(approved.grant.status, "GRANT_STATUS_ACTIVE");
    assert.deepEqual(approved.grant.actions, ["write"]);
    assert.equal(ms(approved.grant.expire_time) - ms(approved.grant.create_time), 1_800_000);

    const check = await alice.call("Check", {
      subject: "alice",
      subject_groups: ["engineering"],
      resource: ORDERS,
      action: "write",
      context: FROM_OFFICE,
    });
    assert.equal(check.allow, true);
    assert.equal(check.grant_id, approved.grant.id);

    // Decided without dave, the request is no longer his to read, or to learn the state of.
    const late = await failsWith(status.PERMISSION_DENIED, dave.call("ReviewAccessRequest", approve));
    assert.match(late.message, /is not one you may read/);
    assert.doesNotMatch(late.message, /APPROVED/);
  });

  test("an emergency request from outside the break-glass group is denied with reasons and kept as DENIED", async () => {
    const ed = await server.as("ed", ["engineering"]);
    const denied = await failsWith(
      status.PERMISSION_DENIED,
      ed.call("RequestAccess", {
        resource: ORDERS,
        actions: ["write"],
        duration: { seconds: 900 },
        justification: WHY,
        ticket: TICKET,
        emergency: true,
      }),
    );
    assert.match(denied.message, /may not use break-glass access/);
    assert.ok(denied.details, "the denial carries jit.v1.ErrorDetails");
    assert.deepEqual(reasonCodes(denied.details.reasons), ["break_glass_not_allowed"]);
    assert.equal(denied.details.reasons[0]?.details.detail, "not_in_group");
    assert.equal(denied.details.policy_revision, server.jitgate.engine.active?.revision);
    assert.notEqual(denied.details.request_id, "");

    const kept = await ed.call("GetAccessRequest", { id: denied.details.request_id });
    assert.equal(kept.state, "DENIED");
    assert.equal(kept.requester.id, "ed");
    assert.deepEqual(reasonCodes(kept.reasons), ["break_glass_not_allowed"]);
    assert.equal(kept.grant, null);
  });

  test("an oncall member's emergency write is approved at once as break-glass and notifies security", async () => {
    const olga = await server.as("olga", ["oncall"]);
    const request = await olga.call("RequestAccess", {
      resource: ORDERS,
      actions: ["write"],
      duration: { seconds: 1200 },
      justification: WHY,
      emergency: true,
    });
    assert.equal(request.state, "APPROVED");
    assert.equal(request.break_glass, true);
    assert.ok(request.notify.includes("security"), `notify: ${request.notify.join(", ")}`);
    assert.deepEqual(request.notify, ["dba", "security"]);
    assert.deepEqual(reasonCodes(request.reasons), ["break_glass"]);
    assert.ok(request.grant);
    assert.equal(request.grant.break_glass, true);
    assert.equal(request.grant.status, "GRANT_STATUS_ACTIVE");

    const check = await olga.call("Check", {
      subject: "olga",
      subject_groups: ["oncall"],
      resource: ORDERS,
      action: "write",
      context: FROM_OFFICE,
    });
    assert.equal(check.allow, true);
    assert.equal(check.grant_id, request.grant.id);
  });
});
