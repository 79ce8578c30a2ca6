// Checks an audit trail against its signed checkpoints: every checkpoint must verify with a trusted key, and the
// trail must still hold, at the checkpoint's seq, the very hash that was signed. A trail cut short, or edited
// and re-hashed from the edit onwards (a valid chain again), fails here even though the chain itself checks out.
import type { JSONWebKeySet } from "jose";
import { type AuditHead, type CheckpointClaims, CheckpointInvalid, verifyCheckpoint } from "./checkpoint.ts";
import type { ReadLine } from "./checkpoint-file.ts";

/** What the check needs from the trail (already verified as a chain). */
export interface TrailView {
  readonly head: AuditHead | undefined;
  hashAt(seq: number): string | undefined;
}

export type CheckpointReport =
  | { readonly ok: true; readonly verified: number; readonly latest: CheckpointClaims; readonly uncovered: number }
  | { readonly ok: false; readonly line: number; readonly reason: string };

export async function verifyCheckpoints(lines: readonly ReadLine[], trail: TrailView, keys: JSONWebKeySet): Promise<CheckpointReport> {
  if (lines.length === 0) return { ok: false, line: 0, reason: "the file holds no checkpoint to verify against" };
  let latest: CheckpointClaims | undefined;
  for (const read of lines) {
    if ("error" in read) return { ok: false, line: read.line, reason: read.error };
    let claims: CheckpointClaims;
    try {
      claims = await verifyCheckpoint(read.checkpoint, keys);
    } catch (err) {
      if (err instanceof CheckpointInvalid) return { ok: false, line: read.line, reason: err.message };
      throw err;
    }
    const headSeq = trail.head?.seq ?? 0;
    if (claims.seq > headSeq)
      return {
        ok: false,
        line: read.line,
        reason: `signed entry #${claims.seq} but the trail ends at #${headSeq}: entries were removed from the end`,
      };
    const stored = trail.hashAt(claims.seq);
    if (stored !== claims.hash)
      return {
        ok: false,
        line: read.line,
        reason: `signed hash ${claims.hash} for entry #${claims.seq} but the trail has ${stored ?? "no such entry"}: the trail was rewritten`,
      };
    // Several processes may append checkpoints out of order; the latest is the highest seq, not the last line.
    if (latest === undefined || claims.seq > latest.seq) latest = claims;
  }
  return { ok: true, verified: lines.length, latest: latest as CheckpointClaims, uncovered: (trail.head?.seq ?? 0) - (latest?.seq ?? 0) };
}
