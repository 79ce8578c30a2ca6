// The decision log on PostgreSQL, for replicas sharing one database: each batch is one INSERT (a few in one
// transaction for a very large batch) on a small pool of the log's own, with statement timeouts, so a slow decision
// write never takes a connection from the lifecycle store. pg is asynchronous: no thread of its own is needed.
import { DatabaseError, type Pool } from "pg";
import type { DecisionRecord } from "../../access/model.ts";
import type { DecisionWriter } from "../../decisions/decision-log.ts";
import { JitgateError, Unavailable } from "../../errors.ts";
import { batchValues, DECISION_SQL } from "./decision-statements.ts";
import { migrateDecisions } from "./decision-migrations.ts";
import { storeLocation, unavailableReason } from "./errors.ts";
import { checkout, openPool, standaloneClient } from "./pool.ts";

/** Rows per INSERT: a batch larger than this is split, all its statements in one transaction. */
export const ROWS_PER_STATEMENT = 5_000;

export interface PgDecisionStoreOptions {
  /** How long opening a connection may take. Default 5000. */
  readonly connectTimeoutMs?: number;
  /** PostgreSQL's statement_timeout for every statement (0: none). Default 5000. */
  readonly statementTimeoutMs?: number;
  /** Connections of the log's own: a batch and a prune at a time. Default 2. */
  readonly maxConnections?: number;
  /** How long opening waits for another replica migrating the decision schema. Default 60000. */
  readonly migrationLockWaitMs?: number;
  /** Told about an idle connection's error (the pool has already dropped the connection). Default: ignored. */
  readonly onIdleError?: (err: Error) => void;
}

/** Migrates the decision schema of the database at `url` (waiting for another replica doing the same) and opens the log's writer on it. */
export async function openPgDecisionStore(url: string, opts: PgDecisionStoreOptions = {}): Promise<PgDecisionStore> {
  const location = storeLocation(url);
  const client = standaloneClient(url, opts.connectTimeoutMs ?? 5_000);
  client.on("error", () => undefined); // a failure reaches the query in flight; the client is ended below
  try {
    await client.connect();
    await migrateDecisions(client, location, { lockWaitMs: opts.migrationLockWaitMs ?? 60_000 });
  } catch (err) {
    throw decisionWriteError(location, err);
  } finally {
    await client.end().catch(() => undefined);
  }
  return new PgDecisionStore(url, opts);
}

export class PgDecisionStore implements DecisionWriter {
  readonly #location: string;
  readonly #pool: Pool;
  #closing: Promise<void> | undefined;

  /** Use openPgDecisionStore: it migrates the schema first. */
  constructor(url: string, opts: PgDecisionStoreOptions = {}) {
    this.#location = storeLocation(url);
    const statementTimeoutMs = opts.statementTimeoutMs ?? 5_000;
    const connectTimeoutMs = opts.connectTimeoutMs ?? 5_000;
    this.#pool = openPool({
      url,
      max: opts.maxConnections ?? 2,
      connectTimeoutMs,
      statementTimeoutMs,
      // A socket that stops answering (no RST, no FIN) fails a statement a little after PostgreSQL would have.
      queryTimeoutMs: statementTimeoutMs > 0 ? statementTimeoutMs + connectTimeoutMs : 0,
      onIdleError: opts.onIdleError ?? (() => undefined),
    });
  }

  /**
   * Commits every record or none. Rejects with Unavailable when PostgreSQL cannot take the write now (the log
   * retries the batch); with the driver's error when it refuses a record (bad data), so only that one is dropped.
   */
  async insertBatch(records: readonly DecisionRecord[]): Promise<void> {
    if (records.length === 0) return;
    this.#open();
    if (records.length <= ROWS_PER_STATEMENT) {
      await this.#guard(() => this.#pool.query({ ...DECISION_SQL.insertBatch, values: batchValues(records) }));
      return;
    }
    await this.#inTransaction(async (query) => {
      for (let from = 0; from < records.length; from += ROWS_PER_STATEMENT)
        await query(batchValues(records.slice(from, from + ROWS_PER_STATEMENT)));
    });
  }

  /** Deletes at most `limit` of the oldest records decided before `at`; resolves with how many it deleted. */
  async pruneBefore(at: number, limit: number): Promise<number> {
    const capped = Math.max(0, Math.trunc(limit) || 0);
    if (capped === 0) return 0;
    this.#open();
    // `at` is whole ms: `at < 1.5` is `at < 2`.
    const cutoff = Math.min(Number.MAX_SAFE_INTEGER, Math.max(Number.MIN_SAFE_INTEGER, Math.ceil(at)));
    const result = await this.#guard(() => this.#pool.query({ ...DECISION_SQL.pruneOldest, values: [cutoff, capped] }));
    return result.rowCount ?? 0;
  }

  /** Ends the pool once the statements in flight are answered. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#pool.end();
    return this.#closing;
  }

  #open(): void {
    if (this.#closing !== undefined) throw new Unavailable(`decision log: database ${this.#location}: the writer is closed`);
  }

  async #inTransaction(fn: (insert: (values: unknown[][]) => Promise<unknown>) => Promise<void>): Promise<void> {
    const { client, release } = await this.#guard(() => checkout(this.#pool));
    let clean = true;
    try {
      await this.#guard(async () => {
        await client.query("BEGIN");
        await fn((values) => client.query({ ...DECISION_SQL.insertBatch, values }));
      });
      try {
        await client.query("COMMIT");
      } catch (err) {
        // Idempotent by decision id: a retry after a COMMIT whose answer was lost adds nothing twice.
        throw decisionWriteError(this.#location, err, " while committing; the batch may or may not have been recorded");
      }
    } catch (err) {
      clean = await client.query("ROLLBACK").then(
        () => true,
        () => false,
      );
      throw err;
    } finally {
      release(!clean);
    }
  }

  async #guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw decisionWriteError(this.#location, err);
    }
  }
}

/**
 * What a failed write means to the log. A record PostgreSQL refuses (a data exception, class 22, or a broken
 * constraint, class 23) and a record that cannot be encoded propagate as they are: the log drops that record
 * alone. Every other failure of the database (unreachable, read-only, a dropped table, a revoked privilege) is
 * Unavailable, so the log keeps the batch queued and retries it instead of dropping records that are not at fault.
 */
export function decisionWriteError(location: string, err: unknown, during = ""): unknown {
  if (err instanceof JitgateError) return err;
  const why = unavailableReason(err);
  if (why !== undefined) return new Unavailable(`decision log: database ${location}: ${why}${during}`, { cause: err });
  if (err instanceof DatabaseError && err.code !== undefined && !["22", "23"].includes(err.code.slice(0, 2)))
    return new Unavailable(`decision log: database ${location}: PostgreSQL refused the write (SQLSTATE ${err.code})${during}`, {
      cause: err,
    });
  return err;
}
