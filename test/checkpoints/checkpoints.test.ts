// Signed checkpoints of the audit trail: what they sign, what they refuse, and the attack they exist for: a trail
// edited and re-hashed from the edit onwards is a valid chain again, but no longer matches a checkpoint.
import assert from "node:assert/strict";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { SignJWT } from "jose";
import { AuditCheckpointer } from "../../src/checkpoints/checkpointer.ts";
import { type CheckpointLine, CheckpointInvalid, signCheckpoint, verifyCheckpoint } from "../../src/checkpoints/checkpoint.ts";
import { appendCheckpoint, readCheckpoints } from "../../src/checkpoints/checkpoint-file.ts";
import { verifyCheckpoints } from "../../src/checkpoints/verify.ts";
import { auditRowHash, type ChainedAuditRow, readAuditHashAt, readAuditHead, verifyAuditChain } from "../../src/store/audit-chain.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { KeyRing } from "../../src/tokens/keys.ts";
import { anAuditEntry, T0, withRaw } from "../store/fixtures.ts";
import { removeDir, tempDir } from "../support/bundles.ts";

let dir: string;
let ring: KeyRing;
let otherRing: KeyRing;
let files = 0;
const ringOptions = { algorithm: "EdDSA" as const, maxTokenTtlS: 300, clockToleranceS: 30, now: () => T0 };

before(async () => {
  dir = await tempDir();
  ring = await KeyRing.open(join(dir, "keys-a"), ringOptions);
  otherRing = await KeyRing.open(join(dir, "keys-b"), ringOptions);
});
after(() => removeDir(dir));

/** A closed store file whose trail holds `count` entries. */
function trailOf(count: number): string {
  const file = join(dir, `trail-${++files}.db`);
  const store = openSqliteStore(file);
  for (let i = 1; i <= count; i++) store.appendAudit(anAuditEntry({ at: T0 + i, reason: `entry ${i}` }));
  store.close();
  return file;
}

const headOf = (file: string) => withRaw(file, (db) => readAuditHead(db));

/** What `jitgate audit verify --checkpoints` does, minus the printing. */
async function check(file: string, checkpoints: string, keys = ring) {
  const lines = await readCheckpoints(checkpoints);
  return withRaw(file, async (db) => {
    const chain = verifyAuditChain(db);
    const hashAt = readAuditHashAt(db);
    const hashes = new Map(lines.flatMap((l) => ("checkpoint" in l ? [[l.checkpoint.seq, hashAt(l.checkpoint.seq)] as const] : [])));
    return {
      chain,
      checkpoints: await verifyCheckpoints(lines, { head: readAuditHead(db), hashAt: (s) => hashes.get(s) }, await keys.allPublicKeys()),
    };
  });
}

async function checkpointNow(file: string, checkpoints: string): Promise<CheckpointLine> {
  const head = headOf(file);
  assert.ok(head);
  const line = await signCheckpoint(ring, head, T0 + 1000, "jitgate");
  await appendCheckpoint(checkpoints, line);
  return line;
}

/** The attack: edit row `seq` and recompute every hash from there on, so the chain verifies again. */
function rewriteFrom(file: string, seq: number): void {
  withRaw(file, (db) => {
    db.prepare("UPDATE audit SET reason = 'nothing happened' WHERE seq = ?").run(seq);
    const rows = db.prepare("SELECT * FROM audit WHERE seq >= ? ORDER BY seq").all(seq) as (ChainedAuditRow & { hash: string })[];
    let prev = (db.prepare("SELECT hash FROM audit WHERE seq = ?").get(seq - 1) as { hash: string }).hash;
    for (const row of rows) {
      const hash = auditRowHash({ ...row, prev_hash: prev });
      db.prepare("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?").run(prev, hash, row.seq);
      prev = hash;
    }
  });
}

