// The change feed: tells grant watchers of each grant event in commit order, and request waiters of a
// decision. It tails the store's grant events by seq, so it also sees changes made by other jitgate processes
// sharing the store (polled while anyone listens, or pushed by the store's own notifications), and is told at
// once of this process's own. The store may answer asynchronously: one tail runs at a time, and a watcher
// that resumes from an earlier seq catches up on its own until it reaches the feed, then joins it.
import type { AccessRequest, GrantEvent } from "./model.ts";
import type { AccessReads, Awaitable } from "./ports.ts";

export interface GrantSubscriber {
  readonly matches: (event: GrantEvent) => boolean;
  readonly deliver: (event: GrantEvent) => void;
  /** Told when the feed closes (jitgate is shutting down), so a stream can end cleanly. */
  readonly ended?: () => void;
  /** Told when the store cannot be read for this watcher's backlog: the watcher is dropped (it may resume by seq). */
  readonly failed?: (err: unknown) => void;
}

interface Subscription {
  readonly subscriber: GrantSubscriber;
  /** The last seq this watcher has been shown (or skipped as not matching). */
  seq: number;
  /** On the live feed: shown each event as the feed tails it. */
  live: boolean;
  gone: boolean;
}

interface Waiter {
  readonly requestId: string;
  readonly done: (request: AccessRequest) => void;
}

const BATCH = 500;

export class ChangeFeed {
  readonly #store: AccessReads;
  readonly #pollMs: number;
  readonly #onError: (err: unknown) => void;
  /** The last seq the live feed has delivered; undefined until the first tail has read where the store is. */
  #cursor: number | undefined;
  readonly #subscriptions = new Set<Subscription>();
  readonly #waiters = new Set<Waiter>();
  readonly #onChange = new Set<() => void>();
  #timer: NodeJS.Timeout | undefined;
  #scheduled = false;
  #closed = false;
  /** The tail in progress, and whether another was asked for meanwhile. */
  #tailing: Promise<void> | undefined;
  #again = false;

  constructor(store: AccessReads, opts: { readonly pollMs?: number; readonly onError?: (err: unknown) => void } = {}) {
    this.#store = store;
    this.#pollMs = opts.pollMs ?? 200;
    this.#onError = opts.onError ?? (() => {});
  }

  /** Called after every local commit (and by a store's notification); the tail runs once the current call stack has finished. */
  changed(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#closed) return;
      void this.tick().then(() => {
        for (const listener of this.#onChange) listener();
      });
    });
  }

  /** `listener` runs after each local change has been delivered (the expiry scheduler re-plans on it). */
  onLocalChange(listener: () => void): void {
    this.#onChange.add(listener);
  }

  /**
   * Delivers the events after `afterSeq` already stored (a resuming watcher), then every later one, each once
   * and in seq order. Returns an unsubscribe at once; the backlog is read meanwhile.
   */
  subscribe(afterSeq: Awaitable<number>, subscriber: GrantSubscriber): () => void {
    const sub: Subscription = { subscriber, seq: 0, live: false, gone: false };
    this.#subscriptions.add(sub);
    this.#poll();
    void this.#catchUp(sub, afterSeq);
    return () => {
      sub.gone = true;
      this.#subscriptions.delete(sub);
      this.#poll();
    };
  }

  /** Resolves `done` once the request has left PENDING (checked at once, then on every change). */
  waitForDecision(requestId: string, done: (request: AccessRequest) => void): () => void {
    const waiter = { requestId, done };
    this.#waiters.add(waiter);
    void this.#settle(waiter).catch((err: unknown) => this.#onError(err));
    this.#poll();
    return () => {
      this.#waiters.delete(waiter);
      this.#poll();
    };
  }

  /** The last seq delivered to live watchers (0 before the first tail). */
  get cursor(): number {
    return this.#cursor ?? 0;
  }

  /** Reads and delivers every event stored after the cursor, and settles waiters; one tail at a time. */
  tick(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#tailing !== undefined) {
      this.#again = true;
      return this.#tailing;
    }
    const run = (async () => {
      try {
        do {
          this.#again = false;
          await this.#tail();
          await Promise.all([...this.#waiters].map((w) => this.#settle(w)));
        } while (this.#again && !this.#closed);
      } catch (err) {
        this.#onError(err);
      } finally {
        this.#tailing = undefined;
      }
    })();
    this.#tailing = run;
    return run;
  }

  /** Stops all delivery; call before the store closes. */
  close(): void {
    this.#closed = true;
    this.#onChange.clear();
    for (const s of this.#subscriptions) s.subscriber.ended?.();
    this.#subscriptions.clear();
    this.#waiters.clear();
    this.#poll();
  }

  async #tail(): Promise<void> {
    if (this.#cursor === undefined) {
      this.#cursor = await this.#store.latestGrantEventSeq();
      return;
    }
    for (;;) {
      const events = await this.#store.grantEventsAfter(this.#cursor, BATCH);
      if (this.#closed) return;
      for (const e of events) {
        // Events come in seq order; a tail that raced a slower one never delivers one twice.
        if (e.seq <= this.#cursor) continue;
        this.#cursor = e.seq;
        for (const s of this.#subscriptions) if (s.live && e.seq > s.seq) this.#show(s, e);
      }
      if (events.length < BATCH) return;
    }
  }

  /** Shows a watcher what it missed, from `afterSeq` up to the live feed's cursor, then puts it on the feed. */
  async #catchUp(sub: Subscription, afterSeq: Awaitable<number>): Promise<void> {
    try {
      sub.seq = Math.max(0, await afterSeq);
      if (this.#cursor === undefined) await this.tick();
      while (!sub.gone && !this.#closed) {
        const cursor = this.#cursor ?? 0;
        // Caught up: from here the live feed shows it every later event (JS runs one thing at a time, so none
        // can be delivered between this comparison and joining).
        if (sub.seq >= cursor) {
          sub.live = true;
          return;
        }
        const events = await this.#store.grantEventsAfter(sub.seq, BATCH);
        if (sub.gone || this.#closed) return;
        const before = sub.seq;
        for (const e of events) {
          if (e.seq <= sub.seq) continue;
          if (e.seq > (this.#cursor ?? 0)) break;
          this.#show(sub, e);
        }
        // Nothing new below the cursor: the rest is for the live feed (a seq the store skipped, say).
        if (sub.seq === before) sub.seq = Math.max(sub.seq, this.#cursor ?? 0);
      }
    } catch (err) {
      this.#subscriptions.delete(sub);
      sub.gone = true;
      this.#poll();
      if (sub.subscriber.failed) sub.subscriber.failed(err);
      else this.#onError(err);
    }
  }

  #show(sub: Subscription, e: GrantEvent): void {
    sub.seq = e.seq;
    if (sub.subscriber.matches(e)) sub.subscriber.deliver(e);
  }

  async #settle(waiter: Waiter): Promise<void> {
    const request = await this.#store.request(waiter.requestId);
    if (request && request.state !== "PENDING" && this.#waiters.has(waiter)) {
      this.#waiters.delete(waiter);
      waiter.done(request);
    }
  }

  /** Polls only while someone listens: other processes' changes reach this one within `pollMs`. */
  #poll(): void {
    const listening = this.#subscriptions.size + this.#waiters.size > 0;
    if (listening && !this.#timer && !this.#closed) this.#timer = setInterval(() => void this.tick(), this.#pollMs);
    if ((!listening || this.#closed) && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
