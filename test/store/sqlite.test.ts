import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import Database from "better-sqlite3";
import { FailedPrecondition, Unavailable } from "../../src/errors.ts";
import type { Page } from "../../src/access/ports.ts";
import { encodePageToken } from "../../src/store/listing.ts";
import { migrate, MIGRATIONS, SCHEMA_VERSION } from "../../src/store/migrations.ts";
import { BUSY_PROBES_UNTIL_UNWRITABLE, openServerStore, openSqliteStore, SqliteStore } from "../../src/store/sqlite.ts";
import { accessStoreContract } from "./contract.ts";
import { aGrant, aRequest, anAuditEntry, MINUTE, storeGrant, T0 } from "./fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "jitgate-store-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshFile = () => join(dir, `store-${++files}.db`);

accessStoreContract("SQLite", async () => openSqliteStore(freshFile()));
// The server's store, whose writes run on a writer thread: the shape closest to production.
accessStoreContract("SQLite, writes on a writer thread", () => openServerStore(freshFile()));

/** A migrated database file, and a connection to it whose `prepare` records every SQL text it is given. */
function recordingDatabase(): { db: Database.Database; sources: Set<string> } {
  const file = freshFile();
  openSqliteStore(file).close();
  const db = new Database(file);
  const sources = new Set<string>();
  const prepare = db.prepare.bind(db);
  db.prepare = ((source: string) => {
    sources.add(source);
    return prepare(source);
  }) as typeof db.prepare;
  return { db, sources };
}

/** EXPLAIN QUERY PLAN of `source`, with every parameter bound to NULL. */
function queryPlan(db: Database.Database, source: string): string[] {
  const named = Object.fromEntries([...source.matchAll(/@(\w+)/g)].map((m) => [m[1], null]));
  const positional = [...source.matchAll(/\?/g)].map(() => null);
  const args: unknown[] = Object.keys(named).length > 0 ? [...positional, named] : positional;
  const rows = db.prepare<unknown[], { detail: string }>(`EXPLAIN QUERY PLAN ${source}`).all(...args);
  return rows.map((r) => r.detail);
}

function listEveryShape(store: SqliteStore, page: Page): void {
  for (const subject of [undefined, "alice"]) {
    for (const resource of [undefined, "db"]) {
      for (const since of [undefined, T0])
        store.auditEntries({ subject, resource, since, until: since && T0 + 1 }, { size: 10, token: "" });
    }
  }
  for (const state of [undefined, "PENDING" as const]) {
    for (const requester of [undefined, "alice"]) {
      for (const resource of [undefined, "db"]) store.requests({ state, requester, resource }, page);
    }
  }
  for (const subject of [undefined, "alice"]) {
    for (const resource of [undefined, "db"]) {
      for (const activeAt of [undefined, T0]) store.grants({ subject, resource, activeAt }, page);
    }
  }
}

describe("SQLite store: query plans", () => {
  test("the access check's query is answered from its covering index", () => {
    const { db, sources } = recordingDatabase();
    new SqliteStore(db).liveGrantsOn("alice", "orders-db", T0);
    const source = [...sources].find((s) => s.includes("AND resource = ? AND revoked_at IS NULL AND expires_at > ?"));
    assert.ok(source, "the liveGrantsOn statement was prepared");
    const plan = queryPlan(db, source);
    assert.deepEqual(plan, ["SEARCH grants USING COVERING INDEX grants_live_on (subject=? AND resource=? AND expires_at>?)"]);
    db.close();
  });

  test("no statement the store prepares scans a whole table, and listings never sort", () => {
    const { db, sources } = recordingDatabase();
    const store = new SqliteStore(db);
    for (const page of [
      { size: 10, token: "" },
      { size: 10, token: encodePageToken({ createdAt: T0, id: "x" }) },
    ]) {
      listEveryShape(store, page);
    }
    for (const source of [...sources]) {
      if (source.startsWith("INSERT")) continue;
      const plan = queryPlan(db, source);
      const scans = plan.filter((d) => /^SCAN (requests|reviews|grants|grant_events|audit)$/.test(d));
      assert.deepEqual(scans, [], `${source}\n${plan.join("\n")}`);
      if (source.includes("ORDER BY created_at DESC"))
        assert.ok(!plan.some((d) => d.includes("TEMP B-TREE")), `${source}\n${plan.join("\n")}`);
    }
    db.close();
  });
});

