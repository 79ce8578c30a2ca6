// Auditors' questions over a jitgate PostgreSQL database, answered as ../audit-queries.ts answers them over a
// SQLite file: the same rows in the same order with the same fields, inside the caller's one snapshot (see
// audit-snapshot.ts), so an auditor gets one answer wherever the trail is kept.
import { CHAINED_AUDIT_COLUMNS } from "../audit-chain.ts";
import { encodeAuditToken } from "../audit-listing.ts";
import {
  POLICY_APPROVAL,
  withParsedDetails,
  type AuditRecord,
  type ExportedAuditRecord,
  type ExportFilter,
  type HistoryFilter,
  type Stored,
  type WhoHadRow,
} from "../audit-queries.ts";
import { MAX_PAGE_SIZE } from "../listing.ts";
import { auditListing } from "./listing.ts";
import type { Statement } from "./statements.ts";
import type { SnapshotQuery } from "./transactions.ts";

/** Audit rows per statement of an export: what is held in memory at once, whatever the trail's length. */
export const EXPORT_PAGE = 1_000;

type WhoHadPgRow = Omit<WhoHadRow, "approved_by"> & { approved_by: string[] };

// ../audit-queries.ts's WHO_HAD_SQL in PostgreSQL's terms, column for column (the JSON output keeps this order):
// reviewers in the order they approved (created_at, then the order written, as SQLite's rowid), and the walk of
// grants_by_resource bounded by the longest lifetime of a grant on the resource (grants_span_by_resource).
export const WHO_HAD: Statement = {
  name: "jitgate_audit_who_had",
  text: `
SELECT g.subject, g.id AS grant_id, g.actions, g.created_at, g.expires_at, g.revoked_at, g.revoked_by, g.break_glass,
  g.request_id, coalesce(r.justification, '') AS justification, coalesce(r.ticket, '') AS ticket, g.policy_revision,
  (SELECT coalesce(json_agg(v.reviewer ORDER BY v.created_at, v.written), '[]'::json) FROM reviews v
    WHERE v.request_id = g.request_id AND v.decision = 'approve') AS approved_by
FROM grants g LEFT JOIN requests r ON r.id = g.request_id
WHERE g.resource = $1
  AND g.created_at <= $2::bigint AND g.expires_at > $2::bigint AND (g.revoked_at IS NULL OR g.revoked_at > $2::bigint)
  AND g.created_at > $2::bigint - (SELECT max(expires_at - created_at) FROM grants WHERE resource = $1)
ORDER BY g.subject, g.created_at, g.id`,
};

/** Every grant on `resource` active at `at` (ms), by subject then creation: see ../audit-queries.ts's whoHad. */
export async function whoHad(query: SnapshotQuery, resource: string, at: number): Promise<WhoHadRow[]> {
  const rows = await query<WhoHadPgRow>(WHO_HAD, [resource, at]);
  return rows.map((row) => ({ ...row, approved_by: row.approved_by.length > 0 ? row.approved_by : [POLICY_APPROVAL] }));
}

/** Entries about `subject` or done by `subject`, oldest first: the store's audit listing, page by page. */
export async function history(query: SnapshotQuery, subject: string, filter: HistoryFilter = {}): Promise<AuditRecord[]> {
  const records: AuditRecord[] = [];
  const wanted = filter.limit ?? Infinity;
  const range = {
    ...(filter.since === undefined ? {} : { since: filter.since }),
    ...(filter.until === undefined ? {} : { until: filter.until }),
  };
  let token = "";
  do {
    const listing = auditListing({ subject, ...range }, { size: Math.min(MAX_PAGE_SIZE, wanted - records.length), token });
    const rows = await query<Stored<ExportedAuditRecord>>(listing.statement, listing.values);
    const more = rows.length > listing.size;
    if (more) rows.length = listing.size;
    records.push(...rows.map(({ prev_hash: _, ...row }) => withParsedDetails<AuditRecord>(row)));
    token = more ? encodeAuditToken((rows[rows.length - 1] as Stored<ExportedAuditRecord>).seq) : "";
  } while (token !== "" && records.length < wanted);
  return records;
}

/**
 * Every entry in seq order, EXPORT_PAGE rows at a time (keyset pagination by seq), as it is iterated: all pages
 * come from the caller's snapshot, so the export is one consistent trail even while replicas append. To check a
 * record against the chain, see ../audit-queries.ts's exportAudit. The snapshot must stay open until the end.
 */
export async function* exportAudit(query: SnapshotQuery, filter: ExportFilter = {}): AsyncGenerator<ExportedAuditRecord> {
  const { statement, bounds } = exportPage(filter);
  for (let after = filter.afterSeq ?? 0; ;) {
    const rows = await query<Stored<ExportedAuditRecord>>(statement, [after, EXPORT_PAGE, ...bounds]);
    for (const row of rows) yield withParsedDetails(row);
    if (rows.length < EXPORT_PAGE) return;
    after = (rows[rows.length - 1] as Stored<ExportedAuditRecord>).seq;
  }
}

/**
 * One page of the export for the bounds the filter has ($1 the seq after which it starts, $2 its size, then
 * since and until when given). Without a time bound the walk is the primary key's; with one, PostgreSQL may
 * prefer audit_by_time and sort just the window it selects, as SQLite does.
 */
function exportPage(filter: ExportFilter): { statement: Statement; bounds: number[] } {
  const where = ["seq > $1"];
  const bounds: number[] = [];
  const parts: string[] = [];
  if (filter.since !== undefined) {
    bounds.push(filter.since);
    where.push(`at >= $${bounds.length + 2}`);
    parts.push("since");
  }
  if (filter.until !== undefined) {
    bounds.push(filter.until);
    where.push(`at < $${bounds.length + 2}`);
    parts.push("until");
  }
  const text = `SELECT ${CHAINED_AUDIT_COLUMNS}, hash FROM audit WHERE ${where.join(" AND ")} ORDER BY seq LIMIT $2`;
  return { statement: { name: ["jitgate_audit_export", ...parts].join("_"), text }, bounds };
}
