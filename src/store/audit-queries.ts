// Auditors' questions over a store file ("who had access to what, when, approved by whom, and why"): plain
// queries over an open Database, so they run as well on a read-only connection to a backup as on a live store.
import type { Database } from "better-sqlite3";
import { AUDIT_CHAIN_VERSION, CHAINED_AUDIT_COLUMNS, type ChainedAuditRow } from "./audit-chain.ts";
import { AuditListing, auditListingSql } from "./audit-listing.ts";
import { MAX_PAGE_SIZE } from "./listing.ts";

/**
 * The schema these queries need. Version 3 only adds the indexes that make them fast; on a version-2 file (an
 * old backup nobody should have to migrate to read) they give the same answers, scanning instead.
 */
export const AUDIT_QUERIES_MIN_VERSION = AUDIT_CHAIN_VERSION;

/** Shown as the approver of a grant whose request no reviewer approved (policy decided alone). */
export const POLICY_APPROVAL = "policy (auto-approved)";

/** One grant that gave its subject access to the resource at the time asked. Times are ms since the epoch. */
export interface WhoHadRow {
  subject: string;
  grant_id: string;
  actions: string[];
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
  revoked_by: string | null;
  break_glass: boolean;
  request_id: string;
  justification: string;
  ticket: string;
  /** The reviewers who approved the request, in the order they did; [POLICY_APPROVAL] when none did. */
  approved_by: string[];
  policy_revision: string;
}

/** One audit entry, with `details` parsed (or its stored text if that is not JSON: a tampered row still shows). */
export type AuditRecord = Omit<ChainedAuditRow, "details" | "prev_hash"> & { details: unknown; hash: string | null };

/** An exported entry: also prev_hash, so the file can be checked link by link against the chain. */
export type ExportedAuditRecord = AuditRecord & { prev_hash: string | null };

export interface HistoryFilter {
  /** Entries at or after this time (ms). */
  readonly since?: number;
  /** Entries before this time (ms): [since, until) is half-open, so consecutive windows never overlap. */
  readonly until?: number;
  /** At most this many entries, the oldest first. */
  readonly limit?: number;
}

export interface ExportFilter {
  readonly since?: number;
  readonly until?: number;
  /** Entries after this seq: where a previous export stopped. */
  readonly afterSeq?: number;
}

interface WhoHadSqlRow extends Omit<WhoHadRow, "actions" | "break_glass" | "approved_by"> {
  actions: string;
  break_glass: number;
  approved_by: string;
}

// Active at @at exactly as listing.ts's ACTIVE_AT. The last line adds nothing to the answer (a grant active at @at
// was created less than its own lifetime before it): it bounds the walk of grants_by_resource to the grants
// created within the longest lifetime of any grant on the resource, found in one seek of grants_span_by_resource,
// so a question about last year does not read every grant on the resource since.
export const WHO_HAD_SQL = `
SELECT g.subject, g.id AS grant_id, g.actions, g.created_at, g.expires_at, g.revoked_at, g.revoked_by, g.break_glass,
  g.request_id, coalesce(r.justification, '') AS justification, coalesce(r.ticket, '') AS ticket, g.policy_revision,
  (SELECT json_group_array(reviewer) FROM
    (SELECT reviewer FROM reviews v WHERE v.request_id = g.request_id AND v.decision = 'approve' ORDER BY v.created_at, v.rowid)
  ) AS approved_by
FROM grants g LEFT JOIN requests r ON r.id = g.request_id
WHERE g.resource = @resource
  AND g.created_at <= @at AND g.expires_at > @at AND (g.revoked_at IS NULL OR g.revoked_at > @at)
  AND g.created_at > @at - (SELECT max(expires_at - created_at) FROM grants WHERE resource = @resource)
ORDER BY g.subject, g.created_at, g.id`;

