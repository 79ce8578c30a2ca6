// The SQLite schema as an ordered list of migrations. `PRAGMA user_version` records how many have been applied;
// pending ones run in one immediate transaction at open, so several processes opening one file migrate it once.
import type { Database } from "better-sqlite3";
import { FailedPrecondition } from "../errors.ts";
import { backfillAuditChain } from "./audit-chain.ts";

export interface Migration {
  /** 1, 2, 3, ...: the value of user_version once this migration has run. */
  readonly version: number;
  readonly description: string;
  readonly sql: string;
  /** Work SQL cannot do (hashing), run after `sql` in the same transaction. */
  readonly apply?: (db: Database) => void;
}

const REQUEST_STATES = "'PENDING', 'APPROVED', 'DENIED', 'CANCELLED', 'EXPIRED'";

const V1_SCHEMA = `
CREATE TABLE requests (
  id TEXT PRIMARY KEY,
  requester TEXT NOT NULL,
  requester_groups TEXT NOT NULL,          -- JSON array of strings
  resource TEXT NOT NULL,
  actions TEXT NOT NULL,                   -- JSON array of strings
  duration_s INTEGER NOT NULL,
  justification TEXT NOT NULL,
  ticket TEXT NOT NULL,
  emergency INTEGER NOT NULL CHECK (emergency IN (0, 1)),
  state TEXT NOT NULL CHECK (state IN (${REQUEST_STATES})),
  plan TEXT NOT NULL,                      -- JSON: the policy's RequestPlan
  policy_revision TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  pending_until INTEGER NOT NULL,          -- 0 when the request was never pending
  decided_at INTEGER,
  state_reason TEXT NOT NULL,
  grant_id TEXT,                           -- no foreign key: the grant may be written before or after the decision
  client_key TEXT NOT NULL                 -- '' when the client sent no idempotency key
) STRICT;
CREATE UNIQUE INDEX requests_by_client_key ON requests (requester, client_key) WHERE client_key <> '';
CREATE INDEX requests_newest ON requests (created_at DESC, id DESC);
CREATE INDEX requests_by_state ON requests (state, created_at DESC, id DESC);
CREATE INDEX requests_by_requester ON requests (requester, created_at DESC, id DESC);
CREATE INDEX requests_by_resource ON requests (resource, created_at DESC, id DESC);
CREATE INDEX requests_by_requester_state ON requests (requester, state, created_at DESC, id DESC);
-- Not partial on state = 'PENDING': without statistics SQLite prefers requests_by_state's equality to a range
-- on a partial index, and would walk every pending request to find the due ones.
CREATE INDEX requests_pending_due ON requests (state, pending_until);

CREATE TABLE reviews (
  request_id TEXT NOT NULL REFERENCES requests (id),
  reviewer TEXT NOT NULL,
  reviewer_groups TEXT NOT NULL,           -- JSON array of strings
  decision TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
  comment TEXT NOT NULL,
  counts_toward TEXT NOT NULL,             -- JSON array of strings
  created_at INTEGER NOT NULL,
  policy_revision TEXT NOT NULL,
  PRIMARY KEY (request_id, reviewer)       -- one vote per reviewer
) STRICT;

CREATE TABLE grants (
  id TEXT PRIMARY KEY,
  request_id TEXT NOT NULL REFERENCES requests (id),
  subject TEXT NOT NULL,
  resource TEXT NOT NULL,
  actions TEXT NOT NULL,                   -- JSON array of strings
  audience TEXT NOT NULL,
  break_glass INTEGER NOT NULL CHECK (break_glass IN (0, 1)),
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  revoked_at INTEGER,
  revoked_by TEXT,
  revoke_reason TEXT,
  policy_revision TEXT NOT NULL,
  expiry_recorded INTEGER NOT NULL DEFAULT 0 CHECK (expiry_recorded IN (0, 1))  -- its EXPIRED event exists
) STRICT;
-- The access check's query, answered from the index alone: it carries id and actions, and revoked_at (always
-- NULL here) because SQLite counts an index as covering only when it holds every column the query names.
CREATE INDEX grants_live_on ON grants (subject, resource, expires_at, id, actions, revoked_at) WHERE revoked_at IS NULL;
CREATE INDEX grants_expiry_due ON grants (expires_at) WHERE revoked_at IS NULL AND expiry_recorded = 0;
CREATE INDEX grants_newest ON grants (created_at DESC, id DESC);
CREATE INDEX grants_by_subject ON grants (subject, created_at DESC, id DESC);
CREATE INDEX grants_by_resource ON grants (resource, created_at DESC, id DESC);

-- The change feed: seq is the resume point for watchers, so it is never reused (AUTOINCREMENT).
CREATE TABLE grant_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  grant_id TEXT NOT NULL REFERENCES grants (id),
  kind TEXT NOT NULL CHECK (kind IN ('CREATED', 'REVOKED', 'EXPIRED')),
  at INTEGER NOT NULL
) STRICT;

CREATE TABLE audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  kind TEXT NOT NULL,
  actor TEXT NOT NULL,
  subject TEXT NOT NULL,
  resource TEXT NOT NULL,
  request_id TEXT,
  grant_id TEXT,
  reason TEXT NOT NULL,
  policy_revision TEXT NOT NULL,
  details TEXT NOT NULL,                   -- JSON object
  prev_hash TEXT,                          -- reserved for a hash chain over the trail
  hash TEXT
) STRICT;
`;

