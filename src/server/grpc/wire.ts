// Conversions between the domain's records and jit.v1 messages (as proto-loader presents them: snake_case
// fields, enums by name, int64 as strings). Times: the domain's milliseconds <-> google.protobuf.Timestamp.
import type { CheckResult } from "../../access/check.ts";
import { type AccessRequest, type Grant, type GrantEvent, grantStatus, type Review, type StoredAuditEntry } from "../../access/model.ts";
import { reasonToWire } from "./status.ts";

export interface Timestamp {
  seconds: string | number;
  nanos: number;
}

export function timestamp(ms: number | undefined): Timestamp | null {
  if (ms === undefined || ms === 0) return null;
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

export function duration(seconds: number): { seconds: number; nanos: number } {
  return { seconds, nanos: 0 };
}

/** Milliseconds from a wire Timestamp (null/undefined: undefined). */
export function fromTimestamp(t: Timestamp | null | undefined): number | undefined {
  if (!t) return undefined;
  return Number(t.seconds) * 1000 + Math.floor(t.nanos / 1_000_000);
}

const GRANT_STATUS = { ACTIVE: "GRANT_STATUS_ACTIVE", EXPIRED: "GRANT_STATUS_EXPIRED", REVOKED: "GRANT_STATUS_REVOKED" } as const;
const EVENT_KIND = {
  CREATED: "GRANT_EVENT_KIND_CREATED",
  REVOKED: "GRANT_EVENT_KIND_REVOKED",
  EXPIRED: "GRANT_EVENT_KIND_EXPIRED",
} as const;
const REVIEW_DECISION = { approve: "REVIEW_DECISION_APPROVE", deny: "REVIEW_DECISION_DENY" } as const;

export function grantToWire(g: Grant, now: number) {
  return {
    id: g.id,
    request_id: g.requestId,
    subject: g.subject,
    resource: g.resource,
    actions: g.actions,
    audience: g.audience,
    break_glass: g.breakGlass,
    create_time: timestamp(g.createdAt),
    expire_time: timestamp(g.expiresAt),
    revoke_time: timestamp(g.revokedAt),
    revoked_by: g.revokedBy ?? "",
    revoke_reason: g.revokeReason ?? "",
    policy_revision: g.policyRevision,
    status: GRANT_STATUS[grantStatus(g, now)],
  };
}

function reviewToWire(r: Review) {
  return {
    reviewer: { id: r.reviewer.id, groups: r.reviewer.groups },
    decision: REVIEW_DECISION[r.decision],
    comment: r.comment,
    counts_toward: r.countsToward,
    create_time: timestamp(r.createdAt),
  };
}

export function requestToWire(r: AccessRequest, grant: Grant | undefined, now: number) {
  const received = (group: string) => r.reviews.filter((v) => v.decision === "approve" && v.countsToward.includes(group)).length;
  return {
    id: r.id,
    requester: { id: r.requester.id, groups: r.requester.groups },
    resource: r.resource,
    actions: r.actions,
    requested_duration: duration(r.durationS),
    granted_duration: duration(r.plan.granted_duration_s),
    justification: r.justification,
    ticket: r.ticket,
    emergency: r.emergency,
    state: r.state,
    state_reason: r.stateReason,
    reasons: r.plan.reasons.map(reasonToWire),
    approvals: r.plan.approvals.map((a) => ({ group: a.group, required: a.count, received: received(a.group) })),
    reviews: r.reviews.map(reviewToWire),
    grant: grant ? grantToWire(grant, now) : null,
    break_glass: r.plan.break_glass,
    notify: r.plan.notify,
    policy_revision: r.policyRevision,
    create_time: timestamp(r.createdAt),
    pending_until: timestamp(r.pendingUntil),
    decide_time: timestamp(r.decidedAt),
    client_request_id: r.clientKey,
  };
}

export function checkToWire(c: CheckResult) {
  return {
    allow: c.allow,
    reasons: c.reasons.map(reasonToWire),
    decision_id: c.decisionId,
    grant_id: c.grantId,
    grant_expire_time: timestamp(c.grantExpiresAt),
    standing: c.standing,
    policy_revision: c.policyRevision,
  };
}

export function grantEventToWire(e: GrantEvent, now: number) {
  return { seq: String(e.seq), kind: EVENT_KIND[e.kind], time: timestamp(e.at), grant: grantToWire(e.grant, now) };
}

export function auditEntryToWire(e: StoredAuditEntry) {
  return {
    seq: e.seq,
    time: timestamp(e.at),
    kind: e.kind,
    actor: e.actor,
    subject: e.subject,
    resource: e.resource,
    request_id: e.requestId ?? "",
    grant_id: e.grantId ?? "",
    reason: e.reason,
    policy_revision: e.policyRevision,
    details_json: e.detailsJson,
    prev_hash: e.prevHash,
    hash: e.hash,
  };
}
