// Separation of duties through the real server (loopback gRPC, SQLite in a temp dir, dev-mode tokens): look-alike
// ids of the requester or of an earlier reviewer are refused with PERMISSION_DENIED and a reason code, and the
// messages print ids so that a homoglyph shows as what it is.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type E2eServer, failsWith, reasonCodes, startE2eServer, status } from "../support/api.ts";

const writeOrders = {
  resource: "db/orders",
  actions: ["write"],
  duration: { seconds: 1800 },
  justification: "repair orders stuck in the PAYING state",
  ticket: "INC-4242",
};

describe("separation of duties over gRPC", () => {
  let server: E2eServer;
  before(async () => {
    server = await startE2eServer();
  });
  after(() => server.close());

  test("ALICE cannot approve alice's request: PERMISSION_DENIED naming self_review, and nothing is recorded", async () => {
    const alice = await server.as("alice", ["engineering"]);
    const pending = await alice.call("RequestAccess", writeOrders);
    assert.equal(pending.state, "PENDING");
    const approve = { id: pending.id, decision: "REVIEW_DECISION_APPROVE" } as const;

    const upper = await failsWith(status.PERMISSION_DENIED, (await server.as("ALICE", ["dba"])).call("ReviewAccessRequest", approve));
    assert.deepEqual(reasonCodes(upper.details?.reasons), ["self_review"]);
    assert.equal(upper.details?.reasons[0]?.details.requester, "alice");
    assert.equal(upper.details?.request_id, pending.id);
    assert.equal(
      upper.message,
      `ALICE may not review request ${pending.id}: requesters may not review their own request (requester=alice)`,
    );

    const cyrillic = await failsWith(
      status.PERMISSION_DENIED,
      (await server.as("\u0430lice", ["security"])).call("ReviewAccessRequest", approve),
    );
    assert.deepEqual(reasonCodes(cyrillic.details?.reasons), ["self_review"]);
    assert.equal(
      cyrillic.message,
      `\\u{0430}lice may not review request ${pending.id}: requesters may not review their own request (requester=alice)`,
    );

    const after = await alice.call("GetAccessRequest", { id: pending.id });
    assert.equal(after.state, "PENDING");
    assert.deepEqual(after.reviews, []);
    const auditor = await server.as("aude", ["jitgate-auditors"]);
    const trail = (await auditor.call("ListAuditEntries", { subject: "alice", page_size: 500 })).entries;
    assert.deepEqual(
      trail.filter((e) => e.request_id === pending.id).map((e) => e.kind),
      ["REQUEST_CREATED"],
    );
  });

  test("b0b cannot fill the second slot after bob approved; carol can, and the request is approved by bob and carol", async () => {
    const dana = await server.as("dana", ["engineering"]);
    const pending = await dana.call("RequestAccess", writeOrders);
    const approve = { id: pending.id, decision: "REVIEW_DECISION_APPROVE" } as const;
    await (await server.as("bob", ["dba"])).call("ReviewAccessRequest", approve);

    const again = await failsWith(status.PERMISSION_DENIED, (await server.as("b0b", ["security"])).call("ReviewAccessRequest", approve));
    assert.deepEqual(reasonCodes(again.details?.reasons), ["already_reviewed"]);
    assert.equal(again.details?.reasons[0]?.details.reviewer, "bob");
    assert.equal((await dana.call("GetAccessRequest", { id: pending.id })).state, "PENDING");

    const approved = await (await server.as("carol", ["security"])).call("ReviewAccessRequest", approve);
    assert.equal(approved.state, "APPROVED");
    assert.deepEqual(
      approved.reviews.map((r) => r.reviewer.id),
      ["bob", "carol"],
    );
    assert.equal(approved.state_reason, "approved by bob, carol");
  });
});