// For the auditors' queries (audit-queries.ts). Indexes only: no row changes, so the hash chain is untouched.
const V3_AUDIT_QUERY_INDEXES = `
CREATE INDEX audit_by_subject ON audit (subject, seq);
CREATE INDEX audit_by_actor ON audit (actor, seq);
CREATE INDEX audit_by_time ON audit (at);
-- The longest lifetime of any grant on a resource, in one seek: it bounds how far back "who had access at T"
-- must look for grants created before T.
CREATE INDEX grants_span_by_resource ON grants (resource, expires_at - created_at);
`;

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, description: "requests, reviews, grants, grant events, audit", sql: V1_SCHEMA },
  { version: 2, description: "hash chain over the audit trail (backfills existing rows)", sql: "", apply: backfillAuditChain },
  { version: 3, description: "indexes for the audit queries (who had access, a subject's history)", sql: V3_AUDIT_QUERY_INDEXES },
  {
    version: 4,
    description: "index for listing a resource's audit entries",
    sql: "CREATE INDEX audit_by_resource ON audit (resource, seq);",
  },
  {
    version: 5,
    description: "indexes for replaying the revocations still in force",
    sql:
      "CREATE INDEX grants_revoked_by_expiry ON grants (expires_at) WHERE revoked_at IS NOT NULL;\n" +
      "CREATE INDEX grant_events_by_grant ON grant_events (grant_id, kind, seq);",
  },
];

export const SCHEMA_VERSION = MIGRATIONS.length;

function userVersion(db: Database): number {
  return db.pragma("user_version", { simple: true }) as number;
}

function refuseNewer(file: string, found: number, known: number): never {
  throw new FailedPrecondition(
    `store: database ${file} has schema version ${found}, newer than this jitgate knows (${known}); upgrade jitgate`,
  );
}

/** Brings the database at `file` to SCHEMA_VERSION; returns the version it found. */
export function migrate(db: Database, file: string, migrations: readonly Migration[] = MIGRATIONS): number {
  const latest = migrations.length;
  const seen = userVersion(db);
  if (seen === latest) return seen;
  if (seen > latest) refuseNewer(file, seen, latest);
  const apply = db.transaction(() => {
    // Another process may have migrated between the read above and taking the write lock.
    const found = userVersion(db);
    if (found > latest) refuseNewer(file, found, latest);
    for (const m of migrations.slice(found)) {
      db.exec(m.sql);
      m.apply?.(db);
      db.pragma(`user_version = ${m.version}`);
    }
    return found;
  });
  return apply.immediate();
}
