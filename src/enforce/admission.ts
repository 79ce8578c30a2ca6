// Decides whether one incoming call may proceed: the bearer token from its metadata, verified locally against
// jitgate's keys (or checked remotely with jitgate's Check), the method's action, and the revocations known.
// No gRPC call objects here: the answer is a status to end the call with, or the grant that admits it.
import * as grpc from "@grpc/grpc-js";
import { decodeJwt } from "jose";
import type { JitgateClient } from "./jitgate-client.ts";
import type { KeyCache } from "./key-cache.ts";
import type { RevocationFeed } from "./revocations.ts";
import { TokenRejected, type VerifiedAccessToken, verifyAccessToken, type VerifyAccessTokenOptions } from "./verify.ts";
import { VerifiedTokenCache } from "./verified-cache.ts";

/** A refusal: the status code and a fixed message that is safe to return to the caller. */
export interface Refusal {
  readonly admitted: false;
  readonly code: grpc.status;
  readonly details: string;
}

/** An admitted call and what bounds it: the grant (for revocations) and when its access ends (ms). */
export interface Admitted {
  readonly admitted: true;
  readonly grantId: string;
  readonly expiresAt: number | undefined;
}

export type Admission = Admitted | Refusal;

/** What admission looks at in one incoming call. */
export interface IncomingCall {
  /** `/package.Service/Method`. */
  readonly methodPath: string;
  readonly metadata: grpc.Metadata;
  readonly deadline: grpc.Deadline;
  /** The caller's IP address, when known; passed to jitgate's policy as `source_ip` in remote mode. */
  readonly sourceIp: string | undefined;
}

/** Decides one call. Never throws: anything that stops a decision is a refusal (fail closed). */
export type Admit = (call: IncomingCall) => Promise<Admission>;

export const refuse = (code: grpc.status, details: string): Refusal => ({ admitted: false, code, details });

export const ACCESS_REVOKED = "access revoked";
export const ACCESS_EXPIRED = "access expired";
const UNAVAILABLE = "access tokens cannot be verified now; try again";
const REVOCATIONS_UNKNOWN = "revocations cannot be followed now (jitgate unreachable); try again";

/**
 * The token of an `authorization: Bearer <token>` header, or undefined when there is none; a second
 * `authorization` value or another scheme counts as none, so an ambiguous call is never admitted.
 */
export function bearerToken(metadata: grpc.Metadata): string | undefined {
  const values = metadata.get("authorization");
  if (values.length !== 1 || typeof values[0] !== "string") return undefined;
  const match = /^Bearer +([^\s]+)$/i.exec(values[0]);
  return match?.[1];
}

interface AdmitDeps {
  readonly actionOf: (methodPath: string) => string | undefined;
  readonly revocations: RevocationFeed;
}

/**
 * Admission by verifying the token offline with the cached JWKS (refetched once for an unknown key). Fails
 * closed when the revocation stream has been down for longer than `maxRevocationStalenessMs` (or was never up):
 * a token could belong to a grant revoked meanwhile.
 */
