// The PostgreSQL decision log's statements and rows. A batch goes in as one INSERT of column arrays (unnest): one
// prepared statement for every batch size, twelve parameters whatever the row count, rows in the batch's order.
import type { DecisionRecord } from "../../access/model.ts";
import type { ReasonDetail } from "../../errors.ts";
import { MAX_DECISIONS_PER_READ, type DecisionFilter } from "../decision-store.ts";
import type { Statement } from "./statements.ts";

const COLUMNS = "decision_id, at, caller, subject, resource, action, allow, reasons, policy_revision, grant_id, token_id, latency_us";
const ARRAY_TYPES = ["text", "bigint", "text", "text", "text", "text", "boolean", "text", "text", "text", "text", "bigint"];
const arrays = ARRAY_TYPES.map((type, i) => `$${i + 1}::${type}[]`).join(", ");

export const DECISION_SQL = {
  // A batch retried after a COMMIT whose answer was lost must not duplicate rows: DO NOTHING on a clash of ids
  // only, so a row breaking NOT NULL is still refused, never silently lost.
  insertBatch: {
    name: "jitgate_decisions_insert_batch",
    text:
      `INSERT INTO decisions (${COLUMNS}) SELECT ${COLUMNS} FROM unnest(${arrays}) ` +
      `WITH ORDINALITY AS batch (${COLUMNS}, n) ORDER BY n ON CONFLICT (decision_id) DO NOTHING`,
  },
  // SKIP LOCKED: replicas pruning at once take different rows instead of waiting on each other's.
  pruneOldest: {
    name: "jitgate_decisions_prune_oldest",
    text:
      "DELETE FROM decisions WHERE decision_id IN " +
      "(SELECT decision_id FROM decisions WHERE at < $1 ORDER BY at, written LIMIT $2 FOR UPDATE SKIP LOCKED)",
  },
} satisfies Record<string, Statement>;

/** A batch as the twelve column arrays of DECISION_SQL.insertBatch; throws for a record that cannot be encoded. */
export function batchValues(records: readonly DecisionRecord[]): unknown[][] {
  const columns: unknown[][] = ARRAY_TYPES.map(() => new Array<unknown>(records.length));
  records.forEach((r, i) => {
    const row = [
      r.decisionId,
      Math.trunc(r.at),
      r.caller,
      r.subject,
      r.resource,
      r.action,
      r.allow,
      JSON.stringify(r.reasons),
      r.policyRevision,
      r.grantId,
      r.tokenId,
      Math.max(0, Math.round(r.latencyUs)),
    ];
    row.forEach((value, c) => ((columns[c] as unknown[])[i] = value));
  });
  return columns;
}

export interface PgDecisionRow {
  decision_id: string;
  at: number;
  caller: string;
  subject: string;
  resource: string;
  action: string;
  allow: boolean;
  reasons: string;
  policy_revision: string;
  grant_id: string;
  token_id: string;
  latency_us: number;
}

export function decisionOf(row: PgDecisionRow): DecisionRecord {
  return {
    decisionId: row.decision_id,
    at: row.at,
    caller: row.caller,
    subject: row.subject,
    resource: row.resource,
    action: row.action,
    allow: row.allow,
    reasons: JSON.parse(row.reasons) as ReasonDetail[],
    policyRevision: row.policy_revision,
    grantId: row.grant_id,
    tokenId: row.token_id,
    latencyUs: row.latency_us,
  };
}

/** Times as whole ms: `at` is an integer, so `at >= 1.5` is `at >= 2` and `at < 1.5` is `at < 2`. */
const wholeMs = (ms: number): number => Math.min(Number.MAX_SAFE_INTEGER, Math.max(Number.MIN_SAFE_INTEGER, Math.ceil(ms)));

/**
 * The listing for `filter`, newest first, at most `limit` (capped as the SQLite store caps it): one statement per
 * filter shape, named after it, so each is planned once and served by its index (the id, the subject, denials).
 */
export function decisionListing(filter: DecisionFilter, limit: number): { statement: Statement; values: unknown[] } | undefined {
  const capped = Math.min(MAX_DECISIONS_PER_READ, Math.max(0, Math.trunc(limit) || 0));
  if (capped === 0) return undefined;
  const values: unknown[] = [wholeMs(filter.since ?? Number.MIN_SAFE_INTEGER), wholeMs(filter.until ?? Number.MAX_SAFE_INTEGER)];
  const where = ["at >= $1", "at < $2"];
  const parts: string[] = [];
  if (filter.decisionId !== undefined) {
    values.push(filter.decisionId);
    where.push(`decision_id = $${values.length}`);
    parts.push("id");
  }
  if (filter.subject !== undefined) {
    values.push(filter.subject);
    where.push(`subject = $${values.length}`);
    parts.push("subject");
  }
  // A constant, not a parameter, so the plan can use the partial index of denials.
  if (filter.allow !== undefined) {
    where.push(filter.allow ? "allow" : "NOT allow");
    parts.push(filter.allow ? "allowed" : "denied");
  }
  values.push(capped);
  return {
    statement: {
      name: ["jitgate_decisions_list", ...parts].join("_"),
      text: `SELECT ${COLUMNS} FROM decisions WHERE ${where.join(" AND ")} ORDER BY at DESC, written DESC LIMIT $${values.length}`,
    },
    values,
  };
}
