import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import type { DecisionRecord } from "../../src/access/model.ts";
import { DecisionLog, type DecisionLines, type DecisionLogOptions, type DecisionWriter } from "../../src/decisions/decision-log.ts";
import { Unavailable } from "../../src/errors.ts";
import { openDecisionStore, type DecisionStore } from "../../src/store/decision-store.ts";
import { aDecisionRecord, T0 } from "./fixtures.ts";

const DAY = 24 * 60 * 60 * 1000;
const dir = mkdtempSync(join(tmpdir(), "jitgate-decision-log-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshStore = (): DecisionStore => openDecisionStore(join(dir, `decisions-${++files}.db`));
/** The synchronous store behind the asynchronous port, as the writer thread runs it. */
const writerOf = (store: DecisionStore): DecisionWriter => ({
  insertBatch: async (records) => store.insertBatch(records),
  pruneBefore: async (at, limit) => store.pruneBefore(at, limit),
});

function aDecision(n: number, over: Partial<DecisionRecord> = {}): DecisionRecord {
  return aDecisionRecord({ decisionId: `d${n}`, at: T0 + n, ...over });
}

/**
 * A writer that keeps what it was given, one array per batch, and fails while `failing` says so. It answers on
 * a later turn of the event loop, as the writer thread does, so records keep arriving while a batch is in flight.
 */
class FakeWriter implements DecisionWriter {
  readonly batches: DecisionRecord[][] = [];
  failing: (batch: readonly DecisionRecord[]) => Error | undefined = () => undefined;
  async insertBatch(records: readonly DecisionRecord[]): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    const err = this.failing(records);
    if (err) throw err;
    this.batches.push([...records]);
  }
  async pruneBefore(): Promise<number> {
    return 0;
  }
  get ids(): string[] {
    return this.batches.flat().map((d) => d.decisionId);
  }
}

class FakeLines implements DecisionLines {
  readonly written: string[] = [];
  closed = false;
  write(d: DecisionRecord): void {
    this.written.push(d.decisionId);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

function logWith(writer: DecisionWriter, over: Partial<DecisionLogOptions> = {}) {
  const errors: unknown[] = [];
  const log = new DecisionLog({ writer, now: () => T0, onError: (err) => errors.push(err), retentionMs: 0, ...over });
  return { log, errors };
}

/** `n` turns of the event loop. */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

const burst = (log: DecisionLog, from: number, count: number) => {
  for (let i = from; i < from + count; i++) log.record(aDecision(i));
};

describe("decision log", () => {
  test("records are written in batches of at most batchSize, one writer call (transaction) each", async () => {
    const writer = new FakeWriter();
    const { log } = logWith(writer, { batchSize: 1000 });
    burst(log, 0, 2500);
    assert.equal(log.queueDepth, 2500);
    await log.flush();
    assert.deepEqual(
      writer.batches.map((b) => b.length),
      [1000, 1000, 500],
    );
    assert.equal(log.written, 2500);
    assert.equal(log.queueDepth, 0);
    await log.close();
  });

  test("one batch is in flight at a time; its records stay queued, holding their places, until it commits", async () => {
    const calls: { ids: string[]; commit: () => void }[] = [];
    const writer: DecisionWriter = {
      insertBatch: (records) => new Promise((resolve) => calls.push({ ids: records.map((d) => d.decisionId), commit: resolve })),
      pruneBefore: async () => 0,
    };
    const { log } = logWith(writer, { batchSize: 2, capacity: 4 });
    burst(log, 0, 3);
    const flushed = log.flush();
    await turns(10);
    assert.deepEqual(
      calls.map((c) => c.ids),
      [["d0", "d1"]],
      "no second batch while the first is in flight",
    );
    assert.equal(log.queueDepth, 3);
    assert.deepEqual([log.admit(), log.admit()], [true, false], "the batch in flight still counts against the capacity");
    log.record(aDecision(3));
    await turns(10);
    assert.equal(calls.length, 1, "a full batch queued behind it waits too");
    calls[0]?.commit();
    await turns(10);
    assert.deepEqual(
      calls.map((c) => c.ids),
      [
        ["d0", "d1"],
        ["d2", "d3"],
      ],
    );
    assert.deepEqual([log.queueDepth, log.written], [2, 2]);
    calls[1]?.commit();
    await flushed;
    assert.deepEqual([log.queueDepth, log.written, log.dropped], [0, 4, 0]);
    await log.close();
  });

  test("close lets the batch in flight finish, writes the rest in order, then closes the writer", async () => {
    const events: string[] = [];
    let commitFirst: (() => void) | undefined;
    const writer: DecisionWriter = {
      insertBatch: (records) => {
        events.push(`insert ${records.map((d) => d.decisionId).join(",")}`);
        if (commitFirst === undefined) return new Promise((resolve) => (commitFirst = resolve));
        return Promise.resolve();
      },
      pruneBefore: async () => 0,
      close: async () => void events.push("close"),
    };
    const { log } = logWith(writer, { batchSize: 2, flushIntervalMs: 0 });
    burst(log, 0, 2);
    while (commitFirst === undefined) await turns(1);
    burst(log, 2, 3);
    const closed = log.close();
    await turns(10);
    assert.deepEqual(events, ["insert d0,d1"], "nothing else starts while a batch is in flight");
    commitFirst();
    await closed;
    assert.deepEqual(events, ["insert d0,d1", "insert d2,d3", "insert d4", "close"]);
    assert.deepEqual([log.written, log.dropped], [5, 0]);
  });

  test("10,000 records recorded in a burst all land in the store exactly once after close", async () => {
    const store = freshStore();
    let transactions = 0;
    const counting: DecisionWriter = {
      insertBatch: async (records) => {
        transactions++;
        store.insertBatch(records);
      },
      pruneBefore: async (at, limit) => store.pruneBefore(at, limit),
    };
    const { log, errors } = logWith(counting, { batchSize: 1000 });
    burst(log, 0, 10_000);
    await log.close();
    assert.deepEqual(errors, []);
    assert.equal(log.dropped, 0);
    assert.equal(transactions, 10);
    assert.equal(store.count(), 10_000);
    const stored = new Set(store.list({}, 10_000).map((d) => d.decisionId));
    for (let i = 0; i < 10_000; i++) assert.ok(stored.has(`d${i}`), `d${i} is missing`);
    store.close();
  });

  test("beyond capacity, records are dropped and counted exactly, and record never throws", async () => {
    const writer = new FakeWriter();
    const { log } = logWith(writer, { capacity: 100, batchSize: 10 });
    assert.doesNotThrow(() => burst(log, 0, 150));
    assert.equal(log.dropped, 50);
    assert.equal(log.queueDepth, 100);
    await log.close();
    assert.equal(log.written, 100);
    assert.deepEqual(
      writer.ids,
      Array.from({ length: 100 }, (_, i) => `d${i}`),
    );
  });

  test("while the store is unavailable records stay queued, and land once each when it recovers", async () => {
    const writer = new FakeWriter();
    let outages = 3;
    writer.failing = () => (outages-- > 0 ? new Unavailable("decision log: the disk is full") : undefined);
    const { log, errors } = logWith(writer, { batchSize: 4, retryBaseMs: 1, retryMaxMs: 5 });
    burst(log, 0, 10);
    await log.flush();
    assert.equal(errors.length, 3);
    assert.ok(errors.every((e) => e instanceof Unavailable));
    assert.deepEqual(
      writer.ids,
      Array.from({ length: 10 }, (_, i) => `d${i}`),
    );
    assert.equal(log.dropped, 0);
    await log.close();
  });

  test("if the queue fills while the store is failing, the overflow is counted as dropped", async () => {
    const writer = new FakeWriter();
    let down = true;
    writer.failing = () => (down ? new Unavailable("decision log: the database is locked") : undefined);
    const { log, errors } = logWith(writer, { capacity: 20, batchSize: 5, retryBaseMs: 1, retryMaxMs: 2 });
    burst(log, 0, 20);
    const flushed = log.flush();
    while (errors.length === 0) await new Promise((resolve) => setImmediate(resolve));
    burst(log, 20, 7);
    assert.equal(log.dropped, 7);
    down = false;
    await flushed;
    await log.close();
    assert.equal(writer.ids.length, 20);
  });

  test("a record the store refuses is dropped and counted; the rest of its batch is written", async () => {
    const writer = new FakeWriter();
    writer.failing = (batch) => (batch.some((d) => d.decisionId === "d3") ? new TypeError("bad record") : undefined);
    const { log, errors } = logWith(writer, { batchSize: 5 });
    burst(log, 0, 10);
    await log.flush();
    assert.equal(log.dropped, 1);
    assert.equal(log.written, 9);
    assert.deepEqual(writer.ids.sort(), ["d0", "d1", "d2", "d4", "d5", "d6", "d7", "d8", "d9"]);
    assert.ok(errors.some((e) => e instanceof TypeError));
    await log.close();
  });

  test("close writes what is queued without waiting for the flush interval, then counts later records as dropped", async () => {
    const writer = new FakeWriter();
    const lines = new FakeLines();
    const { log } = logWith(writer, { flushIntervalMs: 3_600_000, lines: [lines] });
    burst(log, 0, 5);
    await log.close();
    assert.deepEqual(writer.ids, ["d0", "d1", "d2", "d3", "d4"]);
    assert.deepEqual(lines.written, ["d0", "d1", "d2", "d3", "d4"]);
    assert.equal(lines.closed, true);
    log.record(aDecision(5));
    assert.equal(log.dropped, 1);
  });

  test("close gives up on a store that keeps failing: what is left is counted as dropped and reported", async () => {
    const writer = new FakeWriter();
    writer.failing = () => new Unavailable("decision log: the disk is full");
    const { log, errors } = logWith(writer, { closeAttempts: 2, retryBaseMs: 1 });
    burst(log, 0, 3);
    const pending = log.flush();
    await log.close();
    await assert.rejects(pending, Unavailable);
    assert.equal(log.dropped, 3);
    assert.equal(log.queueDepth, 0);
    assert.match(String(errors.at(-1)), /3 record\(s\) not written at close/);
  });

  test("line sinks get each record once, after its batch committed", async () => {
    const writer = new FakeWriter();
    let down = true;
    writer.failing = () => (down ? new Unavailable("decision log: the database is locked") : undefined);
    const lines = new FakeLines();
    const { log, errors } = logWith(writer, { lines: [lines], retryBaseMs: 1, retryMaxMs: 1 });
    burst(log, 0, 3);
    const flushed = log.flush();
    while (errors.length < 2) await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(lines.written, []);
    down = false;
    await flushed;
    assert.deepEqual(lines.written, ["d0", "d1", "d2"]);
    await log.close();
  });

  test("retention prunes only records decided before now minus the retention", async () => {
    const store = freshStore();
    const now = T0 + 40 * DAY;
    const { log } = logWith(writerOf(store), { retentionMs: 30 * DAY, now: () => now });
    log.record(aDecision(1, { at: now - 31 * DAY }));
    log.record(aDecision(2, { at: now - 30 * DAY - 1 }));
    log.record(aDecision(3, { at: now - 30 * DAY }));
    log.record(aDecision(4, { at: now - DAY }));
    await log.flush();
    assert.equal(await log.prune(), 2);
    assert.deepEqual(
      store
        .list({}, 10)
        .map((d) => d.decisionId)
        .sort(),
      ["d3", "d4"],
    );
    await log.close();
    store.close();
  });

  test("a retention of 0 keeps records forever", async () => {
    const store = freshStore();
    const { log } = logWith(writerOf(store), { retentionMs: 0, now: () => T0 + 1000 * DAY });
    log.record(aDecision(1));
    await log.flush();
    assert.equal(await log.prune(), 0);
    assert.equal(store.count(), 1);
    await log.close();
    store.close();
  });

  test("its timers never keep a process alive, except while someone awaits a flush", () => {
    const src = resolve(import.meta.dirname, "..", "..", "src", "decisions", "decision-log.ts");
    const script = `
      import { DecisionLog } from ${JSON.stringify(src)};
      const rows = [];
      const writer = { insertBatch: async (rs) => void rows.push(...rs), pruneBefore: async () => 0 };
      const log = new DecisionLog({ writer, now: Date.now, onError: () => {}, flushIntervalMs: 60_000 });
      log.record({ decisionId: "d1" });
      await log.flush();
      log.record({ decisionId: "d2" });
      process.on("exit", () => console.log(rows.length, log.queueDepth));`;
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 30_000 });
    // The awaited flush wrote d1 at once and held the process until then; d2's 60 s timer is unref'd, so the
    // process exited with d2 still queued (close() is the clean shutdown that writes it).
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, "1 1\n");
  });

  test("flush with nothing queued resolves at once", async () => {
    const { log } = logWith(new FakeWriter());
    await log.flush();
    await log.close();
  });
});
