// Rows as SQLite returns them, and their conversion to and from the access domain's records.
import type {
  AccessRequest,
  AuditEntry,
  Grant,
  GrantEvent,
  GrantEventKind,
  RequestState,
  Review,
  ReviewDecision,
  StoredAuditEntry,
} from "../access/model.ts";
import type { LiveGrant } from "../access/ports.ts";
import type { ChainedAuditRow } from "./audit-chain.ts";
import type { RequestPlan } from "../policy/entrypoints.ts";

export interface RequestRow {
  id: string;
  requester: string;
  requester_groups: string;
  resource: string;
  actions: string;
  duration_s: number;
  justification: string;
  ticket: string;
  emergency: number;
  state: RequestState;
  plan: string;
  policy_revision: string;
  created_at: number;
  pending_until: number;
  decided_at: number | null;
  state_reason: string;
  grant_id: string | null;
  client_key: string;
}

export interface ReviewRow {
  request_id: string;
  reviewer: string;
  reviewer_groups: string;
  decision: ReviewDecision;
  comment: string;
  counts_toward: string;
  created_at: number;
  policy_revision: string;
}

export interface GrantRow {
  id: string;
  request_id: string;
  subject: string;
  resource: string;
  actions: string;
  audience: string;
  break_glass: number;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
  revoked_by: string | null;
  revoke_reason: string | null;
  policy_revision: string;
}

export interface GrantEventRow extends GrantRow {
  seq: number;
  kind: GrantEventKind;
  at: number;
}

export interface LiveGrantRow {
  id: string;
  actions: string;
  expires_at: number;
}

// Action lists repeat across grants ('["read"]', '["read","write"]'), so the access check parses each text once.
// Bounded, so that a store full of distinct lists cannot grow it without limit; one per store, no global state.
export class ActionLists {
  readonly #parsed = new Map<string, readonly string[]>();
  readonly #limit: number;

  constructor(limit = 1024) {
    this.#limit = limit;
  }

