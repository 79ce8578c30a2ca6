// The live-grant index of a replica on a networked store (PostgreSQL): loaded from one snapshot, then fed by the
// store's grant events, read by seq over the feed's own connection whenever the store announces a commit and at
// every heartbeat. The event table is the source of truth, so a missed notification or a reconnect loses
// nothing: the next read resumes after the last seq applied.
// Freshness is what makes an allow safe: each completed read is a sync point (every event committed before it
// was sent is applied). `confirm` (the check of an allowing grant) refuses with Unavailable once the last sync
// point is older than the bound: a replica cut off from the feed refuses grant-based allows instead of serving
// ones a revocation elsewhere has ended. A revocation committed anywhere is therefore never honoured here later
// than the bound after its commit, and usually within one notification's round trip.
// This process's own commits are applied at once (`committed`), ahead of the feed.
import { Unavailable } from "../errors.ts";
import { GrantTable, type IndexedGrant, type LiveGrants } from "./live-grants.ts";
import type { Grant, GrantEvent } from "./model.ts";

/** The store's side of the feed: its events by seq, over the connection whose liveness is the feed's. */
export interface GrantFeedSource {
  /** Every grant not revoked and not expired at `now`, and the latest grant event seq, from one snapshot. */
  liveGrantSnapshot(now: number): Promise<{ readonly seq: number; readonly grants: readonly Grant[] }>;
  /** Grant events with seq > `after`, oldest first, at most `limit`; each with its grant as stored now. */
  eventsAfter(after: number, limit: number): Promise<readonly GrantEvent[]>;
  /** `listener` runs whenever the store announces committed grant events (or the feed reconnected). */
  onAnnounce(listener: () => void): void;
  close(): Promise<void>;
}

export interface FedLiveGrantOptions {
  /** How old the last sync point may be before grant-based allows are refused (ms). */
  readonly boundMs: number;
  /** How often the feed is read when nothing is announced (ms); well under boundMs. */
  readonly heartbeatMs: number;
  readonly now: () => number;
  /** Told of a failed read (the next heartbeat or announcement tries again). */
  readonly onError?: (err: unknown) => void;
  /** Told when the feed turns stale or fresh again (health, logs). */
  readonly onFreshness?: (fresh: boolean) => void;
}

const BATCH = 1000;

export class FedLiveGrantIndex implements LiveGrants {
  readonly #source: GrantFeedSource;
  readonly #opts: FedLiveGrantOptions;
  readonly #table = new GrantTable();
  /** performance.now() when the last completed read was sent. */
  #syncedAt: number;
  #syncing: Promise<void> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #wasFresh = true;

  private constructor(source: GrantFeedSource, opts: FedLiveGrantOptions, syncedAt: number) {
    this.#source = source;
    this.#opts = opts;
    this.#syncedAt = syncedAt;
  }

  /** Loads the snapshot, then follows the feed. */
  static async open(source: GrantFeedSource, opts: FedLiveGrantOptions): Promise<FedLiveGrantIndex> {
    const sentAt = performance.now();
    const snapshot = await source.liveGrantSnapshot(opts.now());
    const index = new FedLiveGrantIndex(source, opts, sentAt);
    index.#table.load(snapshot);
    source.onAnnounce(() => void index.sync());
    index.#timer = setInterval(() => {
      if (!index.fresh) index.#freshness(false);
      void index.sync();
    }, opts.heartbeatMs);
    index.#timer.unref();
    return index;
  }

  on(subject: string, resource: string, now: number): readonly IndexedGrant[] {
    return this.#table.on(subject, resource, now);
  }

  find(id: string, now: number): IndexedGrant | undefined {
    return this.#table.find(id, now);
  }

  /** The grant if live at `now`, as of a sync point within the bound; Unavailable when the feed is older than that. */
  confirm(id: string, now: number): IndexedGrant | undefined {
    const age = this.staleForMs;
    if (age > this.#opts.boundMs) {
      this.#freshness(false);
      void this.sync();
      throw new Unavailable(
        `the grant feed from the store has not been read for ${Math.round(age)} ms (bound ${this.#opts.boundMs} ms): checks that need a grant are refused until it is back`,
      );
    }
    return this.#table.find(id, now);
  }

  committed(events: readonly GrantEvent[]): void {
    for (const e of events) this.#table.applyAhead(e);
    void this.sync();
  }

  /** How long ago (ms) the last completed read of the feed was sent. */
  get staleForMs(): number {
    return performance.now() - this.#syncedAt;
  }

  get fresh(): boolean {
    return this.staleForMs <= this.#opts.boundMs;
  }

  get size(): number {
    return this.#table.size;
  }

  get cursor(): number {
    return this.#table.cursor;
  }

  /** Reads and applies every event after the cursor; one read at a time (a call meanwhile reads once more after). */
  sync(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#syncing !== undefined) {
      this.#again = true;
      return this.#syncing;
    }
    const run = (async () => {
      try {
        do {
          this.#again = false;
          await this.#readOnce();
        } while (this.#again && !this.#closed);
      } catch (err) {
        this.#opts.onError?.(err);
      } finally {
        this.#syncing = undefined;
      }
    })();
    this.#syncing = run;
    return run;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#syncing;
    await this.#source.close();
  }

  async #readOnce(): Promise<void> {
    const sentAt = performance.now();
    for (;;) {
      const events = await this.#source.eventsAfter(this.#table.cursor, BATCH);
      for (const e of events) this.#table.apply(e);
      if (events.length < BATCH) break;
    }
    this.#syncedAt = Math.max(this.#syncedAt, sentAt);
    // A read sent longer than the bound ago (it waited for a reconnect) does not make the feed fresh.
    if (this.fresh) this.#freshness(true);
  }

  #freshness(fresh: boolean): void {
    if (fresh === this.#wasFresh) return;
    this.#wasFresh = fresh;
    this.#opts.onFreshness?.(fresh);
  }
}
