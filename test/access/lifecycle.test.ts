// The access lifecycle on the real policy and a real SQLite file, with a fake clock: time-driven rules
// (expiry, timeouts) are tested without waiting.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import { Access } from "../../src/access/access.ts";
import type { Caller, DecisionRecord, GrantEvent } from "../../src/access/model.ts";
import type { PolicyDecider } from "../../src/access/ports.ts";
import { AlreadyExists, FailedPrecondition, InvalidArgument, PermissionDenied } from "../../src/errors.ts";
import type { PolicyEngine } from "../../src/policy/engine.ts";
import type { SqliteStore } from "../../src/store/sqlite.ts";
import { type AccessDomain, type AccessDomains, openAccessDomains, writeOrders } from "../support/access-domain.ts";
import { DUE_PER_PASS } from "../../src/access/expiry.ts";
import { storeGrant } from "../store/fixtures.ts";

const T0 = Date.UTC(2026, 10, 23, 10, 0, 0);
const alice: Caller = { id: "alice", groups: ["engineering"] };
const bob: Caller = { id: "bob", groups: ["dba"] };
const carol: Caller = { id: "carol", groups: ["security"] };
const admin: Caller = { id: "root", groups: ["jitgate-admins"] };

const readOrders = { ...writeOrders, actions: ["read"], durationS: 600 };
const unusedPolicy: PolicyDecider = {
  requestPlan: () => assert.fail("not used"),
  reviewVerdict: () => assert.fail("not used"),
  checkDecision: () => assert.fail("not used"),
};
const at = (subject: Caller, action: string) => ({ subject, resource: "db/orders", action, context: { source_ip: "10.1.2.3" } });

