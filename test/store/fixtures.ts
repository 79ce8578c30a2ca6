// Records for store tests: valid defaults, overridden by what a test is about.
import Database from "better-sqlite3";
import type { AccessRequest, AuditEntry, Grant, GrantEvent, Review } from "../../src/access/model.ts";
import type { AccessWrites, WriteTx } from "../../src/access/ports.ts";
import type { SqliteStore } from "../../src/store/sqlite.ts";
import type { RequestPlan } from "../../src/policy/entrypoints.ts";

export const T0 = Date.UTC(2026, 10, 23, 9, 0, 0);
export const MINUTE = 60_000;

export const PLAN: RequestPlan = {
  decision: "needs_approval",
  reasons: [{ code: "sensitive", message: "the resource is sensitive", tier: 2 }],
  approvals: [{ group: "db-admins", count: 1 }],
  distinct_approvers: true,
  max_duration_s: 3600,
  granted_duration_s: 1800,
  pending_ttl_s: 900,
  break_glass: false,
  notify: ["#security"],
  audience: "orders-db",
};

export function aRequest(over: Partial<AccessRequest> & { id: string }): AccessRequest {
  return {
    requester: { id: "alice", groups: ["engineers", "oncall"] },
    resource: "orders-db",
    actions: ["read", "write"],
    durationS: 1800,
    justification: "INC-123 fix stuck orders",
    ticket: "INC-123",
    emergency: false,
    state: "PENDING",
    plan: PLAN,
    policyRevision: "rev-1",
    createdAt: T0,
    pendingUntil: T0 + 15 * MINUTE,
    decidedAt: undefined,
    stateReason: "",
    grantId: undefined,
    reviews: [],
    clientKey: "",
    ...over,
  };
}

export function aReview(over: Partial<Review> & { requestId: string }): Review {
  return {
    reviewer: { id: "bob", groups: ["db-admins"] },
    decision: "approve",
    comment: "ok",
    countsToward: ["db-admins"],
    createdAt: T0 + MINUTE,
    policyRevision: "rev-1",
    ...over,
  };
}

export function aGrant(over: Partial<Grant> & { id: string; requestId: string }): Grant {
  return {
    subject: "alice",
    resource: "orders-db",
    actions: ["read", "write"],
    audience: "orders-db",
    breakGlass: false,
    createdAt: T0,
    expiresAt: T0 + 30 * MINUTE,
    revokedAt: undefined,
    revokedBy: undefined,
    revokeReason: undefined,
    policyRevision: "rev-1",
    ...over,
  };
}

export function anAuditEntry(over: Partial<AuditEntry> = {}): AuditEntry {
  return {
    kind: "GRANT_CREATED",
    at: T0,
    actor: "jitgate",
    subject: "alice",
    resource: "orders-db",
    requestId: "r1",
    grantId: "g1",
    reason: "approved by bob",
    policyRevision: "rev-1",
    details: { approvers: ["bob"] },
    ...over,
  };
}

/** Stores a grant and the request it came from (a grant always has one); returns its CREATED event. */
export function storeGrant(store: SqliteStore, over: Partial<Grant> & { id: string }): GrantEvent {
  const grant = aGrant({ requestId: `req-${over.id}`, ...over });
  return store.transaction(() => {
    store.insertRequest(aRequest({ id: grant.requestId, requester: { id: grant.subject, groups: [] }, state: "APPROVED" }));
    return store.insertGrant(grant);
  });
}

/** Inserts a grant and the request it came from, inside the caller's transaction; returns its CREATED event. */
export async function insertGrantWithRequest(tx: WriteTx, over: Partial<Grant> & { id: string }): Promise<GrantEvent> {
  const grant = aGrant({ requestId: `req-${over.id}`, ...over });
  await tx.insertRequest(aRequest({ id: grant.requestId, requester: { id: grant.subject, groups: [] }, state: "APPROVED" }));
  return tx.insertGrant(grant);
}

/** Stores a grant and the request it came from in a transaction of its own, through the port's `write`. */
export function writeGrant(store: AccessWrites, over: Partial<Grant> & { id: string }): Promise<GrantEvent> {
  return store.write(async (tx) => insertGrantWithRequest(tx, over));
}

/** Stores a request (aRequest with `over`) in a transaction of its own, through the port's `write`. */
export function writeRequest(store: AccessWrites, over: Partial<AccessRequest> & { id: string }): Promise<void> {
  return store.write(async (tx) => tx.insertRequest(aRequest(over)));
}

/** Stores a review (aReview with `over`) in a transaction of its own, through the port's `write`. */
export function writeReview(store: AccessWrites, over: Partial<Review> & { requestId: string }): Promise<void> {
  return store.write(async (tx) => tx.insertReview(aReview(over)));
}

/** Runs `fn` on the database file opened directly (no store, no migrations): to read or tamper with raw rows. */
export function withRaw<T>(file: string, fn: (db: Database.Database) => T): T {
  const db = new Database(file);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}