export function localAdmission(
  deps: AdmitDeps & { keys: KeyCache; verify: VerifyAccessTokenOptions; maxRevocationStalenessMs: number },
): Admit {
  const now = deps.verify.now ?? Date.now;
  // Verified tokens are remembered until their exp; revocation is still checked on every call.
  const verifiedTokens = new VerifiedTokenCache<VerifiedAccessToken>({ maxEntries: 10_000, maxAgeMs: Infinity, clock: { now } });
  return async ({ methodPath, metadata }) => {
    const token = bearerToken(metadata);
    if (token === undefined) return refuse(grpc.status.UNAUTHENTICATED, "no access token (authorization: Bearer <token>)");
    let verified: VerifiedAccessToken;
    try {
      const cached = verifiedTokens.get(token);
      verified = cached ?? (await verifyWithRefresh(token, deps.keys, deps.verify));
      if (!cached) verifiedTokens.set(token, verified, verified.expiresAt);
    } catch (err) {
      if (err instanceof TokenRejected) return refuse(grpc.status.UNAUTHENTICATED, `${err.code}: ${err.message}`);
      return refuse(grpc.status.UNAVAILABLE, UNAVAILABLE);
    }
    const action = deps.actionOf(methodPath);
    if (action === undefined) return refuse(grpc.status.PERMISSION_DENIED, "this method is not open to access tokens");
    if (!verified.actions.includes(action)) {
      return refuse(grpc.status.PERMISSION_DENIED, `the access token does not allow '${action}'`);
    }
    if (deps.revocations.isRevoked(verified.grantId)) return refuse(grpc.status.PERMISSION_DENIED, ACCESS_REVOKED);
    if (deps.revocations.unknownForMs() > deps.maxRevocationStalenessMs) return refuse(grpc.status.UNAVAILABLE, REVOCATIONS_UNKNOWN);
    return { admitted: true, grantId: verified.grantId, expiresAt: verified.expiresAt };
  };
}

async function verifyWithRefresh(token: string, keys: KeyCache, opts: VerifyAccessTokenOptions): Promise<VerifiedAccessToken> {
  const current = keys.current ?? (await keys.refresh());
  if (!current) throw new Error("no verification keys yet");
  try {
    return await verifyAccessToken(token, current, opts);
  } catch (err) {
    if (!(err instanceof TokenRejected) || err.code !== "TOKEN_UNKNOWN_KEY") throw err;
    const fresh = await keys.refresh();
    if (!fresh || fresh === current) throw err;
    return verifyAccessToken(token, fresh, opts);
  }
}

/** How long a remote Check may take when the incoming call has no (or a later) deadline. */
const CHECK_TIMEOUT_MS = 5000;

/** Admission by asking jitgate's Check (within the incoming call's deadline); jitgate failing means refusal. */
export function remoteAdmission(deps: AdmitDeps & { client: JitgateClient; resource: string }): Admit {
  return async ({ methodPath, metadata, deadline, sourceIp }) => {
    const token = bearerToken(metadata);
    if (token === undefined) return refuse(grpc.status.UNAUTHENTICATED, "no access token (authorization: Bearer <token>)");
    const action = deps.actionOf(methodPath);
    if (action === undefined) return refuse(grpc.status.PERMISSION_DENIED, "this method is not open to access tokens");
    const callDeadline = deadline instanceof Date ? deadline.getTime() : deadline;
    const checkDeadline = Math.min(callDeadline, Date.now() + CHECK_TIMEOUT_MS);
    try {
      const answer = await deps.client.check(
        { token, resource: deps.resource, action, context: sourceIp === undefined ? {} : { source_ip: sourceIp } },
        checkDeadline,
      );
      if (!answer.allow) return refuse(grpc.status.PERMISSION_DENIED, `access denied: ${answer.reasons.join("; ") || "no reason given"}`);
      if (answer.grantId !== "" && deps.revocations.isRevoked(answer.grantId)) {
        return refuse(grpc.status.PERMISSION_DENIED, ACCESS_REVOKED);
      }
      return { admitted: true, grantId: answer.grantId, expiresAt: earliest(answer.grantExpiresAt, tokenExpiry(token)) };
    } catch (err) {
      const code = (err as Partial<grpc.ServiceError>).code;
      if (code === grpc.status.UNAUTHENTICATED) return refuse(code, (err as grpc.ServiceError).details);
      if (code === grpc.status.DEADLINE_EXCEEDED) return refuse(code, "the access check did not finish before the deadline");
      return refuse(grpc.status.UNAVAILABLE, "access cannot be checked now; try again");
    }
  };
}

/** The token's `exp` (ms), read without verifying: jitgate's Check has just verified it. */
function tokenExpiry(token: string): number | undefined {
  try {
    const exp = decodeJwt(token).exp;
    return typeof exp === "number" ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

function earliest(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  return b === undefined ? a : Math.min(a, b);
}
