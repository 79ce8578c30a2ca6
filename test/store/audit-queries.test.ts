import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import Database from "better-sqlite3";
import { audit } from "../../src/access/audit.ts";
import type { Caller, Grant, Review } from "../../src/access/model.ts";
import { auditRowHash, GENESIS_HASH, verifyAuditChain } from "../../src/store/audit-chain.ts";
import { exportAudit, exportSql, history, HISTORY_SQL, POLICY_APPROVAL, WHO_HAD_SQL, whoHad } from "../../src/store/audit-queries.ts";
import { migrate, MIGRATIONS } from "../../src/store/migrations.ts";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite.ts";
import { openAccessDomains, writeOrders } from "../support/access-domain.ts";
import { aGrant, aRequest, aReview, MINUTE, T0, withRaw } from "./fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "jitgate-audit-queries-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshFile = () => join(dir, `queries-${++files}.db`);

const DAY = 24 * 60 * MINUTE;

/** Stores a grant, the request it came from (with this justification and ticket) and the request's reviews. */
function grantVia(
  store: SqliteStore,
  grant: Partial<Grant> & { id: string },
  reviews: readonly Partial<Review>[] = [],
  request: { justification?: string; ticket?: string } = {},
): void {
  const g = aGrant({ requestId: `req-${grant.id}`, ...grant });
  store.transaction(() => {
    store.insertRequest(
      aRequest({ id: g.requestId, requester: { id: g.subject, groups: [] }, resource: g.resource, createdAt: g.createdAt, ...request }),
    );
    for (const r of reviews) store.insertReview(aReview({ requestId: g.requestId, createdAt: g.createdAt, ...r }));
    store.decideRequest(g.requestId, "PENDING", { state: "APPROVED", decidedAt: g.createdAt, stateReason: "approved", grantId: g.id });
    store.insertGrant(g);
  });
}

const planOf = (db: Database.Database, sql: string, params: object): string =>
  db
    .prepare(`EXPLAIN QUERY PLAN ${sql}`)
    .all(params)
    .map((r) => (r as { detail: string }).detail)
    .join("\n");

