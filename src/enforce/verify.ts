// Verification of jitgate access tokens: the one place where every check lives, shared by the jitgate server
// and by the enforcement library that services embed. It depends on jose only (no jitgate internals), pins
// every jose option that matters (see DESIGN.md on jose's defaults) and turns each refusal into a
// TokenRejected with a stable code and a fixed message that never echoes the token.
import {
  createLocalJWKSet,
  type CryptoKey,
  decodeProtectedHeader,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
  jwtVerify,
  type KeyObject,
  type ProtectedHeaderParameters,
} from "jose";

/** The JWT `typ` of access tokens (RFC 9068). */
export const ACCESS_TOKEN_TYPE = "at+jwt";
/** The only algorithms jitgate signs with; everything else (none, HMAC, RSA, ES512...) is refused. */
export const ACCESS_TOKEN_ALGORITHMS: readonly string[] = Object.freeze(["EdDSA", "ES256"]);
/** Refused before parsing: a jitgate token is well under 1 KiB; a big one is a mistake or an attack. */
export const MAX_ACCESS_TOKEN_BYTES = 8 * 1024;
/** Skew forgiven on `nbf` and `iat` (a token from an issuer whose clock runs ahead); never on `exp`. */
export const DEFAULT_CLOCK_TOLERANCE_S = 30;
/** A larger skew would accept tokens dated minutes ahead; fix the clocks instead. */
export const MAX_CLOCK_TOLERANCE_S = 60;
/** The longest token lifetime jitgate issues (its `--token-ttl` cannot exceed it). */
export const MAX_TOKEN_TTL_S = 3600;
/** Claims every jitgate access token carries (RFC 9068 requires `client_id`). */
export const REQUIRED_CLAIMS: readonly string[] = Object.freeze(["exp", "iat", "sub", "aud", "jti", "client_id", "grant_id"]);
/** Header parameters that point at keys: jitgate never sets them, so a token carrying one is forged. */
const KEY_REFERENCE_HEADERS = ["jku", "x5u", "jwk", "x5c"] as const;

export type TokenRejectedCode =
  | "TOKEN_MISSING"
  | "TOKEN_MALFORMED"
  | "TOKEN_TOO_LARGE"
  | "TOKEN_EXPIRED"
  | "TOKEN_NOT_YET_VALID"
  | "TOKEN_BAD_SIGNATURE"
  | "TOKEN_UNKNOWN_KEY"
  | "TOKEN_WRONG_AUDIENCE"
  | "TOKEN_WRONG_ISSUER"
  | "TOKEN_WRONG_TYPE"
  | "TOKEN_CLAIMS_INVALID";

/** A token that must not be trusted. `code` is stable; `message` is safe to return to the caller; `cause` holds jose's error. */
export class TokenRejected extends Error {
  readonly code: TokenRejectedCode;
  constructor(code: TokenRejectedCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TokenRejected";
    this.code = code;
  }
}

/** What a verified token says. Times are milliseconds since the Unix epoch. */
export interface VerifiedAccessToken {
  readonly subject: string;
  readonly audience: string;
  readonly grantId: string;
  readonly actions: readonly string[];
  readonly jti: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
  readonly kid: string;
}

/**
 * The keys a token may be verified with: a key resolver (from {@link accessTokenKeySet} or jose's
 * `createRemoteJWKSet`), a JWKS object (prefer building the resolver once), or one public key.
 */
export type AccessTokenKeys = JWTVerifyGetKey | JSONWebKeySet | CryptoKey | KeyObject;

export interface VerifyAccessTokenOptions {
  /** The `iss` jitgate was configured with (`--token-issuer`, default "jitgate"). */
  readonly issuer: string;
  /** The audience (or audiences) this service answers to; the token's single `aud` must be one of them. */
  readonly audience: string | readonly string[];
  /**
   * Allowed clock skew in seconds for `nbf` and `iat` only (a token dated slightly in the future is accepted):
   * default 30, at most 60. It never applies to `exp`: a token is refused from the moment of its exp.
   */
  readonly clockToleranceS?: number;
  /** The issuer's token TTL in seconds (default and maximum 3600): older or longer-lived tokens are refused. */
  readonly maxTokenTtlS?: number;
  /** The current time in ms since the Unix epoch (default `Date.now`). */
  readonly now?: () => number;
}

