// The AccessStore on SQLite (better-sqlite3), safe for several jitgate processes sharing one file: WAL, every
// write in a BEGIN IMMEDIATE transaction, short reads, and synchronous=FULL because a lost revocation re-opens access.
// Two connections: reads (Checks, listings, the live-grant index) on one, writes on the other, so a write
// transaction open across the awaits of the async `write` is never seen half-done by a read.
import { statfsSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import type {
  AccessRequest,
  AuditEntry,
  Grant,
  GrantEvent,
  GrantEventKind,
  RequestState,
  Review,
  StoredAuditEntry,
} from "../access/model.ts";
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
} from "../access/ports.ts";
import { AlreadyExists, Unavailable } from "../errors.ts";
import { auditRowHash, GENESIS_HASH, verifyAuditChain, type AuditChainReport } from "./audit-chain.ts";
import { AuditListing } from "./audit-listing.ts";
import { Listings } from "./listing.ts";
import { ActionLists, auditParams, grantEventOf, grantOf, grantParams, liveGrantOf, requestOf, requestParams, requestsOf } from "./rows.ts";
import { reviewOf, reviewParams, sortByDeadline, sortByExpiry, type RequestRow } from "./rows.ts";
import { isLockBusy, isUniqueViolation, rolledBack, storeError, type WriteHealth, WriteTracker } from "./sqlite-errors.ts";
import { prepareStatements, type Statements } from "./statements.ts";
import { SqliteWriterThread } from "./sqlite-writer.ts";
import { openWalFile } from "./wal-file.ts";

/** The store's file name inside the data directory. */
export const STORE_FILE = "jitgate.db";

export interface SqliteStoreOptions {
  /**
   * How long a read, or a write through the synchronous `transaction`, may wait for another connection's lock
   * on this thread before failing with Unavailable. It blocks the thread: the server keeps it short
   * (SERVER_BUSY_TIMEOUT_MS) and writes through `write`. Default 5000, for offline tools and tests.
   */
  readonly busyTimeoutMs?: number;
  /** How long `write` keeps trying for the write lock (asynchronously). Default DEFAULT_WRITE_BUDGET_MS. */
  readonly writeBudgetMs?: number;
  /** The clock for when writes stopped being possible. Default Date.now. */
  readonly now?: () => number;
  /** Set by openServerStore: writes will run on a writer thread, so this thread opens no write connection. */
  readonly writerThread?: boolean;
}

/** Health probes in a row that may find another process holding the write lock before the store counts as unwritable. */
export const BUSY_PROBES_UNTIL_UNWRITABLE = 3;

/**
 * After a write failed on a full disk, the health probe reports writes possible again only once the file system
 * has this much free: room for any lifecycle transaction and the WAL's growth, not just for the probe's own write.
 */
export const WRITE_HEADROOM_BYTES = 1 << 20;

/** How long a lifecycle write keeps trying for the write lock another process holds before it is Unavailable. */
export const DEFAULT_WRITE_BUDGET_MS = 2_000;

/** The server's busy timeout for reads (its writes go through `write`, which never waits for the lock on the thread). */
export const SERVER_BUSY_TIMEOUT_MS = 100;

/** Expiries or timeouts recorded per call when the caller names no limit: a long outage is caught up in steps. */
const DUE_PER_CALL = 1_000;

/** At most this many events per grantEventsAfter call, whatever the caller asks. */
const MAX_EVENTS_PER_READ = 10_000;

export function openSqliteStore(path: string, opts: SqliteStoreOptions = {}): SqliteStore {
  // Grants and the audit trail are nobody else's business (0600); FULL because a lost revocation re-opens access.
  const open = () =>
    openWalFile(path, {
      label: "store",
      synchronous: "FULL",
      busyTimeoutMs: Math.trunc(opts.busyTimeoutMs ?? 5000),
      foreignKeys: true,
    });
  const db = open();
  let writer: Database.Database | undefined;
  try {
    // An in-memory database is one per connection: it reads and writes on the one. So does a store whose writes
    // go to a writer thread (openServerStore), which has the write connection there.
    writer = path === ":memory:" || opts.writerThread === true ? db : open();
    return new SqliteStore(db, { now: opts.now, writeBudgetMs: opts.writeBudgetMs, writer });
  } catch (err) {
    if (writer !== db) writer?.close();
    db.close();
    throw err;
  }
}