describe("who had access to a resource at a time", () => {
  // alice: one grant [t0, t1). bob: one grant from t0+5m, revoked at t2 (after t1), expiring later still.
  // carol: two overlapping grants. The other resources' grants cover every time asked and must never show.
  const t0 = T0;
  const t1 = T0 + 30 * MINUTE;
  const t2 = T0 + 40 * MINUTE;
  const between = T0 + 10 * MINUTE;
  let file: string;

  before(() => {
    file = freshFile();
    const store = openSqliteStore(file);
    grantVia(
      store,
      { id: "g-alice", subject: "alice", createdAt: t0, expiresAt: t1 },
      [
        // Stored out of time order, to show approvers come in the order they approved.
        { reviewer: { id: "carol", groups: ["security"] }, createdAt: t0 - MINUTE },
        { reviewer: { id: "dave", groups: ["db-admins"] }, decision: "deny", createdAt: t0 - 3 * MINUTE },
        { reviewer: { id: "bob", groups: ["db-admins"] }, createdAt: t0 - 2 * MINUTE },
      ],
      { justification: "INC-7 stuck orders", ticket: "INC-7" },
    );
    grantVia(store, { id: "g-bob", subject: "bob", createdAt: t0 + 5 * MINUTE, expiresAt: t0 + 60 * MINUTE, actions: ["read"] });
    store.revokeGrant("g-bob", t2, "root", "done early");
    grantVia(store, { id: "g-carol-1", subject: "carol", createdAt: t0 + MINUTE, expiresAt: t0 + 11 * MINUTE });
    grantVia(store, { id: "g-carol-2", subject: "carol", createdAt: t0 + 2 * MINUTE, expiresAt: t0 + 20 * MINUTE, breakGlass: true });
    grantVia(store, { id: "g-other", subject: "erin", resource: "payments-db", createdAt: t0 - DAY, expiresAt: t0 + DAY });
    grantVia(store, { id: "g-replica", subject: "frank", resource: "orders-db-replica", createdAt: t0 - DAY, expiresAt: t0 + DAY });
    store.close();
  });

  const grantsAt = (at: number): string[] => withRaw(file, (db) => whoHad(db, "orders-db", at).map((r) => `${r.subject}:${r.grant_id}`));

  test("counts a grant from its created_at up to, not including, its expires_at or revoked_at", () => {
    assert.deepEqual(grantsAt(t0 - 1), []);
    assert.deepEqual(grantsAt(t0), ["alice:g-alice"]);
    assert.deepEqual(grantsAt(between), ["alice:g-alice", "bob:g-bob", "carol:g-carol-1", "carol:g-carol-2"]);
    assert.deepEqual(grantsAt(t1 - 1), ["alice:g-alice", "bob:g-bob"]);
    assert.deepEqual(grantsAt(t1), ["bob:g-bob"]);
    assert.deepEqual(grantsAt(t2 - 1), ["bob:g-bob"]);
    assert.deepEqual(grantsAt(t2), []);
  });

  test("lists a subject with two grants once per grant, the older grant first", () => {
    assert.deepEqual(grantsAt(t0 + 3 * MINUTE), ["alice:g-alice", "carol:g-carol-1", "carol:g-carol-2"]);
  });

  test("never lists grants on other resources, even ones whose name starts the same", () => {
    const subjects = withRaw(file, (db) => [t0 - DAY, t0, between, t2].flatMap((at) => whoHad(db, "orders-db", at).map((r) => r.subject)));
    assert.ok(!subjects.includes("erin") && !subjects.includes("frank"));
    assert.deepEqual(
      withRaw(file, (db) => whoHad(db, "orders-db-replica", between).map((r) => r.subject)),
      ["frank"],
    );
    assert.deepEqual(
      withRaw(file, (db) => whoHad(db, "nothing-here", between)),
      [],
    );
  });

  test("shows the approvers in the order they approved, the request's justification and ticket, and the grant", () => {
    const [alice] = withRaw(file, (db) => whoHad(db, "orders-db", t0));
    assert.deepEqual(alice, {
      subject: "alice",
      grant_id: "g-alice",
      actions: ["read", "write"],
      created_at: t0,
      expires_at: t1,
      revoked_at: null,
      revoked_by: null,
      break_glass: false,
      request_id: "req-g-alice",
      justification: "INC-7 stuck orders",
      ticket: "INC-7",
      approved_by: ["bob", "carol"],
      policy_revision: "rev-1",
    });
  });

  test("a grant no reviewer approved is approved by policy; a revoked one says when and by whom", () => {
    const rows = withRaw(file, (db) => whoHad(db, "orders-db", between));
    const bob = rows.find((r) => r.subject === "bob");
    assert.deepEqual(bob?.approved_by, [POLICY_APPROVAL]);
    assert.equal(bob?.revoked_at, t2);
    assert.equal(bob?.revoked_by, "root");
    assert.equal(rows.find((r) => r.grant_id === "g-carol-2")?.break_glass, true);
  });

  test("finds a long-lived grant made long before the time asked", () => {
    const store = openSqliteStore(file);
    grantVia(store, { id: "g-long", subject: "gina", resource: "vault", createdAt: t0 - 90 * DAY, expiresAt: t0 + DAY });
    grantVia(store, { id: "g-short", subject: "hal", resource: "vault", createdAt: t0 - MINUTE, expiresAt: t0 + MINUTE });
    store.close();
    assert.deepEqual(
      withRaw(file, (db) => whoHad(db, "vault", t0).map((r) => r.grant_id)),
      ["g-long", "g-short"],
    );
    assert.deepEqual(
      withRaw(file, (db) => whoHad(db, "vault", t0 - 60 * DAY).map((r) => r.grant_id)),
      ["g-long"],
    );
  });
});

