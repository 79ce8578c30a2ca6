// The decision log: every access check's record goes into a bounded in-memory queue at once, and is written
// later in batches (one store transaction each, one batch in flight at a time, off the serving path) and
// to line sinks, so logging never slows a decision. A check asks `admit` first and is refused while the queue is
// full, so no answered check loses its record (unless the overflow mode is "drop", which answers and drops the
// record, counted).
import type { DecisionRecord } from "../access/model.ts";
import type { DecisionSink } from "../access/ports.ts";
import { InvalidArgument, Unavailable } from "../errors.ts";
import { Ring } from "./ring.ts";

/**
 * Where batches are committed (open-writer.ts): decisions.db on a thread of its own (writer-thread.ts), or the
 * replicas' PostgreSQL database on a pool of its own (store/postgres/decision-store.ts).
 */
export interface DecisionWriter {
  /**
   * Commits all the records or none (one transaction); a retried batch must not duplicate rows. Rejects with
   * Unavailable when the store cannot be written now (the batch is retried later); any other error means the
   * store refuses a record.
   */
  insertBatch(records: readonly DecisionRecord[]): Promise<void>;
  /** Deletes at most `limit` of the oldest records decided before `at`; resolves with how many. */
  pruneBefore(at: number, limit: number): Promise<number>;
  /** Releases the writer (ends its thread); the log calls it last, from `close`. */
  close?(): Promise<void>;
}

/** A copy of each committed record for log pipelines (stdout, a file); buffered by the sink itself. */
export interface DecisionLines {
  write(decision: DecisionRecord): void;
  /** Flushes what is buffered, then releases the destination. */
  close(): Promise<void>;
}

export interface DecisionLogOptions {
  readonly writer: DecisionWriter;
  readonly lines?: readonly DecisionLines[];
  /** Records waiting to be written (or admitted and about to be recorded), at most. Default 100_000. */
  readonly capacity?: number;
  /** At capacity: "refuse" (admit says false) or "drop" (admit says true; records past capacity are dropped and counted). Default "refuse". */
  readonly overflow?: "refuse" | "drop";
  /** Records per transaction, at most. Default 1_000. */
  readonly batchSize?: number;
  /** How long a record may wait for a batch to fill. Default 50. */
  readonly flushIntervalMs?: number;
  /** Records decided longer ago than this are pruned; 0 keeps them forever. Default 30 days. */
  readonly retentionMs?: number;
  /** Default 10 minutes. */
  readonly pruneIntervalMs?: number;
  /** First wait after a failed batch, doubled per further failure up to retryMaxMs. Defaults 100 and 5000. */
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  /** Failed writes `close` tries before it gives up on what is left (counted as dropped). Default 5. */
  readonly closeAttempts?: number;
  readonly now: () => number;
  /** Told of every failed write or prune; the log keeps going. */
  readonly onError: (err: unknown) => void;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** Rows per prune statement: small enough that a prune never holds the write lock for long. */
const PRUNE_BATCH = 10_000;

type Scheduled = "none" | "soon" | "later" | "retry";

interface FlushWaiter {
  /** Resolved once this many records have left the queue. */
  readonly upTo: number;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

export class DecisionLog implements DecisionSink {
  readonly #writer: DecisionWriter;
  readonly #lines: readonly DecisionLines[];
  readonly #batchSize: number;
  readonly #flushIntervalMs: number;
  readonly #retentionMs: number;
  readonly #retryBaseMs: number;
  readonly #retryMaxMs: number;
  readonly #closeAttempts: number;
  readonly #now: () => number;
  readonly #onError: (err: unknown) => void;
  readonly #capacity: number;
  readonly #overflow: "refuse" | "drop";
  /** Places held by `admit` for records not recorded yet: queued + reserved never exceeds the capacity. */
  #reserved = 0;

  /** A ring buffer: `record` is O(1) and allocates nothing. */
  readonly #queue: Ring<DecisionRecord>;

  /** Records ever accepted into the queue, and ever committed: flush waits for `written` to catch up. */
  #accepted = 0;
  #written = 0;
  /** Records that left the queue: written, or refused by the store and dropped. */
  #settled = 0;
  #dropped = 0;
  #failures = 0;
  #waiters: FlushWaiter[] = [];

  #scheduled: Scheduled = "none";
  #timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  #pruneTimer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;
  /** A prune of a large backlog spans several turns; the next tick of its timer must not start another. */
  #pruning: Promise<number> | undefined;
  /** The batch the writer is committing: one at a time, so records commit in the order they were queued. */
  #inFlight: Promise<boolean> | undefined;

