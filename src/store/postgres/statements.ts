// Every fixed SQL statement of the PostgreSQL store, named after what it answers and prepared (server side, once
// per connection) on first use. Listing queries, whose WHERE clause depends on the filter, are in listing.ts.
// A read of several tables is one statement, so it sees one snapshot without a transaction around it.
import { CHAINED_AUDIT_COLUMNS, GENESIS_HASH } from "../audit-chain.ts";

/** The NOTIFY channel each grant event is announced on, its seq (decimal text) the payload. */
export const GRANT_EVENTS_CHANNEL = "jitgate_grant_events";

/** A prepared statement: pg prepares `text` under `name` on each connection the first time it runs there. */
export interface Statement {
  readonly name: string;
  readonly text: string;
}

export const REQUEST_COLUMNS =
  "id, requester, requester_groups, resource, actions, duration_s, justification, ticket, emergency, state, plan, " +
  "policy_revision, created_at, pending_until, decided_at, state_reason, grant_id, client_key";
export const GRANT_COLUMNS =
  "id, request_id, subject, resource, actions, audience, break_glass, created_at, expires_at, revoked_at, revoked_by, " +
  "revoke_reason, policy_revision";
const REVIEW_COLUMNS = "request_id, reviewer, reviewer_groups, decision, comment, counts_toward, created_at, policy_revision";

export const qualified = (alias: string, columns: string): string =>
  columns
    .split(", ")
    .map((c) => `${alias}.${c}`)
    .join(", ");

const placeholders = (columns: string): string =>
  columns
    .split(", ")
    .map((_, i) => `$${i + 1}`)
    .join(", ");

/** A request row of alias `r` with its reviews (oldest first, ties in the order written), in one expression. */
export const REQUEST_SELECT =
  `${qualified("r", REQUEST_COLUMNS)}, (SELECT coalesce(json_agg(json_build_object(` +
  "'reviewer', v.reviewer, 'reviewer_groups', v.reviewer_groups, 'decision', v.decision, 'comment', v.comment, " +
  "'counts_toward', v.counts_toward, 'created_at', v.created_at, 'policy_revision', v.policy_revision" +
  ") ORDER BY v.created_at, v.written), '[]'::json) FROM reviews v WHERE v.request_id = r.id) AS reviews";

const LIVE = "revoked_at IS NULL AND expires_at > $2";

const statement = (name: string, text: string): Statement => ({ name: `jitgate_${name}`, text });

