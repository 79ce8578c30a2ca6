import assert from "node:assert/strict";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import Database from "better-sqlite3";
import type { DecisionRecord } from "../../src/access/model.ts";
import { FailedPrecondition, Unavailable } from "../../src/errors.ts";
import { DECISIONS_FILE, openDecisionStore, withDecisionsReadOnly } from "../../src/store/decision-store.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { aDecisionRecord, T0 } from "../decisions/fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "jitgate-decisions-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshFile = () => join(dir, `decisions-${++files}.db`);

function aDecision(over: Partial<DecisionRecord> & { decisionId: string }): DecisionRecord {
  const grant = { code: "grant", message: "an active grant allows it", grant_id: "g1" };
  return aDecisionRecord({ reasons: [grant], latencyUs: 420, ...over });
}

const ids = (ds: readonly DecisionRecord[]) => ds.map((d) => d.decisionId);

describe("decision store", () => {
  test("the file is created 0600, in WAL mode with synchronous NORMAL, named decisions.db by default", () => {
    assert.equal(DECISIONS_FILE, "decisions.db");
    const file = freshFile();
    openDecisionStore(file).close();
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const raw = new Database(file);
    assert.equal(raw.pragma("journal_mode", { simple: true }), "wal");
    assert.equal(raw.pragma("user_version", { simple: true }), 1);
    raw.close();
  });

  test("a batch round-trips every field of a record", () => {
    const store = openDecisionStore(freshFile());
    const denial = aDecision({
      decisionId: "d2",
      at: T0 + 1,
      allow: false,
      reasons: [{ code: "no_grant", message: "no active grant" }],
      grantId: "",
      tokenId: "jti-9",
    });
    store.insertBatch([aDecision({ decisionId: "d1" }), denial]);
    assert.deepEqual(store.list({}, 10), [denial, aDecision({ decisionId: "d1" })]);
    store.close();
  });

  test("a batch is one transaction: a failing record leaves none of the batch behind", () => {
    const store = openDecisionStore(freshFile());
    const broken = { ...aDecision({ decisionId: "bad" }), subject: null } as unknown as DecisionRecord;
    assert.throws(() => store.insertBatch([aDecision({ decisionId: "a" }), broken]));
    assert.equal(store.count(), 0);
    store.close();
  });

  test("a retried batch does not duplicate records", () => {
    const store = openDecisionStore(freshFile());
    const batch = [aDecision({ decisionId: "d1" }), aDecision({ decisionId: "d2" })];
    store.insertBatch(batch);
    store.insertBatch(batch);
    assert.equal(store.count(), 2);
    store.close();
  });

  test("list filters by subject, decision id, time window and denials, newest first, up to the limit", () => {
    const store = openDecisionStore(freshFile());
    store.insertBatch([
      aDecision({ decisionId: "a1", at: T0 + 1 }),
      aDecision({ decisionId: "b1", at: T0 + 2, subject: "bob", allow: false, grantId: "" }),
      aDecision({ decisionId: "a2", at: T0 + 3, allow: false, grantId: "" }),
      aDecision({ decisionId: "a3", at: T0 + 4 }),
    ]);
    assert.deepEqual(ids(store.list({}, 100)), ["a3", "a2", "b1", "a1"]);
    assert.deepEqual(ids(store.list({}, 2)), ["a3", "a2"]);
    assert.deepEqual(ids(store.list({ subject: "alice" }, 100)), ["a3", "a2", "a1"]);
    assert.deepEqual(ids(store.list({ allow: false }, 100)), ["a2", "b1"]);
    assert.deepEqual(ids(store.list({ subject: "alice", allow: false }, 100)), ["a2"]);
    assert.deepEqual(ids(store.list({ since: T0 + 2, until: T0 + 4 }, 100)), ["a2", "b1"]);
    assert.deepEqual(ids(store.list({ decisionId: "b1" }, 100)), ["b1"]);
    assert.deepEqual(ids(store.list({ decisionId: "b1", subject: "alice" }, 100)), []);
    assert.deepEqual(store.list({}, 0), []);
    store.close();
  });

  test("pruneBefore deletes only records older than the cut-off, oldest first, at most `limit` at a time", () => {
    const store = openDecisionStore(freshFile());
    store.insertBatch([1, 2, 3, 4, 5].map((i) => aDecision({ decisionId: `d${i}`, at: T0 + i })));
    assert.equal(store.pruneBefore(T0 + 4, 2), 2);
    assert.deepEqual(ids(store.list({}, 10)), ["d5", "d4", "d3"]);
    assert.equal(store.pruneBefore(T0 + 4, 10), 1);
    assert.equal(store.pruneBefore(T0 + 4, 10), 0);
    assert.deepEqual(ids(store.list({}, 10)), ["d5", "d4"]);
    store.close();
  });

  test("a missing directory is Unavailable naming the file", () => {
    const file = join(dir, "nowhere", DECISIONS_FILE);
    assert.throws(
      () => openDecisionStore(file),
      (err: unknown) => err instanceof Unavailable && err.message.includes(file),
    );
  });

  test("a SQLite failure while writing is Unavailable naming the file", () => {
    const file = freshFile();
    const store = openDecisionStore(file);
    const holder = new Database(file);
    holder.exec("BEGIN IMMEDIATE");
    const busy = openDecisionStore(file, { busyTimeoutMs: 1 });
    assert.throws(
      () => busy.insertBatch([aDecision({ decisionId: "d1" })]),
      (err: unknown) => err instanceof Unavailable && err.message.includes(file),
    );
    holder.exec("ROLLBACK");
    holder.close();
    busy.close();
    store.close();
  });
});

describe("decision log read offline", () => {
  test("reads a closed file, also a copy in a read-only folder", () => {
    const file = freshFile();
    const store = openDecisionStore(file);
    store.insertBatch([aDecision({ decisionId: "d1" })]);
    store.close();
    assert.deepEqual(
      withDecisionsReadOnly(file, (reads) => ids(reads.list({}, 10))),
      ["d1"],
    );
    const locked = join(dir, "read-only");
    mkdirSync(locked);
    copyFileSync(file, join(locked, DECISIONS_FILE));
    chmodSync(locked, 0o500);
    try {
      assert.equal(
        withDecisionsReadOnly(join(locked, DECISIONS_FILE), (reads) => reads.count()),
        1,
      );
    } finally {
      chmodSync(locked, 0o700);
    }
  });

  test("another jitgate database is refused as holding no decision log", () => {
    const file = freshFile();
    openSqliteStore(file).close();
    assert.throws(
      () => withDecisionsReadOnly(file, (reads) => reads.count()),
      (err: unknown) => err instanceof FailedPrecondition && err.message.includes(file),
    );
  });
});
