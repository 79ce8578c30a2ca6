// Grants: made from an approved request (the granted duration runs from approval), revoked one by one or
// all at once for a subject.
import { FailedPrecondition, NotFound, PermissionDenied } from "../errors.ts";
import { audit } from "./audit.ts";
import { type AccessDeps, commitChange, isAdmin } from "./deps.ts";
import { type AccessRequest, type Caller, type Grant, grantStatus } from "./model.ts";
import { grantRefusal } from "./read-scope.ts";

export function newGrant(deps: AccessDeps, request: AccessRequest, approvedAt: number): Grant {
  return {
    id: deps.newId(),
    requestId: request.id,
    subject: request.requester.id,
    resource: request.resource,
    actions: request.actions,
    audience: request.plan.audience,
    breakGlass: request.plan.break_glass,
    createdAt: approvedAt,
    expiresAt: approvedAt + request.plan.granted_duration_s * 1000,
    revokedAt: undefined,
    revokedBy: undefined,
    revokeReason: undefined,
    policyRevision: request.policyRevision,
  };
}

/** Its subject may give a grant up; anyone else must be an admin. */
export async function revokeGrant(deps: AccessDeps, caller: Caller, grantId: string, reason: string): Promise<Grant> {
  const admin = isAdmin(deps, caller);
  const grant = await deps.store.grant(grantId);
  if (!grant && admin) throw new NotFound(`grant ${grantId} does not exist`);
  if (!grant || (grant.subject !== caller.id && !admin)) {
    throw grantRefusal(grantId, "revoke", `only its holder or an admin (${deps.adminGroups.join(", ")}) may`);
  }
  const now = deps.clock.now();
  const event = await commitChange(deps, async (tx) => {
    const revoked = await tx.revokeGrant(grantId, now, caller.id, reason);
    if (revoked) await tx.appendAudit(audit.grant("GRANT_REVOKED", { at: now, actor: caller.id, grant: revoked.grant, reason }));
    return revoked;
  });
  if (!event) {
    const current = (await deps.store.grant(grantId)) ?? grant;
    throw new FailedPrecondition(`grant ${grantId} is ${grantStatus(current, now)}, not ACTIVE`);
  }
  return event.grant;
}

/** Incident response: every live grant of the subject ends now. Admins only. */
export async function revokeSubject(deps: AccessDeps, caller: Caller, subject: string, reason: string): Promise<readonly Grant[]> {
  if (!isAdmin(deps, caller))
    throw new PermissionDenied(`only an admin (${deps.adminGroups.join(", ")}) may revoke all access of a subject`);
  const now = deps.clock.now();
  const events = await commitChange(deps, async (tx) => {
    const revoked = await tx.revokeGrantsOf(subject, now, caller.id, reason);
    for (const e of revoked) await tx.appendAudit(audit.grant("GRANT_REVOKED", { at: now, actor: caller.id, grant: e.grant, reason }));
    return revoked;
  });
  return events.map((e) => e.grant);
}
