// The decision log on PostgreSQL against a real server: a batch is one statement, each record once however often
// it is retried; pruning takes only old rows, at most the limit; a stopped server keeps every admitted record
// queued (the log refuses more, never drops one) and everything is written, once, when it is back; a record the
// database refuses is dropped alone; the schema is versioned apart from the lifecycle store's and a newer one refused.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import type { DecisionRecord } from "../../src/access/model.ts";
import { DecisionLog } from "../../src/decisions/decision-log.ts";
import { openDecisionWriter } from "../../src/decisions/open-writer.ts";
import { DecisionWriterThread } from "../../src/decisions/writer-thread.ts";
import { FailedPrecondition, Unavailable } from "../../src/errors.ts";
import { openPgDecisionStore, ROWS_PER_STATEMENT, type PgDecisionStore } from "../../src/store/postgres/decision-store.ts";
import { PG_MIGRATIONS } from "../../src/store/postgres/migrations.ts";
import { openPgStore } from "../../src/store/postgres/store.ts";
import { removeDir, tempDir } from "../support/bundles.ts";
import { startPostgres, type PostgresServer, withClient } from "../support/postgres.ts";
import { aDecisionRecord, T0 } from "./fixtures.ts";

let server: PostgresServer;
const opened: PgDecisionStore[] = [];

before(async () => {
  server = await startPostgres();
});

after(async () => {
  await Promise.allSettled(opened.map((s) => s.close()));
  server.stop();
});

/** A writer on a fresh database, and that database's URL. */
async function freshWriter(): Promise<{ url: string; writer: PgDecisionStore }> {
  const url = await server.createDatabase();
  const writer = await openPgDecisionStore(url, { connectTimeoutMs: 1_000 });
  opened.push(writer);
  return { url, writer };
}

/** The decision ids in the database, in the order they were written. */
const committedIds = (url: string) =>
  withClient(url, async (c) => (await c.query<{ decision_id: string }>("SELECT decision_id FROM decisions ORDER BY written")).rows).then(
    (rows) => rows.map((r) => r.decision_id),
  );

const aDecision = (n: number, over: Partial<DecisionRecord> = {}) => aDecisionRecord({ decisionId: `d${n}`, at: T0 + n, ...over });
const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => aDecision(from + i));
const idsOf = (records: readonly DecisionRecord[]) => records.map((d) => d.decisionId);

describe("PostgreSQL decision writer", () => {
  test("a batch inserted twice, or retried in part, leaves one row per decision id, in the order first written", async () => {
    const { url, writer } = await freshWriter();
    await writer.insertBatch(range(0, 10));
    await writer.insertBatch(range(0, 10));
    await writer.insertBatch(range(5, 10));
    await writer.insertBatch([aDecision(20), aDecision(20)]);
    assert.deepEqual(await committedIds(url), [...idsOf(range(0, 15)), "d20"]);
  });

  test("a batch past one statement's rows commits whole, in order, once", async () => {
    const { url, writer } = await freshWriter();
    const records = range(0, ROWS_PER_STATEMENT * 2 + 7);
    await writer.insertBatch(records);
    await writer.insertBatch(records);
    assert.deepEqual(await committedIds(url), idsOf(records));
  });

  test("a record the database refuses fails the batch as PostgreSQL said (not Unavailable), so the log drops only that one", async () => {
    const { url, writer } = await freshWriter();
    const broken = { ...aDecision(2), subject: null } as unknown as DecisionRecord;
    await assert.rejects(
      writer.insertBatch([aDecision(1), broken]),
      (err: unknown) => err instanceof pg.DatabaseError && err.code === "23502",
    );
    const nul = aDecision(4, { resource: "orders\u0000db" });
    const errors: unknown[] = [];
    const log = new DecisionLog({ writer, retentionMs: 0, now: () => T0, onError: (err) => errors.push(err) });
    for (const d of [aDecision(1), broken, aDecision(3), nul, aDecision(5)]) log.record(d);
    await log.flush();
    assert.deepEqual(await committedIds(url), ["d1", "d3", "d5"]);
    assert.deepEqual([log.written, log.dropped], [3, 2]);
    assert.ok(errors.every((e) => !(e instanceof Unavailable)));
  });

  test("pruneBefore deletes only records older than the cut-off, the oldest first, at most `limit` at a time", async () => {
    const { url, writer } = await freshWriter();
    await writer.insertBatch([aDecision(3), aDecision(1), aDecision(5), aDecision(2), aDecision(4)]);
    assert.equal(await writer.pruneBefore(T0 + 4, 2), 2);
    assert.deepEqual(await committedIds(url), ["d3", "d5", "d4"]);
    assert.equal(await writer.pruneBefore(T0 + 4, 10), 1);
    assert.equal(await writer.pruneBefore(T0 + 4, 10), 0);
    assert.equal(await writer.pruneBefore(T0 + 100, 0), 0);
    assert.deepEqual(await committedIds(url), ["d5", "d4"]);
  });

  test("the log over a stopped server keeps every admitted record queued, refuses more, and writes them all once when it is back", async () => {
    const { url, writer } = await freshWriter();
    const errors: unknown[] = [];
    const capacity = 250;
    const log = new DecisionLog({
      writer,
      capacity,
      batchSize: 100,
      flushIntervalMs: 1,
      retentionMs: 0,
      retryBaseMs: 20,
      retryMaxMs: 100,
      now: () => T0,
      onError: (err) => errors.push(err),
    });
    // Some records committed before the outage, so the batch in flight at the stop is a retry of known rows.
    const before = range(0, 50);
    for (const d of before) {
      assert.ok(log.admit());
      log.record(d);
    }
    await log.flush();
    server.stopServer();
    let admitted = 0;
    try {
      for (let n = 1_000; log.admit(); n++, admitted++) log.record(aDecision(n));
      assert.equal(admitted, capacity);
      // Several failed attempts, each an Unavailable naming the database: the batch stays at the head of the queue.
      while (errors.length < 3) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.ok(
        errors.every(
          (e) => e instanceof Unavailable && e.message.startsWith(`decision log: database postgres://127.0.0.1:${server.port}/`),
        ),
        errors.map(String).join("; "),
      );
      assert.deepEqual([log.queueDepth, log.written, log.dropped, log.admit()], [capacity, before.length, 0, false]);
    } finally {
      server.start();
    }
    await log.flush();
    await log.close();
    const ids = await committedIds(url);
    assert.equal(ids.length, before.length + capacity);
    assert.equal(new Set(ids).size, ids.length, "no duplicates");
    assert.deepEqual(ids, idsOf([...before, ...range(1_000, capacity)]));
    assert.deepEqual([log.written, log.dropped, log.queueDepth], [before.length + capacity, 0, 0]);
  });

  test("batches and prunes share a pool of the log's own, at most two connections, whatever the load", async () => {
    const url = await server.createDatabase();
    const writer = await openPgDecisionStore(url);
    opened.push(writer);
    await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => writer.insertBatch(range(i * 10, 10))),
      ...Array.from({ length: 5 }, () => writer.pruneBefore(T0, 10)),
    ]);
    const database = new URL(url).pathname.slice(1);
    const connections = await withClient(url, async (c) => {
      const { rows } = await c.query<{ n: number }>(
        "SELECT count(*)::integer AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        [database],
      );
      return rows[0]?.n;
    });
    assert.ok(connections !== undefined && connections >= 1 && connections <= 2, `connections: ${connections}`);
    assert.equal((await committedIds(url)).length, 200);
  });

  test("a write held up past its statement timeout (a table locked by someone else) is Unavailable, and the retry commits", async () => {
    const url = await server.createDatabase();
    const writer = await openPgDecisionStore(url, { statementTimeoutMs: 200 });
    opened.push(writer);
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("LOCK TABLE decisions IN ACCESS EXCLUSIVE MODE");
      await assert.rejects(
        writer.insertBatch([aDecision(1)]),
        (err: unknown) => err instanceof Unavailable && /ran past its time limit/.test(err.message),
      );
      await holder.query("ROLLBACK");
    } finally {
      await holder.end();
    }
    await writer.insertBatch([aDecision(1)]);
    assert.deepEqual(await committedIds(url), ["d1"]);
  });

  test("closed, the writer takes nothing more and says so as Unavailable (the log would keep the batch)", async () => {
    const { writer } = await freshWriter();
    await writer.close();
    await writer.close();
    await assert.rejects(writer.insertBatch([aDecision(1)]), Unavailable);
    await assert.rejects(writer.pruneBefore(T0, 10), Unavailable);
  });
});