/** A key resolver over a JWKS of public keys: a token's `kid` is only ever compared against the set's. */
export function accessTokenKeySet(jwks: JSONWebKeySet): JWTVerifyGetKey {
  if (!jwks || !Array.isArray(jwks.keys)) throw new TypeError("not a JSON Web Key Set (no 'keys' array)");
  if (jwks.keys.some((k) => k.d !== undefined || k.kty === "oct"))
    throw new TypeError("the JSON Web Key Set holds private or symmetric keys");
  return createLocalJWKSet(jwks);
}

/**
 * Verifies a jitgate access token: size, structure, algorithm allowlist, signature, `typ: at+jwt`, issuer,
 * audience, times (exp, nbf, iat, maximum age) and the jitgate claims. A token is refused from the moment of
 * its `exp` by the `now` clock; the clock tolerance forgives only `nbf` and `iat` in the future. Throws
 * TokenRejected when the token must not be trusted; any other error (a key resolver that cannot fetch keys)
 * means "cannot decide": fail closed.
 */
export async function verifyAccessToken(
  token: string,
  keys: AccessTokenKeys,
  opts: VerifyAccessTokenOptions,
): Promise<VerifiedAccessToken> {
  return verify(token, keys, opts, audiences(opts.audience));
}

/**
 * For jitgate's own Check, which accepts tokens for every audience it issues to: all the checks of
 * {@link verifyAccessToken} except the audience, which is returned (always a single one) for the caller to
 * compare with the token's grant. Not for services: a service pins its audience. Not exported by the package.
 */
export async function verifyAccessTokenOfAnyAudience(
  token: string,
  keys: AccessTokenKeys,
  opts: Omit<VerifyAccessTokenOptions, "audience">,
): Promise<VerifiedAccessToken> {
  return verify(token, keys, opts, undefined);
}

async function verify(
  token: string,
  keys: AccessTokenKeys,
  opts: Omit<VerifyAccessTokenOptions, "audience">,
  audience: string[] | undefined,
): Promise<VerifiedAccessToken> {
  const { options, ttl } = pinnedOptions(opts, audience);
  const header = checkStructure(token);
  const key = isKeySet(keys) ? accessTokenKeySet(keys) : keys;
  // One reading of the clock for jose's checks and for exp, so the two cannot disagree.
  const now = (opts.now ?? Date.now)();
  let payload: JWTPayload;
  try {
    // jose's overloads do not take the union; each member is a form it accepts.
    ({ payload } = await jwtVerify(token, key as JWTVerifyGetKey, { ...options, currentDate: new Date(now) }));
  } catch (err) {
    throw rejection(err, typeof key !== "function");
  }
  // jose stretches exp by the clock tolerance too; the tolerance is meant for nbf/iat only, so exp is checked
  // here exactly (jose has checked it is a number, and the signature, before this line).
  if ((payload.exp as number) * 1000 <= now) throw new TokenRejected("TOKEN_EXPIRED", "access token has expired");
  return accessTokenClaims(payload, header.kid as string, ttl);
}

function audiences(audience: string | readonly string[]): string[] {
  const list = typeof audience === "string" ? [audience] : [...audience];
  if (list.length === 0 || list.some((a) => typeof a !== "string" || a === "")) {
    throw new RangeError("audience must be one or more non-empty strings");
  }
  return list;
}

