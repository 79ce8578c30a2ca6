// The decision log's own SQLite file (decisions.db), apart from the grants store: it takes a write per batch of
// access checks, so it must never contend with grant writes for the lock, and it can be pruned or lost freely.
import Database from "better-sqlite3";
import type { DecisionRecord } from "../access/model.ts";
import { FailedPrecondition, Unavailable } from "../errors.ts";
import type { ReasonDetail } from "../errors.ts";
import type { Migration } from "./migrations.ts";
import { openWalFile } from "./wal-file.ts";
import { withReadOnlyDatabase } from "./read-only.ts";
import { isSqliteError, unavailableReason } from "./sqlite-errors.ts";

/** The decision log's file name inside the data directory. */
export const DECISIONS_FILE = "decisions.db";

/** At most this many records per `list`, whatever the caller asks. */
export const MAX_DECISIONS_PER_READ = 10_000;

const V1_SCHEMA = `
CREATE TABLE decisions (
  decision_id TEXT PRIMARY KEY,
  at INTEGER NOT NULL,
  caller TEXT NOT NULL,
  subject TEXT NOT NULL,
  resource TEXT NOT NULL,
  action TEXT NOT NULL,
  allow INTEGER NOT NULL CHECK (allow IN (0, 1)),
  reasons TEXT NOT NULL,                   -- JSON array of the policy's reasons
  policy_revision TEXT NOT NULL,
  grant_id TEXT NOT NULL,                  -- '' for a denial or standing access
  token_id TEXT NOT NULL,                  -- '' when the check presented no token
  latency_us INTEGER NOT NULL
) STRICT;
-- Both indexes end in the implicit rowid, so "newest first" (at DESC, rowid DESC) needs no sort, and pruning
-- the oldest rows walks (at) from its start.
CREATE INDEX decisions_by_time ON decisions (at);
CREATE INDEX decisions_by_subject ON decisions (subject, at);
`;

export const DECISION_MIGRATIONS: readonly Migration[] = [{ version: 1, description: "decisions", sql: V1_SCHEMA }];

export interface DecisionFilter {
  readonly subject?: string;
  /** Only records decided at or after this time (ms). */
  readonly since?: number;
  /** Only records decided before this time (ms). */
  readonly until?: number;
  readonly decisionId?: string;
  readonly allow?: boolean;
}

/** What an offline reader (the CLI) may do with the decision log. */
export interface DecisionReads {
  /** Newest first, at most `limit` (capped at MAX_DECISIONS_PER_READ). */
  list(filter: DecisionFilter, limit: number): DecisionRecord[];
  count(): number;
}

export interface DecisionStoreOptions {
  /** How long a batch waits for another process's write lock before failing. Default 5000. */
  readonly busyTimeoutMs?: number;
}

export function openDecisionStore(path: string, opts: DecisionStoreOptions = {}): DecisionStore {
  // Who asked for what, and when, is nobody else's business (0600). NORMAL, not FULL: in WAL mode a power cut
  // may lose the last few committed batches but never corrupts the file. The log is fed from an in-memory queue
  // that a crash loses anyway, and an fsync per batch would only let the queue grow; grants, whose loss
  // re-opens access, stay FULL in their own file.
  const db = openWalFile(path, {
    label: "decision log",
    synchronous: "NORMAL",
    busyTimeoutMs: Math.trunc(opts.busyTimeoutMs ?? 5000),
    migrations: DECISION_MIGRATIONS,
  });
  try {
    return new DecisionStore(db, path);
  } catch (err) {
    db.close();
    throw err;
  }
}

/** Runs `fn` on the decision log at `file` opened read-only (works on a copy in a read-only folder). */
export function withDecisionsReadOnly<T>(file: string, fn: (reads: DecisionReads) => T): T {
  const known = DECISION_MIGRATIONS.length;
  return withReadOnlyDatabase(file, { min: known, max: known }, "the decision log", (db) => {
    let queries: DecisionQueries;
    try {
      queries = new DecisionQueries(db);
    } catch (err) {
      // Another SQLite file (jitgate.db, say) passes the version check but has no decisions table.
      if (isSqliteError(err) && /no such table/.test(err.message))
        throw new FailedPrecondition(`decision log: ${file} holds no decision log`, { cause: err });
      throw decisionStoreError(file, err);
    }
    return fn(guarded(file, queries));
  });
}

export class DecisionStore implements DecisionReads {
  readonly #db: Database.Database;
  readonly #file: string;
  readonly #queries: DecisionQueries;
  readonly #insert: Database.Statement<DecisionParams>;
  readonly #pruneOldest: Database.Statement<[number, number]>;
  /** One BEGIN IMMEDIATE transaction per batch: one fsync-free commit for up to batchSize checks. */
  readonly #insertAll: (records: readonly DecisionRecord[]) => void;

