// One policy worker thread: holds a compiled bundle and evaluates batches of inputs on it, telling the pool
// through shared memory which evaluation it is in and since when, so the pool can stop a run-away one.
import { parentPort, workerData } from "node:worker_threads";
import { describeThrown } from "../errors.ts";
import { loadBundle } from "./bundle.ts";
import { PolicyEngine } from "./engine.ts";
import { type EvalOutcome, PROGRESS, type WorkerReply, type WorkerRequest } from "./pool-protocol.ts";

const port = parentPort;
if (!port) throw new Error("pool-worker.ts runs only as a worker thread");
const progress = new Int32Array((workerData as { progress: SharedArrayBuffer }).progress);
const engine = new PolicyEngine();
const encoder = new TextEncoder();

/** Milliseconds since the pool's epoch (an Int32 holds ~24 days of them). */
const since = (epoch: number) => Math.round(performance.timeOrigin + performance.now() - epoch);

let queue = Promise.resolve();
port.on("message", (msg: WorkerRequest) => {
  // One message at a time, in order: a load always completes before the evaluations sent after it.
  queue = queue.then(() => handle(msg));
});

async function handle(msg: WorkerRequest): Promise<void> {
  if (msg.t === "load") {
    try {
      const bundle = await loadBundle(msg.file, Buffer.from(msg.bytes), {
        beforeEvaluation: () => mark(msg.epoch, -1),
        afterEvaluation: () => Atomics.store(progress, PROGRESS.busy, 0),
      });
      engine.activate(bundle);
      reply({ t: "loaded", revision: bundle.revision, entrypoints: [...bundle.entrypoints] });
    } catch (err) {
      // A BundleError already names the file; the pool names it again.
      const message = describeThrown(err);
      const prefix = `policy bundle ${msg.file}: `;
      reply({ t: "load-failed", message: message.startsWith(prefix) ? message.slice(prefix.length) : message });
    }
    return;
  }
  const entrypoints = msg.entrypoints.split("\n");
  const inputs = msg.inputs.split("\n");
  const results: EvalOutcome[] = [];
  for (let i = 0; i < entrypoints.length; i++) {
    mark(msg.epoch, i, msg.seq);
    try {
      const { result, revision } = engine.evaluateSerialized(entrypoints[i] as string, encoder.encode(inputs[i]).buffer);
      results.push({ ok: true, result, revision });
    } catch (err) {
      results.push({ ok: false, message: describeThrown(err), revision: engine.active?.revision ?? "" });
    }
  }
  Atomics.store(progress, PROGRESS.busy, 0);
  reply({ t: "results", seq: msg.seq, results: JSON.stringify(results) });
}

/** Records that evaluation `index` of batch `seq` starts now (index -1: a verification input while loading). */
function mark(epoch: number, index: number, seq = 0): void {
  Atomics.store(progress, PROGRESS.startedAt, since(epoch));
  Atomics.store(progress, PROGRESS.index, index);
  Atomics.store(progress, PROGRESS.seq, seq);
  Atomics.store(progress, PROGRESS.busy, 1);
}

function reply(msg: WorkerReply): void {
  port?.postMessage(msg);
}