function pinnedOptions(
  opts: Omit<VerifyAccessTokenOptions, "audience">,
  audience: string[] | undefined,
): { options: JWTVerifyOptions; ttl: number } {
  const tolerance = opts.clockToleranceS ?? DEFAULT_CLOCK_TOLERANCE_S;
  if (!Number.isInteger(tolerance) || tolerance < 0 || tolerance > MAX_CLOCK_TOLERANCE_S) {
    throw new RangeError(`clockToleranceS must be a whole number of seconds from 0 to ${MAX_CLOCK_TOLERANCE_S}`);
  }
  const ttl = opts.maxTokenTtlS ?? MAX_TOKEN_TTL_S;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TOKEN_TTL_S) {
    throw new RangeError(`maxTokenTtlS must be a whole number of seconds from 1 to ${MAX_TOKEN_TTL_S}`);
  }
  if (typeof opts.issuer !== "string" || opts.issuer === "") throw new RangeError("issuer must be a non-empty string");
  const options: JWTVerifyOptions = {
    algorithms: [...ACCESS_TOKEN_ALGORITHMS],
    issuer: opts.issuer,
    // Without an audience jose checks none; accessTokenClaims still requires exactly one.
    ...(audience === undefined ? {} : { audience }),
    typ: ACCESS_TOKEN_TYPE,
    requiredClaims: [...REQUIRED_CLAIMS],
    // Applied by jose to nbf, iat and exp alike; verify() then refuses any token at or past its exp.
    clockTolerance: tolerance,
    // A token older than the longest TTL (plus skew) was not issued by a correctly configured jitgate.
    maxTokenAge: ttl + tolerance,
  };
  return { options, ttl };
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** The checks that need no key: size, a decodable header, an allowed algorithm, a kid and no key references. */
function checkStructure(token: string): ProtectedHeaderParameters {
  if (typeof token !== "string" || token.trim() === "") throw new TokenRejected("TOKEN_MISSING", "no access token was presented");
  if (token.length > MAX_ACCESS_TOKEN_BYTES) {
    throw new TokenRejected("TOKEN_TOO_LARGE", `access token is larger than ${MAX_ACCESS_TOKEN_BYTES} bytes`);
  }
  // Three base64url parts and nothing else: decoders skip spaces and stray characters, so without this one
  // token would have many spellings (each verifying, each a different cache key and log entry).
  if (!COMPACT_JWS.test(token))
    throw new TokenRejected("TOKEN_MALFORMED", "access token is not a compact JWS (base64url parts joined by dots)");
  let header: ProtectedHeaderParameters;
  try {
    header = decodeProtectedHeader(token);
  } catch (err) {
    throw new TokenRejected("TOKEN_MALFORMED", "access token is not a compact JWS with a JSON header", { cause: err });
  }
  if (typeof header.alg !== "string" || !ACCESS_TOKEN_ALGORITHMS.includes(header.alg)) {
    throw new TokenRejected(
      "TOKEN_BAD_SIGNATURE",
      `access token algorithm is not allowed (allowed: ${ACCESS_TOKEN_ALGORITHMS.join(", ")})`,
    );
  }
  for (const name of KEY_REFERENCE_HEADERS) {
    if (Object.hasOwn(header, name)) {
      throw new TokenRejected("TOKEN_MALFORMED", `access token header carries '${name}': keys are never taken from a token`);
    }
  }
  if (typeof header.kid !== "string" || header.kid === "") {
    throw new TokenRejected("TOKEN_MALFORMED", "access token header names no signing key (kid)");
  }
  return header;
}

/** jose's verdict as a fixed, safe message: nothing from the token (kid, claim values) is echoed. */
function rejection(err: unknown, singleKey: boolean): unknown {
  const reject = (code: TokenRejectedCode, message: string) => new TokenRejected(code, message, { cause: err });
  if (err instanceof errors.JWTExpired) {
    return err.claim === "iat"
      ? reject("TOKEN_EXPIRED", "access token is too old (issued before the longest token lifetime)")
      : reject("TOKEN_EXPIRED", "access token has expired");
  }
  if (err instanceof errors.JWTClaimValidationFailed) return claimRejection(err, reject);
  if (err instanceof errors.JWSSignatureVerificationFailed) return reject("TOKEN_BAD_SIGNATURE", "access token signature is invalid");
  if (err instanceof errors.JOSEAlgNotAllowed) return reject("TOKEN_BAD_SIGNATURE", "access token algorithm is not allowed");
  if (err instanceof errors.JOSENotSupported)
    return reject("TOKEN_BAD_SIGNATURE", "access token algorithm does not fit the verification key");
  if (err instanceof errors.JWKSNoMatchingKey)
    return reject("TOKEN_UNKNOWN_KEY", "access token was signed by a key that is not (or no longer) published");
  if (err instanceof errors.JWKSMultipleMatchingKeys)
    return reject("TOKEN_UNKNOWN_KEY", "access token names a key that the key set holds more than once");
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid)
    return reject("TOKEN_MALFORMED", "access token is not a well-formed JWT");
  // With one given key, jose reports an algorithm that does not fit the key as a TypeError.
  if (singleKey && err instanceof TypeError)
    return reject("TOKEN_BAD_SIGNATURE", "access token algorithm does not fit the verification key");
  return err;
}

