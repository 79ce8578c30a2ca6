// The offline checks of the audit chain on PostgreSQL, as ../audit-chain.ts's on a SQLite file: the store's own
// chain walk (ChainWalk over its chain pages, so the report is the store's and the SQLite file's), the head a
// checkpoint signs, and the stored hash at a seq a checkpoint names; each inside the caller's snapshot.
import type { AuditChainReport, ChainedAuditRow } from "../audit-chain.ts";
import { ChainWalk } from "./chain-walk.ts";
import { SQL, type Statement } from "./statements.ts";
import type { SnapshotQuery } from "./transactions.ts";

/** Audit rows per statement of the walk (every page in the caller's one snapshot). */
const CHAIN_PAGE = 1_000;

const AUDIT_HASH_AT: Statement = { name: "jitgate_audit_hash_at", text: "SELECT hash FROM audit WHERE seq = $1" };

/** Walks the trail in seq order and reports the first broken link (see ../audit-chain.ts's verifyAuditChain). */
export async function verifyAuditChain(query: SnapshotQuery): Promise<AuditChainReport> {
  const walk = new ChainWalk();
  for (let after = 0; ;) {
    const rows = await query<ChainedAuditRow & { hash: string | null }>(SQL.auditChainPage, [after, CHAIN_PAGE]);
    for (const row of rows) if (!walk.next(row)) return walk.report();
    if (rows.length < CHAIN_PAGE) return walk.report();
    after = (rows[rows.length - 1] as ChainedAuditRow).seq;
  }
}

/** The newest entry's seq and hash; undefined for an empty trail. */
export async function readAuditHead(query: SnapshotQuery): Promise<{ seq: number; hash: string } | undefined> {
  const [row] = await query<{ seq: number; hash: string | null }>(SQL.auditHead, []);
  return row?.hash ? { seq: row.seq, hash: row.hash } : undefined;
}

/** The stored hash of entry `seq`, if there is such an entry. */
export async function readAuditHashAt(query: SnapshotQuery, seq: number): Promise<string | undefined> {
  const [row] = await query<{ hash: string | null }>(AUDIT_HASH_AT, [seq]);
  return row?.hash ?? undefined;
}