describe("a subject's audit history", () => {
  let file: string;
  before(() => {
    file = freshFile();
    const store = openSqliteStore(file);
    const mine = aRequest({ id: "r-alice" });
    const bobs = aRequest({ id: "r-bob", requester: { id: "bob", groups: [] } });
    const bobGrant = aGrant({ id: "g-bob", requestId: "r-bob", subject: "bob" });
    const aliceGrant = aGrant({ id: "g-alice", requestId: "r-alice" });
    const entries = [
      audit.request("REQUEST_CREATED", { at: T0, actor: "alice", reason: "asked", request: mine }), // 1: about alice, by alice
      audit.request("REQUEST_CREATED", { at: T0 + MINUTE, actor: "bob", reason: "asked", request: bobs }), // 2: bob only
      audit.request("REVIEW_RECORDED", { at: T0 + 2 * MINUTE, actor: "alice", reason: "approve", request: bobs }), // 3: by alice
      audit.grant("GRANT_CREATED", { at: T0 + 3 * MINUTE, actor: "jitgate", reason: "approved", grant: aliceGrant }), // 4: about alice
      audit.grant("GRANT_REVOKED", { at: T0 + 4 * MINUTE, actor: "root", reason: "done", grant: bobGrant }), // 5: neither
      audit.grant("GRANT_EXPIRED", { at: T0 + 5 * MINUTE, actor: "jitgate", reason: "expired", grant: aliceGrant }), // 6: about alice
    ];
    for (const e of entries) store.appendAudit(e);
    store.close();
  });

  const seqs = (subject: string, filter = {}) => withRaw(file, (db) => history(db, subject, filter).map((r) => r.seq));

  test("holds the entries about the subject and those they acted in, oldest first, each once", () => {
    assert.deepEqual(seqs("alice"), [1, 3, 4, 6]);
    assert.deepEqual(seqs("bob"), [2, 3, 5]);
    assert.deepEqual(seqs("root"), [5]);
    assert.deepEqual(seqs("nobody"), []);
  });

  test("since is inclusive, until exclusive, and limit keeps the oldest", () => {
    assert.deepEqual(seqs("alice", { since: T0 + 2 * MINUTE }), [3, 4, 6]);
    assert.deepEqual(seqs("alice", { until: T0 + 3 * MINUTE }), [1, 3]);
    assert.deepEqual(seqs("alice", { since: T0 + MINUTE, until: T0 + 5 * MINUTE }), [3, 4]);
    assert.deepEqual(seqs("alice", { limit: 2 }), [1, 3]);
  });

  test("returns each entry's facts with its details parsed and its hash", () => {
    const [first] = withRaw(file, (db) => history(db, "alice", { limit: 1 }));
    assert.equal(first?.kind, "REQUEST_CREATED");
    assert.equal(first?.request_id, "r-alice");
    assert.equal(first?.grant_id, null);
    assert.deepEqual(first?.details, { ...(first?.details as object), actions: ["read", "write"], ticket: "INC-123" });
    assert.match(first?.hash ?? "", /^[0-9a-f]{64}$/);
  });
});

describe("exporting the audit trail", () => {
  let file: string;
  before(() => {
    file = freshFile();
    const store = openSqliteStore(file);
    const grant = aGrant({ id: "g1", requestId: "r1" });
    for (let i = 0; i < 25; i++)
      store.appendAudit(audit.grant("GRANT_CREATED", { at: T0 + i * MINUTE, actor: "jitgate", reason: `n${i}`, grant }));
    store.close();
  });

  test("yields every entry once in seq order, each hash recomputable and linked to the one before", () => {
    const records = withRaw(file, (db) => [...exportAudit(db)]);
    assert.deepEqual(
      records.map((r) => r.seq),
      Array.from({ length: 25 }, (_, i) => i + 1),
    );
    let prev = GENESIS_HASH;
    for (const r of records) {
      assert.equal(r.prev_hash, prev);
      assert.equal(r.hash, auditRowHash({ ...r, details: JSON.stringify(r.details) }));
      prev = r.hash as string;
    }
    assert.deepEqual(verifyAuditChain(file), { ok: true, rows: 25, head: { seq: 25, hash: prev } });
  });

  test("resumes after a seq and keeps to a time window", () => {
    const seqsOf = (filter: object) => withRaw(file, (db) => [...exportAudit(db, filter)].map((r) => r.seq));
    assert.deepEqual(seqsOf({ afterSeq: 22 }), [23, 24, 25]);
    assert.deepEqual(seqsOf({ since: T0 + 20 * MINUTE }), [21, 22, 23, 24, 25]);
    assert.deepEqual(seqsOf({ until: T0 + 2 * MINUTE }), [1, 2]);
    assert.deepEqual(seqsOf({ since: T0 + 5 * MINUTE, until: T0 + 8 * MINUTE, afterSeq: 6 }), [7, 8]);
  });

  test("reads as it is iterated, and stopping early releases the database", () => {
    const db = new Database(file, { readonly: true });
    const records = exportAudit(db);
    assert.equal(records.next().value?.seq, 1);
    assert.throws(() => db.close(), /busy/); // its statement is still stepping through the trail
    for (const r of records) if (r.seq === 3) break;
    db.close();
  });
});