describe("PostgreSQL decision schema", () => {
  test("lives beside the lifecycle store's, in a version table of its own; replicas opening at once migrate it once", async () => {
    const url = await server.createDatabase();
    await (await openPgStore(url)).close();
    const writers = await Promise.all([1, 2, 3, 4].map(() => openPgDecisionStore(url)));
    opened.push(...writers);
    const versions = await withClient(url, async (c) => (await c.query("SELECT version FROM jitgate_decisions_schema")).rows);
    assert.deepEqual(versions, [{ version: 1 }]);
    const lifecycle = await withClient(url, async (c) => (await c.query("SELECT version FROM jitgate_schema")).rows);
    assert.deepEqual(
      lifecycle,
      PG_MIGRATIONS.map((m) => ({ version: m.version })),
    );
    await Promise.all(writers.map((w, i) => w.insertBatch([aDecision(i)])));
    assert.equal((await committedIds(url)).length, 4);
  });

  test("a decision schema newer than this jitgate is refused, naming the database without its password", async () => {
    const { url } = await freshWriter();
    await withClient(url, (c) => c.query("INSERT INTO jitgate_decisions_schema (version, description) VALUES (2, 'from a newer jitgate')"));
    await assert.rejects(openPgDecisionStore(url.replace("://jitgate@", "://jitgate:hunter2@")), (err: unknown) => {
      assert.ok(err instanceof FailedPrecondition);
      assert.match(err.message, /decision schema version 2, newer than this jitgate knows \(1\); upgrade jitgate/);
      assert.ok(err.message.includes(`127.0.0.1:${server.port}/`) && !err.message.includes("hunter2"));
      return true;
    });
  });

  test("an unreachable server fails the open as Unavailable naming it", async () => {
    const url = `postgres://jitgate:hunter2@127.0.0.1:1/nowhere`;
    await assert.rejects(
      openPgDecisionStore(url, { connectTimeoutMs: 1_000 }),
      (err: unknown) =>
        err instanceof Unavailable && err.message.includes("postgres://127.0.0.1:1/nowhere") && !err.message.includes("hunter2"),
    );
  });
});

describe("openDecisionWriter", () => {
  test("sqlite: the writer thread on <data-dir>/decisions.db; postgres: the shared database's decisions table", async () => {
    const dir = await tempDir();
    try {
      const thread = await openDecisionWriter({ kind: "sqlite" }, dir);
      assert.ok(thread instanceof DecisionWriterThread);
      await thread.insertBatch([aDecision(1)]);
      await thread.close();
      const url = await server.createDatabase();
      const shared = await openDecisionWriter({ kind: "postgres", url }, dir);
      await shared.insertBatch([aDecision(1)]);
      assert.equal(await shared.pruneBefore(T0 + 2, 10), 1);
      await shared.close();
      await shared.close();
    } finally {
      await removeDir(dir);
    }
  });
});