describe("access lifecycle", () => {
  let domains: AccessDomains;
  let engine: PolicyEngine;
  let domain: AccessDomain;
  let store: SqliteStore;
  let access: Access;
  let now: number;
  let decisions: DecisionRecord[];
  before(async () => {
    now = T0;
    domains = await openAccessDomains(() => now);
    engine = domains.policy;
  });
  after(() => domains.remove());
  beforeEach((t) => {
    now = T0;
    domain = domains.open({ file: join(domains.dir, `${t.name.replace(/\W+/g, "-").slice(0, 60)}.db`) });
    ({ store, access, decisions } = domain);
  });
  afterEach(() => domain.close());
  test("a grant is never honoured after it expires, even before any sweeper has run", async () => {
    const request = await access.requestAccess(alice, readOrders);
    assert.equal(request.state, "APPROVED");
    assert.equal((await access.check(at(alice, "read"))).allow, true);
    now = T0 + 600_000 - 1;
    assert.equal((await access.check(at(alice, "read"))).allow, true);
    now = T0 + 600_000;
    const d = await access.check(at(alice, "read"));
    assert.equal(d.allow, false);
    assert.deepEqual(
      d.reasons.map((r) => r.code),
      ["no_grant"],
    );
  });

  test("the approved duration runs from the final approval, not from the request", async () => {
    const pending = await access.requestAccess(alice, writeOrders);
    now = T0 + 60_000;
    await access.review(bob, { requestId: pending.id, decision: "approve", comment: "" });
    now = T0 + 120_000;
    const approved = await access.review(carol, { requestId: pending.id, decision: "approve", comment: "ok" });
    assert.equal(approved.state, "APPROVED");
    assert.equal((await access.getGrant(approved.grantId as string)).expiresAt, T0 + 120_000 + 1_800_000);
    assert.equal(approved.stateReason, "approved by bob, carol");
  });

  test("a pending request past its deadline cannot be approved, and is recorded as expired", async () => {
    const pending = await access.requestAccess(alice, writeOrders);
    now = pending.pendingUntil;
    await assert.rejects(access.review(bob, { requestId: pending.id, decision: "approve", comment: "" }), FailedPrecondition);
    assert.equal((await access.getRequest(admin, pending.id)).state, "EXPIRED");
    // A new request for the same thing is not a duplicate of the timed-out one.
    assert.equal((await access.requestAccess(alice, writeOrders)).state, "PENDING");
  });

  test("an eligible denial denies the request; later reviews are refused", async () => {
    const pending = await access.requestAccess(alice, writeOrders);
    const denied = await access.review(carol, { requestId: pending.id, decision: "deny", comment: "not during the freeze" });
    assert.equal(denied.state, "DENIED");
    assert.match(denied.stateReason, /denied by carol: not during the freeze/);
    // bob could have reviewed it while it was pending; decided without him, it is no longer his to read.
    await assert.rejects(access.review(bob, { requestId: pending.id, decision: "approve", comment: "" }), /is not one you may read/);
    await assert.rejects(access.review(carol, { requestId: pending.id, decision: "approve", comment: "" }), /already reviewed/);
  });

  test("only the requester may cancel, and only while pending", async () => {
    const pending = await access.requestAccess(alice, writeOrders);
    await assert.rejects(access.cancel(bob, pending.id, ""), PermissionDenied);
    assert.equal((await access.cancel(alice, pending.id, "fixed it another way")).state, "CANCELLED");
    await assert.rejects(access.cancel(alice, pending.id, ""), FailedPrecondition);
  });

  test("a malformed request is INVALID_ARGUMENT naming the field; a duplicate is ALREADY_EXISTS", async () => {
    await assert.rejects(
      access.requestAccess(alice, { ...writeOrders, actions: ["drop"] }),
      (e: unknown) => e instanceof InvalidArgument && e.field === "actions",
    );
    await assert.rejects(
      access.requestAccess(alice, { ...writeOrders, ticket: "" }),
      (e: unknown) => e instanceof InvalidArgument && e.field === "ticket",
    );
    await access.requestAccess(alice, writeOrders);
    await assert.rejects(access.requestAccess(alice, writeOrders), AlreadyExists);
  });

  test("a policy denial is kept for the audit trail and refused with the policy's reasons", async () => {
    const err = await (async () => {
      try {
        await access.requestAccess(alice, { ...writeOrders, emergency: true });
      } catch (e) {
        return e;
      }
      return assert.fail("not denied");
    })();
    assert.ok(err instanceof PermissionDenied);
    assert.deepEqual(
      err.facts.reasons?.map((r) => r.code),
      ["break_glass_not_allowed"],
    );
    assert.equal((await access.getRequest(admin, err.facts.requestId as string)).state, "DENIED");
  });

  test("a retried request with the same client key returns the first one", async () => {
    const first = await access.requestAccess(alice, { ...writeOrders, clientKey: "k1" });
    const again = await access.requestAccess(alice, { ...writeOrders, clientKey: "k1" });
    assert.equal(again.id, first.id);
    await assert.rejects(access.requestAccess(alice, { ...readOrders, clientKey: "k1" }), /already used/);
  });

  test("revocation: the subject may give up a grant; only admins revoke others' or a whole subject's", async () => {
    const g1 = (await access.requestAccess(alice, readOrders)).grantId as string;
    await assert.rejects(access.revokeGrant(bob, g1, "no"), PermissionDenied);
    assert.equal((await access.revokeGrant(alice, g1, "done")).revokedBy, "alice");
    assert.equal((await access.check(at(alice, "read"))).allow, false);
    await assert.rejects(access.revokeGrant(admin, g1, "again"), /is REVOKED, not ACTIVE/);

    await access.requestAccess(alice, { ...readOrders, resource: "s3/analytics-exports", ticket: "" });
    await access.requestAccess(alice, readOrders);
    await assert.rejects(access.revokeSubject(bob, "alice", "incident"), PermissionDenied);
    assert.equal((await access.revokeSubject(admin, "alice", "incident INC-9")).length, 2);
    assert.equal((await access.listGrants(admin, { subject: "alice" }, { size: 50, token: "" })).items.length, 0);
    assert.equal((await access.listGrants(admin, { subject: "alice", includeInactive: true }, { size: 50, token: "" })).items.length, 3);
  });

  test("a backlog of expiries after an outage is recorded in bounded passes, each grant once", async () => {
    const backlog = DUE_PER_PASS + 20;
    store.transaction(() => {
      for (let i = 0; i < backlog; i++) storeGrant(store, { id: `g${i}`, subject: `s${i}`, expiresAt: T0 + 1_000 + i });
    });
    now = T0 + 3_600_000;
    assert.deepEqual(await access.expiry.runDue(), { grants: DUE_PER_PASS, requests: 0 });
    assert.deepEqual(await access.expiry.runDue(), { grants: 20, requests: 0 });
    assert.deepEqual(await access.expiry.runDue(), { grants: 0, requests: 0 });
    const expired = store.grantEventsAfter(0, 10_000).filter((e) => e.kind === "EXPIRED");
    assert.equal(new Set(expired.map((e) => e.grant.id)).size, backlog);
  });

  test("expiry events are recorded at the expiry time and reach watchers; each once", async () => {
    const events: GrantEvent[] = [];
    access.watchGrants(admin, { subject: "alice" }, { deliver: (e) => events.push(e) });
    const grant = await access.getGrant((await access.requestAccess(alice, readOrders)).grantId as string);
    await access.deps.feed.tick();
    now = grant.expiresAt + 5_000;
    assert.deepEqual(await access.expiry.runDue(), { grants: 1, requests: 0 });
    await access.deps.feed.tick();
    assert.deepEqual(
      events.map((e) => [e.kind, e.at]),
      [
        ["CREATED", T0],
        ["EXPIRED", grant.expiresAt],
      ],
    );
    assert.deepEqual(await access.expiry.runDue(), { grants: 0, requests: 0 });
    await access.deps.feed.tick();
    assert.equal(events.length, 2);
  });

  test("pending requests time out at their deadline and waiters hear of it", async () => {
    const pending = await access.requestAccess(alice, writeOrders);
    let decided: string | undefined;
    access.waitForDecision(pending.id, (r) => (decided = r.state));
    now = pending.pendingUntil - 1;
    assert.deepEqual(await access.expiry.runDue(), { grants: 0, requests: 0 });
    now = pending.pendingUntil;
    assert.deepEqual(await access.expiry.runDue(), { grants: 0, requests: 1 });
    await access.deps.feed.tick();
    assert.equal(decided, "EXPIRED");
    assert.equal((await access.getRequest(admin, pending.id)).decidedAt, pending.pendingUntil);
  });

  test("a watch from now hears only later events; one resuming after a seq hears exactly what followed", async () => {
    await access.requestAccess(alice, readOrders);
    await access.requestAccess(alice, { ...readOrders, resource: "s3/analytics-exports", ticket: "" });
    const fromNow: GrantEvent[] = [];
    access.watchGrants(admin, {}, { deliver: (e) => fromNow.push(e) });
    const resumed: GrantEvent[] = [];
    access.watchGrants(admin, { afterSeq: 1 }, { deliver: (e) => resumed.push(e) });
    const third = await access.requestAccess({ id: "dave", groups: ["engineering"] }, readOrders);
    await access.deps.feed.tick();
    assert.deepEqual(
      fromNow.map((e) => e.grant.id),
      [third.grantId],
    );
    assert.deepEqual(
      resumed.map((e) => e.seq),
      [2, 3],
    );
  });

  test("a token speaks for its grant: allowed while the grant lives, refused once it is revoked", async () => {
    const grantId = (await access.requestAccess(alice, readOrders)).grantId as string;
    await assert.rejects(access.issueToken(bob, grantId), PermissionDenied);
    const issued = await access.issueToken(alice, grantId);
    assert.equal(issued.expiresAt, T0 + 300_000);
    const byToken = (action: string, resource = "db/orders") =>
      access.checkToken({ token: issued.token, resource, action, context: { source_ip: "10.1.2.3" } });
    const allowed = await byToken("read");
    assert.deepEqual([allowed.allow, allowed.grantId], [true, grantId]);
    assert.deepEqual(
      (await byToken("write")).reasons.map((r) => r.code),
      ["action_not_in_token"],
    );
    assert.deepEqual(
      (await byToken("read", "s3/analytics-exports")).reasons.map((r) => r.code),
      ["token_wrong_resource"],
    );
    await access.revokeGrant(alice, grantId, "done");
    assert.deepEqual(
      (await byToken("read")).reasons.map((r) => r.code),
      ["grant_revoked"],
    );
    await assert.rejects(access.issueToken(alice, grantId), /is REVOKED, not ACTIVE/);
  });

  test("ask, the one Check entry: a question about a subject goes through the caller's rights, one about a token to its holder", async () => {
    const grantId = (await access.requestAccess(alice, readOrders)).grantId as string;
    const service: Caller = { id: "svc-orders", groups: ["services"] };
    const mallory: Caller = { id: "mallory", groups: ["engineering"] };
    assert.equal((await access.ask(service, at(alice, "read"))).allow, true);
    assert.equal((await access.ask(alice, at(alice, "read"))).allow, true, "a caller may ask about themselves");
    await assert.rejects(access.ask(mallory, at(alice, "read")), PermissionDenied, "but not about someone else");
    const { token } = await access.issueToken(alice, grantId);
    const byToken = await access.ask(mallory, { token, resource: "db/orders", action: "read", context: { source_ip: "10.1.2.3" } });
    assert.deepEqual([byToken.allow, byToken.grantId], [true, grantId]);
    // Each answer, the refusal included, is recorded with who asked.
    assert.deepEqual(
      decisions.slice(-4).map((d) => [d.caller, d.subject, d.allow, d.tokenId !== ""]),
      [
        ["svc-orders", "alice", true, false],
        ["alice", "alice", true, false],
        ["mallory", "alice", false, false],
        ["mallory", "alice", true, true],
      ],
    );
  });

  test("every check leaves one decision record with who asked, what was decided and why", async () => {
    const grantId = (await access.requestAccess(alice, readOrders)).grantId as string;
    const allowed = await access.check({ ...at(alice, "read"), caller: "svc-orders" });
    const denied = await access.check({ ...at(alice, "write"), caller: "svc-orders" });
    const { token, jti } = await access.issueToken(alice, grantId);
    const byToken = await access.checkToken({ ...at(alice, "read"), token, caller: "svc-orders" });
    await assert.rejects(access.checkToken({ token: "not.a.token", resource: "db/orders", action: "read", context: {}, caller: "svc-x" }));
    assert.deepEqual(
      decisions.map((d) => [d.decisionId, d.caller, d.subject, d.action, d.allow, d.grantId, d.tokenId, d.at]),
      [
        [allowed.decisionId, "svc-orders", "alice", "read", true, grantId, "", T0],
        [denied.decisionId, "svc-orders", "alice", "write", false, "", "", T0],
        [byToken.decisionId, "svc-orders", "alice", "read", true, grantId, jti, T0],
        [decisions[3]?.decisionId, "svc-x", "", "read", false, "", "", T0],
      ],
    );
    assert.equal(new Set(decisions.map((d) => d.decisionId)).size, 4);
    assert.deepEqual(decisions[1]?.reasons, denied.reasons);
    assert.equal(decisions[3]?.reasons[0]?.code, "token_invalid");
    assert.ok(decisions.every((d) => d.resource === "db/orders" && d.latencyUs >= 0 && Number.isInteger(d.latencyUs)));
    assert.ok(decisions.slice(0, 3).every((d) => d.policyRevision === engine.active?.revision));
  });

  test("a check the policy cannot answer is an error, never an allow, and is still recorded", async () => {
    await access.requestAccess(alice, readOrders);
    const failing = new Access(
      {
        ...access.deps,
        policy: {
          ...unusedPolicy,
          checkDecision: () => {
            throw new Error("wasm trap");
          },
        },
      },
      () => undefined,
    );
    await assert.rejects(failing.check(at(alice, "read")), /wasm trap/);
    assert.deepEqual(
      decisions.map((d) => [d.allow, d.reasons[0]?.code, d.reasons[0]?.message]),
      [[false, "check_failed", "internal error"]],
    );
  });

  test("a token is refused once it expires, and a garbage token is unauthenticated", async () => {
    const grantId = (await access.requestAccess(alice, readOrders)).grantId as string;
    const { token } = await access.issueToken(alice, grantId);
    now = T0 + 300_000 + 31_000;
    await assert.rejects(access.checkToken({ token, resource: "db/orders", action: "read", context: {} }), /TOKEN_EXPIRED/);
    await assert.rejects(
      access.checkToken({ token: "not.a.token", resource: "db/orders", action: "read", context: {} }),
      /TOKEN_MALFORMED/,
    );
  });

  test("grants as of a past time answer who had access then", async () => {
    const g = (await access.requestAccess(alice, readOrders)).grantId as string;
    now = T0 + 60_000;
    await access.revokeGrant(admin, g, "incident");
    const asOf = async (t: number) =>
      (await access.listGrants(admin, { resource: "db/orders", activeAt: t }, { size: 50, token: "" })).items.map((x) => x.id);
    assert.deepEqual(await asOf(T0 - 1), []);
    assert.deepEqual(await asOf(T0 + 30_000), [g]);
    assert.deepEqual(await asOf(T0 + 60_000), []);
  });
});
