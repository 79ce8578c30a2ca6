// The AccessStore on PostgreSQL, for several jitgate replicas sharing one database. Every lifecycle write of every
// replica runs under one transaction-level advisory lock, which keeps the audit hash chain one chain, makes
// grant-event seqs commit in seq order (a reader tailing by seq never skips one that commits late), and makes a
// raced decision or expiry one. Reads are single statements (or one REPEATABLE READ snapshot) on a pool of
// their own, so a write waiting for the lock never holds up a Check. synchronous_commit stays on: a lost
// revocation re-opens access.
import type { Pool, QueryResultRow } from "pg";
import type { AccessRequest, Grant, GrantEvent, StoredAuditEntry } from "../../access/model.ts";
import type {
  AccessStore,
  AuditFilter,
  GrantFilter,
  LiveGrant,
  Page,
  PageOf,
  PendingSummary,
  RequestFilter,
  WriteTx,
} from "../../access/ports.ts";
import type { AuditChainReport, ChainedAuditRow } from "../audit-chain.ts";
import { ChainWalk } from "./chain-walk.ts";
import { failureCode, PgErrors, storeLocation, unavailableReason } from "./errors.ts";
import { PgWriteHealth, type WriteHealth } from "./health.ts";
import { auditListing, auditPageOf, grantListing, pageOf, requestListing } from "./listing.ts";
import { migratePg } from "./migrations.ts";
import { openPool, standaloneClient } from "./pool.ts";
import { grantEventOf, grantOf, liveGrantOf, requestOf, type PgGrantEventRow, type PgGrantRow, type PgRequestRow } from "./rows.ts";
import { SQL, type Statement } from "./statements.ts";
import { inSnapshot, WriteQueue } from "./transactions.ts";

export { GRANT_EVENTS_CHANNEL } from "./statements.ts";
export { PG_SCHEMA_VERSION } from "./migrations.ts";
export { WRITE_LOCK } from "./locks.ts";

/** How long a lifecycle write keeps trying for the write lock another writer holds before it is Unavailable. */
export const DEFAULT_WRITE_BUDGET_MS = 2_000;

/** At most this many events per grantEventsAfter call, whatever the caller asks. */
const MAX_EVENTS_PER_READ = 10_000;

/** Audit rows per statement while the chain is verified (all in one snapshot). */
const CHAIN_PAGE = 1_000;

export interface PgStoreOptions {
  /** How long `write` waits for the write lock (and a connection) before it is Unavailable. Default DEFAULT_WRITE_BUDGET_MS. */
  readonly writeBudgetMs?: number;
  /** How long opening a connection may take. Default 5000. */
  readonly connectTimeoutMs?: number;
  /** PostgreSQL's statement_timeout for every statement (0: none). Default 5000. */
  readonly statementTimeoutMs?: number;
  /** Connections for reads. Default 10 (writes have one of their own). */
  readonly maxReadConnections?: number;
  /**
   * A write transaction left idle this long (a process frozen while it holds the write lock) is ended by
   * PostgreSQL, so the lock cannot be held for ever. Default 15000.
   */
  readonly writeIdleTimeoutMs?: number;
  /** How long opening waits for another jitgate migrating the same database. Default 60000. */
  readonly migrationLockWaitMs?: number;
  /** The clock for when writes stopped being possible. Default Date.now. */
  readonly now?: () => number;
  /** Told about an idle connection's error (the pool has already dropped the connection). Default: ignored. */
  readonly onIdleError?: (err: Error) => void;
}

/** Migrates the database at `url` (waiting for another replica doing the same) and opens the store on it. */
export async function openPgStore(url: string, opts: PgStoreOptions = {}): Promise<PgStore> {
  const location = storeLocation(url);
  const errors = new PgErrors(location);
  const client = standaloneClient(url, opts.connectTimeoutMs ?? 5_000);
  client.on("error", () => undefined); // a failure reaches the query in flight; the client is ended below
  try {
    await client.connect();
    await migratePg(client, location, { lockWaitMs: opts.migrationLockWaitMs ?? 60_000 });
  } catch (err) {
    throw errors.of(err);
  } finally {
    await client.end().catch(() => undefined);
  }
  return new PgStore(url, opts);
}