/**
 * The server's store: reads on this thread, every write on a writer thread of its own (see sqlite-writer.ts), so
 * the commit's fsync and any wait for another process's lock never hold up a Check.
 */
export async function openServerStore(path: string, opts: SqliteStoreOptions = {}): Promise<SqliteStore> {
  // This thread opens (and migrates) first, so the writer never races a migration.
  const store = openSqliteStore(path, { ...opts, writerThread: true });
  try {
    store.useWriterThread(
      await SqliteWriterThread.start({
        file: path,
        busyTimeoutMs: Math.trunc(opts.busyTimeoutMs ?? 5000),
        writeBudgetMs: opts.writeBudgetMs ?? DEFAULT_WRITE_BUDGET_MS,
      }),
    );
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}

export class SqliteStore implements AccessStore {
  /** Reads. */
  readonly #db: Database.Database;
  readonly #sql: Statements;
  /** Writes (the same connection as #db when the store was built on one). */
  readonly #w: Database.Database;
  readonly #wsql: Statements;
  /** The write transaction `write` holds open across its awaits; every other write waits its turn. */
  #open = false;
  #turn: Promise<unknown> = Promise.resolve();
  readonly #tx: WriteTx;
  /** When set, every write runs there and this thread's own write connection is not used. */
  #thread: SqliteWriterThread | undefined;
  readonly #listings: Listings;
  readonly #auditListing: AuditListing;
  readonly #actionLists = new ActionLists();
  /** Runs a function in BEGIN IMMEDIATE ... COMMIT, or in a savepoint when a transaction is already open. */
  readonly #immediate: (fn: () => unknown) => unknown;
  /** Runs a function in BEGIN DEFERRED ... COMMIT: one consistent snapshot for reads of several statements. */
  readonly #snapshot: (fn: () => unknown) => unknown;
  /** Health probes in a row that found the write lock held by another process. */
  #busyProbes = 0;
  /** Whether writes are possible, from the last real write (and the health probe's). */
  readonly #writes: WriteTracker;
  /** The probe's own write: the header's application_id rewritten unchanged, in an immediate transaction. */
  readonly #probeWrite: () => void;
  /** How many of our transaction functions are running; > 0 while the caller's transaction is open. */
  #depth = 0;
  readonly #writeBudgetMs: number;
  /** The change mark (see changeMark), and SQLite's data_version when it was last looked at. */
  #mark = 0;
  #dataVersion = -1;
  #localCommits = 0;

  /** Use openSqliteStore: it sets the pragmas and migrates the schema first. */
  constructor(
    db: Database.Database,
    options: { readonly now?: (() => number) | undefined; readonly writeBudgetMs?: number; readonly writer?: Database.Database } = {},
  ) {
    this.#db = db;
    this.#w = options.writer ?? db;
    this.#writeBudgetMs = options.writeBudgetMs ?? DEFAULT_WRITE_BUDGET_MS;
    const file = db.memory ? undefined : db.name;
    this.#writes = new WriteTracker({ now: options.now ?? Date.now, dir: file === undefined ? undefined : dirname(file) });
    const w = this.#w;
    this.#probeWrite = w.transaction(() => {
      const id = Math.trunc(Number(w.pragma("application_id", { simple: true })));
      w.pragma(`application_id = ${id}`);
    }).immediate;
    this.#sql = prepareStatements(db);
    this.#wsql = w === db ? this.#sql : prepareStatements(w);
    this.#listings = new Listings(db);
    this.#auditListing = new AuditListing(db);
    this.#immediate = w.transaction((fn: () => unknown) => fn()).immediate;
    this.#snapshot = db.transaction((fn: () => unknown) => fn()).deferred;
    this.#tx = {
      request: (id) => this.#withReviews(this.#wsql, this.#wsql.requestById.get(id)),
      insertRequest: (r) => this.insertRequest(r),
      insertReview: (r) => this.insertReview(r),
      decideRequest: (id, from, change) => this.decideRequest(id, from, change),
      insertGrant: (g) => this.insertGrant(g),
      revokeGrant: (id, at, by, reason) => this.revokeGrant(id, at, by, reason),
      revokeGrantsOf: (subject, at, by, reason) => this.revokeGrantsOf(subject, at, by, reason),
      recordExpiries: (now, limit) => this.recordExpiries(now, limit),
      expirePending: (now, reason, limit) => this.expirePending(now, reason, limit),
      appendAudit: (e) => this.appendAudit(e),
    };
  }

  /** Holds the writer thread still for `ms`, as a slow disk would (fault tests; see SqliteWriterThread.pause). */
  pauseWriter(ms: number): Promise<void> {
    if (this.#thread === undefined) return Promise.reject(new Error("store: no writer thread"));
    return this.#thread.pause(ms);
  }

  /** Hands every write from now on to `thread` (openServerStore does). */
  useWriterThread(thread: SqliteWriterThread): void {
    this.#thread = thread;
  }

  close(): void | Promise<void> {
    const closeConnections = () => {
      if (this.#w !== this.#db && this.#w.open) this.#w.close();
      if (this.#db.open) this.#db.close();
    };
    const thread = this.#thread;
    if (thread === undefined) return closeConnections();
    this.#thread = undefined;
    return thread.close().finally(closeConnections);
  }

  /**
   * Whether writes are possible now, from the writer's own health probe (see probeWrites), run where the writes
   * run: on the writer thread when there is one, so the probe's fsync never holds up this thread.
   */
  async checkWrites(): Promise<WriteHealth> {
    if (this.#thread === undefined) return this.probeWrites();
    try {
      return await this.#thread.probeWrites();
    } catch (err) {
      return { possible: false, reason: err instanceof Error ? err.message : String(err) };
    }
  }

  /** Copies the WAL back into the database file (TRUNCATE also empties the WAL); for a periodic maintenance task. */
  checkpoint(mode: "PASSIVE" | "TRUNCATE" = "PASSIVE"): { busy: boolean; walFrames: number; checkpointed: number } {
    const [row] = this.#guard(() => this.#w.pragma(`wal_checkpoint(${mode})`)) as [{ busy: number; log: number; checkpointed: number }];
    return { busy: row.busy !== 0, walFrames: row.log, checkpointed: row.checkpointed };
  }

  /** Whether writes are possible, as the last write (a user's or the probe's) found; probes nothing. */
  get writes(): WriteHealth {
    return this.#writes.current;
  }

  /**
   * For health checks: whether writes are possible now. Real writes tell (see WriteTracker); the probe adds one
   * tiny committed write of its own (the header's application_id rewritten unchanged: no schema of its own, but a
   * real WAL frame and fsync), so a disk that fills or turns read-only is found, and its recovery seen, without
   * user traffic. An empty write transaction would not do: it succeeds on a full or read-only disk. After a
   * write failed on a full disk, the probe reports writes possible only once WRITE_HEADROOM_BYTES are free, as its
   * own write may land in space the WAL already holds. Never waits for the write lock, so the decision path
   * never stalls behind a probe: another process holding it is normal (it is writing), and only a lock held
   * through BUSY_PROBES_UNTIL_UNWRITABLE probes in a row makes writes not possible.
   */
  probeWrites(): WriteHealth {
    if (!this.#w.open) return { possible: false, reason: "the store is closed" };
    if (this.#w.readonly) return { possible: false, reason: "the database is open read-only" };
    // Inside a caller's transaction the probe would commit or roll back the caller's work.
    if (this.#w.inTransaction || this.#open) return this.#writes.current;
    const last = this.#writes.current;
    if (!last.possible && last.code === "SQLITE_FULL" && !this.#hasHeadroom()) return last;
    const busyTimeout = this.#w.pragma("busy_timeout", { simple: true }) as number;
    this.#w.pragma("busy_timeout = 0");
    try {
      this.#probeWrite();
      this.#busyProbes = 0;
      this.#writes.succeeded();
    } catch (err) {
      if (String((err as { code?: unknown }).code).startsWith("SQLITE_BUSY")) {
        if (++this.#busyProbes >= BUSY_PROBES_UNTIL_UNWRITABLE) {
          const reason = `another process has held the write lock through ${this.#busyProbes} health probes`;
          this.#writes.notPossible(reason, "SQLITE_BUSY");
        }
      } else if (!this.#writes.failed(err)) {
        this.#writes.notPossible("the health probe's write failed");
      }
    } finally {
      this.#w.pragma(`busy_timeout = ${busyTimeout}`);
    }
    return this.#writes.current;
  }

  /** probeWrites, as a yes or no. */
  isWritable(): boolean {
    return this.probeWrites().possible;
  }

  /**
   * `fn` in one immediate transaction, now, on this thread (offline tools and tests; the server writes through
   * `write`). Refused while `write` holds a transaction open: it would land inside that one.
   */
  transaction<T>(fn: () => T): T {
    if (this.#open) throw new Error("store: a synchronous transaction while an asynchronous write is open");
    return this.#write(fn);
  }

  /**
   * `fn` in one immediate transaction on the write connection, its awaits included, never waiting for the write
   * lock on this thread: while another process holds it the store tries again (backoff with jitter, 2 ms
   * doubling to 100 ms) so the event loop answers other calls meanwhile; past `budgetMs` the write is Unavailable
   * ("the database is locked by another process"). Writes of this process take turns.
   */
  write<T>(fn: (tx: WriteTx) => Promise<T>, budgetMs = this.#writeBudgetMs): Promise<T> {
    const thread = this.#thread;
    if (thread !== undefined) {
      return thread.write(fn, budgetMs).then((result) => {
        // Committed on the writer's connection: the live-grant index hears of it from this process's mark at once.
        this.#mark++;
        this.#localCommits++;
        return result;
      });
    }
    const run = this.#turn.then(() => this.#writeNow(fn, budgetMs));
    this.#turn = run.catch(() => undefined);
    return run;
  }

  async #writeNow<T>(fn: (tx: WriteTx) => Promise<T>, budgetMs: number): Promise<T> {
    await this.#begin(budgetMs);
    this.#open = true;
    this.#depth++;
    let result: T;
    try {
      result = await fn(this.#tx);
      // SQLite may have rolled the transaction back on its own (SQLITE_FULL, SQLITE_BUSY).
      if (!this.#w.inTransaction) throw rolledBack();
      this.#guard(() => this.#w.exec("COMMIT"));
    } catch (err) {
      if (this.#w.inTransaction) this.#w.exec("ROLLBACK");
      this.#writes.failed(err);
      throw err;
    } finally {
      this.#depth--;
      this.#open = false;
    }
    this.#mark++;
    this.#localCommits++;
    this.#writes.succeeded();
    return result;
  }

  /** BEGIN IMMEDIATE on the write connection, trying again while another connection holds the lock. */
  async #begin(budgetMs: number): Promise<void> {
    const deadline = performance.now() + budgetMs;
    for (let wait = 2; ; wait = Math.min(100, wait * 2)) {
      const busyTimeout = this.#w.pragma("busy_timeout", { simple: true }) as number;
      this.#w.pragma("busy_timeout = 0");
      try {
        this.#guard(() => this.#w.exec("BEGIN IMMEDIATE"));
        return;
      } catch (err) {
        this.#writes.failed(err);
        if (!isLockBusy(err)) throw err;
        const left = deadline - performance.now();
        if (left <= 0) throw new Unavailable("store: the database is locked by another process; try again", { cause: err });
        await new Promise((resolve) => setTimeout(resolve, Math.min(left, wait * (0.5 + Math.random()))));
      } finally {
        if (this.#w.open) this.#w.pragma(`busy_timeout = ${busyTimeout}`);
      }
    }
  }

  // ---- reads

  request(id: string): AccessRequest | undefined {
    return this.#read(() => this.#withReviews(this.#sql, this.#sql.requestById.get(id)));
  }

  requestByClientKey(requester: string, clientKey: string): AccessRequest | undefined {
    return this.#read(() => this.#withReviews(this.#sql, this.#sql.requestByClientKey.get(requester, clientKey)));
  }

  requests(filter: RequestFilter, page: Page): PageOf<AccessRequest> {
    return this.#read(() => {
      const { rows, next } = this.#listings.requests(filter, page);
      return { items: this.#requestsWithReviews(this.#sql, rows), next };
    });
  }

  pendingRequestsOf(requester: string, now: number): readonly PendingSummary[] {
    const rows = this.#guard(() => this.#sql.pendingRequestsOf.all(requester, now));
    return rows.map((r) => ({ id: r.id, resource: r.resource, actions: JSON.parse(r.actions) as string[] }));
  }

  grant(id: string): Grant | undefined {
    const row = this.#guard(() => this.#sql.grantById.get(id));
    return row === undefined ? undefined : grantOf(row);
  }

  grants(filter: GrantFilter, page: Page): PageOf<Grant> {
    const { rows, next } = this.#guard(() => this.#listings.grants(filter, page));
    return { items: rows.map(grantOf), next };
  }

  liveGrantsOf(subject: string, now: number): readonly Grant[] {
    return this.#guard(() => this.#sql.liveGrantsOf.all(subject, now)).map(grantOf);
  }

  /** The subject's live grants on one resource, in one indexed query (Checks read the live-grant index instead). */
  liveGrantsOn(subject: string, resource: string, now: number): readonly LiveGrant[] {
    const rows = this.#guard(() => this.#sql.liveGrantsOn.all(subject, resource, now));
    return rows.map((row) => liveGrantOf(row, this.#actionLists));
  }

  liveGrantSnapshot(now: number): { seq: number; grants: readonly Grant[] } {
    return this.#read(() => ({ seq: this.#sql.latestGrantEventSeq.get() ?? 0, grants: this.#sql.allLiveGrants.all(now).map(grantOf) }));
  }

  /**
   * Differs from every earlier answer once a transaction has committed since: by another connection (SQLite's
   * data_version moved) or by this one (counted in #write). One pragma, no table read.
   */
  changeMark(): number {
    const version = this.#guard(() => this.#sql.dataVersion.get()) ?? 0;
    if (version !== this.#dataVersion) {
      this.#dataVersion = version;
      this.#mark++;
    }
    return this.#mark;
  }

  localChangeMark(): number {
    return this.#localCommits;
  }

  grantEventsAfter(after: number, limit: number): readonly GrantEvent[] {
    const capped = Math.min(MAX_EVENTS_PER_READ, Math.max(0, Math.trunc(limit) || 0));
    if (capped === 0) return [];
    return this.#guard(() => this.#sql.grantEventsAfter.all(after, capped)).map(grantEventOf);
  }

  revocationsInForceAfter(now: number): number {
    return this.#read(() => {
      const first = this.#sql.firstRevocationInForce.get(now);
      return first === null || first === undefined ? (this.#sql.latestGrantEventSeq.get() ?? 0) : first - 1;
    });
  }

  latestGrantEventSeq(): number {
    return this.#guard(() => this.#sql.latestGrantEventSeq.get()) ?? 0;
  }

  auditEntries(filter: AuditFilter, page: Page): PageOf<StoredAuditEntry> {
    return this.#read(() => this.#auditListing.page(filter, page));
  }

  /** How many grants are live at `now` (for the active-grants gauge). */
  activeGrantCount(now: number): number {
    return this.#guard(() => this.#sql.activeGrantCount.get(now)) ?? 0;
  }

  nextDue(): number | undefined {
    return this.#guard(() => this.#sql.nextDue.get()) ?? undefined;
  }

  // ---- writes

  insertRequest(request: AccessRequest): void {
    try {
      this.#write(() => this.#wsql.insertRequest.run(requestParams(request)));
    } catch (err) {
      // The only UNIQUE index on requests besides its primary key is (requester, client_key).
      if (isUniqueViolation(err)) {
        throw new AlreadyExists(`request with client key ${JSON.stringify(request.clientKey)} already exists`, { cause: err });
      }
      throw err;
    }
  }

  insertReview(review: Review): void {
    this.#write(() => this.#wsql.insertReview.run(reviewParams(review)));
  }

  decideRequest(
    id: string,
    from: RequestState,
    change: { state: RequestState; decidedAt: number; stateReason: string; grantId?: string },
  ): boolean {
    const params = {
      id,
      from,
      state: change.state,
      decided_at: change.decidedAt,
      state_reason: change.stateReason,
      grant_id: change.grantId ?? null,
    };
    return this.#write(() => this.#wsql.decideRequest.run(params).changes === 1);
  }

  insertGrant(grant: Grant): GrantEvent {
    return this.#write(() => {
      this.#wsql.insertGrant.run(grantParams(grant));
      return this.#appendEvent("CREATED", grant.createdAt, grant);
    });
  }

  revokeGrant(id: string, at: number, by: string, reason: string): GrantEvent | undefined {
    return this.#write(() => {
      const [row] = this.#wsql.revokeLiveGrant.all({ id, at, by, reason });
      return row === undefined ? undefined : this.#appendEvent("REVOKED", at, grantOf(row));
    });
  }

  revokeGrantsOf(subject: string, at: number, by: string, reason: string): readonly GrantEvent[] {
    return this.#write(() => {
      const rows = this.#wsql.revokeLiveGrantsOf.all({ subject, at, by, reason });
      return sortByExpiry(rows).map((row) => this.#appendEvent("REVOKED", at, grantOf(row)));
    });
  }

  recordExpiries(now: number, limit = DUE_PER_CALL): readonly GrantEvent[] {
    return this.#write(() => {
      const rows = this.#wsql.markDueExpiries.all(now, limit);
      // Each event carries the moment the grant really expired, not when the sweep noticed.
      return sortByExpiry(rows).map((row) => this.#appendEvent("EXPIRED", row.expires_at, grantOf(row)));
    });
  }

  expirePending(now: number, stateReason: string, limit = DUE_PER_CALL): readonly AccessRequest[] {
    return this.#write(() => {
      const rows = this.#wsql.expireDuePending.all(stateReason, now, limit);
      return this.#requestsWithReviews(this.#wsql, sortByDeadline(rows));
    });
  }

  /**
   * Appends a row chained to the current last one. Insert-then-seal inside one immediate transaction: the write
   * lock is held from reading the head to sealing the new row, so no other process can append in between, and
   * the seq the hash covers is the one AUTOINCREMENT really gave (not a guess of last + 1).
   */
  appendAudit(entry: AuditEntry): void {
    this.#write(() => {
      const prevHash = this.#wsql.auditHead.get()?.hash ?? GENESIS_HASH;
      const seq = Number(this.#wsql.insertAudit.run({ ...auditParams(entry), prev_hash: prevHash }).lastInsertRowid);
      // Hashed as read back, so the hash covers exactly what the verifier will read.
      const row = this.#wsql.auditRow.get(seq);
      if (row === undefined) throw new Error(`store: audit row ${seq} vanished inside its transaction`);
      this.#wsql.sealAudit.run(auditRowHash(row), seq);
    });
  }

  /** The newest audit entry's seq and hash (what a checkpoint signs); undefined for an empty trail. */
  auditHead(): { seq: number; hash: string } | undefined {
    const row = this.#guard(() => this.#sql.auditHead.get());
    return row?.hash ? { seq: row.seq, hash: row.hash } : undefined;
  }

  /** Walks the audit trail's hash chain from one snapshot; see verifyAuditChain. */
  verifyAuditChain(): AuditChainReport {
    return this.#guard(() => verifyAuditChain(this.#db));
  }

  // ---- plumbing

  #appendEvent(kind: GrantEventKind, at: number, grant: Grant): GrantEvent {
    const seq = Number(this.#wsql.insertGrantEvent.run(grant.id, kind, at).lastInsertRowid);
    return { seq, kind, at, grant };
  }

  #withReviews(sql: Statements, row: RequestRow | undefined): AccessRequest | undefined {
    return row === undefined ? undefined : requestOf(row, sql.reviewsOfRequest.all(row.id).map(reviewOf));
  }

  /** The requests of `rows` with their reviews, loaded in one query. */
  #requestsWithReviews(sql: Statements, rows: readonly RequestRow[]): AccessRequest[] {
    if (rows.length === 0) return [];
    return requestsOf(rows, sql.reviewsOfRequests.all(JSON.stringify(rows.map((r) => r.id))));
  }

  /** A write: its own immediate transaction, or a savepoint inside the caller's `transaction`. */
  #write<T>(fn: () => T): T {
    if (this.#thread !== undefined) throw new Error("store: this store writes on its writer thread, through write()");
    // SQLite may have rolled the caller's transaction back (SQLITE_FULL, SQLITE_BUSY); writing now would
    // autocommit outside it, so refuse until the caller's transaction unwinds.
    if (this.#depth > 0 && !this.#w.inTransaction) throw rolledBack();
    const outermost = this.#depth === 0;
    let result: T;
    try {
      result = this.#guard(
        () =>
          this.#immediate(() => {
            this.#depth++;
            try {
              const inner = fn();
              if (!this.#w.inTransaction) throw rolledBack();
              return inner;
            } finally {
              this.#depth--;
            }
          }) as T,
      );
    } catch (err) {
      this.#writes.failed(err);
      throw err;
    }
    // Only a commit says writes are possible; a savepoint released inside a caller's transaction is not one yet.
    if (outermost) {
      this.#mark++;
      this.#localCommits++;
      this.#writes.succeeded();
    }
    return result;
  }

  /** Whether the file system holding the store has WRITE_HEADROOM_BYTES free (true when it cannot tell). */
  #hasHeadroom(): boolean {
    if (this.#db.memory) return true;
    try {
      const fs = statfsSync(dirname(this.#db.name));
      return fs.bavail * fs.bsize >= WRITE_HEADROOM_BYTES;
    } catch {
      return true;
    }
  }

  /** A read of several statements, from one snapshot. */
  #read<T>(fn: () => T): T {
    return this.#guard(() => this.#snapshot(fn) as T);
  }

  #guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw storeError(err);
    }
  }
}
