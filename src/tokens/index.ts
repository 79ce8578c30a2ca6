// jitgate's access tokens for the server: issue a token for an active grant, publish the JWKS, verify with the
// very checks services use (src/enforce/verify.ts) and rotate keys. Refusals become jitgate's Unauthenticated.
import type { JSONWebKeySet, JWTVerifyGetKey } from "jose";
import {
  accessTokenKeySet,
  TokenRejected,
  type VerifiedAccessToken,
  verifyAccessToken,
  verifyAccessTokenOfAnyAudience,
  type VerifyAccessTokenOptions,
} from "../enforce/verify.ts";
import { VerifiedTokenCache } from "../enforce/verified-cache.ts";
import { Unauthenticated } from "../errors.ts";
import type { TokenConfig } from "./config.ts";
import { type IssuedToken, issueAccessToken, type TokenGrant } from "./issue.ts";
import { KeyRing, type RotatedKey } from "./keys.ts";

export { parseTokenConfig, TOKEN_DEFAULTS, TOKEN_FIELDS, type TokenConfig, type TokenInput } from "./config.ts";
export { type IssuedToken, issueAccessToken, type TokenGrant } from "./issue.ts";
export {
  KEY_DIRECTORY,
  KeyRing,
  keyDirectory,
  readPublicKeys,
  type RotatedKey,
  rotateSigningKey,
  SIGNING_ALGORITHMS,
  type SigningAlgorithm,
} from "./keys.ts";
export type { VerifiedAccessToken } from "../enforce/verify.ts";

export interface TokenClock {
  /** ms since the Unix epoch. */
  now(): number;
}

/**
 * A Check by token verifies each distinct token once, then serves its verified claims by the token's exact text
 * until its exp, and at most this long: the ring re-reads the key directory about as often, so a key an operator
 * removes stops verifying from the cache within the same bound as without it. Revocation is not cached: the
 * Check reads the grant's state on every call.
 */
const VERIFIED_TOKEN_MAX_AGE_MS = 1_000;
const VERIFIED_TOKEN_MAX_ENTRIES = 10_000;

export class TokenService {
  readonly #config: TokenConfig;
  readonly #clock: TokenClock;
  readonly #ring: KeyRing;
  readonly #verified: VerifiedTokenCache<VerifiedAccessToken>;
  /** The key resolver over the current JWKS, rebuilt only when the published kids change. */
  #keySet: { kids: string; keys: JWTVerifyGetKey } | undefined;
  /** performance.now() of the last look at the key directory for a key it did not know. */
  #relistedAt = -Infinity;

  private constructor(config: TokenConfig, clock: TokenClock, ring: KeyRing) {
    this.#config = config;
    this.#clock = clock;
    this.#ring = ring;
    this.#verified = new VerifiedTokenCache({ maxEntries: VERIFIED_TOKEN_MAX_ENTRIES, maxAgeMs: VERIFIED_TOKEN_MAX_AGE_MS, clock });
  }

  /** Opens (on first start: creates) the signing keys in `config.keysDir`. */
  static async open(config: TokenConfig, clock: TokenClock): Promise<TokenService> {
    const ring = await KeyRing.open(config.keysDir, {
      algorithm: config.algorithm,
      maxTokenTtlS: config.ttlS,
      clockToleranceS: config.clockToleranceS,
      now: () => clock.now(),
    });
    return new TokenService(config, clock, ring);
  }

  /** A token for an active grant; FailedPrecondition when the grant is revoked or has no whole second left. */
  issue(grant: TokenGrant): Promise<IssuedToken> {
    return issueAccessToken(this.#ring, grant, { issuer: this.#config.issuer, ttlS: this.#config.ttlS, now: this.#clock.now() });
  }

  /** The public keys services verify with: the active key and retired keys whose tokens may still be valid. */
  jwks(): Promise<JSONWebKeySet> {
    return this.#ring.jwks();
  }

  /** Verifies a token as services do; a refusal is Unauthenticated whose message starts with the TokenRejected code. */
  async verify(token: string, audience: string | readonly string[]): Promise<VerifiedAccessToken> {
    const keys = await this.#currentKeys();
    return unauthenticatedIfRejected(verifyAccessToken(token, keys, { ...this.#verifyOptions(), audience }));
  }

  /**
   * Verifies a token jitgate issued, for whichever audience it names: signature, issuer, type, times and
   * claims, with nothing looked up before the signature holds. The caller compares the verified audience
   * with the token's grant (jitgate's Check does). Refusals as in `verify`.
   */
  async verifyIssued(token: string): Promise<VerifiedAccessToken> {
    const known = this.#verified.get(token);
    if (known !== undefined) return known;
    let verified: VerifiedAccessToken;
    try {
      verified = await verifyAccessTokenOfAnyAudience(token, await this.#currentKeys(), this.#verifyOptions());
    } catch (err) {
      // A key another replica (or `jitgate keys rotate`) added since this one last listed the directory: looked
      // for once now rather than refusing its tokens until the next refresh. At most every UNKNOWN_KEY_RELIST_MS,
      // so tokens naming made-up kids cannot make every call read the directory.
      if (!(err instanceof TokenRejected && err.code === "TOKEN_UNKNOWN_KEY" && this.#mayRelist())) throw rejected(err);
      await this.#ring.refresh();
      verified = await unauthenticatedIfRejected(verifyAccessTokenOfAnyAudience(token, await this.#currentKeys(), this.#verifyOptions()));
    }
    // Only what verified is kept; a refused token is checked again on every call.
    this.#verified.set(token, verified, verified.expiresAt);
    return verified;
  }

  /** Signs with the active key (audit checkpoints use it: their key is the one published in the JWKS). */
  get signer(): { signingKey(): ReturnType<KeyRing["signingKey"]> } {
    return this.#ring;
  }

  /** Every public key still in the key directory, retired ones included: what verifies older checkpoints. */
  allPublicKeys(): Promise<JSONWebKeySet> {
    return this.#ring.allPublicKeys();
  }

  /** The issuer named in tokens and checkpoints. */
  get issuer(): string {
    return this.#config.issuer;
  }

  /** A new active key; other processes sharing the data directory pick it up within a second. */
  rotate(): Promise<RotatedKey> {
    return this.#ring.rotate();
  }

  #verifyOptions(): Omit<VerifyAccessTokenOptions, "audience"> {
    return {
      issuer: this.#config.issuer,
      clockToleranceS: this.#config.clockToleranceS,
      maxTokenTtlS: this.#config.ttlS,
      now: () => this.#clock.now(),
    };
  }

  #mayRelist(): boolean {
    const now = performance.now();
    if (now - this.#relistedAt < UNKNOWN_KEY_RELIST_MS) return false;
    this.#relistedAt = now;
    return true;
  }

  async #currentKeys(): Promise<JWTVerifyGetKey> {
    const jwks = await this.#ring.jwks();
    const kids = jwks.keys.map((k) => k.kid).join(",");
    if (this.#keySet?.kids !== kids) this.#keySet = { kids, keys: accessTokenKeySet(jwks) };
    return this.#keySet.keys;
  }
}

/** How often, at most, a token signed by a key this process does not know makes it list the key directory again. */
const UNKNOWN_KEY_RELIST_MS = 100;

async function unauthenticatedIfRejected(verified: Promise<VerifiedAccessToken>): Promise<VerifiedAccessToken> {
  try {
    return await verified;
  } catch (err) {
    throw rejected(err);
  }
}

function rejected(err: unknown): unknown {
  return err instanceof TokenRejected ? new Unauthenticated(`${err.code}: ${err.message}`, { cause: err }) : err;
}
