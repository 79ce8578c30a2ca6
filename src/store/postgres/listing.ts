// Listings with keyset pagination, exactly as the SQLite store serves them: requests and grants newest first
// (tokens from ../listing.ts), audit entries oldest first (the audit listing's tokens). One statement per filter
// shape, named after it, so each shape is planned once per connection and served by the index made for it.
import type { StoredAuditEntry } from "../../access/model.ts";
import type { AuditFilter, GrantFilter, Page, RequestFilter } from "../../access/ports.ts";
import { CHAINED_AUDIT_COLUMNS } from "../audit-chain.ts";
import { decodeAuditToken, encodeAuditToken } from "../audit-listing.ts";
import { decodePageToken, encodePageToken, pageSize } from "../listing.ts";
import { type AuditRow, storedAuditEntryOf } from "../rows.ts";
import { GRANT_COLUMNS, REQUEST_SELECT, type Statement } from "./statements.ts";

type Value = string | number;

/** A listing's statement and its values. */
export interface ListingQuery {
  readonly statement: Statement;
  readonly values: Value[];
  readonly size: number;
}

/** Numbers each value as it is added, and names the shape by the clauses it was given. */
class Shape {
  readonly values: Value[] = [];
  readonly where: string[] = [];
  readonly #parts: string[] = [];

  param(value: Value): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }

  /** Adds a clause; `part` names it in the statement's name. */
  clause(part: string, sql: string): void {
    this.#parts.push(part);
    this.where.push(sql);
  }

  name(listing: string): string {
    return `jitgate_list_${listing}${this.#parts.length === 0 ? "" : `_${this.#parts.join("_")}`}`;
  }

  get whereSql(): string {
    return this.where.length === 0 ? "" : ` WHERE ${this.where.join(" AND ")}`;
  }
}

function newestFirst(shape: Shape, page: Page): number {
  const cursor = decodePageToken(page.token);
  if (cursor !== undefined) {
    shape.clause("after", `(created_at, id) < (${shape.param(cursor.createdAt)}, ${shape.param(cursor.id)})`);
  }
  return pageSize(page.size);
}

export function requestListing(f: RequestFilter, page: Page): ListingQuery {
  const shape = new Shape();
  if (f.state !== undefined) shape.clause("state", `state = ${shape.param(f.state)}`);
  if (f.requester !== undefined) shape.clause("requester", `requester = ${shape.param(f.requester)}`);
  if (f.resource !== undefined) shape.clause("resource", `resource = ${shape.param(f.resource)}`);
  const size = newestFirst(shape, page);
  const limit = shape.param(size + 1);
  // The page first, then each of its requests with its reviews.
  const text =
    `SELECT ${REQUEST_SELECT} FROM (SELECT * FROM requests${shape.whereSql} ORDER BY created_at DESC, id DESC LIMIT ${limit}) r ` +
    "ORDER BY r.created_at DESC, r.id DESC";
  return { statement: { name: shape.name("requests"), text }, values: shape.values, size };
}

export function grantListing(f: GrantFilter, page: Page): ListingQuery {
  const shape = new Shape();
  if (f.subject !== undefined) shape.clause("subject", `subject = ${shape.param(f.subject)}`);
  if (f.resource !== undefined) shape.clause("resource", `resource = ${shape.param(f.resource)}`);
  if (f.activeAt !== undefined) {
    const at = shape.param(f.activeAt);
    shape.clause("active", `created_at <= ${at} AND expires_at > ${at} AND (revoked_at IS NULL OR revoked_at > ${at})`);
  }
  const size = newestFirst(shape, page);
  const text = `SELECT ${GRANT_COLUMNS} FROM grants${shape.whereSql} ORDER BY created_at DESC, id DESC LIMIT ${shape.param(size + 1)}`;
  return { statement: { name: shape.name("grants"), text }, values: shape.values, size };
}

/** The page of `rows` (fetched one past `size`) and the token of the next one. */
export function pageOf<Row extends { created_at: number; id: string }>(rows: Row[], size: number): { rows: Row[]; next: string } {
  if (rows.length <= size) return { rows, next: "" };
  rows.length = size;
  const last = rows[size - 1] as Row;
  return { rows, next: encodePageToken({ createdAt: last.created_at, id: last.id }) };
}

// ---- audit entries, oldest first; the token is the SQLite store's (encodeAuditToken)

/**
 * A subject's entries are a UNION of two walks in seq order (audit_by_subject, audit_by_actor), each stopping
 * at the page's size, merged and cut again; an OR would collect every entry of the subject and sort them.
 */
export function auditListing(filter: AuditFilter, page: Page): ListingQuery {
  const shape = new Shape();
  shape.clause("all", `seq > ${shape.param(decodeAuditToken(page.token))}`);
  if (filter.resource !== undefined) shape.clause("resource", `resource = ${shape.param(filter.resource)}`);
  if (filter.since !== undefined) shape.clause("since", `at >= ${shape.param(filter.since)}`);
  if (filter.until !== undefined) shape.clause("until", `at < ${shape.param(filter.until)}`);
  const size = pageSize(page.size);
  const limit = shape.param(size + 1);
  const select = (extra?: string) =>
    `SELECT ${CHAINED_AUDIT_COLUMNS}, hash FROM audit WHERE ${[extra, ...shape.where].filter(Boolean).join(" AND ")} ` +
    `ORDER BY seq LIMIT ${limit}`;
  let text = select();
  let name = shape.name("audit");
  if (filter.subject !== undefined) {
    const subject = shape.param(filter.subject);
    text = `(${select(`subject = ${subject}`)}) UNION (${select(`actor = ${subject}`)}) ORDER BY seq LIMIT ${limit}`;
    name = `${name}_subject`;
  }
  return { statement: { name, text }, values: shape.values, size };
}

export function auditPageOf(rows: AuditRow[], size: number): { items: StoredAuditEntry[]; next: string } {
  const more = rows.length > size;
  if (more) rows.length = size;
  return { items: rows.map(storedAuditEntryOf), next: more ? encodeAuditToken((rows[size - 1] as AuditRow).seq) : "" };
}
