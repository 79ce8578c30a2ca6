// The audit trail's hash chain: each row's hash covers its own columns and the previous row's hash, so an edited
// or deleted row breaks the chain. Also the migration that chains rows written before it, and the offline check.
import { createHash } from "node:crypto";
import type Database from "better-sqlite3";
import { withReadOnlyDatabase } from "./read-only.ts";

/** The prev_hash of the first row. */
export const GENESIS_HASH = "0".repeat(64);

/** The schema version (migration) from which every audit row carries prev_hash and hash. */
export const AUDIT_CHAIN_VERSION = 2;

/** An audit row exactly as stored: `details` is its JSON text, never re-serialised. */
export interface ChainedAuditRow {
  seq: number;
  at: number;
  kind: string;
  actor: string;
  subject: string;
  resource: string;
  request_id: string | null;
  grant_id: string | null;
  reason: string;
  policy_revision: string;
  details: string;
  prev_hash: string | null;
}

export const CHAINED_AUDIT_COLUMNS =
  "seq, at, kind, actor, subject, resource, request_id, grant_id, reason, policy_revision, details, prev_hash";

/**
 * The canonical text a row's hash covers: JSON.stringify of the array
 * ["jitgate.audit.v1", seq, at, kind, actor, subject, resource, request_id, grant_id, reason, policy_revision,
 * details, prev_hash], in that order. Integers are JSON numbers, absent ids are null, and `details` is the stored
 * JSON text as a JSON string (so key order inside it is whatever was stored). The tag lets a later format coexist.
 */
export function canonicalAuditText(row: ChainedAuditRow): string {
  return JSON.stringify([
    "jitgate.audit.v1",
    row.seq,
    row.at,
    row.kind,
    row.actor,
    row.subject,
    row.resource,
    row.request_id,
    row.grant_id,
    row.reason,
    row.policy_revision,
    row.details,
    row.prev_hash,
  ]);
}

/** SHA-256, lowercase hex, of the row's canonical text in UTF-8. */
export function auditRowHash(row: ChainedAuditRow): string {
  return createHash("sha256").update(canonicalAuditText(row), "utf8").digest("hex");
}

const BACKFILL_BATCH = 1000;

/** Migration v2: chains the rows written before it, in seq order, inside the migration's transaction. */
export function backfillAuditChain(db: Database.Database): void {
  const page = db.prepare<[number, number], ChainedAuditRow>(
    `SELECT ${CHAINED_AUDIT_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`,
  );
  const seal = db.prepare<[string, string, number]>("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?");
  let prevHash = GENESIS_HASH;
  let after = 0;
  for (;;) {
    // In pages, not one iterator: better-sqlite3 refuses writes while an iterator is open on the connection.
    const rows = page.all(after, BACKFILL_BATCH);
    for (const row of rows) {
      const hash = auditRowHash({ ...row, prev_hash: prevHash });
      seal.run(prevHash, hash, row.seq);
      prevHash = hash;
      after = row.seq;
    }
    if (rows.length < BACKFILL_BATCH) return;
  }
}

export type AuditChainReport =
  | { readonly ok: true; readonly rows: number; readonly head?: { readonly seq: number; readonly hash: string } }
  | { readonly ok: false; readonly seq: number; readonly reason: string };

/**
 * Walks the trail in seq order and reports the first broken link. An edited row fails its own hash; a deleted
 * row leaves a seq gap (AUTOINCREMENT never reuses a seq, and a rolled-back append rolls back its seq too).
 * Deleting the LAST rows is not detectable by the chain alone: what is left is still a valid chain. Catching
 * that needs the head (seq, hash) recorded elsewhere, which is what signed checkpoints, later, are for.
 * `source` is an open database, or a file that is opened read-only for the check.
 */
export function verifyAuditChain(source: Database.Database | string): AuditChainReport {
  if (typeof source !== "string") return walk(source);
  // Any newer schema is walked too: the chain's columns are the same in every version since AUDIT_CHAIN_VERSION
  // (the CLI, which reads more than the chain, also refuses a schema newer than it knows).
  return withReadOnlyDatabase(source, { min: AUDIT_CHAIN_VERSION, max: Number.MAX_SAFE_INTEGER }, "the audit chain", walk);
}

function walk(db: Database.Database): AuditChainReport {
  const rows = db.prepare<[], ChainedAuditRow & { hash: string | null }>(`SELECT ${CHAINED_AUDIT_COLUMNS}, hash FROM audit ORDER BY seq`);
  // One read transaction: a snapshot, even while a server appends to the same file.
  const check = db.transaction((): AuditChainReport => {
    let expectedSeq = 1;
    let prevHash = GENESIS_HASH;
    let count = 0;
    for (const row of rows.iterate()) {
      if (row.seq !== expectedSeq) return broken(row.seq, `sequence gap (row ${expectedSeq} missing)`);
      if (row.prev_hash !== prevHash) return broken(row.seq, "prev_hash does not match the previous row");
      if (row.hash !== auditRowHash(row)) return broken(row.seq, "hash mismatch");
      prevHash = row.hash;
      expectedSeq = row.seq + 1;
      count++;
    }
    return count === 0 ? { ok: true, rows: 0 } : { ok: true, rows: count, head: { seq: expectedSeq - 1, hash: prevHash } };
  });
  return check.deferred();
}

function broken(seq: number, reason: string): AuditChainReport {
  return { ok: false, seq, reason };
}

/** The newest entry's seq and hash; undefined for an empty trail. */
export function readAuditHead(db: Database.Database): { seq: number; hash: string } | undefined {
  const row = db.prepare<[], { seq: number; hash: string | null }>("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").get();
  return row?.hash ? { seq: row.seq, hash: row.hash } : undefined;
}

/** The stored hash of entry `seq`, if there is such an entry. */
export function readAuditHashAt(db: Database.Database): (seq: number) => string | undefined {
  const stmt = db.prepare<[number], { hash: string | null }>("SELECT hash FROM audit WHERE seq = ?");
  return (seq) => stmt.get(seq)?.hash ?? undefined;
}
