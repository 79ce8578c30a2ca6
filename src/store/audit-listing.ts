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

function encodeToken(seq: number): string {
  return Buffer.from(JSON.stringify(["audit", seq])).toString("base64url");
}

function decodeToken(token: string): number {
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

export class AuditListing {
  readonly #db: Database;
  readonly #shapes = new Map<string, Statement<[Params], Row>>();

  constructor(db: Database) {
    this.#db = db;
  }

  page(filter: AuditFilter, page: Page): PageOf<StoredAuditEntry> {
    const size = pageSize(page.size);
    const where = ["seq > @after"];
    const params: Params = { after: decodeToken(page.token), limit: size + 1 };
    // Subject OR actor: two indexed lookups (audit_by_subject, audit_by_actor) merged, not a scan of the trail.
    if (filter.subject !== undefined) {
      where.push("seq IN (SELECT seq FROM audit WHERE subject = @subject UNION SELECT seq FROM audit WHERE actor = @subject)");
      params.subject = filter.subject;
    }
    if (filter.resource !== undefined) {
      where.push("resource = @resource");
      params.resource = filter.resource;
    }
    if (filter.since !== undefined) {
      where.push("at >= @since");
      params.since = filter.since;
    }
    if (filter.until !== undefined) {
      where.push("at < @until");
      params.until = filter.until;
    }
    const rows = this.#statement(where).all(params);
    const more = rows.length > size;
    if (more) rows.length = size;
    return { items: rows.map(storedAuditEntryOf), next: more ? encodeToken((rows[size - 1] as Row).seq) : "" };
  }

  #statement(where: readonly string[]): Statement<[Params], Row> {
    const key = where.join(" AND ");
    let statement = this.#shapes.get(key);
    if (statement === undefined) {
      statement = this.#db.prepare<[Params], Row>(
        `SELECT ${CHAINED_AUDIT_COLUMNS}, hash FROM audit WHERE ${key} ORDER BY seq LIMIT @limit`,
      );
      this.#shapes.set(key, statement);
    }
    return statement;
  }
}
