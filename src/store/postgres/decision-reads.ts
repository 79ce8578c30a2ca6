// Reads of the PostgreSQL decision log for offline tools (`jitgate decisions`): one connection, one read-only
// REPEATABLE READ transaction, so a listing is one snapshot of every replica's records and writes nothing.
import pg, { DatabaseError, type QueryResultRow } from "pg";
import type { DecisionRecord } from "../../access/model.ts";
import { describeThrown, Unavailable } from "../../errors.ts";
import type { DecisionFilter } from "../decision-store.ts";
import { decisionSchemaVersion, refuseNewerDecisions } from "./decision-migrations.ts";
import { decisionListing, decisionOf, type PgDecisionRow } from "./decision-statements.ts";
import { storeLocation, unavailableReason } from "./errors.ts";
import { connectionConfig } from "./pool.ts";
import type { Statement } from "./statements.ts";

/** What an offline reader may do with the decision log in PostgreSQL (as DecisionReads, asynchronous). */
export interface PgDecisionReads {
  /** Newest first, at most `limit` (capped at MAX_DECISIONS_PER_READ). */
  list(filter: DecisionFilter, limit: number): Promise<DecisionRecord[]>;
  count(): Promise<number>;
}

export interface PgDecisionReadOptions {
  /** Default 5000. */
  readonly connectTimeoutMs?: number;
  /** PostgreSQL's statement_timeout for each read. Default 30000. */
  readonly statementTimeoutMs?: number;
}

/**
 * Runs `fn` on the decision log of the database at `url`, in one read-only snapshot; resolves with undefined when
 * the database holds no decision log (no jitgate has written decisions to it). Failures to connect or read are
 * Unavailable naming the database without its credentials.
 */
export async function withPgDecisionsReadOnly<T>(
  url: string,
  fn: (reads: PgDecisionReads) => Promise<T>,
  opts: PgDecisionReadOptions = {},
): Promise<T | undefined> {
  const location = storeLocation(url);
  const statementTimeoutMs = opts.statementTimeoutMs ?? 30_000;
  const connectTimeoutMs = opts.connectTimeoutMs ?? 5_000;
  const client = new pg.Client({
    ...connectionConfig(url, connectTimeoutMs),
    statement_timeout: statementTimeoutMs,
    query_timeout: statementTimeoutMs + connectTimeoutMs,
  });
  client.on("error", () => undefined); // a failure reaches the query in flight; the client is ended below
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw new Unavailable(`decision log: cannot connect to ${location}: ${connectFailure(err)}`, { cause: err });
  }
  try {
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const version = await decisionSchemaVersion(client);
    if (version === undefined) return undefined;
    refuseNewerDecisions(location, version);
    const rows = async <R extends QueryResultRow>(s: Statement, values: unknown[]) =>
      (await client.query<R>({ name: s.name, text: s.text, values })).rows;
    const result = await fn({
      async list(filter, limit) {
        const listing = decisionListing(filter, limit);
        return listing === undefined ? [] : (await rows<PgDecisionRow>(listing.statement, listing.values)).map(decisionOf);
      },
      async count() {
        const [row] = await rows<{ n: number }>({ name: "jitgate_decisions_count", text: "SELECT count(*) AS n FROM decisions" }, []);
        return row?.n ?? 0;
      },
    });
    await client.query("COMMIT");
    return result;
  } catch (err) {
    const why = unavailableReason(err);
    throw why === undefined ? err : new Unavailable(`decision log: database ${location}: ${why}`, { cause: err });
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Why a connection failed, in one line: the availability reason, or what PostgreSQL said (a refused login). */
function connectFailure(err: unknown): string {
  const why = unavailableReason(err);
  if (why !== undefined) return why;
  const said = describeThrown(err).split("\n", 1)[0] ?? "";
  return err instanceof DatabaseError ? `${said} (SQLSTATE ${err.code ?? "unknown"})` : said || "the connection failed";
}
