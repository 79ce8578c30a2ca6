// jitgate's published verification keys, fetched with GetJwks and cached; refetched when a token names a key
// the cache does not hold (jitgate rotated its keys), at most once per `minRefetchMs`, one fetch at a time.
import type { JSONWebKeySet, JWTVerifyGetKey } from "jose";
import { accessTokenKeySet } from "./verify.ts";

/** Where the key set comes from: jitgate's GetJwks (a fake in tests). */
export interface JwksSource {
  /** The JWKS document, parsed but not yet checked. */
  jwks(deadline: number): Promise<unknown>;
}

export interface KeyCacheOptions {
  readonly now: () => number;
  /** The shortest time between two fetches (ms, default 10 000): a flood of unknown kids cannot flood jitgate. */
  readonly minRefetchMs?: number;
  /** How long one GetJwks may take (ms, default 5000). */
  readonly fetchTimeoutMs?: number;
}

/** The cached key set; `current` is undefined until the first fetch succeeded. */
export class KeyCache {
  readonly #client: JwksSource;
  readonly #opts: KeyCacheOptions;
  #keys: JWTVerifyGetKey | undefined;
  #lastFetch = Number.NEGATIVE_INFINITY;
  #inFlight: Promise<JWTVerifyGetKey | undefined> | undefined;

  constructor(client: JwksSource, opts: KeyCacheOptions) {
    this.#client = client;
    this.#opts = opts;
  }

  get current(): JWTVerifyGetKey | undefined {
    return this.#keys;
  }

  /** Fetches the key set now; rejects if jitgate cannot be reached or answers something that is not a JWKS. */
  async load(): Promise<JWTVerifyGetKey> {
    this.#lastFetch = this.#opts.now();
    const jwks = await this.#client.jwks(Date.now() + (this.#opts.fetchTimeoutMs ?? 5000));
    this.#keys = accessTokenKeySet(jwks as JSONWebKeySet);
    return this.#keys;
  }

  /**
   * The key set after a refetch, or the cached one when a fetch ran too recently or failed: the caller
   * verifies again and a still-unknown key stays a rejection (fail closed).
   */
  refresh(): Promise<JWTVerifyGetKey | undefined> {
    if (this.#inFlight) return this.#inFlight;
    if (this.#opts.now() - this.#lastFetch < (this.#opts.minRefetchMs ?? 10_000)) return Promise.resolve(this.#keys);
    this.#inFlight = this.load()
      .catch(() => this.#keys)
      .finally(() => (this.#inFlight = undefined));
    return this.#inFlight;
  }
}