describe("on a trail written by the access domain (real policy, fake clock)", () => {
  const alice: Caller = { id: "alice", groups: ["engineering"] };
  const bob: Caller = { id: "bob", groups: ["dba"] };
  const carol: Caller = { id: "carol", groups: ["security"] };
  const admin: Caller = { id: "root", groups: ["jitgate-admins"] };
  let file: string;
  let approvedGrant: string;
  let autoGrant: string;

  before(async () => {
    file = freshFile();
    let now = T0;
    const domains = await openAccessDomains(() => now);
    const { access, close } = domains.open({ file });
    const pending = await access.requestAccess(alice, writeOrders);
    now = T0 + MINUTE;
    await access.review(bob, { requestId: pending.id, decision: "approve", comment: "" });
    now = T0 + 2 * MINUTE;
    approvedGrant = (await access.review(carol, { requestId: pending.id, decision: "approve", comment: "ok" })).grantId as string;
    now = T0 + 3 * MINUTE;
    autoGrant = (await access.requestAccess(alice, { ...writeOrders, actions: ["read"], durationS: 600 })).grantId as string;
    now = T0 + 10 * MINUTE;
    await access.revokeGrant(admin, approvedGrant, "incident closed");
    now = T0 + 14 * MINUTE;
    await access.expiry.runDue(); // the read grant expired at T0 + 13m
    close();
    await domains.remove();
  });

  test("who-had names the reviewers of the approved grant and policy for the automatic one", () => {
    const at = (t: number) => withRaw(file, (db) => whoHad(db, "db/orders", t).map((r) => [r.grant_id, r.approved_by]));
    assert.deepEqual(at(T0 + 5 * MINUTE), [
      [approvedGrant, ["bob", "carol"]],
      [autoGrant, [POLICY_APPROVAL]],
    ]);
    assert.deepEqual(at(T0 + 10 * MINUTE), [[autoGrant, [POLICY_APPROVAL]]]);
    assert.deepEqual(at(T0 + 13 * MINUTE), []);
  });

  test("history holds exactly the trail's entries about or by each subject, in order", () => {
    withRaw(file, (db) => {
      const all = [...exportAudit(db)];
      for (const who of ["alice", "bob", "carol", "root"]) {
        const expected = all.filter((e) => e.subject === who || e.actor === who).map((e) => e.seq);
        assert.ok(expected.length > 0, who);
        assert.deepEqual(
          history(db, who).map((e) => e.seq),
          expected,
          who,
        );
      }
      const kinds = history(db, "alice").map((e) => `${e.kind} by ${e.actor}`);
      assert.ok(kinds.includes("GRANT_REVOKED by root") && kinds.includes("GRANT_EXPIRED by jitgate"), kinds.join(", "));
    });
  });
});

