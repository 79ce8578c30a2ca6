// jitgate's advisory locks, in PostgreSQL's two-int4 key form (a space of our own, apart from the single-bigint
// keys other applications on the same database tend to use). Advisory locks are per database: every replica
// of one jitgate database shares them.

/** "jitg" in ASCII: the first half of every key jitgate locks. */
const JITGATE_LOCK_SPACE = 0x6a697467;

export interface AdvisoryLock {
  readonly space: number;
  readonly key: number;
}

/** Held (transaction-level) by every lifecycle write of every replica, from BEGIN to COMMIT. */
export const WRITE_LOCK: AdvisoryLock = { space: JITGATE_LOCK_SPACE, key: 1 };

/** Held (session-level) while the schema is read and migrated at open. */
export const MIGRATION_LOCK: AdvisoryLock = { space: JITGATE_LOCK_SPACE, key: 2 };
