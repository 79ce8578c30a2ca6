// `jitgate audit checkpoint`, `jitgate audit verify --checkpoints` and the audited `jitgate keys rotate`, run as
// an operator would: against a data directory, with exit codes a script can act on.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import Database from "better-sqlite3";
import { auditRowHash, type ChainedAuditRow } from "../../src/store/audit-chain.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { anAuditEntry, T0 } from "../store/fixtures.ts";
import { ROOT, removeDir, tempDir } from "../support/bundles.ts";

const JITGATE = join(ROOT, "bin", "jitgate");

function jitgate(args: string[]) {
  return spawnSync(JITGATE, args, { cwd: ROOT, encoding: "utf8", timeout: 30_000, env: { PATH: process.env.PATH } });
}

describe("jitgate audit checkpoint / verify --checkpoints", () => {
  let root: string;
  let dirs = 0;
  /** A data directory whose trail holds `count` entries. */
  const dataDir = (count: number): string => {
    const dir = join(root, `data-${++dirs}`);
    mkdirSync(dir);
    const store = openSqliteStore(join(dir, "jitgate.db"));
    for (let i = 1; i <= count; i++) store.appendAudit(anAuditEntry({ at: T0 + i, reason: `entry ${i}` }));
    store.close();
    return dir;
  };
  before(async () => {
    root = await tempDir();
  });
  after(() => removeDir(root));

  test("a checkpoint of an intact trail verifies, exit 0", () => {
    const dir = dataDir(3);
    const signed = jitgate(["audit", "checkpoint", "--data-dir", dir]);
    assert.equal(signed.status, 0, signed.stderr);
    assert.match(signed.stdout, /^checkpoint #3 [0-9a-f]{64} signed by key \S+, appended to .*audit-checkpoints\.jsonl\n$/);
    const run = jitgate(["audit", "verify", "--data-dir", dir, "--checkpoints", join(dir, "audit-checkpoints.jsonl")]);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /audit checkpoints intact: 1 verified, latest #3 signed .*; 0 newer entries not yet checkpointed/);
  });

  test("a trail edited and re-hashed after a checkpoint: the chain passes, the checkpoint catches it, exit 1", () => {
    const dir = dataDir(4);
    assert.equal(jitgate(["audit", "checkpoint", "--data-dir", dir]).status, 0);
    const db = new Database(join(dir, "jitgate.db"));
    db.prepare("UPDATE audit SET reason = 'nothing happened' WHERE seq = 2").run();
    let prev = (db.prepare("SELECT hash FROM audit WHERE seq = 1").get() as { hash: string }).hash;
    for (const row of db.prepare("SELECT * FROM audit WHERE seq >= 2 ORDER BY seq").all() as ChainedAuditRow[]) {
      const hash = auditRowHash({ ...row, prev_hash: prev });
      db.prepare("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?").run(prev, hash, row.seq);
      prev = hash;
    }
    db.close();
    assert.equal(jitgate(["audit", "verify", "--data-dir", dir]).status, 0, "the recomputed chain alone looks intact");
    const run = jitgate(["audit", "verify", "--data-dir", dir, "--checkpoints", join(dir, "audit-checkpoints.jsonl")]);
    assert.equal(run.status, 1);
    assert.match(
      run.stderr,
      /^audit checkpoints: line 1 of .*: signed hash [0-9a-f]{64} for entry #4 but the trail has [0-9a-f]{64}: the trail was rewritten\n$/,
    );
  });

  test("a checkpoint verified against another server's keys fails, naming the key, exit 1", () => {
    const dir = dataDir(2);
    const other = dataDir(1);
    assert.equal(jitgate(["audit", "checkpoint", "--data-dir", dir]).status, 0);
    const jwks = join(root, `other-${dirs}.jwks`);
    writeFileSync(jwks, jitgate(["keys", "jwks", "--data-dir", other]).stdout);
    const run = jitgate(["audit", "verify", "--data-dir", dir, "--checkpoints", join(dir, "audit-checkpoints.jsonl"), "--jwks", jwks]);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /not among the trusted keys/);
  });

  test("an auditor's copy without the signing keys is not changed: verify asks for --jwks, and passes with them", () => {
    const dir = dataDir(2);
    assert.equal(jitgate(["audit", "checkpoint", "--data-dir", dir]).status, 0);
    const jwks = join(root, `server-${dirs}.jwks`);
    writeFileSync(jwks, jitgate(["keys", "jwks", "--data-dir", dir]).stdout);
    const copy = join(root, `copy-${dirs}`);
    mkdirSync(copy);
    for (const f of ["jitgate.db", "audit-checkpoints.jsonl"]) copyFileSync(join(dir, f), join(copy, f));
    const without = jitgate(["audit", "verify", "--data-dir", copy, "--checkpoints", join(copy, "audit-checkpoints.jsonl")]);
    assert.equal(without.status, 2);
    assert.match(without.stderr, /holds no signing keys; give the trusted keys with --jwks FILE/);
    assert.equal(existsSync(join(copy, "signing-keys")), false, "no key was made in the auditor's copy");
    const withKeys = jitgate([
      "audit",
      "verify",
      "--data-dir",
      copy,
      "--checkpoints",
      join(copy, "audit-checkpoints.jsonl"),
      "--jwks",
      jwks,
    ]);
    assert.equal(withKeys.status, 0, withKeys.stderr);
  });

  test("a missing checkpoints file is a usage error naming it, exit 2", () => {
    const dir = dataDir(1);
    const run = jitgate(["audit", "verify", "--data-dir", dir, "--checkpoints", join(dir, "none.jsonl")]);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /--checkpoints.*none\.jsonl/);
  });

  test("an empty trail has nothing to checkpoint: exit 6, no file written", () => {
    const dir = dataDir(0);
    const run = jitgate(["audit", "checkpoint", "--data-dir", dir]);
    assert.equal(run.status, 6);
    assert.match(run.stderr, /is empty; nothing to checkpoint/);
    assert.equal(existsSync(join(dir, "audit-checkpoints.jsonl")), false);
  });

  test("keys rotate appends SIGNING_KEY_ROTATED to the trail, naming both keys", () => {
    const dir = dataDir(1);
    const run = jitgate(["keys", "rotate", "--data-dir", dir]);
    assert.equal(run.status, 0, run.stderr);
    const [, kid, previous] = /new signing key (\S+) \(EdDSA\); previous (\S+);/.exec(run.stdout) ?? [];
    const db = new Database(join(dir, "jitgate.db"), { readonly: true });
    const row = db.prepare("SELECT kind, actor, details FROM audit ORDER BY seq DESC LIMIT 1").get() as {
      kind: string;
      actor: string;
      details: string;
    };
    db.close();
    assert.equal(row.kind, "SIGNING_KEY_ROTATED");
    assert.match(row.actor, /^os:/);
    const details = JSON.parse(row.details) as { kid: string; previous_kid: string };
    assert.deepEqual([details.kid, details.previous_kid], [kid, previous]);
    assert.equal(jitgate(["audit", "verify", "--data-dir", dir]).status, 0);
  });
});
