// The decision log's writer thread against a real decisions.db in a temp dir: batches commit in the order sent,
// each record once (also when a batch is retried, and when the thread dies under it), pruning works, close
// writes out everything queued; failures cross the thread as the errors the store throws, so the log's retries
// and write health keep working.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import type { Worker } from "node:worker_threads";
import Database from "better-sqlite3";
import type { DecisionRecord } from "../../src/access/model.ts";
import { DecisionLog } from "../../src/decisions/decision-log.ts";
import { type DecisionWriterThread, startDecisionWriterThread } from "../../src/decisions/writer-thread.ts";
import { Unavailable } from "../../src/errors.ts";
import { DECISIONS_FILE } from "../../src/store/decision-store.ts";
import { WriteTracker } from "../../src/store/sqlite-errors.ts";
import { aDecisionRecord, T0 } from "./fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "jitgate-writer-thread-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshFile = () => join(dir, `decisions-${++files}.db`);

const aDecision = (n: number, over: Partial<DecisionRecord> = {}) => aDecisionRecord({ decisionId: `d${n}`, at: T0 + n, ...over });
const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => aDecision(from + i));

/** The decision ids in `file`, in the order they were committed. */
function committedIds(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare<[], string>("SELECT decision_id FROM decisions ORDER BY rowid").pluck().all();
  } finally {
    db.close();
  }
}

/** Another process's connection holding the write lock (as `sqlite3` with BEGIN IMMEDIATE at its prompt does). */
function holdWriteLock(file: string): { release(): void } {
  const db = new Database(file);
  db.exec("BEGIN IMMEDIATE");
  return {
    release() {
      db.exec("ROLLBACK");
      db.close();
    },
  };
}

/** A writer thread on `file` that tells of each worker it starts. */
async function writerOn(file: string, busyTimeoutMs?: number): Promise<{ writer: DecisionWriterThread; workers: Worker[] }> {
  const workers: Worker[] = [];
  const writer = await startDecisionWriterThread({ file, busyTimeoutMs, onWorkerStarted: (w) => workers.push(w) });
  return { writer, workers };
}

