// Rows as this store's queries return them (bigint as number, jsonb parsed, booleans as booleans), their
// conversion to the access domain's records, and the domain's records as statement parameters.
import type { AccessRequest, Grant, GrantEvent, GrantEventKind, RequestState, Review, ReviewDecision } from "../../access/model.ts";
import type { LiveGrant } from "../../access/ports.ts";
import type { RequestPlan } from "../../policy/entrypoints.ts";

/** A review as a request row carries it (json_agg): the request's id is the row's own. */
export interface ReviewJson {
  reviewer: string;
  reviewer_groups: string[];
  decision: ReviewDecision;
  comment: string;
  counts_toward: string[];
  created_at: number;
  policy_revision: string;
}

export interface PgRequestRow {
  id: string;
  requester: string;
  requester_groups: string[];
  resource: string;
  actions: string[];
  duration_s: number;
  justification: string;
  ticket: string;
  emergency: boolean;
  state: RequestState;
  plan: RequestPlan;
  policy_revision: string;
  created_at: number;
  pending_until: number;
  decided_at: number | null;
  state_reason: string;
  grant_id: string | null;
  client_key: string;
  /** Oldest first (created_at, then the order they were written). */
  reviews: ReviewJson[];
}

export interface PgGrantRow {
  id: string;
  request_id: string;
  subject: string;
  resource: string;
  actions: string[];
  audience: string;
  break_glass: boolean;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
  revoked_by: string | null;
  revoke_reason: string | null;
  policy_revision: string;
}

export interface PgGrantEventRow extends PgGrantRow {
  seq: number;
  kind: GrantEventKind;
  at: number;
}

const orUndefined = <T>(v: T | null): T | undefined => (v === null ? undefined : v);

function reviewOf(requestId: string, r: ReviewJson): Review {
  return {
    requestId,
    reviewer: { id: r.reviewer, groups: r.reviewer_groups },
    decision: r.decision,
    comment: r.comment,
    countsToward: r.counts_toward,
    createdAt: r.created_at,
    policyRevision: r.policy_revision,
  };
}

export function requestOf(row: PgRequestRow): AccessRequest {
  return {
    id: row.id,
    requester: { id: row.requester, groups: row.requester_groups },
    resource: row.resource,
    actions: row.actions,
    durationS: row.duration_s,
    justification: row.justification,
    ticket: row.ticket,
    emergency: row.emergency,
    state: row.state,
    plan: row.plan,
    policyRevision: row.policy_revision,
    createdAt: row.created_at,
    pendingUntil: row.pending_until,
    decidedAt: orUndefined(row.decided_at),
    stateReason: row.state_reason,
    grantId: orUndefined(row.grant_id),
    reviews: row.reviews.map((r) => reviewOf(row.id, r)),
    clientKey: row.client_key,
  };
}

export function grantOf(row: PgGrantRow): Grant {
  return {
    id: row.id,
    requestId: row.request_id,
    subject: row.subject,
    resource: row.resource,
    actions: row.actions,
    audience: row.audience,
    breakGlass: row.break_glass,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: orUndefined(row.revoked_at),
    revokedBy: orUndefined(row.revoked_by),
    revokeReason: orUndefined(row.revoke_reason),
    policyRevision: row.policy_revision,
  };
}

export function grantEventOf(row: PgGrantEventRow): GrantEvent {
  return { seq: row.seq, kind: row.kind, at: row.at, grant: grantOf(row) };
}

export function liveGrantOf(row: { id: string; actions: string[]; expires_at: number }): LiveGrant {
  return { id: row.id, actions: row.actions, expiresAt: row.expires_at };
}

type Value = string | number | boolean | null;

/** A request's values in the order of REQUEST_COLUMNS (lists and the plan as JSON text, for jsonb). */
export function requestValues(r: AccessRequest): Value[] {
  return [
    r.id,
    r.requester.id,
    JSON.stringify(r.requester.groups),
    r.resource,
    JSON.stringify(r.actions),
    r.durationS,
    r.justification,
    r.ticket,
    r.emergency,
    r.state,
    JSON.stringify(r.plan),
    r.policyRevision,
    r.createdAt,
    r.pendingUntil,
    r.decidedAt ?? null,
    r.stateReason,
    r.grantId ?? null,
    r.clientKey,
  ];
}

/** A review's values in the order of REVIEW_COLUMNS. */
export function reviewValues(r: Review): Value[] {
  return [
    r.requestId,
    r.reviewer.id,
    JSON.stringify(r.reviewer.groups),
    r.decision,
    r.comment,
    JSON.stringify(r.countsToward),
    r.createdAt,
    r.policyRevision,
  ];
}

/** A grant's values in the order of GRANT_COLUMNS. */
export function grantValues(g: Grant): Value[] {
  return [
    g.id,
    g.requestId,
    g.subject,
    g.resource,
    JSON.stringify(g.actions),
    g.audience,
    g.breakGlass,
    g.createdAt,
    g.expiresAt,
    g.revokedAt ?? null,
    g.revokedBy ?? null,
    g.revokeReason ?? null,
    g.policyRevision,
  ];
}

// Code-unit order, as the SQLite store sorts the rows an UPDATE ... RETURNING gives in no particular order.
const compareIds = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Grants in a stable order for their events, by expiry then id. */
export function sortByExpiry(rows: PgGrantRow[]): PgGrantRow[] {
  return rows.sort((a, b) => a.expires_at - b.expires_at || compareIds(a.id, b.id));
}

/** Requests by pending deadline, then id. */
export function sortByDeadline(rows: PgRequestRow[]): PgRequestRow[] {
  return rows.sort((a, b) => a.pending_until - b.pending_until || compareIds(a.id, b.id));
}
