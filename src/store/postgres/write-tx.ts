// The writes of one PostgreSQL transaction, on the one connection that holds the write lock: the same semantics
// as the SQLite store's, statement for statement. PostgreSQL aborts a transaction at its first failed statement,
// so a failure is remembered: every later call, and the commit, fails with it (SQLite's savepoints would let the
// caller carry on; the one failure callers catch, a clashing client key, is an answer here, not a failure).
import type { QueryResult, QueryResultRow } from "pg";
import type { AccessRequest, AuditEntry, Grant, GrantEvent, GrantEventKind, RequestState, Review } from "../../access/model.ts";
import type { WriteTx } from "../../access/ports.ts";
import { AlreadyExists, Unavailable } from "../../errors.ts";
import { auditRowHash, type ChainedAuditRow } from "../audit-chain.ts";
import type { PgErrors } from "./errors.ts";
import { grantOf, grantValues, requestOf, requestValues, reviewValues, sortByDeadline, sortByExpiry } from "./rows.ts";
import type { PgGrantRow, PgRequestRow } from "./rows.ts";
import { SQL, type Statement } from "./statements.ts";

/** Expiries or timeouts recorded per call when the caller names no limit: a long outage is caught up in steps. */
export const DUE_PER_CALL = 1_000;

/** Runs statements on one connection (a pool client inside a transaction). */
export interface Queryable {
  query<R extends QueryResultRow>(config: { name: string; text: string; values: unknown[] }): Promise<QueryResult<R>>;
}

type Change = { state: RequestState; decidedAt: number; stateReason: string; grantId?: string };

/** LIMIT as SQLite reads it: a negative limit is no limit. */
const limitOf = (limit: number): number | null => (limit < 0 ? null : Math.trunc(limit));

export class PgWriteTx implements WriteTx {
  readonly #client: Queryable;
  readonly #errors: PgErrors;
  /** The first statement that failed: PostgreSQL has aborted the transaction. */
  #failure: unknown;

  constructor(client: Queryable, errors: PgErrors) {
    this.#client = client;
    this.#errors = errors;
  }

  /** The failure of the statement that aborted this transaction, if one did. */
  get failure(): unknown {
    return this.#failure;
  }

  /** Throws when a statement of this transaction failed: what it wrote will not commit. */
  assertIntact(): void {
    if (this.#failure === undefined) return;
    const mapped = this.#errors.of(this.#failure);
    if (mapped instanceof Unavailable) throw mapped;
    throw new Error("store: a statement of this transaction failed, so PostgreSQL rolls the whole transaction back", {
      cause: this.#failure,
    });
  }

  async request(id: string): Promise<AccessRequest | undefined> {
    const { rows } = await this.#run<PgRequestRow>(SQL.requestById, [id]);
    return rows[0] === undefined ? undefined : requestOf(rows[0]);
  }

  async insertRequest(request: AccessRequest): Promise<void> {
    const { rowCount } = await this.#run(SQL.insertRequest, requestValues(request));
    // The only conflict the statement lets through is (requester, client_key).
    if (rowCount === 0) throw new AlreadyExists(`request with client key ${JSON.stringify(request.clientKey)} already exists`);
  }

  async insertReview(review: Review): Promise<void> {
    await this.#run(SQL.insertReview, reviewValues(review));
  }

  async decideRequest(id: string, from: RequestState, change: Change): Promise<boolean> {
    const values = [id, from, change.state, change.decidedAt, change.stateReason, change.grantId ?? null];
    const { rowCount } = await this.#run(SQL.decideRequest, values);
    return rowCount === 1;
  }

  async insertGrant(grant: Grant): Promise<GrantEvent> {
    await this.#run(SQL.insertGrant, grantValues(grant));
    const [event] = await this.#appendEvents("CREATED", [grant], [grant.createdAt]);
    return event as GrantEvent;
  }

  async revokeGrant(id: string, at: number, by: string, reason: string): Promise<GrantEvent | undefined> {
    const { rows } = await this.#run<PgGrantRow>(SQL.revokeLiveGrant, [id, at, by, reason]);
    if (rows[0] === undefined) return undefined;
    const [event] = await this.#appendEvents("REVOKED", [grantOf(rows[0])], [at]);
    return event;
  }

  async revokeGrantsOf(subject: string, at: number, by: string, reason: string): Promise<readonly GrantEvent[]> {
    const { rows } = await this.#run<PgGrantRow>(SQL.revokeLiveGrantsOf, [subject, at, by, reason]);
    const grants = sortByExpiry(rows).map(grantOf);
    return this.#appendEvents(
      "REVOKED",
      grants,
      grants.map(() => at),
    );
  }

  async recordExpiries(now: number, limit = DUE_PER_CALL): Promise<readonly GrantEvent[]> {
    const { rows } = await this.#run<PgGrantRow>(SQL.markDueExpiries, [now, limitOf(limit)]);
    const grants = sortByExpiry(rows).map(grantOf);
    // Each event carries the moment the grant really expired, not when the sweep noticed.
    return this.#appendEvents(
      "EXPIRED",
      grants,
      grants.map((g) => g.expiresAt),
    );
  }

  async expirePending(now: number, stateReason: string, limit = DUE_PER_CALL): Promise<readonly AccessRequest[]> {
    const { rows } = await this.#run<PgRequestRow>(SQL.expireDuePending, [stateReason, now, limitOf(limit)]);
    return sortByDeadline(rows).map(requestOf);
  }

  /**
   * Appends a row chained to the current head and seals it with the hash of the row as stored (RETURNING gives
   * it back exactly as the verifier will read it). The write lock is held from reading the head to the seal.
   */
  async appendAudit(entry: AuditEntry): Promise<void> {
    const values = [
      entry.at,
      entry.kind,
      entry.actor,
      entry.subject,
      entry.resource,
      entry.requestId ?? null,
      entry.grantId ?? null,
      entry.reason,
      entry.policyRevision,
      JSON.stringify(entry.details),
    ];
    const { rows } = await this.#run<ChainedAuditRow>(SQL.insertAudit, values);
    const row = rows[0];
    if (row === undefined) throw new Error("store: the audit counter row is missing (jitgate_sequences)");
    await this.#run(SQL.sealAudit, [auditRowHash(row), row.seq]);
  }

  /** The events of `grants` (in that order, at `ats`), one statement whatever their number. */
  async #appendEvents(kind: GrantEventKind, grants: readonly Grant[], ats: readonly number[]): Promise<GrantEvent[]> {
    if (grants.length === 0) return [];
    const { rows } = await this.#run<{ seq: number }>(SQL.insertGrantEvents, [grants.map((g) => g.id), kind, ats]);
    return grants.map((grant, i) => ({ seq: (rows[i] as { seq: number }).seq, kind, at: ats[i] as number, grant }));
  }

  async #run<R extends QueryResultRow>(statement: Statement, values: unknown[]): Promise<QueryResult<R>> {
    this.assertIntact();
    try {
      return await this.#client.query<R>({ name: statement.name, text: statement.text, values });
    } catch (err) {
      this.#failure = err;
      throw this.#errors.of(err);
    }
  }
}
