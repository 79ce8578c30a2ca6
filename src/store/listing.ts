// Newest-first listings of requests and grants with keyset pagination. The page token is opaque to clients:
// base64url of the JSON [created_at, id] of the last row served. One statement per filter shape, prepared on
// first use, so each shape gets the index that serves it (an `? IS NULL OR` clause would defeat the planner).
import type { Database, Statement } from "better-sqlite3";
import type { GrantFilter, Page, RequestFilter } from "../access/ports.ts";
import { InvalidArgument } from "../errors.ts";
import type { GrantRow, RequestRow } from "./rows.ts";
import { GRANT_COLUMNS, REQUEST_COLUMNS } from "./statements.ts";

export const MAX_PAGE_SIZE = 500;

interface Cursor {
  readonly createdAt: number;
  readonly id: string;
}

type Params = Record<string, string | number>;

export function pageSize(requested: number): number {
  return Math.min(MAX_PAGE_SIZE, Math.max(1, Math.trunc(requested) || 1));
}

export function encodePageToken(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.createdAt, cursor.id])).toString("base64url");
}

/** undefined for the first page (""); throws InvalidArgument for anything that is not one of our tokens. */
export function decodePageToken(token: string): Cursor | undefined {
  if (token === "") return undefined;
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    decoded = undefined;
  }
  if (Array.isArray(decoded) && decoded.length === 2 && Number.isSafeInteger(decoded[0]) && typeof decoded[1] === "string") {
    return { createdAt: decoded[0] as number, id: decoded[1] };
  }
  throw new InvalidArgument("page_token", "is not a token from a previous page");
}

interface Clause {
  readonly sql: string;
  readonly params: Params;
}

const ACTIVE_AT = "created_at <= @active_at AND expires_at > @active_at AND (revoked_at IS NULL OR revoked_at > @active_at)";

function requestClauses(f: RequestFilter): Clause[] {
  const clauses: Clause[] = [];
  if (f.state !== undefined) clauses.push({ sql: "state = @state", params: { state: f.state } });
  if (f.requester !== undefined) clauses.push({ sql: "requester = @requester", params: { requester: f.requester } });
  if (f.resource !== undefined) clauses.push({ sql: "resource = @resource", params: { resource: f.resource } });
  return clauses;
}

function grantClauses(f: GrantFilter): Clause[] {
  const clauses: Clause[] = [];
  if (f.subject !== undefined) clauses.push({ sql: "subject = @subject", params: { subject: f.subject } });
  if (f.resource !== undefined) clauses.push({ sql: "resource = @resource", params: { resource: f.resource } });
  if (f.activeAt !== undefined) clauses.push({ sql: ACTIVE_AT, params: { active_at: f.activeAt } });
  return clauses;
}

interface Keyed {
  created_at: number;
  id: string;
}

/** Prepares each listing shape once and walks pages of it. */
class Listing<Row extends Keyed> {
  readonly #db: Database;
  readonly #table: string;
  readonly #columns: string;
  readonly #shapes = new Map<string, Statement<[Params], Row>>();

  constructor(db: Database, table: string, columns: string) {
    this.#db = db;
    this.#table = table;
    this.#columns = columns;
  }

  page(clauses: Clause[], page: Page): { rows: Row[]; next: string } {
    const cursor = decodePageToken(page.token);
    const size = pageSize(page.size);
    const where = clauses.map((c) => c.sql);
    if (cursor !== undefined) where.push("(created_at, id) < (@cursor_at, @cursor_id)");
    const params: Params = Object.assign({ limit: size + 1 }, ...clauses.map((c) => c.params));
    if (cursor !== undefined) Object.assign(params, { cursor_at: cursor.createdAt, cursor_id: cursor.id });
    const rows = this.#statement(where).all(params);
    if (rows.length <= size) return { rows, next: "" };
    rows.length = size;
    const last = rows[size - 1] as Row;
    return { rows, next: encodePageToken({ createdAt: last.created_at, id: last.id }) };
  }

  #statement(where: readonly string[]): Statement<[Params], Row> {
    const key = where.join(" AND ");
    let statement = this.#shapes.get(key);
    if (statement === undefined) {
      const sql =
        `SELECT ${this.#columns} FROM ${this.#table}${key === "" ? "" : ` WHERE ${key}`} ` +
        "ORDER BY created_at DESC, id DESC LIMIT @limit";
      statement = this.#db.prepare<[Params], Row>(sql);
      this.#shapes.set(key, statement);
    }
    return statement;
  }
}

export class Listings {
  readonly #requests: Listing<RequestRow>;
  readonly #grants: Listing<GrantRow>;

  constructor(db: Database) {
    this.#requests = new Listing(db, "requests", REQUEST_COLUMNS);
    this.#grants = new Listing(db, "grants", GRANT_COLUMNS);
  }

  requests(filter: RequestFilter, page: Page): { rows: RequestRow[]; next: string } {
    return this.#requests.page(requestClauses(filter), page);
  }

  grants(filter: GrantFilter, page: Page): { rows: GrantRow[]; next: string } {
    return this.#grants.page(grantClauses(filter), page);
  }
}
