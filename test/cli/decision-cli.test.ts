import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { DecisionRecord } from "../../src/access/model.ts";
import { DECISIONS_FILE, openDecisionStore } from "../../src/store/decision-store.ts";
import { ROOT, removeDir, tempDir } from "../support/bundles.ts";
import { aDecisionRecord } from "../decisions/fixtures.ts";

const JITGATE = join(ROOT, "bin", "jitgate");
const MINUTE = 60_000;
/** Records are placed relative to the real clock, since `--since 1h` means an hour before the CLI runs. */
const NOW = Date.now();

function jitgate(args: string[], env: Record<string, string> = {}) {
  return spawnSync(JITGATE, ["decisions", ...args], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 30_000,
    env: { PATH: process.env.PATH, ...env },
  });
}

function aDecision(over: Partial<DecisionRecord> & { decisionId: string; at: number }): DecisionRecord {
  const grant = { code: "grant", message: "an active grant allows it" };
  return aDecisionRecord({ reasons: [grant], grantId: "g-1", latencyUs: 420, ...over });
}

const OLD_ALLOW = aDecision({ decisionId: "dec-old", at: NOW - 120 * MINUTE });
const BOB_DENY = aDecision({
  decisionId: "dec-bob",
  at: NOW - 30 * MINUTE,
  subject: "bob",
  action: "write",
  allow: false,
  reasons: [{ code: "no_grant", message: "no active grant" }],
  grantId: "",
  latencyUs: 1500,
});
const NEW_ALLOW = aDecision({ decisionId: "dec-new", at: NOW - 10 * MINUTE });

const idsOf = (stdout: string) =>
  stdout
    .trim()
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/).at(-1));

describe("jitgate decisions", () => {
  let dir: string;
  let file: string;

  before(async () => {
    dir = await tempDir();
    file = join(dir, DECISIONS_FILE);
    const store = openDecisionStore(file);
    store.insertBatch([OLD_ALLOW, BOB_DENY, NEW_ALLOW]);
    store.close();
  });
  after(() => removeDir(dir));

  test("lists decisions newest first, one line each: time, result, who, what, grant or reason, latency, id", () => {
    const run = jitgate(["--db", file]);
    assert.equal(run.status, 0, run.stderr);
    const lines = run.stdout.trim().split("\n");
    assert.match(lines[0] ?? "", /^TIME\s+RESULT\s+SUBJECT\s+ACTION\s+RESOURCE\s+CALLER\s+GRANT\/REASON\s+LATENCY\s+DECISION$/);
    assert.deepEqual(idsOf(run.stdout), ["dec-new", "dec-bob", "dec-old"]);
    const bob = lines[2]?.split(/\s+/);
    assert.deepEqual(bob, [
      new Date(BOB_DENY.at).toISOString(),
      "DENY",
      "bob",
      "write",
      "orders-db",
      "orders-service",
      "no_grant",
      "1.5ms",
      "dec-bob",
    ]);
    assert.match(lines[1] ?? "", /ALLOW\s+alice\s+read\s+orders-db\s+orders-service\s+g-1\s+420us\s+dec-new$/);
  });

  test("the default file is decisions.db in the data directory from JITGATE_DATA_DIR", () => {
    const run = jitgate([], { JITGATE_DATA_DIR: dir });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(idsOf(run.stdout), ["dec-new", "dec-bob", "dec-old"]);
  });

  test("--json prints one record per line", () => {
    const run = jitgate(["--data-dir", dir, "--json"]);
    assert.equal(run.status, 0, run.stderr);
    const records = run.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as DecisionRecord);
    assert.deepEqual(records, [NEW_ALLOW, BOB_DENY, OLD_ALLOW]);
  });

  test("filters by subject, decision id, denials, time and limit", () => {
    const ids = (args: string[]) => {
      const run = jitgate(["--db", file, "--json", ...args]);
      assert.equal(run.status, 0, run.stderr);
      return run.stdout
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as DecisionRecord).decisionId);
    };
    assert.deepEqual(ids(["--subject", "alice"]), ["dec-new", "dec-old"]);
    assert.deepEqual(ids(["--decision-id", "dec-old"]), ["dec-old"]);
    assert.deepEqual(ids(["--denied"]), ["dec-bob"]);
    assert.deepEqual(ids(["--since", "1h"]), ["dec-new", "dec-bob"]);
    assert.deepEqual(ids(["--until", "1h"]), ["dec-old"]);
    assert.deepEqual(ids(["--since", new Date(BOB_DENY.at).toISOString()]), ["dec-new", "dec-bob"]);
    assert.deepEqual(ids(["--limit", "1"]), ["dec-new"]);
  });

  test("no match is said in words", () => {
    const run = jitgate(["--db", file, "--subject", "nobody"]);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, "no decisions match\n");
  });

  test("a missing database file is one line naming it, exit 2", () => {
    const run = jitgate(["--data-dir", join(dir, "nowhere")]);
    assert.equal(run.status, 2);
    assert.equal(run.stderr.trim().split("\n").length, 1);
    assert.match(run.stderr, /no decision log at .*nowhere\/decisions\.db/);
  });

  test("a bad option is INVALID_ARGUMENT naming it, exit 2", () => {
    const since = jitgate(["--db", file, "--since", "yesterday"]);
    assert.equal(since.status, 2);
    assert.match(since.stderr, /INVALID_ARGUMENT: --since: "yesterday" is not a time; give an RFC 3339 time/);
    const limit = jitgate(["--db", file, "--limit", "0"]);
    assert.equal(limit.status, 2);
    assert.match(limit.stderr, /INVALID_ARGUMENT: --limit:/);
  });
});