describe("SQLite store: migrations", () => {
  test("migrations are numbered 1, 2, 3, ... in order", () => {
    assert.deepEqual(
      MIGRATIONS.map((m) => m.version),
      Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1),
    );
  });

  test("opening a database again keeps its data and applies nothing", () => {
    const file = freshFile();
    const first = openSqliteStore(file);
    storeGrant(first, { id: "g1" });
    first.close();
    const again = openSqliteStore(file);
    assert.equal(again.grant("g1")?.id, "g1");
    again.close();
    const raw = new Database(file);
    assert.equal(raw.pragma("user_version", { simple: true }), SCHEMA_VERSION);
    assert.equal(raw.pragma("journal_mode", { simple: true }), "wal");
    raw.close();
  });

  test("a database from a newer jitgate is refused, naming the file", () => {
    const file = freshFile();
    openSqliteStore(file).close();
    const raw = new Database(file);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    assert.throws(
      () => openSqliteStore(file),
      (err: unknown) => err instanceof FailedPrecondition && err.message.includes(file) && /newer than this jitgate/.test(err.message),
    );
    assert.equal(raw.pragma("user_version", { simple: true }), SCHEMA_VERSION + 1);
    raw.close();
  });

  test("a migration that fails leaves the database at the version it had", () => {
    const file = freshFile();
    openSqliteStore(file).close();
    const raw = new Database(file);
    const broken = [
      ...MIGRATIONS,
      { version: SCHEMA_VERSION + 1, description: "broken", sql: "CREATE TABLE extra (a); SELECT * FROM nowhere;" },
    ];
    assert.throws(() => migrate(raw, file, broken), /no such table: nowhere/);
    assert.equal(raw.pragma("user_version", { simple: true }), SCHEMA_VERSION);
    assert.deepEqual(raw.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE name = 'extra'").get(), { n: 0 });
    raw.close();
  });
});

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return assert.fail("expected an error");
}

describe("SQLite store: file", () => {
  test("a new store file is readable by its owner only", () => {
    const file = freshFile();
    openSqliteStore(file).close();
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });
});

describe("SQLite store: failures", () => {
  test("a database in a missing directory is Unavailable, naming the file", () => {
    const file = join(dir, "missing", "jitgate.db");
    assert.throws(
      () => openSqliteStore(file),
      (err: unknown) => err instanceof Unavailable && err.message.includes(file),
    );
  });

  test("a writer kept out past the busy timeout gets Unavailable without SQL in the message, and reads go on", () => {
    const file = freshFile();
    const store = openSqliteStore(file, { busyTimeoutMs: 50 });
    storeGrant(store, { id: "g1" });
    const other = new Database(file);
    other.exec("BEGIN IMMEDIATE");
    try {
      const err = thrown(() => store.revokeGrant("g1", T0, "sec", "x"));
      assert.ok(err instanceof Unavailable, String(err));
      assert.equal(err.message, "store: the database stayed locked by another writer past the busy timeout");
      assert.equal((err.cause as { code?: string }).code, "SQLITE_BUSY");
      assert.equal(store.liveGrantsOn("alice", "orders-db", T0).length, 1);
      // Health probes never wait on the lock: another writer is normal at first, unwritable once it persists.
      const probes = Array.from({ length: BUSY_PROBES_UNTIL_UNWRITABLE }, () => store.isWritable());
      assert.deepEqual(probes, [...Array<boolean>(BUSY_PROBES_UNTIL_UNWRITABLE - 1).fill(true), false]);
    } finally {
      other.exec("ROLLBACK");
      other.close();
    }
    assert.equal(store.isWritable(), true);
    assert.ok(store.revokeGrant("g1", T0, "sec", "x"));
    store.close();
  });

  test("after SQLite rolls a transaction back on its own, no later write in it commits on its own", () => {
    const file = freshFile();
    openSqliteStore(file).close();
    const db = new Database(file);
    const store = new SqliteStore(db);
    db.pragma(`max_page_count = ${db.pragma("page_count", { simple: true }) as number}`);
    const huge = { blob: "x".repeat(100_000) };
    const attempt = () =>
      store.transaction(() => {
        store.insertRequest(aRequest({ id: "r1" }));
        assert.throws(() => store.appendAudit(anAuditEntry({ details: huge })), Unavailable);
        store.insertRequest(aRequest({ id: "r2" }));
      });
    assert.throws(attempt, (err: unknown) => err instanceof Unavailable && /rolled back/.test(err.message));
    assert.equal(store.request("r1"), undefined);
    assert.equal(store.request("r2"), undefined);
    db.pragma("max_page_count = 1073741823");
    store.insertRequest(aRequest({ id: "r3" }));
    assert.equal(store.request("r3")?.id, "r3");
    store.close();
  });

  test("a grant for a request that does not exist is a programming error, not a store outage", () => {
    const store = openSqliteStore(freshFile());
    assert.throws(
      () => store.insertGrant(aGrant({ id: "g1", requestId: "nope" })),
      (err: unknown) => !(err instanceof Unavailable) && (err as { code?: string }).code === "SQLITE_CONSTRAINT_FOREIGNKEY",
    );
    store.close();
  });
});

