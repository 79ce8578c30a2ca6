// Bearer-token verification for one trusted issuer (an OIDC identity provider, or the dev issuer): every jose
// option that matters is pinned in `pinnedVerifyOptions`, and every jose failure becomes an Unauthenticated
// with a fixed message (the jose error stays in `cause`). Tokens themselves never reach a message or a log.
import { readFile } from "node:fs/promises";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
  jwtVerify,
} from "jose";
import { callerIdProblem } from "../access/identities.ts";
import type { Caller } from "../access/model.ts";
import type { Clock } from "../access/ports.ts";
import { InvalidArgument, JitgateError, Unauthenticated, Unavailable } from "../errors.ts";
import { IDENTITY_FIELDS, MAX_CLOCK_TOLERANCE_S, type OidcIdentityConfig } from "./config.ts";
import { VerifiedTokenCache } from "../enforce/verified-cache.ts";

/** Refuse before parsing: real access tokens are 1-4 KiB; a big one is a mistake or an attack. */
export const MAX_TOKEN_BYTES = 16 * 1024;
export const MAX_TOKEN_AGE_S = 24 * 3600;

export interface TokenVerifier {
  readonly issuer: string;
  /** The caller a compact JWS names, once its signature, issuer, audience and times check out. */
  verify(token: string): Promise<Caller>;
}

/**
 * The one place where jose's verification options are chosen; see DESIGN.md on jose's defaults. jose applies
 * `clockTolerance` to exp as well; the verifier refuses a token at or past its exp itself, so the tolerance
 * only forgives nbf and iat in the future.
 */
export function pinnedVerifyOptions(config: OidcIdentityConfig): Readonly<JWTVerifyOptions> {
  return Object.freeze({
    algorithms: [...config.algorithms],
    issuer: config.issuer,
    audience: config.audience,
    requiredClaims: ["exp", "iat", config.subjectClaim],
    clockTolerance: Math.min(config.clockToleranceS, MAX_CLOCK_TOLERANCE_S),
    maxTokenAge: MAX_TOKEN_AGE_S,
  });
}

/** Verified callers are remembered this long at most (and never past their token's exp). */
export const VERIFIED_CALLER_MAX_AGE_MS = 60_000;
const VERIFIED_CALLER_MAX_ENTRIES = 10_000;

export function createTokenVerifier(config: OidcIdentityConfig, keys: JWTVerifyGetKey, clock: Clock): TokenVerifier {
  const options = pinnedVerifyOptions(config);
  const verified = new VerifiedTokenCache<Caller>({ maxEntries: VERIFIED_CALLER_MAX_ENTRIES, maxAgeMs: VERIFIED_CALLER_MAX_AGE_MS, clock });
  return {
    issuer: config.issuer,
    async verify(token) {
      if (token.length > MAX_TOKEN_BYTES) throw new Unauthenticated(`token too large (over ${MAX_TOKEN_BYTES} bytes)`);
      const known = verified.get(token);
      if (known !== undefined) return known;
      // One reading of the clock for jose's checks and for exp, so the two cannot disagree.
      const now = clock.now();
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, keys, { ...options, currentDate: new Date(now) }));
      } catch (err) {
        throw verificationError(err, config);
      }
      // exp is a required claim, so jose has checked it is a number; no tolerance on it (see pinnedVerifyOptions).
      const expiresAt = (payload.exp as number) * 1000;
      if (expiresAt <= now) throw new Unauthenticated("token expired");
      const caller = callerFromClaims(payload, config);
      verified.set(token, caller, expiresAt);
      return caller;
    },
  };
}

/** The issuer's public keys: a JWKS file read once now, or a URL fetched (and cached) by jose. */
export async function issuerKeys(config: OidcIdentityConfig): Promise<JWTVerifyGetKey> {
  if (config.jwksUrl !== undefined) {
    const remote = createRemoteJWKSet(new URL(config.jwksUrl), {
      timeoutDuration: 5_000,
      cooldownDuration: 30_000,
      cacheMaxAge: 10 * 60_000,
    });
    return async (header, token) => {
      try {
        return await remote(header, token);
      } catch (err) {
        if (
          err instanceof errors.JWKSNoMatchingKey ||
          err instanceof errors.JWKSMultipleMatchingKeys ||
          err instanceof errors.JOSENotSupported
        ) {
          throw err;
        }
        // The provider is down or answered nonsense: not the caller's fault, so they may retry.
        throw new Unavailable("cannot fetch the identity provider's signing keys", { cause: err });
      }
    };
  }
  const file = config.jwksFile as string;
  const field = IDENTITY_FIELDS.oidcJwksFile;
  let jwks: JSONWebKeySet;
  try {
    jwks = JSON.parse(await readFile(file, "utf8")) as JSONWebKeySet;
  } catch (err) {
    throw new InvalidArgument(field, `${file} is not a readable JSON file: ${(err as Error).message}`, { cause: err });
  }
  return localKeys(jwks, field, file);
}