/**
 * Every grant on `resource` that was active at `at` (ms), ordered by subject, then by when the grant was made.
 * Active means, at millisecond precision: created at or before `at` (a grant counts from its created_at on),
 * expiring after `at` (at expires_at it no longer counts), and not revoked at or before `at` (at revoked_at it
 * no longer counts). Only grants: access a subject holds by standing policy, with no request, is not here.
 */
export function whoHad(db: Database, resource: string, at: number): WhoHadRow[] {
  const rows = db.prepare<[{ resource: string; at: number }], WhoHadSqlRow>(WHO_HAD_SQL).all({ resource, at });
  return rows.map((row) => {
    const approvers = JSON.parse(row.approved_by) as string[];
    return {
      ...row,
      actions: JSON.parse(row.actions) as string[],
      break_glass: row.break_glass === 1,
      approved_by: approvers.length > 0 ? approvers : [POLICY_APPROVAL],
    };
  });
}

const EXPORT_COLUMNS = `${CHAINED_AUDIT_COLUMNS}, hash`;

/** A record as its row is stored: `details` is the stored text. */
export type Stored<T> = Omit<T, "details"> & { details: string };

/** The statement a subject's history runs: the audit listing's subject walk (see auditListingSql). */
export const HISTORY_SQL = auditListingSql({ subject: "", since: 0, until: 0 });

/** Entries about `subject` or done by `subject` (as actor), oldest (lowest seq) first: the audit listing, page by page. */
export function history(db: Database, subject: string, filter: HistoryFilter = {}): AuditRecord[] {
  const listing = new AuditListing(db);
  const records: AuditRecord[] = [];
  const wanted = filter.limit ?? Infinity;
  let token = "";
  do {
    const range = {
      ...(filter.since === undefined ? {} : { since: filter.since }),
      ...(filter.until === undefined ? {} : { until: filter.until }),
    };
    const page = listing.rows({ subject, ...range }, { size: Math.min(MAX_PAGE_SIZE, wanted - records.length), token });
    records.push(...page.rows.map(({ prev_hash: _, ...row }) => withParsedDetails<AuditRecord>(row)));
    token = page.next;
  } while (token !== "" && records.length < wanted);
  return records;
}

/**
 * Every entry in seq order, read as it is iterated (one statement, so one snapshot even while a server appends).
 * Each record's hash covers the stored details text, which jitgate writes with JSON.stringify: to check a record,
 * hash it with `details: JSON.stringify(record.details)` (see canonicalAuditText in audit-chain.ts).
 * The database must stay open until the iteration ends.
 */
export function exportAudit(db: Database, filter: ExportFilter = {}): IterableIterator<ExportedAuditRecord> {
  const params = { after: filter.afterSeq ?? 0, since: filter.since ?? null, until: filter.until ?? null };
  const rows = db.prepare<[typeof params], Stored<ExportedAuditRecord>>(exportSql(filter)).iterate(params);
  return (function* () {
    for (const row of rows) yield withParsedDetails(row);
  })();
}

/**
 * The export's statement for the bounds the filter has (its parameters: @after, and @since/@until when given).
 * Without a time bound the walk is the primary key's, in seq order with no sort; with one, SQLite may prefer
 * audit_by_time and sort just the window it selects, which is what a narrow window wants.
 */
export function exportSql(filter: ExportFilter): string {
  const where = ["seq > @after"];
  if (filter.since !== undefined) where.push("at >= @since");
  if (filter.until !== undefined) where.push("at < @until");
  return `SELECT ${EXPORT_COLUMNS} FROM audit WHERE ${where.join(" AND ")} ORDER BY seq`;
}

/** The record of a stored row: `details` parsed, or kept as its text when that is not JSON (a tampered row). */
export function withParsedDetails<T extends AuditRecord>(row: Stored<T>): T {
  let details: unknown;
  try {
    details = JSON.parse(row.details);
  } catch {
    details = row.details;
  }
  return { ...row, details } as T;
}
