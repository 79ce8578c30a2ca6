import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import Database from "better-sqlite3";
import { audit } from "../../src/access/audit.ts";
import { FailedPrecondition } from "../../src/errors.ts";
import { auditRowHash, GENESIS_HASH, verifyAuditChain, type ChainedAuditRow } from "../../src/store/audit-chain.ts";
import { migrate, MIGRATIONS } from "../../src/store/migrations.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { aGrant, aRequest, anAuditEntry, T0, withRaw } from "./fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "jitgate-audit-chain-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshFile = () => join(dir, `audit-${++files}.db`);

/** A closed database file whose audit trail holds `count` entries appended through the store. */
function trailOf(count: number): string {
  const file = freshFile();
  const store = openSqliteStore(file);
  const request = aRequest({ id: "r1" });
  const grant = aGrant({ id: "g1", requestId: "r1" });
  for (let i = 0; i < count; i++) {
    const entry =
      i % 2 === 0
        ? audit.request("REQUEST_CREATED", { at: T0 + i, actor: "alice", reason: `entry ${i + 1}`, request })
        : audit.grant("GRANT_CREATED", { at: T0 + i, actor: "jitgate", reason: `entry ${i + 1}`, grant });
    store.transaction(() => store.appendAudit(entry));
  }
  store.close();
  return file;
}

const rowAt = (db: Database.Database, seq: number) =>
  db.prepare("SELECT * FROM audit WHERE seq = ?").get(seq) as ChainedAuditRow & { hash: string };

