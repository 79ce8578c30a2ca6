// The decision log's writer off the serving thread: a worker thread owns its own connection to decisions.db and
// runs each batch and prune there, so a lock held by another process (a backup, an open `sqlite3` shell), the
// busy waits it causes and the commits cost the serving thread nothing but one message each way per batch.
import { Worker } from "node:worker_threads";
import type { DecisionRecord } from "../access/model.ts";
import { describeThrown, Unavailable } from "../errors.ts";
import { errorFromWire, type WireError } from "../store/wire-errors.ts";
import type { DecisionWriter } from "./decision-log.ts";

/** What the worker thread is asked to do; each request is answered once, in the order sent. */
export type WriterRequest =
  /** `records`: the batch as JSON text (one string copies between threads far cheaper than cloned objects). */
  | { readonly t: "insert"; readonly seq: number; readonly records: string }
  | { readonly t: "prune"; readonly seq: number; readonly at: number; readonly limit: number }
  | { readonly t: "close"; readonly seq: number };

export type WriterReply =
  | { readonly t: "ready" }
  | { readonly t: "open-failed"; readonly error: WireError }
  | { readonly t: "done"; readonly seq: number; readonly value: number }
  | { readonly t: "failed"; readonly seq: number; readonly error: WireError };

/** What the worker is started with. */
export interface WriterWorkerData {
  readonly file: string;
  readonly busyTimeoutMs: number | undefined;
}

export interface DecisionWriterThreadOptions {
  /** decisions.db. */
  readonly file: string;
  /** How long a batch waits for another process's write lock (in the worker) before failing. Default 5000. */
  readonly busyTimeoutMs?: number;
  /** Told of each worker thread started (the first, and each restart); tests stop one to prove the restart. */
  readonly onWorkerStarted?: (worker: Worker) => void;
}

const WORKER_FILE = new URL("./writer-worker.ts", import.meta.url);

interface Pending {
  readonly resolve: (value: number) => void;
  readonly reject: (err: unknown) => void;
}

interface Running {
  readonly worker: Worker;
  readonly pending: Map<number, Pending>;
  /** Settles when the store is open in the worker (rejects with why it could not be opened). */
  readonly ready: Promise<void>;
}

/**
 * Starts the writer thread on `file` and resolves once it has opened (and migrated) the store, so a wrong path
 * or a foreign file fails the start with the same error openDecisionStore throws.
 */
export async function startDecisionWriterThread(options: DecisionWriterThreadOptions): Promise<DecisionWriterThread> {
  const writer = new DecisionWriterThread(options);
  try {
    await writer.started();
  } catch (err) {
    await writer.close();
    throw err;
  }
  return writer;
}

/**
 * A DecisionWriter whose batches run on a worker thread. A worker that dies (or cannot open the store) fails
 * what it was asked with Unavailable, and the next request starts a new one: the log's retries, with their
 * backoff, pace the restarts. Requests are answered in the order sent.
 */
export class DecisionWriterThread implements DecisionWriter {
  readonly #options: DecisionWriterThreadOptions;
  #running: Running | undefined;
  #seq = 0;
  #closing: Promise<void> | undefined;

  constructor(options: DecisionWriterThreadOptions) {
    this.#options = options;
  }

  /** Resolves once a worker has the store open; starts one if none is running. */
  started(): Promise<void> {
    if (this.#closing !== undefined) return Promise.reject(closedError());
    return this.#worker().ready;
  }

  async insertBatch(records: readonly DecisionRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.#request((seq) => ({ t: "insert", seq, records: JSON.stringify(records) }));
  }

  pruneBefore(at: number, limit: number): Promise<number> {
    return this.#request((seq) => ({ t: "prune", seq, at, limit }));
  }

  /** Lets the worker answer what was sent before, closes its connection, and ends it. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown();
    return this.#closing;
  }

  #request(message: (seq: number) => WriterRequest): Promise<number> {
    if (this.#closing !== undefined) return Promise.reject(closedError());
    return this.#send(this.#worker(), message);
  }

  #send(running: Running, message: (seq: number) => WriterRequest): Promise<number> {
    const seq = ++this.#seq;
    return new Promise<number>((resolve, reject) => {
      // Keeps the process alive only while the worker owes an answer (an awaited flush is waiting on it).
      if (running.pending.size === 0) running.worker.ref();
      running.pending.set(seq, { resolve, reject });
      try {
        running.worker.postMessage(message(seq));
      } catch (err) {
        // A record that cannot be serialised: refused like a record the store refuses.
        running.pending.delete(seq);
        if (running.pending.size === 0) running.worker.unref();
        reject(err);
      }
    });
  }

  #worker(): Running {
    this.#running ??= this.#spawn();
    return this.#running;
  }

  #spawn(): Running {
    const data: WriterWorkerData = { file: this.#options.file, busyTimeoutMs: this.#options.busyTimeoutMs };
    const worker = new Worker(WORKER_FILE, { workerData: data });
    worker.unref();
    const pending = new Map<number, Pending>();
    let opened: { resolve: () => void; reject: (err: unknown) => void } | undefined;
    const ready = new Promise<void>((resolve, reject) => (opened = { resolve, reject }));
    // A start that fails is reported to whoever waits on it (started(), or the requests); never unhandled.
    ready.catch(() => undefined);
    const running: Running = { worker, pending, ready };
    worker.on("message", (reply: WriterReply) => {
      if (reply.t === "ready") opened?.resolve();
      else if (reply.t === "open-failed") {
        const err = errorFromWire(reply.error);
        opened?.reject(err);
        this.#lost(running, err);
      } else this.#settle(running, reply);
    });
    worker.on("error", (err: unknown) => {
      const lost = new Unavailable(`decision log: the writer thread failed: ${describeThrown(err)}`, { cause: err });
      opened?.reject(lost);
      this.#lost(running, lost);
    });
    worker.on("exit", (code) => {
      const lost = new Unavailable(`decision log: the writer thread stopped (exit code ${code})`);
      opened?.reject(lost);
      this.#lost(running, lost);
    });
    this.#options.onWorkerStarted?.(worker);
    return running;
  }

  #settle(running: Running, reply: WriterReply & { t: "done" | "failed" }): void {
    const request = running.pending.get(reply.seq);
    if (request === undefined) return;
    running.pending.delete(reply.seq);
    if (running.pending.size === 0) running.worker.unref();
    if (reply.t === "done") request.resolve(reply.value);
    else request.reject(errorFromWire(reply.error));
  }

  /** A worker gone (or useless): what it owed fails with `err`, and the next request starts another. */
  #lost(running: Running, err: unknown): void {
    if (this.#running === running) this.#running = undefined;
    const owed = [...running.pending.values()];
    running.pending.clear();
    for (const request of owed) request.reject(err);
    void running.worker.terminate();
  }

  async #shutDown(): Promise<void> {
    const running = this.#running;
    if (running === undefined) return;
    try {
      // Answered after everything sent before it; a worker that cannot open the store has nothing to close.
      await running.ready;
      await this.#send(running, (seq) => ({ t: "close", seq }));
    } catch {
      // The worker died or never opened the store: nothing is left to close but the thread.
    } finally {
      if (this.#running === running) this.#running = undefined;
      await running.worker.terminate();
    }
  }
}

function closedError(): Unavailable {
  return new Unavailable("decision log: the writer thread is closed");
}