describe("decision writer thread", () => {
  test("through the log, batches commit in the order queued, each record once, and close writes out everything", async () => {
    const file = freshFile();
    const { writer, workers } = await writerOn(file);
    const exited = new Promise((resolve) => workers[0]?.once("exit", resolve));
    const errors: unknown[] = [];
    const log = new DecisionLog({ writer, batchSize: 100, retentionMs: 0, now: () => T0, onError: (err) => errors.push(err) });
    const records = range(0, 1_050);
    for (const d of records.slice(0, 500)) log.record(d);
    await log.flush();
    assert.equal(log.written, 500);
    // The rest is still queued (the flush interval has not passed) when close is called.
    for (const d of records.slice(500)) log.record(d);
    assert.ok(log.queueDepth > 0);
    await log.close();
    assert.deepEqual(errors, []);
    assert.deepEqual([log.written, log.dropped, log.queueDepth], [1_050, 0, 0]);
    assert.deepEqual(
      committedIds(file),
      records.map((d) => d.decisionId),
    );
    // close ended the thread: it exits, and nothing more is taken.
    await exited;
    assert.equal(workers.length, 1);
    await assert.rejects(writer.insertBatch([aDecision(9_999)]), Unavailable);
  });

  test("a retried batch, in whole or in part, leaves each record once", async () => {
    const file = freshFile();
    const { writer } = await writerOn(file);
    try {
      await writer.insertBatch(range(0, 10));
      await writer.insertBatch(range(0, 10));
      await writer.insertBatch(range(5, 10));
      assert.deepEqual(
        committedIds(file),
        range(0, 15).map((d) => d.decisionId),
      );
    } finally {
      await writer.close();
    }
  });

  test("a thread that dies under a batch fails it with Unavailable; the log retries it on a new thread, each record once", async () => {
    const file = freshFile();
    const { writer, workers } = await writerOn(file, 10_000);
    const errors: unknown[] = [];
    const log = new DecisionLog({ writer, retentionMs: 0, retryBaseMs: 10, now: () => T0, onError: (err) => errors.push(err) });
    const lock = holdWriteLock(file);
    log.record(aDecision(0));
    log.record(aDecision(1));
    const flushed = log.flush();
    // Give the batch time to reach the worker and wait there for the lock; the worker dies there (a crash, an
    // OOM kill of the thread). Stopped before it got there, the batch fails the same way: no wait to rely on.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(log.written, 0);
    const stopped = workers[0]?.terminate();
    lock.release();
    await stopped;
    await flushed;
    assert.ok(
      errors.some((e) => e instanceof Unavailable && /writer thread stopped/.test(e.message)),
      `errors: ${errors.map(String).join("; ")}`,
    );
    assert.equal(workers.length, 2, "a new thread took the retry");
    log.record(aDecision(2));
    await log.close();
    assert.deepEqual(committedIds(file), ["d0", "d1", "d2"]);
    assert.deepEqual([log.written, log.dropped], [3, 0]);
  });

  test("pruneBefore deletes only records older than the cut-off, at most `limit` at a time", async () => {
    const file = freshFile();
    const { writer } = await writerOn(file);
    try {
      await writer.insertBatch(range(1, 5));
      assert.equal(await writer.pruneBefore(T0 + 4, 2), 2);
      assert.equal(await writer.pruneBefore(T0 + 4, 10), 1);
      assert.equal(await writer.pruneBefore(T0 + 4, 10), 0);
      assert.deepEqual(committedIds(file), ["d4", "d5"]);
    } finally {
      await writer.close();
    }
  });

  test("another writer holding the lock past the busy timeout is Unavailable naming the file, and not a disk failure", async () => {
    const file = freshFile();
    const { writer } = await writerOn(file, 50);
    const health = new WriteTracker({ now: () => T0, dir });
    const lock = holdWriteLock(file);
    try {
      const err = await health
        .trackAsync(() => writer.insertBatch([aDecision(1)]))
        .then(
          () => assert.fail("the batch committed under another writer's lock"),
          (e: unknown) => e,
        );
      assert.ok(err instanceof Unavailable, String(err));
      assert.equal(err.message, `decision log: database ${file}: the database stayed locked by another writer past the busy timeout`);
      assert.deepEqual(health.current, { possible: true });
    } finally {
      lock.release();
    }
    await health.trackAsync(() => writer.insertBatch([aDecision(1)]));
    assert.deepEqual(committedIds(file), ["d1"]);
    await writer.close();
  });

  test("a record the store refuses fails as the store throws it (not Unavailable), so the log drops only that record", async () => {
    const file = freshFile();
    const { writer } = await writerOn(file);
    const broken = { ...aDecision(2), subject: null } as unknown as DecisionRecord;
    await assert.rejects(
      writer.insertBatch([aDecision(1), broken]),
      (err: unknown) => err instanceof Database.SqliteError && err.code === "SQLITE_CONSTRAINT_NOTNULL",
    );
    const errors: unknown[] = [];
    const log = new DecisionLog({ writer, retentionMs: 0, now: () => T0, onError: (err) => errors.push(err) });
    for (const d of [aDecision(1), broken, aDecision(3)]) log.record(d);
    await log.close();
    assert.deepEqual(committedIds(file), ["d1", "d3"]);
    assert.deepEqual([log.written, log.dropped], [2, 1]);
  });

  test("a store that cannot be opened fails the start as openDecisionStore does, naming the file", async () => {
    const file = join(dir, "nowhere", DECISIONS_FILE);
    await assert.rejects(startDecisionWriterThread({ file }), (err: unknown) => err instanceof Unavailable && err.message.includes(file));
  });

  test("a file gone bad under a restarted thread: Unavailable, with the SQLite reason write health reports; fixed, writes resume", async () => {
    const file = freshFile();
    const { writer, workers } = await writerOn(file);
    const health = new WriteTracker({ now: () => T0, dir });
    try {
      await workers[0]?.terminate();
      for (const suffix of ["", "-wal", "-shm"]) rmSync(`${file}${suffix}`, { force: true });
      writeFileSync(file, "this is not a database, it is a text file long enough to hold a header ".repeat(10));
      await assert.rejects(
        health.trackAsync(() => writer.insertBatch([aDecision(1)])),
        (err: unknown) => err instanceof Unavailable && err.message.includes(file),
      );
      assert.deepEqual(health.current, { possible: false, reason: "the file is not a SQLite database", since: T0, code: "SQLITE_NOTADB" });
      rmSync(file);
      await health.trackAsync(() => writer.insertBatch([aDecision(1)]));
      assert.deepEqual(health.current, { possible: true });
      assert.deepEqual(committedIds(file), ["d1"]);
      assert.equal(workers.length, 3, "each request after a failed start starts a new thread");
    } finally {
      await writer.close();
    }
  });
});
