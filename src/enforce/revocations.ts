// Follows jitgate's revocation stream for the enforcer: reconnects with exponential backoff and jitter,
// resumes after the last seq seen (so a reconnect loses no revocation), and remembers each revoked grant
// until the moment its tokens would have expired anyway.
import { MAX_TOKEN_TTL_S } from "./verify.ts";
import type { Revocation, RevocationHandlers, RevocationStream } from "./jitgate-client.ts";

/** Where revocations come from: jitgate's WatchRevocations (a fake in tests). */
export interface RevocationSource {
  watchRevocations(afterSeq: string, on: RevocationHandlers): RevocationStream;
}

export interface RevocationFeedOptions {
  /** Resume after this seq on the first connect; "0" (default) starts with every revocation still in force. */
  readonly afterSeq?: string;
  /** First reconnect delay (ms, default 100); doubles per failed attempt up to `maxBackoffMs` (default 5000). */
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly now: () => number;
  /** Told once per revocation as it arrives (the enforcer ends the grant's open calls). */
  readonly onRevoked: (grantId: string) => void;
}

/** The revoked grants known so far, kept current by following WatchRevocations. */
export class RevocationFeed {
  readonly #client: RevocationSource;
  readonly #opts: RevocationFeedOptions;
  /** grant id -> when its tokens expire (ms). */
  readonly #revoked = new Map<string, number>();
  #lastSeq: string;
  #stream: RevocationStream | undefined;
  #retry: NodeJS.Timeout | undefined;
  #attempt = 0;
  #closed = false;
  #subscribed: Promise<void>;
  #markSubscribed: () => void = () => undefined;
  /** Since when the stream has been down (ms); -Infinity until the first subscription, undefined while live. */
  #downSince: number | undefined = -Infinity;

  constructor(client: RevocationSource, opts: RevocationFeedOptions) {
    this.#client = client;
    this.#opts = opts;
    this.#lastSeq = opts.afterSeq ?? "0";
    this.#subscribed = new Promise((resolve) => (this.#markSubscribed = resolve));
  }

  /** Starts following; resolves once jitgate confirms the first subscription (it may retry until then). */
  start(): Promise<void> {
    if (!this.#stream && !this.#retry && !this.#closed) this.#connect();
    return this.#subscribed;
  }

  /** Whether `grantId` was revoked (and its tokens could still be valid). */
  isRevoked(grantId: string): boolean {
    const until = this.#revoked.get(grantId);
    if (until === undefined) return false;
    if (until > this.#opts.now()) return true;
    this.#revoked.delete(grantId);
    return false;
  }

  /**
   * How long revocations may have been missed (ms): 0 while the stream is live, Infinity before it was ever
   * live, else the time since it went down.
   */
  unknownForMs(): number {
    return this.#downSince === undefined ? 0 : this.#opts.now() - this.#downSince;
  }

  /** The last revocation seq received: where a reconnect resumes. */
  get lastSeq(): string {
    return this.#lastSeq;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    this.#stream?.cancel();
    this.#stream = undefined;
  }

  #connect(): void {
    this.#retry = undefined;
    this.#stream = this.#client.watchRevocations(this.#lastSeq, {
      subscribed: () => {
        this.#attempt = 0;
        this.#downSince = undefined;
        this.#markSubscribed();
      },
      revoked: (r) => this.#record(r),
      ended: () => {
        this.#stream = undefined;
        this.#downSince ??= this.#opts.now();
        if (!this.#closed) this.#scheduleReconnect();
      },
    });
  }

  #scheduleReconnect(): void {
    const min = this.#opts.minBackoffMs ?? 100;
    const max = this.#opts.maxBackoffMs ?? 5000;
    const ceiling = Math.min(max, min * 2 ** Math.min(this.#attempt, 20));
    this.#attempt++;
    // "Equal jitter": at least half the backoff, so reconnects neither stampede nor spin.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.#retry = setTimeout(() => this.#connect(), delay);
    this.#retry.unref();
  }

  #record(r: Revocation): void {
    if (BigInt(r.seq) > BigInt(this.#lastSeq)) this.#lastSeq = r.seq;
    const now = this.#opts.now();
    // No token of this grant outlives the longest token lifetime from now, whatever the event says.
    const until = Math.min(r.expiresAt, now + MAX_TOKEN_TTL_S * 1000 + 60_000);
    if (until > now) this.#revoked.set(r.grantId, until);
    this.#prune(now);
    this.#opts.onRevoked(r.grantId);
  }

  /** Forgets revocations whose tokens have expired; cheap because it runs only when one arrives. */
  #prune(now: number): void {
    for (const [id, until] of this.#revoked) if (until <= now) this.#revoked.delete(id);
  }
}