export class PgStore implements AccessStore {
  readonly #errors: PgErrors;
  readonly #reads: Pool;
  /** One connection: this process's writes take turns on it, so they never take connections from reads. */
  readonly #writes: Pool;
  readonly #writeQueue: WriteQueue;
  readonly #writeBudgetMs: number;
  readonly #health: PgWriteHealth;
  #closing: Promise<void> | undefined;

  /** Use openPgStore: it migrates the schema first. */
  constructor(url: string, opts: PgStoreOptions = {}) {
    this.#errors = new PgErrors(storeLocation(url));
    this.#writeBudgetMs = opts.writeBudgetMs ?? DEFAULT_WRITE_BUDGET_MS;
    this.#health = new PgWriteHealth(opts.now ?? Date.now);
    const statementTimeoutMs = opts.statementTimeoutMs ?? 5_000;
    const connectTimeoutMs = opts.connectTimeoutMs ?? 5_000;
    const pool = { url, connectTimeoutMs, statementTimeoutMs, onIdleError: opts.onIdleError ?? (() => undefined) };
    // A socket that stops answering (no RST, no FIN) fails a statement a little after PostgreSQL would have.
    const queryTimeoutMs = statementTimeoutMs > 0 ? statementTimeoutMs + connectTimeoutMs : 0;
    this.#reads = openPool({ ...pool, max: opts.maxReadConnections ?? 10, queryTimeoutMs });
    this.#writes = openPool({ ...pool, max: 1, queryTimeoutMs });
    const writeIdleTimeoutMs = opts.writeIdleTimeoutMs ?? 15_000;
    this.#writeQueue = new WriteQueue(this.#writes, this.#errors, this.#health, {
      statementTimeoutMs,
      connectTimeoutMs,
      writeIdleTimeoutMs,
    });
  }

  /** Ends both pools once the connections in use are given back. */
  close(): Promise<void> {
    this.#closing ??= Promise.all([this.#reads.end(), this.#writes.end()]).then(() => undefined);
    return this.#closing;
  }

  // ---- writes

  /**
   * `fn` in one transaction holding the write lock of every replica (see WriteQueue.run); Unavailable when the
   * lock or a connection cannot be had within `budgetMs`.
   */
  write<T>(fn: (tx: WriteTx) => Promise<T>, budgetMs = this.#writeBudgetMs): Promise<T> {
    return this.#writeQueue.run(fn, budgetMs);
  }

  /** Whether writes are possible, as the last write (a user's or the probe's) found; probes nothing. */
  get writes(): WriteHealth {
    return this.#health.current;
  }

  /**
   * For health checks: one tiny committed write of its own (the heartbeat row), outside the write lock, so a
   * database that went read-only, ran out of disk or cannot be reached is found, and its recovery seen.
   */
  async checkWrites(): Promise<WriteHealth> {
    if (this.#closing !== undefined) return { possible: false, reason: "the store is closed" };
    try {
      await this.#reads.query({ ...SQL.heartbeat, values: [] });
      this.#health.succeeded();
    } catch (err) {
      this.#health.notPossible(unavailableReason(err) ?? "the health probe's write failed", failureCode(err));
    }
    return this.#health.current;
  }

  // ---- reads

  async request(id: string): Promise<AccessRequest | undefined> {
    const [row] = await this.#rows<PgRequestRow>(SQL.requestById, [id]);
    return row === undefined ? undefined : requestOf(row);
  }

  async requestByClientKey(requester: string, clientKey: string): Promise<AccessRequest | undefined> {
    const [row] = await this.#rows<PgRequestRow>(SQL.requestByClientKey, [requester, clientKey]);
    return row === undefined ? undefined : requestOf(row);
  }

  async requests(filter: RequestFilter, page: Page): Promise<PageOf<AccessRequest>> {
    const query = requestListing(filter, page);
    const { rows, next } = pageOf(await this.#rows<PgRequestRow>(query.statement, query.values), query.size);
    return { items: rows.map(requestOf), next };
  }

  async pendingRequestsOf(requester: string, now: number): Promise<readonly PendingSummary[]> {
    return this.#rows<{ id: string; resource: string; actions: string[] }>(SQL.pendingRequestsOf, [requester, now]);
  }

  async grant(id: string): Promise<Grant | undefined> {
    const [row] = await this.#rows<PgGrantRow>(SQL.grantById, [id]);
    return row === undefined ? undefined : grantOf(row);
  }

  async grants(filter: GrantFilter, page: Page): Promise<PageOf<Grant>> {
    const query = grantListing(filter, page);
    const { rows, next } = pageOf(await this.#rows<PgGrantRow>(query.statement, query.values), query.size);
    return { items: rows.map(grantOf), next };
  }

  async liveGrantsOf(subject: string, now: number): Promise<readonly Grant[]> {
    return (await this.#rows<PgGrantRow>(SQL.liveGrantsOf, [subject, now])).map(grantOf);
  }

  /** The subject's live grants on one resource, from the covering index (tools and benches; Checks read the live-grant index). */
  async liveGrantsOn(subject: string, resource: string, now: number): Promise<readonly LiveGrant[]> {
    return (await this.#rows<{ id: string; actions: string[]; expires_at: number }>(SQL.liveGrantsOn, [subject, resource, now])).map(
      liveGrantOf,
    );
  }

  async grantEventsAfter(after: number, limit: number): Promise<readonly GrantEvent[]> {
    const capped = Math.min(MAX_EVENTS_PER_READ, Math.max(0, Math.trunc(limit) || 0));
    if (capped === 0) return [];
    return (await this.#rows<PgGrantEventRow>(SQL.grantEventsAfter, [after, capped])).map(grantEventOf);
  }

  /** The live grants and the latest seq from one REPEATABLE READ snapshot: no event is in one and not the other. */
  liveGrantSnapshot(now: number): Promise<{ seq: number; grants: readonly Grant[] }> {
    return inSnapshot(this.#reads, this.#errors, async (query) => {
      const [latest] = await query<{ seq: number }>(SQL.latestGrantEventSeq, []);
      const grants = (await query<PgGrantRow>(SQL.allLiveGrants, [now])).map(grantOf);
      return { seq: latest?.seq ?? 0, grants };
    });
  }

  async latestGrantEventSeq(): Promise<number> {
    const [row] = await this.#rows<{ seq: number }>(SQL.latestGrantEventSeq, []);
    return row?.seq ?? 0;
  }

  async revocationsInForceAfter(now: number): Promise<number> {
    const [row] = await this.#rows<{ seq: number }>(SQL.revocationsInForceAfter, [now]);
    return row?.seq ?? 0;
  }

  async auditEntries(filter: AuditFilter, page: Page): Promise<PageOf<StoredAuditEntry>> {
    const query = auditListing(filter, page);
    return auditPageOf(await this.#rows(query.statement, query.values), query.size);
  }

  async nextDue(): Promise<number | undefined> {
    const [row] = await this.#rows<{ due: number | null }>(SQL.nextDue, []);
    return row?.due ?? undefined;
  }

  /** How many grants are live at `now` (for the active-grants gauge). */
  async activeGrantCount(now: number): Promise<number> {
    const [row] = await this.#rows<{ n: number }>(SQL.activeGrantCount, [now]);
    return row?.n ?? 0;
  }

  /** The newest audit entry's seq and hash (what a checkpoint signs); undefined for an empty trail. */
  async auditHead(): Promise<{ seq: number; hash: string } | undefined> {
    const [row] = await this.#rows<{ seq: number; hash: string | null }>(SQL.auditHead, []);
    return row?.hash ? { seq: row.seq, hash: row.hash } : undefined;
  }

  /** Walks the audit trail's hash chain in seq order, from one snapshot; the report is the SQLite store's. */
  verifyAuditChain(): Promise<AuditChainReport> {
    return inSnapshot(this.#reads, this.#errors, async (query) => {
      const walk = new ChainWalk();
      for (let after = 0; ;) {
        const rows = await query<ChainedAuditRow & { hash: string | null }>(SQL.auditChainPage, [after, CHAIN_PAGE]);
        for (const row of rows) if (!walk.next(row)) return walk.report();
        if (rows.length < CHAIN_PAGE) return walk.report();
        after = (rows[rows.length - 1] as ChainedAuditRow).seq;
      }
    });
  }

  // ---- plumbing

  async #rows<R extends QueryResultRow>(statement: Statement, values: unknown[]): Promise<R[]> {
    try {
      return (await this.#reads.query<R>({ name: statement.name, text: statement.text, values })).rows;
    } catch (err) {
      throw this.#errors.of(err);
    }
  }
}
