// The change feed: tells grant watchers of each grant event in commit order, and request waiters of a
// decision. It tails the store's grant_events table, so it also sees changes made by other jitgate
// processes sharing the store (polled while anyone listens), and is told at once of this process's own.
import type { AccessRequest, GrantEvent } from "./model.ts";
import type { AccessReads } from "./ports.ts";

export interface GrantSubscriber {
  readonly matches: (event: GrantEvent) => boolean;
  readonly deliver: (event: GrantEvent) => void;
  /** Told when the feed closes (jitgate is shutting down), so a stream can end cleanly. */
  readonly ended?: () => void;
}

interface Waiter {
  readonly requestId: string;
  readonly done: (request: AccessRequest) => void;
}

const BATCH = 500;

export class ChangeFeed {
  readonly #store: AccessReads;
  readonly #pollMs: number;
  #cursor: number;
  readonly #subscribers = new Set<GrantSubscriber>();
  readonly #waiters = new Set<Waiter>();
  readonly #onChange = new Set<() => void>();
  #timer: NodeJS.Timeout | undefined;
  #scheduled = false;
  #closed = false;

  constructor(store: AccessReads, pollMs = 200) {
    this.#store = store;
    this.#pollMs = pollMs;
    this.#cursor = store.latestGrantEventSeq();
  }

  /** Called after every local commit; the tick runs once the current call stack has finished. */
  changed(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#closed) return;
      this.tick();
      for (const listener of this.#onChange) listener();
    });
  }

  /** `listener` runs after each local change has been delivered (the expiry scheduler re-plans on it). */
  onLocalChange(listener: () => void): void {
    this.#onChange.add(listener);
  }

  /**
   * Delivers the events after `afterSeq` already stored (a resuming watcher), then every later one.
   * All synchronous: no event can slip between the backlog and the live feed. Returns an unsubscribe.
   */
  subscribe(afterSeq: number, subscriber: GrantSubscriber): () => void {
    this.tick();
    let seq = Math.max(0, afterSeq);
    while (seq < this.#cursor) {
      const events = this.#store.grantEventsAfter(seq, BATCH);
      if (events.length === 0) break;
      for (const e of events) if (e.seq <= this.#cursor && subscriber.matches(e)) subscriber.deliver(e);
      seq = (events.at(-1) as GrantEvent).seq;
    }
    this.#subscribers.add(subscriber);
    this.#poll();
    return () => {
      this.#subscribers.delete(subscriber);
      this.#poll();
    };
  }

  /** Resolves `done` once the request has left PENDING (checked at once, then on every change). */
  waitForDecision(requestId: string, done: (request: AccessRequest) => void): () => void {
    const waiter = { requestId, done };
    this.#waiters.add(waiter);
    this.#settle(waiter);
    this.#poll();
    return () => {
      this.#waiters.delete(waiter);
      this.#poll();
    };
  }

  get cursor(): number {
    return this.#cursor;
  }

  tick(): void {
    for (;;) {
      const events = this.#store.grantEventsAfter(this.#cursor, BATCH);
      for (const e of events) {
        this.#cursor = e.seq;
        for (const s of this.#subscribers) if (s.matches(e)) s.deliver(e);
      }
      if (events.length < BATCH) break;
    }
    for (const w of this.#waiters) this.#settle(w);
  }

  /** Stops all delivery; call before the store closes. */
  close(): void {
    this.#closed = true;
    this.#onChange.clear();
    for (const s of this.#subscribers) s.ended?.();
    this.#subscribers.clear();
    this.#waiters.clear();
    this.#poll();
  }

  #settle(waiter: Waiter): void {
    const request = this.#store.request(waiter.requestId);
    if (request && request.state !== "PENDING") {
      this.#waiters.delete(waiter);
      waiter.done(request);
    }
  }

  /** Polls only while someone listens: other processes' changes reach this one within `pollMs`. */
  #poll(): void {
    const listening = this.#subscribers.size + this.#waiters.size > 0;
    if (listening && !this.#timer) this.#timer = setInterval(() => this.tick(), this.#pollMs);
    if (!listening && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