describe("audit checkpoints", () => {
  test("a checkpoint signs the head's seq and hash with the ring's active key", async () => {
    const file = trailOf(3);
    const head = headOf(file);
    assert.ok(head);
    const line = await signCheckpoint(ring, head, T0 + 5, "jitgate");
    const { kid } = await ring.signingKey();
    assert.deepEqual([line.seq, line.hash, line.kid, line.at], [3, head.hash, kid, new Date(T0 + 5).toISOString()]);
    const claims = await verifyCheckpoint(line, await ring.allPublicKeys());
    assert.deepEqual([claims.seq, claims.hash, claims.at, claims.iss], [3, head.hash, T0 + 5, "jitgate"]);
  });

  test("a line whose clear fields differ from what was signed is refused", async () => {
    const line = await signCheckpoint(ring, { seq: 3, hash: "a".repeat(64) }, T0, "jitgate");
    await assert.rejects(verifyCheckpoint({ ...line, seq: 4 }, await ring.allPublicKeys()), CheckpointInvalid);
    await assert.rejects(verifyCheckpoint({ ...line, hash: "b".repeat(64) }, await ring.allPublicKeys()), CheckpointInvalid);
  });

  test("a checkpoint signed by a key outside the trusted set is refused, naming the key", async () => {
    const line = await signCheckpoint(otherRing, { seq: 1, hash: "a".repeat(64) }, T0, "jitgate");
    await assert.rejects(verifyCheckpoint(line, await ring.allPublicKeys()), /not among the trusted keys/);
  });

  test("a checkpoint still verifies after its key was rotated out and its private file deleted", async () => {
    const clock = { t: T0 };
    const moving = await KeyRing.open(join(dir, `keys-moving-${++files}`), { ...ringOptions, now: () => clock.t });
    const line = await signCheckpoint(moving, { seq: 1, hash: "c".repeat(64) }, T0, "jitgate");
    await moving.rotate();
    clock.t += 3 * 3_600_000;
    const last = await moving.rotate();
    assert.ok(last.pruned.includes(line.kid), "the signing key's private file is gone");
    const claims = await verifyCheckpoint(line, await moving.allPublicKeys());
    assert.equal(claims.seq, 1);
  });

  test("an access token signed by the same key does not pass as a checkpoint", async () => {
    const key = await ring.signingKey();
    const jws = await new SignJWT({ seq: 1, hash: "a".repeat(64), chain: "jitgate.audit.v1", at: T0, iss: "jitgate" })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "at+jwt" })
      .sign(key.privateKey);
    const line = { seq: 1, hash: "a".repeat(64), at: new Date(T0).toISOString(), kid: key.kid, jws };
    await assert.rejects(verifyCheckpoint(line, await ring.allPublicKeys()), /not a checkpoint/);
  });

  test("an intact trail verifies against its checkpoints, counting entries newer than the latest", async () => {
    const file = trailOf(4);
    const checkpoints = join(dir, `cp-${++files}.jsonl`);
    await checkpointNow(file, checkpoints);
    const store = openSqliteStore(file);
    store.appendAudit(anAuditEntry({ reason: "after the checkpoint" }));
    store.close();
    const { chain, checkpoints: report } = await check(file, checkpoints);
    assert.equal(chain.ok, true);
    assert.deepEqual(report.ok && [report.verified, report.latest.seq, report.uncovered], [1, 4, 1]);
    assert.equal(statSync(checkpoints).mode & 0o777, 0o600);
  });

  test("a trail edited and re-hashed passes the chain check but fails the checkpoint", async () => {
    const file = trailOf(5);
    const checkpoints = join(dir, `cp-${++files}.jsonl`);
    await checkpointNow(file, checkpoints);
    rewriteFrom(file, 3);
    const { chain, checkpoints: report } = await check(file, checkpoints);
    assert.equal(chain.ok, true, "the recomputed chain is valid on its own");
    assert.equal(report.ok, false);
    assert.match(!report.ok ? report.reason : "", /signed hash \w+ for entry #5 but the trail has \w+: the trail was rewritten/);
  });

  test("entries cut from the end of the trail fail the checkpoint that covered them", async () => {
    const file = trailOf(5);
    const checkpoints = join(dir, `cp-${++files}.jsonl`);
    await checkpointNow(file, checkpoints);
    withRaw(file, (db) => db.prepare("DELETE FROM audit WHERE seq >= 4").run());
    const { chain, checkpoints: report } = await check(file, checkpoints);
    assert.equal(chain.ok, true, "what is left is a valid chain");
    assert.deepEqual(report, { ok: false, line: 1, reason: "signed entry #5 but the trail ends at #3: entries were removed from the end" });
  });

  test("a garbled line and an empty file are failures, not a pass", async () => {
    const file = trailOf(2);
    const checkpoints = join(dir, `cp-${++files}.jsonl`);
    await checkpointNow(file, checkpoints);
    writeFileSync(checkpoints, `${readFileSync(checkpoints, "utf8")}{"seq":`, { flag: "w" });
    assert.deepEqual((await check(file, checkpoints)).checkpoints, { ok: false, line: 2, reason: "not JSON" });
    const empty = join(dir, `cp-${++files}.jsonl`);
    writeFileSync(empty, "");
    assert.equal((await check(file, empty)).checkpoints.ok, false);
  });

  test("the checkpointer writes only when the head moved, and once more on close", async () => {
    const file = join(dir, `trail-${++files}.db`);
    const store = openSqliteStore(file);
    const checkpoints = join(dir, `cp-${++files}.jsonl`);
    const written: number[] = [];
    const checkpointer = new AuditCheckpointer({
      file: checkpoints,
      intervalMs: 60_000,
      issuer: "jitgate",
      head: () => store.auditHead(),
      signer: ring,
      now: () => T0,
      onWritten: (l) => written.push(l.seq),
      onError: (err) => assert.fail(String(err)),
    });
    assert.equal(await checkpointer.checkpoint(), undefined, "an empty trail has nothing to sign");
    store.appendAudit(anAuditEntry());
    await checkpointer.checkpoint();
    await checkpointer.checkpoint();
    store.appendAudit(anAuditEntry({ reason: "second" }));
    await checkpointer.close();
    store.close();
    assert.deepEqual(written, [1, 2]);
    assert.deepEqual(
      (await readCheckpoints(checkpoints)).map((l) => ("checkpoint" in l ? l.checkpoint.seq : l.error)),
      [1, 2],
    );
  });
});
