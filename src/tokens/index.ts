// jitgate's access tokens for the server: issue a token for an active grant, publish the JWKS, verify with the
// very checks services use (src/enforce/verify.ts) and rotate keys. Refusals become jitgate's Unauthenticated.
import { decodeJwt, type JSONWebKeySet, type JWTVerifyGetKey } from "jose";
import { accessTokenKeySet, TokenRejected, type VerifiedAccessToken, verifyAccessToken } from "../enforce/verify.ts";
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

export class TokenService {
  readonly #config: TokenConfig;
  readonly #clock: TokenClock;
  readonly #ring: KeyRing;
  /** The key resolver over the current JWKS, rebuilt only when the published kids change. */
  #keySet: { kids: string; keys: JWTVerifyGetKey } | undefined;

  private constructor(config: TokenConfig, clock: TokenClock, ring: KeyRing) {
    this.#config = config;
    this.#clock = clock;
    this.#ring = ring;
  }

  /** Opens (on first start: creates) the signing keys in `<dataDir>/signing-keys`. */
  static async open(config: TokenConfig, clock: TokenClock): Promise<TokenService> {
    const ring = await KeyRing.open(config.dataDir, {
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
    try {
      return await verifyAccessToken(token, keys, {
        issuer: this.#config.issuer,
        audience,
        clockToleranceS: this.#config.clockToleranceS,
        maxTokenTtlS: this.#config.ttlS,
        now: () => this.#clock.now(),
      });
    } catch (err) {
      if (err instanceof TokenRejected) throw new Unauthenticated(`${err.code}: ${err.message}`, { cause: err });
      throw err;
    }
  }

  /**
   * Verifies a token whose audience is its grant's: the unverified `grant_id` only picks which audience to
   * expect (like a `kid` picks a key); the verification then checks everything, that audience included.
   */
  async verifyForGrant(token: string, audienceOf: (grantId: string) => string | undefined): Promise<VerifiedAccessToken> {
    let grantId: unknown;
    try {
      grantId = decodeJwt(token).grant_id;
    } catch (err) {
      throw new Unauthenticated("TOKEN_MALFORMED: the token is not a JWT", { cause: err });
    }
    const audience = typeof grantId === "string" ? audienceOf(grantId) : undefined;
    if (audience === undefined) throw new Unauthenticated("TOKEN_CLAIMS_INVALID: the token names no grant jitgate knows");
    return this.verify(token, audience);
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

  async #currentKeys(): Promise<JWTVerifyGetKey> {
    const jwks = await this.#ring.jwks();
    const kids = jwks.keys.map((k) => k.kid).join(",");
    if (this.#keySet?.kids !== kids) this.#keySet = { kids, keys: accessTokenKeySet(jwks) };
    return this.#keySet.keys;
  }
}