export function localKeys(jwks: JSONWebKeySet, field: string, source: string): JWTVerifyGetKey {
  try {
    if (jwks.keys.some((k) => k.d !== undefined || k.kty === "oct")) throw new Error("it holds private or symmetric keys");
    return createLocalJWKSet(jwks);
  } catch (err) {
    throw new InvalidArgument(field, `${source} is not a JSON Web Key Set of public keys`, { cause: err });
  }
}

function callerFromClaims(payload: JWTPayload, config: OidcIdentityConfig): Caller {
  const id = payload[config.subjectClaim];
  // One rule for every identity source (src/access/identities.ts): "alice " or "ali\u200Bce" is nobody.
  const problem = callerIdProblem(id);
  if (problem !== undefined) throw new Unauthenticated(`token claim '${config.subjectClaim}' is not a usable caller id: it ${problem}`);
  return Object.freeze({ id: id as string, groups: groupsFromClaim(claimAt(payload, config.groupsClaim), config.groupsClaim) });
}

/** A claim by its literal name (`https://example.com/groups`), else by dotted path (`realm_access.roles`). */
export function claimAt(payload: Readonly<Record<string, unknown>>, path: string): unknown {
  if (Object.hasOwn(payload, path)) return payload[path];
  let value: unknown = payload;
  for (const part of path.split(".")) {
    if (value === null || typeof value !== "object" || Array.isArray(value) || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/**
 * Groups exactly as the identity provider sent them, or the token is refused: nothing is trimmed, split on
 * commas or case-folded, so "jitgate-admins " can never pass for "jitgate-admins". The claim is an array of
 * group names, or one string listing them OAuth-scope style (RFC 6749 section 3.3): names separated by single
 * ASCII spaces, a comma being part of a name, and an empty name (a leading, trailing or double space) making
 * the claim invalid; an empty string is no groups. No claim (or null) means no groups.
 */
export function groupsFromClaim(value: unknown, claim: string): readonly string[] {
  if (value === undefined || value === null || value === "") return Object.freeze([]);
  const names: unknown = typeof value === "string" ? value.split(" ") : value;
  if (!Array.isArray(names) || !names.every((g) => typeof g === "string")) {
    throw new Unauthenticated(`token claim '${claim}' is not a list of groups (an array of strings or a space separated string)`);
  }
  names.forEach((name: string, i) => {
    const problem = groupNameProblem(name);
    if (problem !== undefined) throw new Unauthenticated(`token claim '${claim}' is refused: group ${i + 1} ${problem}`);
  });
  return Object.freeze([...new Set(names as string[])]);
}

const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/u;

/**
 * Why `name` cannot be used as a group name as given, or undefined when it can: empty, surrounding whitespace,
 * or a control, format, line/paragraph separator or default-ignorable (invisible) character. Never echoes the
 * name. Shared by every source of groups (token claims, the mTLS groups file).
 */
export function groupNameProblem(name: string): string | undefined {
  if (name === "") return "is empty";
  const invisible = INVISIBLE.exec(name);
  if (invisible) {
    const codePoint = (invisible[0].codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0");
    return `holds an invisible, control or format character (U+${codePoint} at position ${invisible.index})`;
  }
  if (name !== name.trim()) return "has surrounding whitespace";
  return undefined;
}

/** jose's verdict as a fixed, safe message. Nothing from the token (kid, alg, claim values) is echoed. */
function verificationError(err: unknown, config: OidcIdentityConfig): JitgateError {
  if (err instanceof JitgateError) return err;
  const fail = (message: string) => new Unauthenticated(message, { cause: err });
  if (err instanceof errors.JWTExpired) {
    return err.claim === "iat" ? fail(`token too old: issued more than ${MAX_TOKEN_AGE_S / 3600}h ago`) : fail("token expired");
  }
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === "missing") return fail(`token has no '${err.claim}' claim`);
    switch (err.claim) {
      case "iss":
        return fail(`token has the wrong issuer (expected '${config.issuer}')`);
      case "aud":
        return fail(`token has the wrong audience (expected '${config.audience}')`);
      case "nbf":
        return fail("token not valid yet (nbf is in the future)");
      case "iat":
        return fail(err.reason === "check_failed" ? "token issued in the future (iat)" : "token claim 'iat' is not a number");
      default:
        return fail(`token claim '${err.claim}' is not valid`);
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return fail(`token algorithm is not allowed (accepted: ${config.algorithms.join(", ")})`);
  if (err instanceof errors.JWSSignatureVerificationFailed) return fail("token signature is invalid");
  if (err instanceof errors.JWKSNoMatchingKey) return fail("token is signed with an unknown key (no key in the issuer's key set matches)");
  if (err instanceof errors.JWKSMultipleMatchingKeys) return fail("token names no key id and several of the issuer's keys match");
  if (err instanceof errors.JOSENotSupported) return fail("token uses an unsupported algorithm or key type");
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return fail("malformed token: not a signed JWT");
  return fail("token verification failed");
}
