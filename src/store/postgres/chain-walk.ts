// The audit chain check over rows fed one at a time: the same links, in the same order and with the same
// reasons as ../audit-chain.ts's walk of a SQLite file, hashing with its auditRowHash, so one trail verifies
// the same wherever it is stored.
import { auditRowHash, GENESIS_HASH, type AuditChainReport, type ChainedAuditRow } from "../audit-chain.ts";

export class ChainWalk {
  #expectedSeq = 1;
  #prevHash = GENESIS_HASH;
  #count = 0;
  #broken: AuditChainReport | undefined;

  /** Checks the next row in seq order; false once a link is broken (see `report`). */
  next(row: ChainedAuditRow & { hash: string | null }): boolean {
    if (this.#broken !== undefined) return false;
    if (row.seq !== this.#expectedSeq) return this.#break(row.seq, `sequence gap (row ${this.#expectedSeq} missing)`);
    if (row.prev_hash !== this.#prevHash) return this.#break(row.seq, "prev_hash does not match the previous row");
    if (row.hash !== auditRowHash(row)) return this.#break(row.seq, "hash mismatch");
    this.#prevHash = row.hash;
    this.#expectedSeq = row.seq + 1;
    this.#count++;
    return true;
  }

  report(): AuditChainReport {
    if (this.#broken !== undefined) return this.#broken;
    if (this.#count === 0) return { ok: true, rows: 0 };
    return { ok: true, rows: this.#count, head: { seq: this.#expectedSeq - 1, hash: this.#prevHash } };
  }

  #break(seq: number, reason: string): false {
    this.#broken = { ok: false, seq, reason };
    return false;
  }
}
