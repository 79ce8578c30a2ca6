// jitgate.db's writes off the serving thread: a worker thread (sqlite-writer-worker.ts) owns the write connection,
// and `write` drives one transaction there step by step. Waiting for another process's lock, the writes and the
// commit's fsync all happen on that thread; the serving thread only sends each step and awaits its answer, so a
// slow disk or a held lock delays the writes themselves, never a Check.
import { Worker } from "node:worker_threads";
import type { WriteTx } from "../access/ports.ts";
import { describeThrown, Unavailable } from "../errors.ts";
import type { WriteHealth } from "./sqlite-errors.ts";
import { errorFromWire, type WireError } from "./wire-errors.ts";

export interface WriterThreadData {
  readonly file: string;
  readonly busyTimeoutMs: number;
  readonly writeBudgetMs: number;
}

export type WriterThreadRequest =
  | { readonly t: "begin"; readonly seq: number; readonly budgetMs: number }
  | { readonly t: "op"; readonly seq: number; readonly name: keyof WriteTx; readonly args: readonly unknown[] }
  | { readonly t: "end"; readonly seq: number; readonly commit: boolean }
  | { readonly t: "probe"; readonly seq: number }
  | { readonly t: "pause"; readonly seq: number; readonly ms: number }
  | { readonly t: "close"; readonly seq: number };

export type WriterThreadReply =
  | { readonly t: "ready" }
  | { readonly t: "open-failed"; readonly error: WireError }
  | { readonly t: "done"; readonly seq: number; readonly value: unknown }
  | { readonly t: "failed"; readonly seq: number; readonly error: WireError };

/** A request before it is numbered. */
type Step = WriterThreadRequest extends infer R ? (R extends unknown ? Omit<R, "seq"> : never) : never;

const WORKER_FILE = new URL("./sqlite-writer-worker.ts", import.meta.url);
const TX_METHODS: readonly (keyof WriteTx)[] = [
  "request",
  "insertRequest",
  "insertReview",
  "decideRequest",
  "insertGrant",
  "revokeGrant",
  "revokeGrantsOf",
  "recordExpiries",
  "expirePending",
  "appendAudit",
];

export class SqliteWriterThread {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: unknown) => void }>();
  readonly #tx: WriteTx;
  #seq = 0;
  #turn: Promise<unknown> = Promise.resolve();
  #lost: Error | undefined;

  private constructor(worker: Worker) {
    this.#worker = worker;
    const tx: Record<string, (...args: unknown[]) => Promise<unknown>> = {};
    for (const name of TX_METHODS) tx[name] = (...args) => this.#call({ t: "op", name, args });
    this.#tx = tx as unknown as WriteTx;
    worker.on("message", (reply: WriterThreadReply) => {
      if (reply.t !== "done" && reply.t !== "failed") return;
      const pending = this.#pending.get(reply.seq);
      if (!pending) return;
      this.#pending.delete(reply.seq);
      if (reply.t === "done") pending.resolve(reply.value);
      else pending.reject(errorFromWire(reply.error));
      if (this.#pending.size === 0) worker.unref();
    });
    const lost = (why: string) => {
      this.#lost ??= new Unavailable(`store: the writer thread ${why}`);
      for (const p of this.#pending.values()) p.reject(this.#lost);
      this.#pending.clear();
    };
    worker.on("error", (err) => lost(`failed: ${describeThrown(err)}`));
    worker.on("exit", (code) => lost(`stopped (exit code ${code})`));
  }

  /** Starts the thread; resolves once it has the store open (or rejects with why it could not open it). */
  static start(data: WriterThreadData): Promise<SqliteWriterThread> {
    const worker = new Worker(WORKER_FILE, { workerData: data });
    return new Promise((resolve, reject) => {
      const onMessage = (reply: WriterThreadReply) => {
        if (reply.t === "ready") {
          worker.off("message", onMessage);
          worker.unref();
          resolve(new SqliteWriterThread(worker));
        } else if (reply.t === "open-failed") {
          worker.off("message", onMessage);
          void worker.terminate();
          reject(errorFromWire(reply.error));
        }
      };
      worker.on("message", onMessage);
      worker.once("error", reject);
      worker.once("exit", (code) => reject(new Unavailable(`store: the writer thread stopped while opening (exit code ${code})`)));
    });
  }

  /** `fn` in one transaction on the writer thread; this process's writes take turns. */
  write<T>(fn: (tx: WriteTx) => Promise<T>, budgetMs: number): Promise<T> {
    const run = this.#turn.then(() => this.#transaction(fn, budgetMs));
    this.#turn = run.catch(() => undefined);
    return run;
  }

  /** The writer's health probe (a tiny committed write), run on its thread. */
  probeWrites(): Promise<WriteHealth> {
    return this.#call({ t: "probe" }) as Promise<WriteHealth>;
  }

  /**
   * Holds the writer thread still for `ms`, as a disk whose fsync takes that long would: for fault tests, which
   * show that Checks and reads go on meanwhile. Resolves when the pause is over.
   */
  pause(ms: number): Promise<void> {
    return this.#call({ t: "pause", ms }) as Promise<void>;
  }

  async close(): Promise<void> {
    await this.#turn;
    if (!this.#lost) await this.#call({ t: "close" }).catch(() => undefined);
    await this.#worker.terminate();
  }

  async #transaction<T>(fn: (tx: WriteTx) => Promise<T>, budgetMs: number): Promise<T> {
    await this.#call({ t: "begin", budgetMs });
    let result: T;
    try {
      result = await fn(this.#tx);
    } catch (err) {
      await this.#call({ t: "end", commit: false }).catch(() => undefined);
      throw err;
    }
    await this.#call({ t: "end", commit: true });
    return result;
  }

  #call(step: Step): Promise<unknown> {
    if (this.#lost) return Promise.reject(this.#lost);
    const seq = ++this.#seq;
    return new Promise((resolve, reject) => {
      if (this.#pending.size === 0) this.#worker.ref();
      this.#pending.set(seq, { resolve, reject });
      this.#worker.postMessage({ ...step, seq });
    });
  }
}