export const SQL = {
  requestById: statement("request_by_id", `SELECT ${REQUEST_SELECT} FROM requests r WHERE r.id = $1`),
  // `client_key <> ''` lets PostgreSQL use the partial unique index, and an empty key never matches.
  requestByClientKey: statement(
    "request_by_client_key",
    `SELECT ${REQUEST_SELECT} FROM requests r WHERE r.requester = $1 AND r.client_key = $2 AND r.client_key <> ''`,
  ),
  pendingRequestsOf: statement(
    "pending_requests_of",
    "SELECT id, resource, actions FROM requests WHERE requester = $1 AND state = 'PENDING' AND pending_until > $2 ORDER BY created_at, id",
  ),
  // A clash on the client key is an answer (AlreadyExists), not an error that would abort the transaction.
  insertRequest: statement(
    "insert_request",
    `INSERT INTO requests (${REQUEST_COLUMNS}) VALUES (${placeholders(REQUEST_COLUMNS)}) ` +
      "ON CONFLICT (requester, client_key) WHERE client_key <> '' DO NOTHING",
  ),
  insertReview: statement("insert_review", `INSERT INTO reviews (${REVIEW_COLUMNS}) VALUES (${placeholders(REVIEW_COLUMNS)})`),
  decideRequest: statement(
    "decide_request",
    "UPDATE requests SET state = $3, decided_at = $4, state_reason = $5, grant_id = coalesce($6::text, grant_id) " +
      "WHERE id = $1 AND state = $2",
  ),
  expireDuePending: statement(
    "expire_due_pending",
    "WITH due AS (UPDATE requests SET state = 'EXPIRED', decided_at = pending_until, state_reason = $1 WHERE id IN (" +
      "SELECT id FROM requests WHERE state = 'PENDING' AND pending_until > 0 AND pending_until <= $2 ORDER BY pending_until LIMIT $3) " +
      `RETURNING *) SELECT ${REQUEST_SELECT} FROM due r`,
  ),
  grantById: statement("grant_by_id", `SELECT ${GRANT_COLUMNS} FROM grants WHERE id = $1`),
  liveGrantsOf: statement("live_grants_of", `SELECT ${GRANT_COLUMNS} FROM grants WHERE subject = $1 AND ${LIVE} ORDER BY created_at, id`),
  liveGrantsOn: statement(
    "live_grants_on",
    "SELECT id, actions, expires_at FROM grants WHERE subject = $1 AND resource = $2 AND revoked_at IS NULL AND expires_at > $3 " +
      "ORDER BY expires_at, id",
  ),
  allLiveGrants: statement("all_live_grants", `SELECT ${GRANT_COLUMNS} FROM grants WHERE revoked_at IS NULL AND expires_at > $1`),
  insertGrant: statement("insert_grant", `INSERT INTO grants (${GRANT_COLUMNS}) VALUES (${placeholders(GRANT_COLUMNS)})`),
  revokeLiveGrant: statement(
    "revoke_live_grant",
    `UPDATE grants SET revoked_at = $2, revoked_by = $3, revoke_reason = $4 WHERE id = $1 AND ${LIVE} RETURNING ${GRANT_COLUMNS}`,
  ),
  revokeLiveGrantsOf: statement(
    "revoke_live_grants_of",
    `UPDATE grants SET revoked_at = $2, revoked_by = $3, revoke_reason = $4 WHERE subject = $1 AND ${LIVE} RETURNING ${GRANT_COLUMNS}`,
  ),
  // The UPDATE is the claim: under the write lock, only the replica that flips the flag emits the event.
  markDueExpiries: statement(
    "mark_due_expiries",
    "UPDATE grants SET expiry_recorded = true WHERE id IN (" +
      "SELECT id FROM grants WHERE revoked_at IS NULL AND NOT expiry_recorded AND expires_at <= $1 ORDER BY expires_at LIMIT $2) " +
      `RETURNING ${GRANT_COLUMNS}`,
  ),
  /**
   * Events of kind $2 for grants $1 at times $3, seqs in that order from the counter, each announced on
   * GRANT_EVENTS_CHANNEL (delivered to listeners when the transaction commits, in commit order, and never if it
   * rolls back).
   */
  insertGrantEvents: statement(
    "insert_grant_events",
    "WITH next AS (UPDATE jitgate_sequences SET last = last + cardinality($1::text[]) WHERE name = 'grant_events' " +
      "RETURNING last - cardinality($1::text[]) AS base), " +
      "ins AS (INSERT INTO grant_events (seq, grant_id, kind, at) " +
      "SELECT next.base + e.n, e.grant_id, $2::text, e.at FROM next, unnest($1::text[], $3::bigint[]) WITH ORDINALITY AS e (grant_id, at, n) " +
      "RETURNING seq) " +
      `SELECT seq, pg_notify('${GRANT_EVENTS_CHANNEL}', seq::text) FROM ins ORDER BY seq`,
  ),
  grantEventsAfter: statement(
    "grant_events_after",
    `SELECT e.seq, e.kind, e.at, ${qualified("g", GRANT_COLUMNS)} FROM grant_events e JOIN grants g ON g.id = e.grant_id ` +
      "WHERE e.seq > $1 ORDER BY e.seq LIMIT $2",
  ),
  latestGrantEventSeq: statement("latest_grant_event_seq", "SELECT coalesce(max(seq), 0) AS seq FROM grant_events"),
  nextDue: statement(
    "next_due",
    "SELECT least(" +
      "(SELECT min(expires_at) FROM grants WHERE revoked_at IS NULL AND NOT expiry_recorded), " +
      "(SELECT min(pending_until) FROM requests WHERE state = 'PENDING' AND pending_until > 0)) AS due",
  ),
  // A live grant's expiry is not yet recorded, so the small grants_expiry_due index answers this.
  activeGrantCount: statement(
    "active_grant_count",
    "SELECT count(*) AS n FROM grants WHERE revoked_at IS NULL AND NOT expiry_recorded AND expires_at > $1",
  ),
  // Just before the first REVOKED event of a grant not yet expired, else the latest seq: one statement, one snapshot.
  revocationsInForceAfter: statement(
    "revocations_in_force_after",
    "SELECT coalesce((SELECT min(e.seq) FROM grants g JOIN grant_events e ON e.grant_id = g.id AND e.kind = 'REVOKED' " +
      "WHERE g.revoked_at IS NOT NULL AND g.expires_at > $1) - 1, (SELECT coalesce(max(seq), 0) FROM grant_events)) AS seq",
  ),
  /**
   * An audit row chained to the current head (GENESIS_HASH for the first), its seq from the counter; returns it
   * as stored, which is what its hash must cover. Under the write lock nobody appends in between.
   */
  insertAudit: statement(
    "insert_audit",
    "WITH next AS (UPDATE jitgate_sequences SET last = last + 1 WHERE name = 'audit' RETURNING last) " +
      "INSERT INTO audit (seq, at, kind, actor, subject, resource, request_id, grant_id, reason, policy_revision, details, prev_hash) " +
      "SELECT next.last, $1::bigint, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text, $9::text, $10::text, " +
      `coalesce((SELECT hash FROM audit ORDER BY seq DESC LIMIT 1), '${GENESIS_HASH}') FROM next ` +
      `RETURNING ${CHAINED_AUDIT_COLUMNS}`,
  ),
  sealAudit: statement("seal_audit", "UPDATE audit SET hash = $1 WHERE seq = $2"),
  auditHead: statement("audit_head", "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"),
  auditChainPage: statement("audit_chain_page", `SELECT ${CHAINED_AUDIT_COLUMNS}, hash FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2`),
  heartbeat: statement("heartbeat", "UPDATE jitgate_heartbeat SET beat_at = clock_timestamp() WHERE id = 1"),
} as const;
