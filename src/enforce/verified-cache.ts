// Remembers what a token verified to, by the token's exact text, so a caller that sends the same token on every
// call pays for one signature check, not one per call. An entry is served only before the token's exp and for
// at most `maxAgeMs` (so a key its issuer withdraws stops working within that time); the cache holds at most
// `maxEntries` tokens (the oldest entry goes first). Used by the enforcer and by jitgate's own authentication.

/** The current time in ms since the epoch. */
export interface CacheClock {
  now(): number;
}

export class VerifiedTokenCache<T> {
  readonly #entries = new Map<string, { value: T; until: number }>();
  readonly #maxEntries: number;
  readonly #maxAgeMs: number;
  readonly #clock: CacheClock;

  constructor(options: { maxEntries: number; maxAgeMs: number; clock: CacheClock }) {
    this.#maxEntries = options.maxEntries;
    this.#maxAgeMs = options.maxAgeMs;
    this.#clock = options.clock;
  }

  get(token: string): T | undefined {
    const entry = this.#entries.get(token);
    if (entry === undefined) return undefined;
    if (this.#clock.now() < entry.until) return entry.value;
    this.#entries.delete(token);
    return undefined;
  }

  /** `expiresAt`: the token's exp in ms; the entry is never served at or after it. */
  set(token: string, value: T, expiresAt: number): void {
    const now = this.#clock.now();
    const until = Math.min(expiresAt, now + this.#maxAgeMs);
    // Already over: storing it could only push out an entry that is still good.
    if (until <= now) return;
    if (this.#entries.size >= this.#maxEntries && !this.#entries.has(token)) {
      // Maps iterate in insertion order: the first key is the oldest entry.
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(token, { value, until });
  }

  get size(): number {
    return this.#entries.size;
  }
}