describe("audit hash chain", () => {
  test("entries appended through the store form an intact chain from the genesis hash", () => {
    const file = trailOf(5);
    const report = verifyAuditChain(file);
    const last = withRaw(file, (db) => rowAt(db, 5));
    assert.deepEqual(report, { ok: true, rows: 5, head: { seq: 5, hash: last.hash } });
    withRaw(file, (db) => assert.equal(rowAt(db, 1).prev_hash, GENESIS_HASH));
  });

  test("an empty trail is intact", () => {
    const file = freshFile();
    openSqliteStore(file).close();
    assert.deepEqual(verifyAuditChain(file), { ok: true, rows: 0 });
  });

  test("the store verifies its own open trail", () => {
    const store = openSqliteStore(freshFile());
    store.appendAudit(anAuditEntry());
    store.appendAudit(anAuditEntry({ reason: "second" }));
    assert.equal(store.verifyAuditChain().ok, true);
    store.close();
  });

  test("an append rolled back with its transaction leaves no gap in the chain", () => {
    const file = freshFile();
    const store = openSqliteStore(file);
    store.appendAudit(anAuditEntry());
    assert.throws(() =>
      store.transaction(() => {
        store.appendAudit(anAuditEntry({ reason: "undone" }));
        throw new Error("abort");
      }),
    );
    store.appendAudit(anAuditEntry({ reason: "kept" }));
    store.close();
    assert.equal(verifyAuditChain(file).ok, true);
  });

  test("processes appending to one file at once keep one intact chain", async () => {
    const file = freshFile();
    openSqliteStore(file).close();
    const sqlite = resolve(import.meta.dirname, "../../src/store/sqlite.ts");
    // Each writer opens the store, says "ready", and appends only once the test says go, so the appends overlap
    // (how much is up to SQLite's busy waits: a writer may well finish its run before another gets the lock).
    const script =
      `const { openSqliteStore } = await import(${JSON.stringify(sqlite)});\n` +
      `const { once } = await import("node:events");\n` +
      `const store = openSqliteStore(${JSON.stringify(file)});\n` +
      "process.stdout.write('ready\\n');\n" +
      "await once(process.stdin, 'data');\n" +
      "for (let i = 0; i < 300; i++) store.appendAudit({ kind: 'GRANT_CREATED', at: i, actor: process.argv[1], " +
      "subject: 's', resource: 'r', reason: String(i), policyRevision: 'p', details: { i } });\n" +
      "store.close();\n" +
      "process.exit(0);\n";
    const writers = ["w1", "w2", "w3"].map((name) =>
      spawn(process.execPath, ["--input-type=module", "-e", script, name], { stdio: ["pipe", "pipe", "inherit"] }),
    );
    await Promise.all(writers.map((w) => once(w.stdout, "data")));
    const exits = writers.map((w) => once(w, "exit"));
    for (const w of writers) w.stdin.end("go\n");
    const codes = (await Promise.all(exits)).map(([code]) => code as number);
    assert.deepEqual(codes, [0, 0, 0]);
    const report = verifyAuditChain(file);
    assert.equal(report.ok, true);
    assert.equal(report.ok && report.rows, 900);
  });

  test("an edited reason breaks the chain at that row", () => {
    const file = trailOf(5);
    withRaw(file, (db) => db.prepare("UPDATE audit SET reason = 'nothing to see' WHERE seq = 3").run());
    assert.deepEqual(verifyAuditChain(file), { ok: false, seq: 3, reason: "hash mismatch" });
  });

  test("an edited row whose hash is recomputed breaks the chain at the next row", () => {
    const file = trailOf(5);
    withRaw(file, (db) => {
      db.prepare("UPDATE audit SET reason = 'nothing to see' WHERE seq = 3").run();
      db.prepare("UPDATE audit SET hash = ? WHERE seq = 3").run(auditRowHash(rowAt(db, 3)));
    });
    assert.deepEqual(verifyAuditChain(file), { ok: false, seq: 4, reason: "prev_hash does not match the previous row" });
  });

  test("a deleted middle row breaks the chain", () => {
    const file = trailOf(5);
    withRaw(file, (db) => db.prepare("DELETE FROM audit WHERE seq = 2").run());
    assert.deepEqual(verifyAuditChain(file), { ok: false, seq: 3, reason: "sequence gap (row 2 missing)" });
  });

  test("a deleted first row breaks the chain", () => {
    const file = trailOf(3);
    withRaw(file, (db) => db.prepare("DELETE FROM audit WHERE seq = 1").run());
    assert.deepEqual(verifyAuditChain(file), { ok: false, seq: 2, reason: "sequence gap (row 1 missing)" });
  });

  test("a deleted middle row with the rest renumbered still breaks the chain", () => {
    const file = trailOf(4);
    withRaw(file, (db) => {
      db.prepare("DELETE FROM audit WHERE seq = 2").run();
      db.prepare("UPDATE audit SET seq = seq - 1 WHERE seq > 2").run();
    });
    assert.deepEqual(verifyAuditChain(file), { ok: false, seq: 2, reason: "prev_hash does not match the previous row" });
  });

  test("an entry appended after the last row was deleted exposes the deletion", () => {
    const file = trailOf(3);
    withRaw(file, (db) => db.prepare("DELETE FROM audit WHERE seq = 3").run());
    // The chain alone cannot see a deleted tail ...
    assert.deepEqual(verifyAuditChain(file).ok, true);
    const store = openSqliteStore(file);
    store.appendAudit(anAuditEntry());
    store.close();
    // ... but AUTOINCREMENT never reuses seq 3, so the next entry leaves a gap.
    assert.deepEqual(verifyAuditChain(file), { ok: false, seq: 4, reason: "sequence gap (row 3 missing)" });
  });

  test("migration v2 chains the entries written before it", () => {
    const file = freshFile();
    withRaw(file, (db) => {
      migrate(db, file, MIGRATIONS.slice(0, 1));
      const insert = db.prepare(
        "INSERT INTO audit (at, kind, actor, subject, resource, request_id, grant_id, reason, policy_revision, details) " +
          "VALUES (?, 'GRANT_CREATED', 'jitgate', 'alice', 'orders-db', 'r1', NULL, ?, 'rev-1', '{\"a\":1}')",
      );
      for (let i = 1; i <= 3; i++) insert.run(T0 + i, `old ${i}`);
    });
    assert.throws(() => verifyAuditChain(file), FailedPrecondition);
    const store = openSqliteStore(file);
    store.appendAudit(anAuditEntry());
    store.close();
    const report = verifyAuditChain(file);
    assert.equal(report.ok, true);
    assert.equal(report.ok && report.rows, 4);
  });

  test("verifying a file never writes to it", () => {
    const file = trailOf(2);
    withRaw(file, (db) => db.prepare("UPDATE audit SET reason = 'x' WHERE seq = 1").run());
    verifyAuditChain(file);
    withRaw(file, (db) => assert.equal(rowAt(db, 1).reason, "x"));
  });
});