describe("a backup from before migration 3", () => {
  test("gets the same answers without its indexes", () => {
    const file = freshFile();
    const store = openSqliteStore(file);
    grantVia(store, { id: "g1", subject: "alice", createdAt: T0, expiresAt: T0 + MINUTE });
    store.appendAudit(
      audit.grant("GRANT_CREATED", { at: T0, actor: "jitgate", reason: "ok", grant: aGrant({ id: "g1", requestId: "req-g1" }) }),
    );
    store.close();
    // Version 3 only adds indexes, so dropping them is the version-2 file an old backup holds.
    const raw = new Database(file);
    for (const name of ["audit_by_subject", "audit_by_actor", "audit_by_time", "grants_span_by_resource"]) raw.exec(`DROP INDEX ${name}`);
    raw.pragma("user_version = 2");
    raw.close();
    withRaw(file, (db) => {
      assert.equal(db.pragma("user_version", { simple: true }), 2);
      assert.deepEqual(
        whoHad(db, "orders-db", T0).map((r) => r.grant_id),
        ["g1"],
      );
      assert.deepEqual(
        history(db, "alice").map((r) => r.seq),
        [1],
      );
      assert.deepEqual(
        [...exportAudit(db)].map((r) => r.seq),
        [1],
      );
    });
  });
});

describe("query plans (migration 3)", () => {
  let file: string;
  before(() => {
    file = freshFile();
    openSqliteStore(file).close();
  });

  test("who-had walks grants_by_resource within a bound found in one seek, never all grants", () => {
    const plan = withRaw(file, (db) => planOf(db, WHO_HAD_SQL, { resource: "r", at: T0 }));
    assert.match(plan, /SEARCH g USING INDEX grants_by_resource \(resource=\? AND created_at>\? AND created_at<\?\)/);
    assert.match(plan, /SEARCH grants USING COVERING INDEX grants_span_by_resource \(resource=\?\)/);
    assert.match(plan, /SEARCH v USING INDEX sqlite_autoindex_reviews_1 \(request_id=\?\)/);
    assert.doesNotMatch(plan, /SCAN (g|grants|r|requests)\b/);
  });

  test("history merges two walks in seq order, by subject and by actor", () => {
    const plan = withRaw(file, (db) => planOf(db, HISTORY_SQL, { subject: "a", after: 0, since: 0, until: 1, limit: 5 }));
    assert.match(plan, /MERGE \(UNION\)/);
    assert.match(plan, /SEARCH audit USING INDEX audit_by_subject \(subject=\? AND seq>\?\)/);
    assert.match(plan, /SEARCH audit USING INDEX audit_by_actor \(actor=\? AND seq>\?\)/);
    assert.doesNotMatch(plan, /TEMP B-TREE/);
  });

  test("a whole export walks the primary key in order; a time window uses audit_by_time", () => {
    const whole = withRaw(file, (db) => planOf(db, exportSql({}), { after: 0 }));
    assert.match(whole, /SEARCH audit USING INTEGER PRIMARY KEY \(rowid>\?\)/);
    assert.doesNotMatch(whole, /TEMP B-TREE/);
    const windowed = withRaw(file, (db) => planOf(db, exportSql({ since: 0, until: 1 }), { after: 0, since: 0, until: 1 }));
    assert.match(windowed, /SEARCH audit USING INDEX audit_by_time \(at>\? AND at<\?\)/);
  });

  test("migration 3 adds indexes only: a chained trail is unchanged and intact across it", () => {
    const old = freshFile();
    const db = new Database(old);
    migrate(db, old, MIGRATIONS.slice(0, 1));
    const insert = db.prepare(
      "INSERT INTO audit (at, kind, actor, subject, resource, request_id, grant_id, reason, policy_revision, details) " +
        "VALUES (?, 'GRANT_CREATED', 'jitgate', 'alice', 'orders-db', 'r1', NULL, 'old', 'rev-1', '{}')",
    );
    for (let i = 1; i <= 3; i++) insert.run(T0 + i);
    migrate(db, old, MIGRATIONS.slice(0, 2));
    const before = db.prepare("SELECT * FROM audit ORDER BY seq").all();
    db.close();
    openSqliteStore(old).close(); // migrates to the latest
    assert.deepEqual(
      withRaw(old, (raw) => [raw.pragma("user_version", { simple: true }), raw.prepare("SELECT * FROM audit ORDER BY seq").all()]),
      [MIGRATIONS.length, before],
    );
    assert.equal(verifyAuditChain(old).ok, true);
  });
});
