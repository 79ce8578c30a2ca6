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
      details: { actions: r.actions, state: r.state, emergency: r.emergency, ticket: r.ticket, ...e.details },
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
};