  constructor(options: DecisionLogOptions) {
    const capacity = positive("decision log capacity", options.capacity ?? 100_000);
    this.#capacity = capacity;
    this.#overflow = options.overflow ?? "refuse";
    this.#batchSize = positive("decision log batchSize", options.batchSize ?? 1_000);
    this.#flushIntervalMs = nonNegative("decision log flushIntervalMs", options.flushIntervalMs ?? 50);
    this.#retentionMs = nonNegative("decision log retentionMs", options.retentionMs ?? 30 * DAY_MS);
    this.#retryBaseMs = positive("decision log retryBaseMs", options.retryBaseMs ?? 100);
    this.#retryMaxMs = Math.max(this.#retryBaseMs, options.retryMaxMs ?? 5_000);
    this.#closeAttempts = positive("decision log closeAttempts", options.closeAttempts ?? 5);
    this.#writer = options.writer;
    this.#lines = options.lines ?? [];
    this.#now = options.now;
    this.#onError = options.onError;
    this.#queue = new Ring<DecisionRecord>(capacity);
    if (this.#retentionMs > 0) {
      const every = positive("decision log pruneIntervalMs", options.pruneIntervalMs ?? 10 * 60 * 1000);
      this.#pruneTimer = setInterval(() => void this.prune(), every).unref();
    }
  }

  /** Records waiting to be written. */
  get queueDepth(): number {
    return this.#queue.size;
  }

  /** Records lost: the queue was full, the log was closed, the store refused them, or still failed at close. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Records committed to the store. */
  get written(): number {
    return this.#written;
  }

