// How often one requester may ask for access: a token bucket per exact caller id (`burst` requests at once,
// refilled at `count` per `periodMs`), kept as the time its bucket is full again (GCRA), so no fractions of a
// token pile up rounding errors. A full bucket is the same as none, so idle buckets are forgotten as calls go
// by, and the table holds at most the requesters active within one refill time.
import { ResourceExhausted } from "../errors.ts";
import { displayId } from "./identities.ts";

export interface RequestRate {
  /** Requests per period, refilled evenly. */
  readonly count: number;
  readonly periodMs: number;
  /** Requests a requester with a full bucket may make at once. */
  readonly burst: number;
}

const PERIOD_WORDS: Readonly<Record<number, string>> = { 1000: "second", 60_000: "minute", 3_600_000: "hour" };

/** Idle buckets looked at per call: eviction keeps pace with insertion, so its cost stays O(1) per call. */
const SWEEP_PER_CALL = 2;

export class RequestRateLimit {
  readonly #rate: RequestRate;
  /** What one request costs: the time the bucket takes to win it back (ms). */
  readonly #intervalMs: number;
  /** How far ahead of now a bucket's full-again time may be with a request still left in it. */
  readonly #slackMs: number;
  readonly #maxBuckets: number;
  /** Each requester's full-again time (ms); least recently used first (each use moves a bucket to the end). */
  readonly #fullAt = new Map<string, number>();

  /** `maxBuckets`: a hard bound on the table; past it the least recently used bucket goes, full or not. */
  constructor(rate: RequestRate, options: { maxBuckets?: number } = {}) {
    this.#rate = rate;
    this.#intervalMs = rate.periodMs / rate.count;
    this.#slackMs = (rate.burst - 1) * this.#intervalMs;
    this.#maxBuckets = options.maxBuckets ?? 100_000;
  }

  /** Takes one request from `requester`'s bucket at `now`, or throws ResourceExhausted naming the limit and when to retry. */
  take(requester: string, now: number): void {
    this.#sweep(now);
    // A clock that steps back finds the bucket no fuller than it was.
    const fullAt = Math.max(this.#fullAt.get(requester) ?? now, now);
    this.#fullAt.delete(requester);
    const over = fullAt - now - this.#slackMs;
    // A refused request takes nothing; it only counts as a use for forgetting idle buckets.
    this.#fullAt.set(requester, over > 0 ? fullAt : fullAt + this.#intervalMs);
    if (this.#fullAt.size > this.#maxBuckets) this.#fullAt.delete(this.#fullAt.keys().next().value as string);
    if (over <= 0) return;
    const retryAfterMs = Math.ceil(over);
    throw new ResourceExhausted(
      "request_rate",
      `access requests by ${displayId(requester)} are over the limit of ${this.#describe()}; retry in ${Math.ceil(retryAfterMs / 1000)} s`,
      { retryAfterMs },
    );
  }

  /** Requesters with a bucket now. */
  get size(): number {
    return this.#fullAt.size;
  }

  /** Forgets the least recently used buckets that are full again at `now`. */
  #sweep(now: number): void {
    for (let i = 0; i < SWEEP_PER_CALL; i++) {
      const oldest = this.#fullAt.entries().next().value;
      if (oldest === undefined || oldest[1] > now) return;
      this.#fullAt.delete(oldest[0]);
    }
  }

  #describe(): string {
    const unit = PERIOD_WORDS[this.#rate.periodMs] ?? `${this.#rate.periodMs} ms`;
    return `${this.#rate.count} per ${unit} (bursts of ${this.#rate.burst})`;
  }
}
