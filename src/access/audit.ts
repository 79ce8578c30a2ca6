// Audit entries for the lifecycle's changes, built in one place so every entry names the same facts the
// same way. They are appended in the same transaction as the change they record.
import type { AccessRequest, AuditEntry, AuditKind, Grant } from "./model.ts";

interface About<T> {
  readonly at: number;
  readonly actor: string;
  readonly reason: string;
  readonly details?: Readonly<Record<string, unknown>>;
  readonly request?: T;
  readonly grant?: T;
}

export const audit = {
  request(kind: AuditKind, e: About<AccessRequest> & { request: AccessRequest }): AuditEntry {
    const r = e.request;
    return {
      kind,
      at: e.at,
      actor: e.actor,
      subject: r.requester.id,
      resource: r.resource,
      requestId: r.id,
      grantId: r.grantId,
      reason: e.reason,
      policyRevision: r.policyRevision,
      details: { actions: r.actions, state: r.state, emergency: r.emergency, ticket: r.ticket, requested_at: r.createdAt, ...e.details },
    };
  },
  grant(kind: AuditKind, e: About<Grant> & { grant: Grant }): AuditEntry {
    const g = e.grant;
    return {
      kind,
      at: e.at,
      actor: e.actor,
      subject: g.subject,
      resource: g.resource,
      requestId: g.requestId,
      grantId: g.id,
      reason: e.reason,
      policyRevision: g.policyRevision,
      details: { actions: g.actions, expires_at: g.expiresAt, break_glass: g.breakGlass, ...e.details },
    };
  },
  /** A policy bundle this process started serving, or refused (it kept serving `serving`). */
  policy(
    kind: "POLICY_BUNDLE_ACTIVATED" | "POLICY_BUNDLE_REJECTED",
    e: { at: number; revision: string; reason: string; details: Readonly<Record<string, unknown>> },
  ): AuditEntry {
    return { ...jitgateEntry(kind, e.at, e.reason), policyRevision: e.revision, details: e.details };
  },
  signingKey(e: {
    at: number;
    actor: string;
    kid: string;
    previousKid: string | undefined;
    alg: string;
    pruned: readonly string[];
  }): AuditEntry {
    return {
      ...jitgateEntry("SIGNING_KEY_ROTATED", e.at, `new signing key ${e.kid}`),
      actor: e.actor,
      details: { kid: e.kid, previous_kid: e.previousKid ?? null, alg: e.alg, pruned: e.pruned },
    };
  },
};

/** An entry about jitgate itself rather than a subject's access. */
function jitgateEntry(kind: AuditKind, at: number, reason: string): AuditEntry {
  return {
    kind,
    at,
    actor: "jitgate",
    subject: "",
    resource: "",
    requestId: undefined,
    grantId: undefined,
    reason,
    policyRevision: "",
    details: {},
  };
}