describe("SQLite store: revocations in force", () => {
  test("the replay point is just before the first revocation whose grant has not expired", () => {
    const store = openSqliteStore(freshFile());
    storeGrant(store, { id: "short", subject: "a", expiresAt: T0 + 60_000 });
    storeGrant(store, { id: "long", subject: "b", expiresAt: T0 + 3_600_000 });
    storeGrant(store, { id: "kept", subject: "c", expiresAt: T0 + 3_600_000 });
    const first = store.revokeGrant("short", T0 + 1000, "sec", "x");
    const second = store.revokeGrant("long", T0 + 2000, "sec", "x");
    assert.ok(first && second);
    assert.equal(store.revocationsInForceAfter(T0 + 3000), first.seq - 1, "both grants unexpired: replay both");
    assert.equal(store.revocationsInForceAfter(T0 + 60_000), second.seq - 1, "the short grant has expired: its tokens too");
    assert.equal(store.revocationsInForceAfter(T0 + 3_600_000), store.latestGrantEventSeq(), "none in force: from now");
    store.close();
  });
});

describe("SQLite store: audit and maintenance", () => {
  test("an audit entry is stored with its details as JSON, chained to the one before it", () => {
    const file = freshFile();
    const store = openSqliteStore(file);
    store.appendAudit(anAuditEntry({ grantId: undefined }));
    assert.throws(() =>
      store.transaction(() => {
        store.appendAudit(anAuditEntry({ kind: "GRANT_REVOKED" }));
        throw new Error("abort");
      }),
    );
    const raw = new Database(file, { readonly: true });
    const rows = raw.prepare("SELECT seq, kind, actor, request_id, grant_id, details, prev_hash, hash FROM audit").all();
    assert.deepEqual(rows, [
      {
        seq: 1,
        kind: "GRANT_CREATED",
        actor: "jitgate",
        request_id: "r1",
        grant_id: null,
        details: '{"approvers":["bob"]}',
        prev_hash: "0".repeat(64),
        hash: (rows[0] as { hash: string }).hash,
      },
    ]);
    assert.match((rows[0] as { hash: string }).hash, /^[0-9a-f]{64}$/);
    raw.close();
    store.close();
  });

  test("a checkpoint copies the write-ahead log into the database file", () => {
    const store = openSqliteStore(freshFile());
    storeGrant(store, { id: "g1", expiresAt: T0 + MINUTE });
    const result = store.checkpoint("TRUNCATE");
    assert.equal(result.busy, false);
    assert.equal(result.walFrames, 0);
    store.close();
  });
});
