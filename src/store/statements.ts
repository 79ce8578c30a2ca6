// Every fixed SQL statement of the store, prepared once when it opens and named after what it answers.
// (Listing queries, whose WHERE clause depends on the filter, are in listing.ts.)
import type { Database, Statement } from "better-sqlite3";
import { CHAINED_AUDIT_COLUMNS, type ChainedAuditRow } from "./audit-chain.ts";
import type { GrantEventRow, GrantRow, LiveGrantRow, RequestRow, ReviewRow } from "./rows.ts";

type Params = Record<string, string | number | null>;

export const REQUEST_COLUMNS =
  "id, requester, requester_groups, resource, actions, duration_s, justification, ticket, emergency, state, plan, " +
  "policy_revision, created_at, pending_until, decided_at, state_reason, grant_id, client_key";
export const GRANT_COLUMNS =
  "id, request_id, subject, resource, actions, audience, break_glass, created_at, expires_at, revoked_at, revoked_by, " +
  "revoke_reason, policy_revision";
const REVIEW_COLUMNS = "request_id, reviewer, reviewer_groups, decision, comment, counts_toward, created_at, policy_revision";
const AUDIT_COLUMNS = "at, kind, actor, subject, resource, request_id, grant_id, reason, policy_revision, details, prev_hash";

const namedValues = (columns: string): string =>
  columns
    .split(", ")
    .map((c) => `@${c}`)
    .join(", ");
const qualified = (alias: string, columns: string): string =>
  columns
    .split(", ")
    .map((c) => `${alias}.${c}`)
    .join(", ");

export interface Statements {
  readonly requestById: Statement<[string], RequestRow>;
  readonly requestByClientKey: Statement<[string, string], RequestRow>;
  readonly reviewsOfRequest: Statement<[string], ReviewRow>;
  /** Reviews of several requests in one query; the parameter is a JSON array of request ids. */
  readonly reviewsOfRequests: Statement<[string], ReviewRow>;
  readonly pendingRequestsOf: Statement<[string, number], { id: string; resource: string; actions: string }>;
  readonly insertRequest: Statement<[Params]>;
  readonly insertReview: Statement<[Params]>;
  readonly decideRequest: Statement<[Params]>;
  readonly expireDuePending: Statement<[string, number, number], RequestRow>;
  readonly grantById: Statement<[string], GrantRow>;
  readonly liveGrantsOf: Statement<[string, number], GrantRow>;
  readonly liveGrantsOn: Statement<[string, string, number], LiveGrantRow>;
  readonly allLiveGrants: Statement<[number], GrantRow>;
  readonly dataVersion: Statement<[], number>;
  readonly insertGrant: Statement<[Params]>;
  readonly insertGrantEvent: Statement<[string, string, number]>;
  readonly revokeLiveGrant: Statement<[Params], GrantRow>;
  readonly revokeLiveGrantsOf: Statement<[Params], GrantRow>;
  readonly markDueExpiries: Statement<[number, number], GrantRow>;
  readonly grantEventsAfter: Statement<[number, number], GrantEventRow>;
  readonly latestGrantEventSeq: Statement<[], number>;
  readonly nextDue: Statement<[], number | null>;
  readonly activeGrantCount: Statement<[number], number>;
  readonly firstRevocationInForce: Statement<[number], number | null>;
  readonly insertAudit: Statement<[Params]>;
  /** An audit row as stored: the input of its hash. */
  readonly auditRow: Statement<[number], ChainedAuditRow>;
  readonly sealAudit: Statement<[string, number]>;
  readonly auditHead: Statement<[], { seq: number; hash: string | null }>;
}

