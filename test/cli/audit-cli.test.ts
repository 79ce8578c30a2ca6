import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import Database from "better-sqlite3";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { anAuditEntry, T0 } from "../store/fixtures.ts";
import { ROOT, removeDir, tempDir } from "../support/bundles.ts";

const JITGATE = join(ROOT, "bin", "jitgate");

function jitgate(args: string[], env: Record<string, string> = {}) {
  return spawnSync(JITGATE, args, {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 30_000,
    env: { PATH: process.env.PATH, ...env },
  });
}

describe("jitgate audit verify", () => {
  let dir: string;
  let original: string;
  let copies = 0;
  /** A copy of the three-entry database, in its own data directory, so each test may tamper with it. */
  const copy = (): string => {
    const file = join(dir, `copy-${++copies}.db`);
    copyFileSync(original, file);
    return file;
  };

  before(async () => {
    dir = await tempDir();
    original = join(dir, "jitgate.db");
    const store = openSqliteStore(original);
    for (let i = 1; i <= 3; i++) store.appendAudit(anAuditEntry({ at: T0 + i, reason: `entry ${i}` }));
    store.close();
  });
  after(() => removeDir(dir));

  test("an untouched trail is reported intact with its head, exit 0", () => {
    const run = jitgate(["audit", "verify", "--db", copy()]);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^audit chain intact: 3 entries, head #3 [0-9a-f]{64}\n$/);
  });

  test("the default database is jitgate.db in the data directory from JITGATE_DATA_DIR", () => {
    const run = jitgate(["audit", "verify"], { JITGATE_DATA_DIR: dir });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /audit chain intact: 3 entries/);
  });

  test("an edited entry is reported broken at its seq on stderr, exit 1", () => {
    const file = copy();
    const db = new Database(file);
    db.prepare("UPDATE audit SET reason = 'nothing happened' WHERE seq = 2").run();
    db.close();
    const run = jitgate(["audit", "verify", "--db", file]);
    assert.equal(run.status, 1);
    assert.equal(run.stdout, "");
    assert.equal(run.stderr, "audit chain broken at #2: hash mismatch\n");
  });

  test("a deleted entry is reported broken, exit 1", () => {
    const file = copy();
    const db = new Database(file);
    db.prepare("DELETE FROM audit WHERE seq = 2").run();
    db.close();
    const run = jitgate(["audit", "verify", "--db", file]);
    assert.equal(run.status, 1);
    assert.equal(run.stderr, "audit chain broken at #3: sequence gap (row 2 missing)\n");
  });

  test("a missing database file is one line, exit 2", () => {
    const run = jitgate(["audit", "verify", "--data-dir", join(dir, "nowhere")]);
    assert.equal(run.status, 2);
    assert.equal(run.stderr.trim().split("\n").length, 1);
    assert.match(run.stderr, /no database at .*nowhere/);
  });
});
