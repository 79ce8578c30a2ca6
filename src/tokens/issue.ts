// Issuing an access token (RFC 9068 JWT, `typ: at+jwt`) for one active grant. A token never outlives its
// grant: exp = min(grant expiry, now + TTL), in whole seconds rounded down, and no token when no second is left.
import { randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import { ACCESS_TOKEN_TYPE, MAX_TOKEN_TTL_S } from "../enforce/verify.ts";
import { FailedPrecondition } from "../errors.ts";
import type { SigningKey } from "./keys.ts";

/** What a token is issued for: the fields of a jitgate Grant that a token carries. */
export interface TokenGrant {
  readonly id: string;
  readonly subject: string;
  readonly actions: readonly string[];
  /** The service the token is for (the grant's resource's audience). */
  readonly audience: string;
  /** ms since the Unix epoch. */
  readonly expiresAt: number;
  readonly revokedAt?: number | undefined;
}

/** Where the signing key comes from: a KeyRing, in jitgate. */
export interface TokenSigner {
  signingKey(): Promise<SigningKey>;
}

export interface IssueOptions {
  readonly issuer: string;
  /** 1..3600 seconds. */
  readonly ttlS: number;
  /** ms since the Unix epoch. */
  readonly now: number;
}

export interface IssuedToken {
  readonly token: string;
  /** ms since the Unix epoch (a whole second). */
  readonly issuedAt: number;
  readonly expiresAt: number;
  readonly jti: string;
  readonly kid: string;
}

export async function issueAccessToken(signer: TokenSigner, grant: TokenGrant, opts: IssueOptions): Promise<IssuedToken> {
  if (!Number.isInteger(opts.ttlS) || opts.ttlS < 1 || opts.ttlS > MAX_TOKEN_TTL_S) {
    throw new RangeError(`token TTL must be a whole number of seconds from 1 to ${MAX_TOKEN_TTL_S}`);
  }
  checkGrant(grant, opts.now);
  const iat = Math.floor(opts.now / 1000);
  // Rounded down: a token may end up to a second before its grant, never after it.
  const exp = Math.min(Math.floor(grant.expiresAt / 1000), iat + opts.ttlS);
  if (exp <= iat) throw new FailedPrecondition(`grant ${grant.id} has no whole second left: no token is issued for it`);
  const key = await signer.signingKey();
  const jti = randomUUID();
  const token = await new SignJWT({
    client_id: grant.subject,
    grant_id: grant.id,
    scope: grant.actions.join(" "),
    actions: [...grant.actions],
  })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: ACCESS_TOKEN_TYPE })
    .setIssuer(opts.issuer)
    .setSubject(grant.subject)
    .setAudience(grant.audience)
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(exp)
    .setJti(jti)
    .sign(key.privateKey);
  return Object.freeze({ token, issuedAt: iat * 1000, expiresAt: exp * 1000, jti, kid: key.kid });
}

/** The access domain hands over active grants; these are the invariants a token relies on all the same. */
function checkGrant(grant: TokenGrant, now: number): void {
  if (grant.revokedAt !== undefined && grant.revokedAt <= now)
    throw new FailedPrecondition(`grant ${grant.id} is revoked: no token is issued for it`);
  if (grant.expiresAt <= now) throw new FailedPrecondition(`grant ${grant.id} has expired: no token is issued for it`);
  if (grant.id === "" || grant.subject === "" || grant.audience === "") {
    throw new FailedPrecondition(`grant ${grant.id} lacks an id, subject or audience: no token is issued for it`);
  }
  if (grant.actions.length === 0) throw new FailedPrecondition(`grant ${grant.id} grants no action: no token is issued for it`);
  for (const action of grant.actions) {
    // `scope` is space-separated (RFC 9068), so an action with a space would read as two.
    if (action === "" || /\s/.test(action))
      throw new FailedPrecondition(`grant ${grant.id} has action '${action}', which a token scope cannot carry`);
  }
}