  of(text: string): readonly string[] {
    let actions = this.#parsed.get(text);
    if (actions === undefined) {
      actions = Object.freeze(JSON.parse(text) as string[]);
      if (this.#parsed.size >= this.#limit) this.#parsed.clear();
      this.#parsed.set(text, actions);
    }
    return actions;
  }
}

const stringsOf = (text: string): string[] => JSON.parse(text) as string[];

const orUndefined = <T>(v: T | null): T | undefined => (v === null ? undefined : v);

export function reviewOf(row: ReviewRow): Review {
  return {
    requestId: row.request_id,
    reviewer: { id: row.reviewer, groups: stringsOf(row.reviewer_groups) },
    decision: row.decision,
    comment: row.comment,
    countsToward: stringsOf(row.counts_toward),
    createdAt: row.created_at,
    policyRevision: row.policy_revision,
  };
}

export function requestOf(row: RequestRow, reviews: readonly Review[]): AccessRequest {
  return {
    id: row.id,
    requester: { id: row.requester, groups: stringsOf(row.requester_groups) },
    resource: row.resource,
    actions: stringsOf(row.actions),
    durationS: row.duration_s,
    justification: row.justification,
    ticket: row.ticket,
    emergency: row.emergency === 1,
    state: row.state,
    plan: JSON.parse(row.plan) as RequestPlan,
    policyRevision: row.policy_revision,
    createdAt: row.created_at,
    pendingUntil: row.pending_until,
    decidedAt: orUndefined(row.decided_at),
    stateReason: row.state_reason,
    grantId: orUndefined(row.grant_id),
    reviews,
    clientKey: row.client_key,
  };
}

/** Requests with their reviews, from the request rows and the reviews of all of them (ordered by time). */
export function requestsOf(rows: readonly RequestRow[], reviewRows: readonly ReviewRow[]): AccessRequest[] {
  const byRequest = new Map<string, Review[]>();
  for (const r of reviewRows) {
    const list = byRequest.get(r.request_id);
    if (list === undefined) byRequest.set(r.request_id, [reviewOf(r)]);
    else list.push(reviewOf(r));
  }
  return rows.map((row) => requestOf(row, byRequest.get(row.id) ?? []));
}

export function grantOf(row: GrantRow): Grant {
  return {
    id: row.id,
    requestId: row.request_id,
    subject: row.subject,
    resource: row.resource,
    actions: stringsOf(row.actions),
    audience: row.audience,
    breakGlass: row.break_glass === 1,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: orUndefined(row.revoked_at),
    revokedBy: orUndefined(row.revoked_by),
    revokeReason: orUndefined(row.revoke_reason),
    policyRevision: row.policy_revision,
  };
}

export function grantEventOf(row: GrantEventRow): GrantEvent {
  return { seq: row.seq, kind: row.kind, at: row.at, grant: grantOf(row) };
}

export function liveGrantOf(row: LiveGrantRow, lists: ActionLists): LiveGrant {
  return { id: row.id, actions: lists.of(row.actions), expiresAt: row.expires_at };
}

/** Named parameters for inserting a request (better-sqlite3 binds `@name`). */
export function requestParams(r: AccessRequest): Record<string, string | number | null> {
  return {
    id: r.id,
    requester: r.requester.id,
    requester_groups: JSON.stringify(r.requester.groups),
    resource: r.resource,
    actions: JSON.stringify(r.actions),
    duration_s: r.durationS,
    justification: r.justification,
    ticket: r.ticket,
    emergency: r.emergency ? 1 : 0,
    state: r.state,
    plan: JSON.stringify(r.plan),
    policy_revision: r.policyRevision,
    created_at: r.createdAt,
    pending_until: r.pendingUntil,
    decided_at: r.decidedAt ?? null,
    state_reason: r.stateReason,
    grant_id: r.grantId ?? null,
    client_key: r.clientKey,
  };
}

export function reviewParams(r: Review): Record<string, string | number> {
  return {
    request_id: r.requestId,
    reviewer: r.reviewer.id,
    reviewer_groups: JSON.stringify(r.reviewer.groups),
    decision: r.decision,
    comment: r.comment,
    counts_toward: JSON.stringify(r.countsToward),
    created_at: r.createdAt,
    policy_revision: r.policyRevision,
  };
}

export function grantParams(g: Grant): Record<string, string | number | null> {
  return {
    id: g.id,
    request_id: g.requestId,
    subject: g.subject,
    resource: g.resource,
    actions: JSON.stringify(g.actions),
    audience: g.audience,
    break_glass: g.breakGlass ? 1 : 0,
    created_at: g.createdAt,
    expires_at: g.expiresAt,
    revoked_at: g.revokedAt ?? null,
    revoked_by: g.revokedBy ?? null,
    revoke_reason: g.revokeReason ?? null,
    policy_revision: g.policyRevision,
  };
}

export function auditParams(e: AuditEntry): Record<string, string | number | null> {
  return {
    at: e.at,
    kind: e.kind,
    actor: e.actor,
    subject: e.subject,
    resource: e.resource,
    request_id: e.requestId ?? null,
    grant_id: e.grantId ?? null,
    reason: e.reason,
    policy_revision: e.policyRevision,
    details: JSON.stringify(e.details),
  };
}

/** An audit row as stored, with its hash. */
export type AuditRow = ChainedAuditRow & { hash: string | null };

export function storedAuditEntryOf(row: AuditRow): StoredAuditEntry {
  return {
    seq: row.seq,
    at: row.at,
    kind: row.kind,
    actor: row.actor,
    subject: row.subject,
    resource: row.resource,
    requestId: row.request_id ?? undefined,
    grantId: row.grant_id ?? undefined,
    reason: row.reason,
    policyRevision: row.policy_revision,
    detailsJson: row.details,
    prevHash: row.prev_hash ?? "",
    hash: row.hash ?? "",
  };
}

const compareIds = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Grants in a stable order for their events, by expiry then id (UPDATE ... RETURNING promises no order). */
export function sortByExpiry(rows: GrantRow[]): GrantRow[] {
  return rows.sort((a, b) => a.expires_at - b.expires_at || compareIds(a.id, b.id));
}

/** Requests by pending deadline, then id. */
export function sortByDeadline(rows: RequestRow[]): RequestRow[] {
  return rows.sort((a, b) => a.pending_until - b.pending_until || compareIds(a.id, b.id));
}