  /** True when one more record will be kept, holding its place until `record`; false while full or closing. */
  admit(): boolean {
    if (this.#overflow === "drop") return true;
    if (this.#closing !== undefined || this.#queue.size + this.#reserved >= this.#capacity) return false;
    this.#reserved++;
    return true;
  }

  /** Records admitted whose `record` has not come yet. */
  get reserved(): number {
    return this.#reserved;
  }

  record(decision: DecisionRecord): void {
    // Takes the place admit held for it (so the queue is not full); with none held, the queue may be.
    if (this.#reserved > 0) this.#reserved--;
    if (this.#closing !== undefined || this.#queue.full) {
      this.#dropped++;
      return;
    }
    this.#queue.push(decision);
    this.#accepted++;
    if (this.#queue.size >= this.#batchSize) this.#schedule("soon");
    else this.#schedule("later");
  }

  /**
   * Resolves once every record accepted before the call is written (or refused by the store as invalid); waits
   * through outages. Rejects when close gives up on them.
   */
  flush(): Promise<void> {
    if (this.#settled >= this.#accepted) return Promise.resolve();
    if (this.#closing !== undefined) return this.#closing;
    const done = new Promise<void>((resolve, reject) => this.#waiters.push({ upTo: this.#accepted, resolve, reject }));
    this.#schedule("soon");
    // A waiting caller keeps the process alive until its records are written.
    this.#timer?.ref();
    return done;
  }

  /**
   * Stops the timers, writes everything queued (giving up after closeAttempts failures), closes the line sinks,
   * then the writer.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown();
    return this.#closing;
  }

  /** Deletes the records older than the retention, a batch at a time; returns how many. */
  async prune(): Promise<number> {
    if (this.#retentionMs === 0 || this.#closing !== undefined || this.#pruning !== undefined) return 0;
    this.#pruning = this.#pruneAll(this.#now() - this.#retentionMs);
    try {
      return await this.#pruning;
    } finally {
      this.#pruning = undefined;
    }
  }

  async #pruneAll(cutoff: number): Promise<number> {
    let total = 0;
    try {
      for (;;) {
        const deleted = await this.#writer.pruneBefore(cutoff, PRUNE_BATCH);
        total += deleted;
        // Stop at close too: the writer is closed right after the queue is written.
        if (deleted < PRUNE_BATCH || this.#closing !== undefined) return total;
        // Let batches go between prune batches.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } catch (err) {
      this.#report(err);
      return total;
    }
  }

  // ---- plumbing

  #schedule(when: Scheduled): void {
    if (this.#closing !== undefined) return;
    // A pending retry is not cut short: the store asked for a pause. "soon" overrides "later".
    if (this.#scheduled === "retry" || this.#scheduled === "soon" || this.#scheduled === when) return;
    this.#cancel();
    this.#scheduled = when;
    const step = () => {
      this.#scheduled = "none";
      this.#timer = undefined;
      void this.#drainStep();
    };
    if (when === "soon") this.#timer = setImmediate(step);
    else this.#timer = setTimeout(step, when === "retry" ? this.#retryDelay() : this.#flushIntervalMs);
    if (this.#waiters.length === 0) this.#timer.unref();
  }

  #cancel(): void {
    if (this.#scheduled === "soon") clearImmediate(this.#timer as NodeJS.Immediate);
    else if (this.#timer !== undefined) clearTimeout(this.#timer as NodeJS.Timeout);
    this.#timer = undefined;
    this.#scheduled = "none";
  }

  /**
   * One batch, then another turn of the event loop for the rest (or a pause after a failure). A step that comes
   * while a batch is in flight does nothing: the batch's end schedules what follows.
   */
  async #drainStep(): Promise<void> {
    if (this.#inFlight !== undefined || this.#queue.size === 0) return;
    const moved = await this.#writeNext();
    // At close, #shutDown writes the rest.
    if (this.#closing !== undefined) return;
    if (!moved) {
      // The store asked for a pause: a "soon" scheduled while the batch was in flight must not cut it short.
      this.#cancel();
      this.#schedule("retry");
    } else if (this.#queue.size > 0) {
      this.#schedule("soon");
    }
  }

  #writeNext(): Promise<boolean> {
    const writing = this.#writeBatch().finally(() => (this.#inFlight = undefined));
    this.#inFlight = writing;
    return writing;
  }

  /**
   * Writes the oldest batch; while the store is unavailable keeps it at the head of the queue to retry. True
   * when the queue moved on. Never rejects.
   */
  async #writeBatch(): Promise<boolean> {
    // Records stay in the queue (counted against its capacity) until their batch committed.
    const batch = this.#queue.oldest(Math.min(this.#batchSize, this.#queue.size));
    try {
      await this.#writer.insertBatch(batch);
    } catch (err) {
      this.#report(err);
      if (err instanceof Unavailable) {
        this.#failures++;
        return false;
      }
      // Not an outage: the store refuses something in this batch and would refuse it on every retry, which
      // would stall the queue for good. Write it record by record and drop (and count) only the refused ones.
      return this.#writeOneByOne(batch);
    }
    this.#failures = 0;
    this.#committed(batch, batch.length);
    return true;
  }

  async #writeOneByOne(batch: readonly DecisionRecord[]): Promise<boolean> {
    const accepted: DecisionRecord[] = [];
    let handled = 0;
    for (const d of batch) {
      try {
        await this.#writer.insertBatch([d]);
        accepted.push(d);
      } catch (err) {
        if (err instanceof Unavailable) {
          this.#failures++;
          break;
        }
        this.#dropped++;
        this.#report(err);
      }
      handled++;
    }
    this.#committed(accepted, handled);
    return handled > 0;
  }

  /** The oldest `handled` records are done with; `written` of them are in the store. */
  #committed(written: readonly DecisionRecord[], handled: number): void {
    this.#queue.release(handled);
    this.#written += written.length;
    this.#settled += handled;
    for (const lines of this.#lines) this.#copyTo(lines, written);
    this.#settleWaiters();
  }

  #copyTo(lines: DecisionLines, batch: readonly DecisionRecord[]): void {
    try {
      for (const d of batch) lines.write(d);
    } catch (err) {
      this.#report(err);
    }
  }

  #settleWaiters(): void {
    while (this.#waiters.length > 0 && (this.#waiters[0]?.upTo ?? Infinity) <= this.#settled) this.#waiters.shift()?.resolve();
  }

  #retryDelay(): number {
    return Math.min(this.#retryMaxMs, this.#retryBaseMs * 2 ** Math.min(Math.max(0, this.#failures - 1), 20));
  }

  async #shutDown(): Promise<void> {
    if (this.#pruneTimer !== undefined) clearInterval(this.#pruneTimer);
    this.#cancel();
    // The batch in flight ends first (one at a time), whatever its outcome; then the rest, in order.
    await this.#inFlight;
    let failed = 0;
    while (this.#queue.size > 0) {
      if (await this.#writeNext()) {
        failed = 0;
        await new Promise((resolve) => setImmediate(resolve));
      } else if (++failed >= this.#closeAttempts) {
        break;
      } else {
        await new Promise((resolve) => setTimeout(resolve, this.#retryDelay()));
      }
    }
    if (this.#queue.size > 0) this.#abandonQueue();
    const closed = await Promise.allSettled(this.#lines.map((lines) => lines.close()));
    for (const c of closed) if (c.status === "rejected") this.#report(c.reason);
    // A prune stops after its current statement once closing; the writer goes once nothing is in flight.
    await this.#pruning;
    try {
      await this.#writer.close?.();
    } catch (err) {
      this.#report(err);
    }
  }

  /** At close with the store still failing: what is left is counted as dropped, never silently lost. */
  #abandonQueue(): void {
    const lost = this.#queue.size;
    this.#queue.release(lost);
    this.#dropped += lost;
    this.#settled += lost;
    const err = new Unavailable(`decision log: ${lost} record(s) not written at close: the store kept failing`);
    this.#report(err);
    for (const w of this.#waiters.splice(0)) w.reject(err);
  }

  #report(err: unknown): void {
    try {
      this.#onError(err);
    } catch {
      // The error reporter failing must not stop the log.
    }
  }
}

function positive(field: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new InvalidArgument(field, `${value} is not a positive integer`);
  return value;
}

function nonNegative(field: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new InvalidArgument(field, `${value} is not a number >= 0`);
  return value;
}