  /** Use openDecisionStore: it sets the pragmas and migrates the schema first. */
  constructor(db: Database.Database, file: string) {
    this.#db = db;
    this.#file = file;
    this.#queries = new DecisionQueries(db);
    // A batch retried after a failure that did commit must not duplicate rows. ON CONFLICT DO NOTHING rather
    // than INSERT OR IGNORE, which would also skip a row breaking NOT NULL or CHECK, silently losing it.
    this.#insert = db.prepare(
      `INSERT INTO decisions (decision_id, at, caller, subject, resource, action, allow, reasons,
         policy_revision, grant_id, token_id, latency_us)
       VALUES (@decision_id, @at, @caller, @subject, @resource, @action, @allow, @reasons,
         @policy_revision, @grant_id, @token_id, @latency_us)
       ON CONFLICT (decision_id) DO NOTHING`,
    );
    this.#pruneOldest = db.prepare("DELETE FROM decisions WHERE rowid IN (SELECT rowid FROM decisions WHERE at < ? ORDER BY at LIMIT ?)");
    this.#insertAll = db.transaction((records: readonly DecisionRecord[]) => {
      for (const r of records) this.#insert.run(decisionParams(r));
    }).immediate;
  }

  insertBatch(records: readonly DecisionRecord[]): void {
    if (records.length === 0) return;
    this.#guard(() => this.#insertAll(records));
  }

  /** Deletes at most `limit` of the oldest records decided before `at`; returns how many it deleted. */
  pruneBefore(at: number, limit: number): number {
    const capped = Math.max(0, Math.trunc(limit) || 0);
    if (capped === 0) return 0;
    return this.#guard(() => this.#pruneOldest.run(at, capped).changes);
  }

  count(): number {
    return this.#guard(() => this.#queries.count());
  }

  list(filter: DecisionFilter, limit: number): DecisionRecord[] {
    return this.#guard(() => this.#queries.list(filter, limit));
  }

  close(): void {
    this.#db.close();
  }

  #guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw decisionStoreError(this.#file, err);
    }
  }
}

interface DecisionParams {
  decision_id: string;
  at: number;
  caller: string;
  subject: string;
  resource: string;
  action: string;
  allow: 0 | 1;
  reasons: string;
  policy_revision: string;
  grant_id: string;
  token_id: string;
  latency_us: number;
}

type DecisionRow = DecisionParams;

function decisionParams(r: DecisionRecord): DecisionParams {
  return {
    decision_id: r.decisionId,
    at: Math.trunc(r.at),
    caller: r.caller,
    subject: r.subject,
    resource: r.resource,
    action: r.action,
    allow: r.allow ? 1 : 0,
    reasons: JSON.stringify(r.reasons),
    policy_revision: r.policyRevision,
    grant_id: r.grantId,
    token_id: r.tokenId,
    latency_us: Math.max(0, Math.round(r.latencyUs)),
  };
}

function decisionOf(row: DecisionRow): DecisionRecord {
  return {
    decisionId: row.decision_id,
    at: row.at,
    caller: row.caller,
    subject: row.subject,
    resource: row.resource,
    action: row.action,
    allow: row.allow === 1,
    reasons: JSON.parse(row.reasons) as ReasonDetail[],
    policyRevision: row.policy_revision,
    grantId: row.grant_id,
    tokenId: row.token_id,
    latencyUs: row.latency_us,
  };
}

const COLUMNS = "decision_id, at, caller, subject, resource, action, allow, reasons, policy_revision, grant_id, token_id, latency_us";
/** The filters every listing applies; NULL means "any". */
const REST = "at >= @since AND at < @until AND (@allow IS NULL OR allow = @allow)";
const NEWEST_FIRST = "ORDER BY at DESC, rowid DESC LIMIT @limit";

interface ListParams {
  id: string | null;
  subject: string | null;
  since: number;
  until: number;
  allow: 0 | 1 | null;
  limit: number;
}

/** The read statements, prepared once per connection: one per index a listing can use. */
class DecisionQueries {
  readonly #byId: Database.Statement<ListParams, DecisionRow>;
  readonly #ofSubject: Database.Statement<ListParams, DecisionRow>;
  readonly #newest: Database.Statement<ListParams, DecisionRow>;
  readonly #count: Database.Statement<[], number>;

  constructor(db: Database.Database) {
    this.#byId = db.prepare(
      `SELECT ${COLUMNS} FROM decisions WHERE decision_id = @id AND (@subject IS NULL OR subject = @subject) AND ${REST} ${NEWEST_FIRST}`,
    );
    this.#ofSubject = db.prepare(`SELECT ${COLUMNS} FROM decisions WHERE subject = @subject AND ${REST} ${NEWEST_FIRST}`);
    this.#newest = db.prepare(`SELECT ${COLUMNS} FROM decisions WHERE ${REST} ${NEWEST_FIRST}`);
    this.#count = db.prepare<[], number>("SELECT count(*) FROM decisions").pluck();
  }

  list(filter: DecisionFilter, limit: number): DecisionRecord[] {
    const capped = Math.min(MAX_DECISIONS_PER_READ, Math.max(0, Math.trunc(limit) || 0));
    if (capped === 0) return [];
    const params: ListParams = {
      id: filter.decisionId ?? null,
      subject: filter.subject ?? null,
      since: filter.since ?? Number.MIN_SAFE_INTEGER,
      until: filter.until ?? Number.MAX_SAFE_INTEGER,
      allow: filter.allow === undefined ? null : filter.allow ? 1 : 0,
      limit: capped,
    };
    const statement = params.id !== null ? this.#byId : params.subject !== null ? this.#ofSubject : this.#newest;
    return statement.all(params).map(decisionOf);
  }

  count(): number {
    return this.#count.get() ?? 0;
  }
}

function guarded(file: string, queries: DecisionQueries): DecisionReads {
  const guard = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      throw decisionStoreError(file, err);
    }
  };
  return { list: (filter, limit) => guard(() => queries.list(filter, limit)), count: () => guard(() => queries.count()) };
}

/** Availability problems become Unavailable naming the file (the operator has to find it); others propagate. */
export function decisionStoreError(file: string, err: unknown): unknown {
  const why = unavailableReason(err);
  return why === undefined ? err : new Unavailable(`decision log: database ${file}: ${why}`, { cause: err });
}
