// A signed checkpoint of the audit trail: the chain head (seq + hash) signed with jitgate's signing key, as a
// compact JWS whose header names the key (kid) and a type of its own, so it can never pass for an access token.
// A chain recomputed after an edit no longer matches the hash a checkpoint signed before it.
import { CompactSign, compactVerify, createLocalJWKSet, errors, type JSONWebKeySet } from "jose";
import type { SigningKey } from "../tokens/keys.ts";

export const CHECKPOINT_TYPE = "jitgate-audit-checkpoint+jws";
/** Names the hash format the checkpoint speaks of (see canonicalAuditText). */
export const CHECKPOINT_CHAIN = "jitgate.audit.v1";
const ALGORITHMS = ["EdDSA", "ES256"];

export interface AuditHead {
  readonly seq: number;
  readonly hash: string;
}

/** What a checkpoint signs. */
export interface CheckpointClaims extends AuditHead {
  readonly chain: string;
  /** When it was signed (ms since the Unix epoch). */
  readonly at: number;
  readonly iss: string;
}

/** One line of the checkpoints file: the JWS, plus its facts repeated in clear for people and tools. */
export interface CheckpointLine {
  readonly seq: number;
  readonly hash: string;
  readonly at: string;
  readonly kid: string;
  readonly jws: string;
}

export interface CheckpointSigner {
  signingKey(): Promise<SigningKey>;
}

export async function signCheckpoint(signer: CheckpointSigner, head: AuditHead, at: number, iss: string): Promise<CheckpointLine> {
  const key = await signer.signingKey();
  const claims: CheckpointClaims = { chain: CHECKPOINT_CHAIN, seq: head.seq, hash: head.hash, at, iss };
  const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: CHECKPOINT_TYPE })
    .sign(key.privateKey);
  return { seq: head.seq, hash: head.hash, at: new Date(at).toISOString(), kid: key.kid, jws };
}

export class CheckpointInvalid extends Error {}

/**
 * Verifies a line's signature against `keys` (public keys only; a key embedded in the JWS is never trusted) and
 * that its clear fields say what was signed. Throws CheckpointInvalid with the reason.
 */
export async function verifyCheckpoint(line: CheckpointLine, keys: JSONWebKeySet): Promise<CheckpointClaims> {
  let payload: Uint8Array;
  try {
    const verified = await compactVerify(line.jws, createLocalJWKSet(keys), { algorithms: ALGORITHMS });
    if (verified.protectedHeader.typ !== CHECKPOINT_TYPE)
      throw new CheckpointInvalid(`the JWS is not a checkpoint (typ ${String(verified.protectedHeader.typ)})`);
    payload = verified.payload;
  } catch (err) {
    if (err instanceof CheckpointInvalid) throw err;
    if (err instanceof errors.JWKSNoMatchingKey)
      throw new CheckpointInvalid(
        `signed by key ${line.kid}, which is not among the trusted keys (give the JWKS that held it with --jwks)`,
      );
    throw new CheckpointInvalid(`signature does not verify (${err instanceof Error ? err.message : String(err)})`);
  }
  const claims = parseClaims(payload);
  if (claims.seq !== line.seq || claims.hash !== line.hash || new Date(claims.at).toISOString() !== line.at)
    throw new CheckpointInvalid("the line's seq, hash or time differ from what its signature covers");
  return claims;
}

function parseClaims(payload: Uint8Array): CheckpointClaims {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    throw new CheckpointInvalid("the signed payload is not JSON");
  }
  const c = value as Partial<CheckpointClaims> | null;
  const ok =
    c !== null &&
    typeof c === "object" &&
    c.chain === CHECKPOINT_CHAIN &&
    Number.isSafeInteger(c.seq) &&
    (c.seq as number) > 0 &&
    typeof c.hash === "string" &&
    /^[0-9a-f]{64}$/.test(c.hash) &&
    Number.isSafeInteger(c.at) &&
    typeof c.iss === "string";
  if (!ok) throw new CheckpointInvalid(`the signed payload is not a ${CHECKPOINT_CHAIN} checkpoint`);
  return c as CheckpointClaims;
}
