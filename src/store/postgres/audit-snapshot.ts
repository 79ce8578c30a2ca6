// Opens a jitgate PostgreSQL database for the offline audit tools (verify, checkpoint, queries) as they open a
// SQLite file read-only: one connection, one REPEATABLE READ READ ONLY transaction (one snapshot for every
// statement, even while replicas append), the schema checked first, and never a migration or a write.
import type { Client, QueryResultRow } from "pg";
import { FailedPrecondition, JitgateError, Unavailable } from "../../errors.ts";
import { storeLocation, unavailableReason } from "./errors.ts";
import { PG_SCHEMA_VERSION } from "./migrations.ts";
import { standaloneClient } from "./pool.ts";
import type { Statement } from "./statements.ts";
import type { SnapshotQuery } from "./transactions.ts";

/** The schema version from which the audit trail is chained and queryable: the first. */
export const PG_AUDIT_MIN_VERSION = 1;

const CONNECT_TIMEOUT_MS = 5_000;

export interface AuditSnapshotOptions {
  /** The feature that needs the schema, for the message when the database is older ("the audit chain"). */
  readonly what: string;
  /** The oldest schema version `what` works on. Default PG_AUDIT_MIN_VERSION. */
  readonly minVersion?: number;
  readonly connectTimeoutMs?: number;
}

/**
 * Runs `fn` on one read-only snapshot of the database at `url`, after checking its schema is at least
 * `minVersion` and not newer than this jitgate knows (it may read what it does not understand otherwise).
 * Failures to reach the database are Unavailable, naming it by storeLocation (never its password).
 */
export async function withPgAuditSnapshot<T>(
  url: string,
  opts: AuditSnapshotOptions,
  fn: (query: SnapshotQuery) => Promise<T>,
): Promise<T> {
  const location = storeLocation(url);
  const client = standaloneClient(url, opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
  client.on("error", () => undefined); // a failure reaches the query in flight; the client is ended below
  try {
    try {
      await client.connect();
    } catch (err) {
      throw openError(location, err);
    }
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    await checkSchema(client, location, opts);
    const query: SnapshotQuery = async <R extends QueryResultRow>(s: Statement, values: unknown[]) =>
      (await client.query<R>({ name: s.name, text: s.text, values })).rows;
    const result = await fn(query);
    await client.query("COMMIT");
    return result;
  } catch (err) {
    throw readError(location, err);
  } finally {
    // Ending the connection ends a transaction left open by a failure: nothing was written to keep or undo.
    await client.end().catch(() => undefined);
  }
}

async function checkSchema(client: Client, location: string, opts: AuditSnapshotOptions): Promise<void> {
  const version = await schemaVersion(client);
  if (version < (opts.minVersion ?? PG_AUDIT_MIN_VERSION))
    throw new FailedPrecondition(
      `audit: database ${location} has schema version ${version}, before ${opts.what}; open it with jitgate once to migrate`,
    );
  if (version > PG_SCHEMA_VERSION)
    throw new FailedPrecondition(
      `audit: database ${location} has schema version ${version}, newer than this jitgate knows (${PG_SCHEMA_VERSION}); upgrade jitgate`,
    );
}

/** As migrations.ts reads it: the highest version recorded in jitgate_schema; 0 when jitgate never migrated here. */
async function schemaVersion(client: Client): Promise<number> {
  const table = await client.query<{ found: boolean }>("SELECT to_regclass('jitgate_schema') IS NOT NULL AS found");
  if (table.rows[0]?.found !== true) return 0;
  const { rows } = await client.query<{ version: number }>("SELECT coalesce(max(version), 0)::integer AS version FROM jitgate_schema");
  return rows[0]?.version ?? 0;
}

/** A failed connect: PostgreSQL's own message (a refused login, a missing database) is safe to show; the URL is not. */
function openError(location: string, err: unknown): unknown {
  const why = unavailableReason(err) ?? (err instanceof Error ? err.message : undefined);
  return why === undefined ? err : new Unavailable(`audit: cannot open database ${location}: ${why}`, { cause: err });
}

function readError(location: string, err: unknown): unknown {
  if (err instanceof JitgateError) return err;
  const why = unavailableReason(err);
  return why === undefined ? err : new Unavailable(`audit: cannot read database ${location}: ${why}`, { cause: err });
}
