// The audit trail over gRPC: auditors and admins list it (oldest first, filtered, paged), with the chain's
// fields intact; everyone else is refused.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { auditRowHash } from "../../src/store/audit-chain.ts";
import { type AuditEntry, type Caller, type E2eServer, failsWith, ms, orderReadGrant, startE2eServer, status } from "../support/api.ts";

describe("ListAuditEntries", () => {
  let server: E2eServer;
  let auditor: Caller;
  let engineer: Caller;
  let grantId: string;
  before(async () => {
    server = await startE2eServer();
    auditor = await server.as("aude", ["jitgate-auditors"]);
    engineer = await server.as("erin", ["engineering"]);
    const admin = await server.as("ada", ["jitgate-admins"]);
    ({ grantId } = await orderReadGrant(engineer));
    await orderReadGrant(await server.as("otto", ["engineering"]));
    await admin.call("RevokeGrant", { grant_id: grantId, reason: "INC-9 contained" });
  });
  after(() => server.close());

  /** Every page of a listing, concatenated. */
  async function all(request: { subject?: string; resource?: string; page_size?: number }): Promise<AuditEntry[]> {
    const entries: AuditEntry[] = [];
    let page_token = "";
    do {
      const page = await auditor.call("ListAuditEntries", { ...request, page_token });
      entries.push(...page.entries);
      page_token = page.next_page_token;
    } while (page_token !== "");
    return entries;
  }

  test("a subject's history, oldest first: what they asked for, what happened, and who revoked it", async () => {
    const entries = await all({ subject: "erin" });
    assert.deepEqual(
      entries.map((e) => [e.kind, e.actor, e.subject]),
      [
        ["REQUEST_CREATED", "erin", "erin"],
        ["REQUEST_APPROVED", "erin", "erin"],
        ["GRANT_CREATED", "policy", "erin"],
        ["TOKEN_ISSUED", "erin", "erin"],
        ["GRANT_REVOKED", "ada", "erin"],
      ],
    );
    assert.equal(entries.at(-1)?.grant_id, grantId);
    assert.equal(entries.at(-1)?.reason, "INC-9 contained");
  });

  test("entries by an actor count as theirs too", async () => {
    assert.deepEqual(
      (await all({ subject: "ada" })).map((e) => [e.kind, e.subject]),
      [["GRANT_REVOKED", "erin"]],
    );
  });

  test("pages of two add up to the whole trail, each entry once, chained and hashed as stored", async () => {
    const paged = await all({ page_size: 2 });
    const whole = (await auditor.call("ListAuditEntries", { page_size: 500 })).entries;
    assert.deepEqual(paged, whole);
    assert.equal(whole.length, 10, "activation, two requests with their grants and tokens, a revocation");
    assert.equal(whole[0]?.kind, "POLICY_BUNDLE_ACTIVATED");
    whole.forEach((e, i) => {
      assert.equal(Number(e.seq), i + 1);
      if (i > 0) assert.equal(e.prev_hash, whole[i - 1]?.hash);
      const row = {
        seq: Number(e.seq),
        at: Number(e.time?.seconds) * 1000 + Math.round((e.time?.nanos ?? 0) / 1e6),
        kind: e.kind,
        actor: e.actor,
        subject: e.subject,
        resource: e.resource,
        request_id: e.request_id || null,
        grant_id: e.grant_id || null,
        reason: e.reason,
        policy_revision: e.policy_revision,
        details: e.details_json,
        prev_hash: e.prev_hash,
      };
      assert.equal(auditRowHash(row), e.hash, `entry #${e.seq} hashes as stored`);
    });
  });

  test("a resource filter keeps that resource's entries only", async () => {
    const entries = await all({ resource: "db/orders" });
    assert.equal(entries.length, 9, "all but the policy activation");
    assert.ok(entries.every((e) => e.resource === "db/orders"));
  });

  test("a time range keeps the entries inside it; an empty range is refused naming until", async () => {
    const whole = await all({});
    const first = whole[1]?.time;
    const inRange = await auditor.call("ListAuditEntries", {
      since: first ?? undefined,
      until: { seconds: String(Number(first?.seconds) + 3600), nanos: 0 },
    });
    const sinceMs = ms(first);
    assert.deepEqual(
      inRange.entries.map((e) => e.seq),
      whole.filter((e) => ms(e.time) >= sinceMs).map((e) => e.seq),
    );
    assert.ok(inRange.entries.length < whole.length, "the activation before it is left out");
    const failure = await failsWith(
      status.INVALID_ARGUMENT,
      auditor.call("ListAuditEntries", { since: first ?? undefined, until: first ?? undefined }),
    );
    assert.match(failure.message, /until/);
  });

  test("someone who is neither admin nor auditor is refused; a foreign page token too", async () => {
    const refused = await failsWith(status.PERMISSION_DENIED, engineer.call("ListAuditEntries", { subject: "erin" }));
    assert.match(refused.message, /jitgate-admins, jitgate-auditors/);
    await failsWith(status.INVALID_ARGUMENT, auditor.call("ListAuditEntries", { page_token: "bm90LW91cnM" }));
  });
});
