// The store's two kinds of transaction. Writes: one at a time per process on a connection of their own, each
// holding jitgate's advisory write lock from BEGIN to COMMIT, waiting for it at most the write budget. Snapshot
// reads: several statements in one REPEATABLE READ, read-only transaction.
import type { Pool, PoolClient, QueryResultRow } from "pg";
import type { WriteTx } from "../../access/ports.ts";
import { Unavailable } from "../../errors.ts";
import type { PgErrors } from "./errors.ts";
import type { PgWriteHealth } from "./health.ts";
import { WRITE_LOCK } from "./locks.ts";
import { checkout, checkoutWithin } from "./pool.ts";
import type { Statement } from "./statements.ts";
import { PgWriteTx } from "./write-tx.ts";

export interface WriteSettings {
  readonly statementTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /** idle_in_transaction_session_timeout inside a write: a frozen process cannot hold the write lock for ever. */
  readonly writeIdleTimeoutMs: number;
}

export class WriteQueue {
  readonly #pool: Pool;
  readonly #errors: PgErrors;
  readonly #health: PgWriteHealth;
  readonly #settings: WriteSettings;
  #turn: Promise<unknown> = Promise.resolve();

  /** `pool` is the writes' own (one connection): waiting writes never take connections from reads. */
  constructor(pool: Pool, errors: PgErrors, health: PgWriteHealth, settings: WriteSettings) {
    this.#pool = pool;
    this.#errors = errors;
    this.#health = health;
    this.#settings = settings;
  }

  /**
   * `fn` in one transaction, once this process's earlier writes are done: BEGIN, the write lock (waiting at most
   * what is left of `budgetMs` after getting a connection, then Unavailable), `fn`, COMMIT; ROLLBACK when
   * anything throws. The budget starts when the write's turn comes, as the SQLite store's does.
   */
  run<T>(fn: (tx: WriteTx) => Promise<T>, budgetMs: number): Promise<T> {
    const run = this.#turn.then(() => this.#runNow(fn, budgetMs));
    this.#turn = run.catch(() => undefined);
    return run;
  }

  async #runNow<T>(fn: (tx: WriteTx) => Promise<T>, budgetMs: number): Promise<T> {
    const deadline = performance.now() + budgetMs;
    let lease;
    try {
      lease = await checkoutWithin(this.#pool, budgetMs, () => this.#noConnection(budgetMs));
    } catch (err) {
      const mapped = this.#errors.of(err);
      this.#health.failed(mapped);
      throw mapped;
    }
    const { client, release } = lease;
    const tx = new PgWriteTx(client, this.#errors);
    let clean = true;
    try {
      await this.#begin(client, deadline);
      const result = await fn(tx);
      tx.assertIntact();
      await this.#commit(client);
      this.#health.succeeded();
      return result;
    } catch (err) {
      this.#health.failed(tx.failure ?? err);
      clean = await client.query("ROLLBACK").then(
        () => true,
        () => false,
      );
      throw err;
    } finally {
      release(!clean);
    }
  }

  /** BEGIN and the write lock, in one round trip, with the lock wait bounded by what is left of the budget. */
  async #begin(client: PoolClient, deadline: number): Promise<void> {
    const left = Math.max(1, Math.ceil(deadline - performance.now()));
    // The statement that waits for the lock must be allowed to wait that long.
    const { statementTimeoutMs, connectTimeoutMs, writeIdleTimeoutMs } = this.#settings;
    const statementMs = statementTimeoutMs > 0 ? Math.max(statementTimeoutMs, left + 1_000) : 0;
    const text =
      "BEGIN; " +
      `SET LOCAL lock_timeout = ${left}; ` +
      `SET LOCAL statement_timeout = ${statementMs}; ` +
      `SET LOCAL idle_in_transaction_session_timeout = ${writeIdleTimeoutMs}; ` +
      `SELECT pg_advisory_xact_lock(${WRITE_LOCK.space}, ${WRITE_LOCK.key})`;
    try {
      await client.query({ text, ...(statementMs > 0 ? { query_timeout: statementMs + connectTimeoutMs } : {}) });
    } catch (err) {
      throw this.#errors.of(err);
    }
  }

  async #commit(client: PoolClient): Promise<void> {
    let done;
    try {
      done = await client.query("COMMIT");
    } catch (err) {
      throw this.#errors.ofCommit(err);
    }
    if (done.command !== "COMMIT") throw new Error("store: PostgreSQL rolled the transaction back at COMMIT");
  }

  #noConnection(budgetMs: number): Unavailable {
    return new Unavailable(
      `store ${this.#errors.location}: no connection to PostgreSQL within the write budget (${budgetMs} ms); try again`,
    );
  }
}

export type SnapshotQuery = <R extends QueryResultRow>(statement: Statement, values: unknown[]) => Promise<R[]>;

/** `fn`'s statements in one REPEATABLE READ, read-only transaction on a connection of `pool`: one snapshot for all. */
export async function inSnapshot<T>(pool: Pool, errors: PgErrors, fn: (query: SnapshotQuery) => Promise<T>): Promise<T> {
  let lease;
  try {
    lease = await checkout(pool);
  } catch (err) {
    throw errors.of(err);
  }
  const { client, release } = lease;
  let clean = true;
  try {
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const query: SnapshotQuery = async <R extends QueryResultRow>(s: Statement, values: unknown[]) =>
      (await client.query<R>({ name: s.name, text: s.text, values })).rows;
    const result = await fn(query);
    await client.query("COMMIT");
    return result;
  } catch (err) {
    clean = await client.query("ROLLBACK").then(
      () => true,
      () => false,
    );
    throw errors.of(err);
  } finally {
    release(!clean);
  }
}
