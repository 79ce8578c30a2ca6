// The store's writer thread: owns jitgate.db's write connection (an ordinary SqliteStore of its own) and runs the
// transactions the serving thread drives step by step: begin (waiting here, never there, for another process's
// lock), each write of the transaction, then commit (the fsync) or roll back. One transaction at a time, in order.
import { parentPort, workerData } from "node:worker_threads";
import { openSqliteStore, type SqliteStore } from "./sqlite.ts";
import type { WriterThreadData, WriterThreadReply, WriterThreadRequest } from "./sqlite-writer.ts";
import { errorToWire } from "./wire-errors.ts";

const port = parentPort;
if (!port) throw new Error("sqlite-writer-worker.ts runs only as a worker thread");
const { file, busyTimeoutMs, writeBudgetMs } = workerData as WriterThreadData;

let store: SqliteStore | undefined;
try {
  store = openSqliteStore(file, { busyTimeoutMs, writeBudgetMs });
  reply({ t: "ready" });
} catch (err) {
  reply({ t: "open-failed", error: errorToWire(err) });
}

/** The open transaction's next steps, as they arrive. */
let inbox: { queue: WriterThreadRequest[]; wake: (() => void) | undefined } | undefined;
const ROLLBACK = Symbol("rollback");

port.on("message", (msg: WriterThreadRequest) => {
  if (msg.t === "op" || msg.t === "end") {
    if (!inbox) return reply({ t: "failed", seq: msg.seq, error: { code: "INTERNAL", message: "store writer: no transaction is open" } });
    inbox.queue.push(msg);
    inbox.wake?.();
    return;
  }
  if (!store)
    return reply({ t: "failed", seq: msg.seq, error: { code: "UNAVAILABLE", message: "store: the writer thread's store is closed" } });
  if (msg.t === "probe") return reply({ t: "done", seq: msg.seq, value: store.probeWrites() });
  if (msg.t === "pause") {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, msg.ms);
    return reply({ t: "done", seq: msg.seq, value: undefined });
  }
  if (msg.t === "close") {
    store.close();
    store = undefined;
    return reply({ t: "done", seq: msg.seq, value: undefined });
  }
  void transaction(store, msg.seq, msg.budgetMs);
});

async function transaction(open: SqliteStore, beginSeq: number, budgetMs: number): Promise<void> {
  const box: NonNullable<typeof inbox> = { queue: [], wake: undefined };
  inbox = box;
  let endSeq: number | undefined;
  const next = async (): Promise<WriterThreadRequest> => {
    while (box.queue.length === 0) await new Promise<void>((resolve) => (box.wake = resolve));
    box.wake = undefined;
    return box.queue.shift() as WriterThreadRequest;
  };
  try {
    await open.write(async (tx) => {
      reply({ t: "done", seq: beginSeq, value: undefined });
      for (;;) {
        const msg = await next();
        if (msg.t === "end") {
          endSeq = msg.seq;
          if (msg.commit) return;
          throw ROLLBACK;
        }
        if (msg.t !== "op") continue;
        try {
          const method = tx[msg.name] as (...args: unknown[]) => unknown;
          reply({ t: "done", seq: msg.seq, value: await method(...msg.args) });
        } catch (err) {
          reply({ t: "failed", seq: msg.seq, error: errorToWire(err) });
        }
      }
    }, budgetMs);
    if (endSeq !== undefined) reply({ t: "done", seq: endSeq, value: undefined });
  } catch (err) {
    // Not begun (the lock stayed taken): the begin fails. Begun: the end (commit or rollback) answers.
    if (endSeq === undefined) reply({ t: "failed", seq: beginSeq, error: errorToWire(err) });
    else if (err === ROLLBACK) reply({ t: "done", seq: endSeq, value: undefined });
    else reply({ t: "failed", seq: endSeq, error: errorToWire(err) });
  } finally {
    if (inbox === box) inbox = undefined;
  }
}

function reply(msg: WriterThreadReply): void {
  port?.postMessage(msg);
}
