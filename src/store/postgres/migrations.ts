// The PostgreSQL schema as an ordered list of migrations, recorded one row per version in jitgate_schema. They
// run under a session advisory lock, so replicas starting at once migrate a database once, the others waiting.
import type { Client } from "pg";
import { FailedPrecondition } from "../../errors.ts";
import { MIGRATION_LOCK } from "./locks.ts";

export interface PgMigration {
  /** 1, 2, 3, ...: the schema version once this migration has run. */
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

const REQUEST_STATES = "'PENDING', 'APPROVED', 'DENIED', 'CANCELLED', 'EXPIRED'";

// The SQLite schema at its version 5, in PostgreSQL's types: times are bigint ms, lists and plans jsonb, flags
// boolean. Identifiers sort by "C" (byte order), as SQLite's BINARY does, so listings and page tokens agree with
// SQLite's whatever the database's locale. The audit trail's details stay text: the hash covers that exact text.
// Seqs come from jitgate_sequences, not from PostgreSQL sequences: a counter row rolls back with its
// transaction (a rolled-back append leaves no gap for the chain check to find) and is never reused after its
// rows are deleted, as SQLite's AUTOINCREMENT.
const V1_SCHEMA = `
CREATE TABLE requests (
  id text COLLATE "C" PRIMARY KEY,
  requester text COLLATE "C" NOT NULL,
  requester_groups jsonb NOT NULL,
  resource text COLLATE "C" NOT NULL,
  actions jsonb NOT NULL,
  duration_s bigint NOT NULL,
  justification text NOT NULL,
  ticket text NOT NULL,
  emergency boolean NOT NULL,
  state text NOT NULL CHECK (state IN (${REQUEST_STATES})),
  plan jsonb NOT NULL,
  policy_revision text NOT NULL,
  created_at bigint NOT NULL,
  pending_until bigint NOT NULL,           -- 0 when the request was never pending
  decided_at bigint,
  state_reason text NOT NULL,
  grant_id text COLLATE "C",               -- no foreign key: the grant may be written before or after the decision
  client_key text COLLATE "C" NOT NULL     -- '' when the client sent no idempotency key
);
CREATE UNIQUE INDEX requests_by_client_key ON requests (requester, client_key) WHERE client_key <> '';
CREATE INDEX requests_newest ON requests (created_at DESC, id DESC);
CREATE INDEX requests_by_state ON requests (state, created_at DESC, id DESC);
CREATE INDEX requests_by_requester ON requests (requester, created_at DESC, id DESC);
CREATE INDEX requests_by_resource ON requests (resource, created_at DESC, id DESC);
CREATE INDEX requests_by_requester_state ON requests (requester, state, created_at DESC, id DESC);
CREATE INDEX requests_pending_due ON requests (pending_until) WHERE state = 'PENDING';

CREATE TABLE reviews (
  request_id text COLLATE "C" NOT NULL REFERENCES requests (id),
  reviewer text COLLATE "C" NOT NULL,
  reviewer_groups jsonb NOT NULL,
  decision text NOT NULL CHECK (decision IN ('approve', 'deny')),
  comment text NOT NULL,
  counts_toward jsonb NOT NULL,
  created_at bigint NOT NULL,
  policy_revision text NOT NULL,
  written bigint GENERATED ALWAYS AS IDENTITY,  -- insertion order: breaks ties of created_at, as SQLite's rowid
  PRIMARY KEY (request_id, reviewer)       -- one vote per reviewer
);

CREATE TABLE grants (
  id text COLLATE "C" PRIMARY KEY,
  request_id text COLLATE "C" NOT NULL REFERENCES requests (id),
  subject text COLLATE "C" NOT NULL,
  resource text COLLATE "C" NOT NULL,
  actions jsonb NOT NULL,
  audience text NOT NULL,
  break_glass boolean NOT NULL,
  created_at bigint NOT NULL,
  expires_at bigint NOT NULL,
  revoked_at bigint,
  revoked_by text,
  revoke_reason text,
  policy_revision text NOT NULL,
  expiry_recorded boolean NOT NULL DEFAULT false  -- its EXPIRED event exists
);
CREATE INDEX grants_live_on ON grants (subject, resource, expires_at) INCLUDE (id, actions) WHERE revoked_at IS NULL;
CREATE INDEX grants_expiry_due ON grants (expires_at) WHERE revoked_at IS NULL AND NOT expiry_recorded;
CREATE INDEX grants_newest ON grants (created_at DESC, id DESC);
CREATE INDEX grants_by_subject ON grants (subject, created_at DESC, id DESC);
CREATE INDEX grants_by_resource ON grants (resource, created_at DESC, id DESC);
CREATE INDEX grants_span_by_resource ON grants (resource, (expires_at - created_at));
CREATE INDEX grants_revoked_by_expiry ON grants (expires_at) WHERE revoked_at IS NOT NULL;

-- The change feed: seq is the resume point for watchers.
CREATE TABLE grant_events (
  seq bigint PRIMARY KEY,
  grant_id text COLLATE "C" NOT NULL REFERENCES grants (id),
  kind text NOT NULL CHECK (kind IN ('CREATED', 'REVOKED', 'EXPIRED')),
  at bigint NOT NULL
);
CREATE INDEX grant_events_by_grant ON grant_events (grant_id, kind, seq);

CREATE TABLE audit (
  seq bigint PRIMARY KEY,
  at bigint NOT NULL,
  kind text NOT NULL,
  actor text COLLATE "C" NOT NULL,
  subject text COLLATE "C" NOT NULL,
  resource text COLLATE "C" NOT NULL,
  request_id text,
  grant_id text,
  reason text NOT NULL,
  policy_revision text NOT NULL,
  details text NOT NULL,                   -- a JSON object's text, exactly as written: the hash covers it
  prev_hash text NOT NULL,
  hash text                                -- set in the transaction that inserts the row
);
CREATE INDEX audit_by_subject ON audit (subject, seq);
CREATE INDEX audit_by_actor ON audit (actor, seq);
CREATE INDEX audit_by_resource ON audit (resource, seq);
CREATE INDEX audit_by_time ON audit (at);

CREATE TABLE jitgate_sequences (
  name text PRIMARY KEY,
  last bigint NOT NULL
);
INSERT INTO jitgate_sequences (name, last) VALUES ('audit', 0), ('grant_events', 0);

-- The write health probe's one row: a real, tiny committed write.
CREATE TABLE jitgate_heartbeat (
  id integer PRIMARY KEY CHECK (id = 1),
  beat_at timestamptz NOT NULL
);
INSERT INTO jitgate_heartbeat (id, beat_at) VALUES (1, now());
`;

export const PG_MIGRATIONS: readonly PgMigration[] = [
  { version: 1, description: "requests, reviews, grants, grant events, audit trail, counters, heartbeat", sql: V1_SCHEMA },
];

export const PG_SCHEMA_VERSION = PG_MIGRATIONS.length;

const SCHEMA_TABLE = `
CREATE TABLE jitgate_schema (
  version integer PRIMARY KEY,
  description text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`;

function refuseNewer(location: string, found: number, known: number): never {
  throw new FailedPrecondition(
    `store: database ${location} has schema version ${found}, newer than this jitgate knows (${known}); upgrade jitgate`,
  );
}

async function schemaVersion(client: Client): Promise<number | undefined> {
  const table = await client.query<{ found: boolean }>("SELECT to_regclass('jitgate_schema') IS NOT NULL AS found");
  if (table.rows[0]?.found !== true) return undefined;
  const { rows } = await client.query<{ version: number }>("SELECT coalesce(max(version), 0)::integer AS version FROM jitgate_schema");
  return rows[0]?.version ?? 0;
}

/**
 * Brings the database `client` is connected to (named `location` in messages) to the latest version of
 * `migrations`, all pending ones in one transaction; returns the version it found (0 for an empty database).
 * Waits for another jitgate migrating the same database (the session lock), at most `lockWaitMs`.
 */
export async function migratePg(
  client: Client,
  location: string,
  options: { readonly lockWaitMs: number; readonly migrations?: readonly PgMigration[] },
): Promise<number> {
  const migrations = options.migrations ?? PG_MIGRATIONS;
  const latest = migrations.length;
  await client.query(`SET lock_timeout = ${Math.max(1, Math.trunc(options.lockWaitMs))}`);
  await client.query("SELECT pg_advisory_lock($1, $2)", [MIGRATION_LOCK.space, MIGRATION_LOCK.key]);
  try {
    const found = (await schemaVersion(client)) ?? -1;
    if (found > latest) refuseNewer(location, found, latest);
    if (found === latest) return found;
    await client.query("BEGIN");
    try {
      if (found === -1) await client.query(SCHEMA_TABLE);
      for (const m of migrations.slice(Math.max(0, found))) {
        await client.query(m.sql);
        await client.query("INSERT INTO jitgate_schema (version, description) VALUES ($1, $2)", [m.version, m.description]);
      }
      await client.query("COMMIT");
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    }
    return Math.max(0, found);
  } finally {
    await client.query("SELECT pg_advisory_unlock($1, $2)", [MIGRATION_LOCK.space, MIGRATION_LOCK.key]).catch(() => undefined);
  }
}
