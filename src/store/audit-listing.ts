// Pages of the audit trail, oldest first, for ListAuditEntries. The page token is opaque to clients: base64url of
// the last seq served. One statement per filter shape, prepared on first use (like listing.ts).
import type { Database, Statement } from "better-sqlite3";
import type { StoredAuditEntry } from "../access/model.ts";
import type { AuditFilter, Page, PageOf } from "../access/ports.ts";
import { InvalidArgument } from "../errors.ts";
import { CHAINED_AUDIT_COLUMNS } from "./audit-chain.ts";
import { pageSize } from "./listing.ts";
import { type AuditRow, storedAuditEntryOf } from "./rows.ts";

type Params = Record<string, string | number>;
type Row = AuditRow;

/** The audit page token: base64url of ["audit", last seq served] (both stores). */
export function encodeAuditToken(seq: number): string {
  return Buffer.from(JSON.stringify(["audit", seq])).toString("base64url");
}

export function decodeAuditToken(token: string): number {
  if (token === "") return 0;
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    decoded = undefined;
  }
  if (Array.isArray(decoded) && decoded[0] === "audit" && Number.isSafeInteger(decoded[1])) return decoded[1] as number;
  throw new InvalidArgument("page_token", "is not a token from a previous page of audit entries");
}

/**
 * The statement for a filter's shape (parameters @after, @limit, and @subject, @resource, @since, @until when
 * given). A subject's entries are a UNION of two walks in seq order, audit_by_subject and audit_by_actor, that
 * SQLite merges (dropping entries where the subject is both) and LIMIT stops early; an OR would collect every
 * entry of the subject and sort them.
 */
export function auditListingSql(filter: AuditFilter): string {
  const where = ["seq > @after"];
  if (filter.resource !== undefined) where.push("resource = @resource");
  if (filter.since !== undefined) where.push("at >= @since");
  if (filter.until !== undefined) where.push("at < @until");
  const select = (extra?: string) =>
    `SELECT ${CHAINED_AUDIT_COLUMNS}, hash FROM audit WHERE ${[extra, ...where].filter(Boolean).join(" AND ")}`;
  const rows = filter.subject === undefined ? select() : `${select("subject = @subject")} UNION ${select("actor = @subject")}`;
  return `${rows} ORDER BY seq LIMIT @limit`;
}

export class AuditListing {
  readonly #db: Database;
  readonly #shapes = new Map<string, Statement<[Params], Row>>();

  constructor(db: Database) {
    this.#db = db;
  }

  page(filter: AuditFilter, page: Page): PageOf<StoredAuditEntry> {
    const { rows, next } = this.rows(filter, page);
    return { items: rows.map(storedAuditEntryOf), next };
  }

  /** A page as the rows are stored (for offline tools that show them as they are). */
  rows(filter: AuditFilter, page: Page): { rows: AuditRow[]; next: string } {
    const size = pageSize(page.size);
    const params: Params = { after: decodeAuditToken(page.token), limit: size + 1 };
    if (filter.subject !== undefined) params.subject = filter.subject;
    if (filter.resource !== undefined) params.resource = filter.resource;
    if (filter.since !== undefined) params.since = filter.since;
    if (filter.until !== undefined) params.until = filter.until;
    const rows = this.#statement(auditListingSql(filter)).all(params);
    const more = rows.length > size;
    if (more) rows.length = size;
    return { rows, next: more ? encodeAuditToken((rows[size - 1] as Row).seq) : "" };
  }

  #statement(sql: string): Statement<[Params], Row> {
    let statement = this.#shapes.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare<[Params], Row>(sql);
      this.#shapes.set(sql, statement);
    }
    return statement;
  }
}
