// The decision log's writer thread: opens decisions.db with its own connection (openDecisionStore, as the server
// did on its own thread before) and runs the batches and prunes it is sent, one at a time, in order.
import { parentPort, workerData } from "node:worker_threads";
import type { DecisionRecord } from "../access/model.ts";
import { type DecisionStore, openDecisionStore } from "../store/decision-store.ts";
import { errorToWire as toWire } from "../store/wire-errors.ts";
import type { WriterReply, WriterRequest, WriterWorkerData } from "./writer-thread.ts";

const port = parentPort;
if (!port) throw new Error("writer-worker.ts runs only as a worker thread");
const { file, busyTimeoutMs } = workerData as WriterWorkerData;

let store: DecisionStore | undefined;
try {
  store = openDecisionStore(file, busyTimeoutMs === undefined ? {} : { busyTimeoutMs });
  reply({ t: "ready" });
} catch (err) {
  reply({ t: "open-failed", error: toWire(err) });
}

// better-sqlite3 is synchronous: each message runs to its end before the next, so answers keep the order asked.
port.on("message", (msg: WriterRequest) => {
  if (store === undefined) {
    reply({ t: "failed", seq: msg.seq, error: { code: "UNAVAILABLE", message: "decision log: the writer thread's store is closed" } });
    return;
  }
  try {
    reply({ t: "done", seq: msg.seq, value: handle(store, msg) });
  } catch (err) {
    reply({ t: "failed", seq: msg.seq, error: toWire(err) });
  }
});

function handle(open: DecisionStore, msg: WriterRequest): number {
  switch (msg.t) {
    case "insert": {
      const records = JSON.parse(msg.records) as DecisionRecord[];
      open.insertBatch(records);
      return records.length;
    }
    case "prune":
      return open.pruneBefore(msg.at, msg.limit);
    case "close":
      open.close();
      store = undefined;
      return 0;
  }
}

function reply(msg: WriterReply): void {
  port?.postMessage(msg);
}