function claimRejection(
  err: InstanceType<typeof errors.JWTClaimValidationFailed>,
  reject: (code: TokenRejectedCode, message: string) => TokenRejected,
): TokenRejected {
  if (err.reason === "missing") return reject("TOKEN_CLAIMS_INVALID", `access token has no '${err.claim}' claim`);
  if (err.reason === "invalid") return reject("TOKEN_CLAIMS_INVALID", `access token claim '${err.claim}' has the wrong type`);
  switch (err.claim) {
    case "typ":
      return reject("TOKEN_WRONG_TYPE", `access token is not of type '${ACCESS_TOKEN_TYPE}'`);
    case "iss":
      return reject("TOKEN_WRONG_ISSUER", "access token was issued by another issuer");
    case "aud":
      return reject("TOKEN_WRONG_AUDIENCE", "access token is for another audience");
    case "nbf":
      return reject("TOKEN_NOT_YET_VALID", "access token is not valid yet (nbf is in the future)");
    case "iat":
      return reject("TOKEN_NOT_YET_VALID", "access token is not valid yet (issued in the future)");
    default:
      return reject("TOKEN_CLAIMS_INVALID", `access token claim '${err.claim}' is invalid`);
  }
}

/** jose checked the registered claims' presence and times; the types of jitgate's own claims are checked here. */
function accessTokenClaims(payload: JWTPayload, kid: string, maxTtlS: number): VerifiedAccessToken {
  const invalid = (message: string) => new TokenRejected("TOKEN_CLAIMS_INVALID", `access token ${message}`);
  const text = (claim: string): string => {
    const value = payload[claim];
    if (typeof value !== "string" || value === "") throw invalid(`claim '${claim}' is not a non-empty string`);
    return value;
  };
  const subject = text("sub");
  const jti = text("jti");
  const grantId = text("grant_id");
  text("client_id");
  // jitgate issues one audience per token; several would blur which service a token is for.
  if (typeof payload.aud !== "string" || payload.aud === "") throw invalid("claim 'aud' is not a single audience");
  const actions = payload.actions;
  if (!Array.isArray(actions) || actions.length === 0 || !actions.every((a) => typeof a === "string" && a !== "" && !/\s/.test(a))) {
    throw invalid("claim 'actions' is not a non-empty array of action names");
  }
  if (typeof payload.scope !== "string" || payload.scope !== actions.join(" ")) {
    throw invalid("claim 'scope' does not list the token's actions");
  }
  const iat = payload.iat as number;
  const exp = payload.exp as number;
  if (!Number.isInteger(iat) || !Number.isInteger(exp) || exp <= iat || exp - iat > maxTtlS) {
    throw invalid("lifetime (iat to exp) is not a whole number of seconds within the longest token lifetime");
  }
  return Object.freeze({
    subject,
    audience: payload.aud,
    grantId,
    actions: Object.freeze([...(actions as string[])]),
    jti,
    issuedAt: iat * 1000,
    expiresAt: exp * 1000,
    kid,
  });
}

function isKeySet(keys: AccessTokenKeys): keys is JSONWebKeySet {
  return typeof keys === "object" && keys !== null && Array.isArray((keys as { keys?: unknown }).keys);
}
