// The decision log's PostgreSQL schema, versioned apart from the lifecycle store's (jitgate_decisions_schema, its own
// advisory lock), so either can move on without the other, as decisions.db does beside jitgate.db in SQLite.
import type { Client } from "pg";
import { FailedPrecondition } from "../../errors.ts";
import { MIGRATION_LOCK, type AdvisoryLock } from "./locks.ts";
import type { PgMigration } from "./migrations.ts";

/** Held (session-level) while the decision schema is read and migrated; "decs" in ASCII, in jitgate's space. */
export const DECISION_MIGRATION_LOCK: AdvisoryLock = { space: MIGRATION_LOCK.space, key: 0x64656373 };

export const DECISIONS_SCHEMA_TABLE = "jitgate_decisions_schema";

// The SQLite decision store's columns in PostgreSQL's types. reasons stays text: the JSON exactly as written, so
// the CLI prints each record key for key as from SQLite. `written` is insertion order (SQLite's rowid): it breaks
// ties of `at`, so "newest first" is one order whichever store it comes from. The indexes serve the filters of
// `jitgate decisions` newest first (backward scans) and pruning from the oldest end of decisions_by_time.
const V1_SCHEMA = `
CREATE TABLE decisions (
  decision_id text COLLATE "C" PRIMARY KEY,
  at bigint NOT NULL,
  caller text NOT NULL,
  subject text COLLATE "C" NOT NULL,
  resource text NOT NULL,
  action text NOT NULL,
  allow boolean NOT NULL,
  reasons text NOT NULL,                   -- JSON array of the policy's reasons
  policy_revision text NOT NULL,
  grant_id text NOT NULL,                  -- '' for a denial or standing access
  token_id text NOT NULL,                  -- '' when the check presented no token
  latency_us bigint NOT NULL,
  written bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX decisions_by_time ON decisions (at, written);
CREATE INDEX decisions_by_subject ON decisions (subject, at, written);
CREATE INDEX decisions_denied ON decisions (at, written) WHERE NOT allow;
`;

export const PG_DECISION_MIGRATIONS: readonly PgMigration[] = [{ version: 1, description: "decisions", sql: V1_SCHEMA }];

const SCHEMA_TABLE = `
CREATE TABLE ${DECISIONS_SCHEMA_TABLE} (
  version integer PRIMARY KEY,
  description text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`;

/** The decision schema's version in the database `client` is connected to; undefined when it has none. */
export async function decisionSchemaVersion(client: Pick<Client, "query">): Promise<number | undefined> {
  const table = await client.query<{ found: boolean }>(`SELECT to_regclass('${DECISIONS_SCHEMA_TABLE}') IS NOT NULL AS found`);
  if (table.rows[0]?.found !== true) return undefined;
  const { rows } = await client.query<{ version: number }>(
    `SELECT coalesce(max(version), 0)::integer AS version FROM ${DECISIONS_SCHEMA_TABLE}`,
  );
  return rows[0]?.version ?? 0;
}

/** Refuses a decision schema newer than this jitgate knows (written by a newer replica). */
export function refuseNewerDecisions(location: string, found: number): void {
  const known = PG_DECISION_MIGRATIONS.length;
  if (found > known)
    throw new FailedPrecondition(
      `decision log: database ${location} has decision schema version ${found}, newer than this jitgate knows (${known}); upgrade jitgate`,
    );
}

/**
 * Brings the decision schema of the database `client` is connected to (named `location` in messages) to the
 * latest version, all pending migrations in one transaction; returns the version it found (0 for none). Waits
 * for another replica migrating it (the session lock), at most `lockWaitMs`.
 */
export async function migrateDecisions(client: Client, location: string, options: { readonly lockWaitMs: number }): Promise<number> {
  const lock = [DECISION_MIGRATION_LOCK.space, DECISION_MIGRATION_LOCK.key];
  await client.query(`SET lock_timeout = ${Math.max(1, Math.trunc(options.lockWaitMs))}`);
  await client.query("SELECT pg_advisory_lock($1, $2)", lock);
  try {
    const found = (await decisionSchemaVersion(client)) ?? -1;
    refuseNewerDecisions(location, found);
    if (found === PG_DECISION_MIGRATIONS.length) return found;
    await client.query("BEGIN");
    try {
      if (found === -1) await client.query(SCHEMA_TABLE);
      for (const m of PG_DECISION_MIGRATIONS.slice(Math.max(0, found))) {
        await client.query(m.sql);
        await client.query(`INSERT INTO ${DECISIONS_SCHEMA_TABLE} (version, description) VALUES ($1, $2)`, [m.version, m.description]);
      }
      await client.query("COMMIT");
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    }
    return Math.max(0, found);
  } finally {
    await client.query("SELECT pg_advisory_unlock($1, $2)", lock).catch(() => undefined);
  }
}