export function prepareStatements(db: Database): Statements {
  const live = "revoked_at IS NULL AND expires_at > @at";
  return {
    requestById: db.prepare(`SELECT ${REQUEST_COLUMNS} FROM requests WHERE id = ?`),
    // `client_key <> ''` lets SQLite use the partial unique index, and an empty key never matches.
    requestByClientKey: db.prepare(`SELECT ${REQUEST_COLUMNS} FROM requests WHERE requester = ? AND client_key = ? AND client_key <> ''`),
    reviewsOfRequest: db.prepare(`SELECT ${REVIEW_COLUMNS} FROM reviews WHERE request_id = ? ORDER BY created_at, rowid`),
    reviewsOfRequests: db.prepare(
      `SELECT ${REVIEW_COLUMNS} FROM reviews WHERE request_id IN (SELECT value FROM json_each(?)) ORDER BY created_at, rowid`,
    ),
    pendingRequestsOf: db.prepare(
      "SELECT id, resource, actions FROM requests WHERE requester = ? AND state = 'PENDING' AND pending_until > ? ORDER BY created_at, id",
    ),
    insertRequest: db.prepare(`INSERT INTO requests (${REQUEST_COLUMNS}) VALUES (${namedValues(REQUEST_COLUMNS)})`),
    insertReview: db.prepare(`INSERT INTO reviews (${REVIEW_COLUMNS}) VALUES (${namedValues(REVIEW_COLUMNS)})`),
    decideRequest: db.prepare(
      "UPDATE requests SET state = @state, decided_at = @decided_at, state_reason = @state_reason, " +
        "grant_id = coalesce(@grant_id, grant_id) WHERE id = @id AND state = @from",
    ),
    expireDuePending: db.prepare(
      "UPDATE requests SET state = 'EXPIRED', decided_at = pending_until, state_reason = ? WHERE id IN (" +
        "SELECT id FROM requests WHERE state = 'PENDING' AND pending_until > 0 AND pending_until <= ? ORDER BY pending_until LIMIT ?) " +
        `RETURNING ${REQUEST_COLUMNS}`,
    ),
    grantById: db.prepare(`SELECT ${GRANT_COLUMNS} FROM grants WHERE id = ?`),
    liveGrantsOf: db.prepare(
      `SELECT ${GRANT_COLUMNS} FROM grants WHERE subject = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at, id`,
    ),
    allLiveGrants: db.prepare(`SELECT ${GRANT_COLUMNS} FROM grants WHERE revoked_at IS NULL AND expires_at > ?`),
    dataVersion: db.prepare<[], number>("PRAGMA data_version").pluck(),
    liveGrantsOn: db.prepare(
      "SELECT id, actions, expires_at FROM grants WHERE subject = ? AND resource = ? AND revoked_at IS NULL AND expires_at > ?",
    ),
    insertGrant: db.prepare(`INSERT INTO grants (${GRANT_COLUMNS}) VALUES (${namedValues(GRANT_COLUMNS)})`),
    insertGrantEvent: db.prepare("INSERT INTO grant_events (grant_id, kind, at) VALUES (?, ?, ?)"),
    revokeLiveGrant: db.prepare(
      `UPDATE grants SET revoked_at = @at, revoked_by = @by, revoke_reason = @reason WHERE id = @id AND ${live} ` +
        `RETURNING ${GRANT_COLUMNS}`,
    ),
    revokeLiveGrantsOf: db.prepare(
      `UPDATE grants SET revoked_at = @at, revoked_by = @by, revoke_reason = @reason WHERE subject = @subject AND ${live} ` +
        `RETURNING ${GRANT_COLUMNS}`,
    ),
    // The UPDATE is the claim: in one immediate transaction, only the process that flips the flag emits the event.
    markDueExpiries: db.prepare(
      "UPDATE grants SET expiry_recorded = 1 WHERE id IN (" +
        "SELECT id FROM grants WHERE revoked_at IS NULL AND expiry_recorded = 0 AND expires_at <= ? ORDER BY expires_at LIMIT ?) " +
        `RETURNING ${GRANT_COLUMNS}`,
    ),
    grantEventsAfter: db.prepare(
      `SELECT e.seq, e.kind, e.at, ${qualified("g", GRANT_COLUMNS)} FROM grant_events e JOIN grants g ON g.id = e.grant_id ` +
        "WHERE e.seq > ? ORDER BY e.seq LIMIT ?",
    ),
    latestGrantEventSeq: db.prepare<[], number>("SELECT coalesce(max(seq), 0) FROM grant_events").pluck(),
    nextDue: db
      .prepare<[], number | null>(
        "SELECT min(due) FROM (" +
          "SELECT min(expires_at) AS due FROM grants WHERE revoked_at IS NULL AND expiry_recorded = 0 " +
          "UNION ALL SELECT min(pending_until) FROM requests WHERE state = 'PENDING' AND pending_until > 0)",
      )
      .pluck(),
    // A live grant's expiry is not yet recorded, so the small expiry_due index answers this, not a scan of every grant ever.
    activeGrantCount: db
      .prepare<[number], number>("SELECT count(*) FROM grants WHERE revoked_at IS NULL AND expiry_recorded = 0 AND expires_at > ?")
      .pluck(),
    // The first REVOKED event of a grant not yet expired: from the small set of revoked, unexpired grants.
    firstRevocationInForce: db
      .prepare<[number], number | null>(
        "SELECT min(e.seq) FROM grants g JOIN grant_events e ON e.grant_id = g.id AND e.kind = 'REVOKED' " +
          "WHERE g.revoked_at IS NOT NULL AND g.expires_at > ?",
      )
      .pluck(),
    insertAudit: db.prepare(`INSERT INTO audit (${AUDIT_COLUMNS}) VALUES (${namedValues(AUDIT_COLUMNS)})`),
    auditRow: db.prepare(`SELECT ${CHAINED_AUDIT_COLUMNS} FROM audit WHERE seq = ?`),
    sealAudit: db.prepare("UPDATE audit SET hash = ? WHERE seq = ?"),
    auditHead: db.prepare("SELECT seq, hash FROM audit WHERE seq = (SELECT max(seq) FROM audit)"),
  };
}
