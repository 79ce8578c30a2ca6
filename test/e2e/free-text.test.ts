// Free text over the real API: a justification, comment or reason holding a bidirectional override or a
// terminal escape is refused with INVALID_ARGUMENT naming the field, and nothing of it is stored; the CLI shows
// the server's message as one line and exits 2; ordinary text in any script, newlines included, is kept as sent.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { type Caller, type E2eServer, failsWith, type RequestAccessRequest, startE2eServer, status, tokenFor } from "../support/api.ts";
import { ROOT } from "../support/bundles.ts";

const RLO = "\u202e";
const ESC = "\u001b";
const HIDDEN = /[\p{Cc}\p{Cf}]/u;

const orderWrite = (change: Partial<RequestAccessRequest> = {}): RequestAccessRequest => ({
  resource: "db/orders",
  actions: ["write"],
  duration: { seconds: 1800 },
  justification: "repair orders stuck in PAYING",
  ticket: "INC-1234",
  ...change,
});

describe("free text over the API", () => {
  let server: E2eServer;
  let auditor: Caller;
  before(async () => {
    server = await startE2eServer();
    auditor = await server.as("aude", ["jitgate-auditors"]);
  });
  after(() => server.close());

  test("a justification with a right-to-left override is INVALID_ARGUMENT naming justification, and nothing is stored", async () => {
    const rita = await server.as("rita", ["engineering"]);
    const failure = await failsWith(
      status.INVALID_ARGUMENT,
      rita.call("RequestAccess", orderWrite({ justification: `approved by security ${RLO}2202-CNI` })),
    );
    assert.match(failure.message, /^justification: holds the bidirectional control U\+202E \(RIGHT-TO-LEFT OVERRIDE\) at character 22, /);
    assert.match(failure.message, /remove it/);
    assert.doesNotMatch(failure.message, HIDDEN);
    assert.equal(failure.details?.field, "justification");

    // Then a valid request: the listings work, and show only it.
    const valid = await rita.call("RequestAccess", orderWrite());
    assert.deepEqual(
      (await rita.call("ListAccessRequests", { requester: "rita" })).requests.map((r) => r.id),
      [valid.id],
    );
    const trail = (await auditor.call("ListAuditEntries", { subject: "rita", page_size: 500 })).entries;
    assert.deepEqual(
      trail.map((e) => [e.kind, e.request_id]),
      [["REQUEST_CREATED", valid.id]],
    );
    assert.ok(!JSON.stringify(trail).includes(RLO));
  });

  test("a review comment with a terminal escape is refused naming comment, and the request keeps no review", async () => {
    const rick = await server.as("rick", ["engineering"]);
    const bob = await server.as("bob", ["dba"]);
    const pending = await rick.call("RequestAccess", orderWrite());
    const failure = await failsWith(
      status.INVALID_ARGUMENT,
      bob.call("ReviewAccessRequest", { id: pending.id, decision: "REVIEW_DECISION_APPROVE", comment: `ok${ESC}[2J` }),
    );
    assert.match(failure.message, /^comment: holds the control character U\+001B \(ESCAPE\) at character 3/);
    assert.equal(failure.details?.field, "comment");
    const stored = await rick.call("GetAccessRequest", { id: pending.id });
    assert.deepEqual([stored.state, stored.reviews], ["PENDING", []]);
  });

  test("every reason (cancel, revoke a grant, revoke a subject) is one line without controls", async () => {
    const ron = await server.as("ron", ["engineering"]);
    const admin = await server.as("ada", ["jitgate-admins"]);
    const pending = await ron.call("RequestAccess", orderWrite());
    const calls = [
      ron.call("CancelAccessRequest", { id: pending.id, reason: `not needed${RLO}` }),
      admin.call("RevokeGrant", { grant_id: "g-any", reason: "contained\nGRANT_CREATED by policy" }),
      admin.call("RevokeSubject", { subject: "ron", reason: `INC-9${ESC}]8;;http://evil${ESC}\\` }),
    ];
    for (const call of calls) {
      const failure = await failsWith(status.INVALID_ARGUMENT, call);
      assert.match(failure.message, /^reason: holds /);
      assert.equal(failure.details?.field, "reason");
    }
    assert.equal((await ron.call("GetAccessRequest", { id: pending.id })).state, "PENDING");
  });

  test("ordinary text in any script, and a justification's newlines, are stored as sent", async () => {
    const nadia = await server.as("nadia", ["analytics"]);
    const justification = "تصدير الطلبات لـ INC-77\n修复订单 — Zoë's café 👩‍💻\nمی‌خواهم";
    const request = await nadia.call("RequestAccess", {
      resource: "s3/analytics-exports",
      actions: ["read"],
      duration: { seconds: 600 },
      justification,
    });
    assert.equal(request.state, "APPROVED", request.state_reason);
    assert.equal((await nadia.call("GetAccessRequest", { id: request.id })).justification, justification);
  });

  test("the CLI sends the text as typed, prints the server's message on one line and exits 2", async () => {
    const env = {
      PATH: process.env.PATH,
      JITGATE_ADDRESS: server.jitgate.address,
      JITGATE_TOKEN: await tokenFor(server.dataDir, "rosa", ["engineering"]),
    };
    const args = ["request", "db/orders", "--actions", "write", "--duration", "30m", "--ticket", "INC-1234"];
    const run = promisify(execFile)(process.execPath, [join(ROOT, "bin", "jitgate"), ...args, "--justification", `fix ${RLO}it`], {
      cwd: ROOT,
      env,
      timeout: 30_000,
    });
    const failed = await run.then(
      () => assert.fail("the CLI accepted it"),
      (err: { code?: number; stdout: string; stderr: string }) => err,
    );
    assert.equal(failed.code, 2, failed.stderr);
    assert.equal(failed.stdout, "");
    assert.match(
      failed.stderr,
      /^jitgate: INVALID_ARGUMENT: justification: holds the bidirectional control U\+202E .* at character 5, .*\n$/,
    );
    assert.doesNotMatch(failed.stderr.trimEnd(), HIDDEN);
    assert.deepEqual((await auditor.call("ListAuditEntries", { subject: "rosa" })).entries, []);
  });
});
