// Access tokens in the lifecycle: the holder of an active grant gets a short-lived token for it (audited),
// and a check may present a token instead of naming a subject: the token must verify, its grant must still
// be live, carry the action, and be on the resource asked about, and the policy must allow the action.
import { FailedPrecondition, Unauthenticated } from "../errors.ts";
import { audit } from "./audit.ts";
import { type CheckResult, decide, failureReason, recordDecision, refusal } from "./check.ts";
import { type AccessDeps, admitDecision } from "./deps.ts";
import { type Caller, type GrantStatus, grantStatus } from "./model.ts";
import type { VerifiedToken } from "./ports.ts";
import { grantRefusal } from "./read-scope.ts";

export interface IssuedAccessToken {
  readonly token: string;
  readonly expiresAt: number;
  readonly jti: string;
  readonly grantId: string;
  readonly audience: string;
}

export async function issueToken(deps: AccessDeps, caller: Caller, grantId: string): Promise<IssuedAccessToken> {
  const grant = await deps.store.grant(grantId);
  if (!grant || grant.subject !== caller.id) throw grantRefusal(grantId, "get tokens for", "only its holder gets tokens for a grant");
  const status = grantStatus(grant, deps.clock.now());
  if (status !== "ACTIVE") throw new FailedPrecondition(`grant ${grantId} is ${status}, not ACTIVE`);
  const issued = await deps.tokens.issue(grant);
  // No audit entry, no token: the entry commits before the token leaves jitgate.
  await deps.store.write(async (tx) =>
    tx.appendAudit(
      audit.grant("TOKEN_ISSUED", {
        at: deps.clock.now(),
        actor: caller.id,
        grant,
        reason: "token issued",
        details: { jti: issued.jti, kid: issued.kid, token_expires_at: issued.expiresAt },
      }),
    ),
  );
  return { token: issued.token, expiresAt: issued.expiresAt, jti: issued.jti, grantId, audience: grant.audience };
}

export interface TokenCheckInput {
  readonly token: string;
  readonly resource: string;
  readonly action: string;
  readonly context: Readonly<Record<string, string>>;
  /** Who asked (the authenticated caller, usually a service); for the decision record. */
  readonly caller?: string;
}

/** A check by token: one decision record whatever the outcome, a token that does not verify included. */
export async function checkToken(deps: AccessDeps, input: TokenCheckInput): Promise<CheckResult> {
  admitDecision(deps);
  const started = performance.now();
  const question = { caller: input.caller ?? "", subject: "", resource: input.resource, action: input.action };
  let verified: VerifiedToken;
  let grant: TokenGrant;
  try {
    // Signature first: until it holds, nothing the token claims is looked up, so a forged token cannot tell
    // an outsider whether a grant id exists.
    verified = await deps.tokens.verifyIssued(input.token);
    grant = await grantOfToken(deps, verified);
  } catch (err) {
    // The caller gets the error; the log keeps the attempt (never the token itself).
    const reason = err instanceof Unauthenticated ? { code: "token_invalid", message: err.message } : failureReason(err);
    recordDecision(deps, started, question, refusal(deps, deps.clock.now(), reason));
    throw err;
  }
  const answered = { ...question, subject: verified.subject, tokenId: verified.jti };
  let result: CheckResult;
  try {
    result = await decideByToken(deps, input, verified, grant);
  } catch (err) {
    recordDecision(deps, started, answered, refusal(deps, deps.clock.now(), failureReason(err)));
    throw err;
  }
  recordDecision(deps, started, answered, result);
  return result;
}

/** The grant a token names: from the live-grant index when live, else as stored (to say why it no longer counts). */
interface TokenGrant {
  readonly id: string;
  readonly subject: string;
  readonly resource: string;
  readonly audience: string;
  readonly status: GrantStatus;
}

/** The grant a verified token speaks for; a token for another audience than its grant's is not trusted. */
async function grantOfToken(deps: AccessDeps, verified: VerifiedToken): Promise<TokenGrant> {
  const now = deps.clock.now();
  const live = deps.liveGrants.find(verified.grantId, now);
  const stored = live === undefined ? await deps.store.grant(verified.grantId) : undefined;
  const grant = live ?? stored;
  if (!grant) throw new Unauthenticated("TOKEN_CLAIMS_INVALID: the token names no grant jitgate knows");
  if (grant.audience !== verified.audience)
    throw new Unauthenticated("TOKEN_WRONG_AUDIENCE: the token is for another audience than its grant's");
  // Not in the index: revoked or expired (a stored grant the index lacks is not honoured either: decide finds no grant).
  const status = stored === undefined ? "ACTIVE" : grantStatus(stored, now);
  return { id: grant.id, subject: grant.subject, resource: grant.resource, audience: grant.audience, status };
}

async function decideByToken(deps: AccessDeps, input: TokenCheckInput, verified: VerifiedToken, grant: TokenGrant): Promise<CheckResult> {
  const now = deps.clock.now();
  const refuse = (code: string, message: string) => refusal(deps, now, { code, message, grant_id: verified.grantId });
  if (grant.subject !== verified.subject) return refuse("token_grant_unknown", "the token's grant does not exist");
  if (grant.status === "REVOKED") return refuse("grant_revoked", "the token's grant has been revoked");
  if (grant.status === "EXPIRED") return refuse("grant_expired", "the token's grant has expired");
  if (grant.resource !== input.resource) return refuse("token_wrong_resource", "the token's grant is for another resource");
  if (!verified.actions.includes(input.action)) return refuse("action_not_in_token", "the token does not carry this action");
  // Only this grant counts: a token speaks for one grant, not for everything its subject holds.
  return decide(
    deps,
    { subject: { id: verified.subject, groups: [] }, resource: input.resource, action: input.action, context: input.context },
    grant.id,
  );
}
