// `jitgate decisions --store postgres://...` (bin/jitgate as a child process, a real PostgreSQL): the same records
// written through the SQLite writer and the PostgreSQL writer read back identically, table and JSON, under every
// filter and limit; it reads without writing; an unreachable database is one line naming it without its password.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import type { DecisionRecord } from "../../src/access/model.ts";
import { openDecisionWriter } from "../../src/decisions/open-writer.ts";
import { ROOT, removeDir, tempDir } from "../support/bundles.ts";
import { startPostgres, type PostgresServer } from "../support/postgres.ts";
import { aDecisionRecord } from "./fixtures.ts";

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

const grant = { code: "grant", message: "an active grant allows it" };
const noGrant = { code: "no_grant", message: "no active grant", resource: "orders-db", actions: ["write"] };
const aDecision = (over: Partial<DecisionRecord> & { decisionId: string; at: number }) =>
  aDecisionRecord({ reasons: [grant], grantId: "g-1", latencyUs: 420, ...over });

// Two batches, as the log writes them; ties on `at` (the same millisecond) keep the order written.
const BATCHES: DecisionRecord[][] = [
  [
    aDecision({ decisionId: "dec-old", at: NOW - 120 * MINUTE }),
    aDecision({ decisionId: "dec-tie-1", at: NOW - 60 * MINUTE - 1, subject: "carol", tokenId: "tok-1" }),
    aDecision({ decisionId: "dec-tie-2", at: NOW - 60 * MINUTE - 1, subject: "carol", latencyUs: 12_345 }),
  ],
  [
    aDecision({
      decisionId: "dec-bob",
      at: NOW - 30 * MINUTE,
      subject: "bob",
      action: "write",
      allow: false,
      reasons: [noGrant, { code: "sod", message: "a requester cannot approve their own request" }],
      grantId: "",
      latencyUs: 1500,
    }),
    aDecision({ decisionId: "dec-new", at: NOW - 10 * MINUTE, caller: "spiffe://prod/ns/orders/sa/api" }),
  ],
];

let server: PostgresServer;
let dir: string;
let url: string;

before(async () => {
  server = await startPostgres();
  dir = await tempDir();
  url = await server.createDatabase();
  for (const store of [{ kind: "sqlite" } as const, { kind: "postgres", url } as const]) {
    const writer = await openDecisionWriter(store, dir);
    try {
      for (const batch of BATCHES) await writer.insertBatch(batch);
    } finally {
      await writer.close();
    }
  }
});

after(async () => {
  await removeDir(dir);
  server.stop();
});

const QUERIES: string[][] = [
  [],
  ["--subject", "alice"],
  ["--subject", "carol"],
  ["--decision-id", "dec-bob"],
  ["--decision-id", "dec-bob", "--subject", "alice"],
  ["--denied"],
  ["--subject", "bob", "--denied"],
  ["--since", "1h"],
  ["--until", "1h"],
  ["--since", "3h", "--until", "20m"],
  ["--limit", "2"],
  ["--subject", "nobody"],
];

describe("jitgate decisions --store postgres://", () => {
  test("answers every filter and limit as from the SQLite file, byte for byte, as a table and as JSON", () => {
    for (const query of QUERIES) {
      for (const format of [[], ["--json"]]) {
        const args = [...query, ...format];
        const fromFile = jitgate(["--data-dir", dir, ...args]);
        const fromPg = jitgate(["--store", url, ...args]);
        assert.equal(fromFile.status, 0, fromFile.stderr);
        assert.deepEqual(
          { status: fromPg.status, stdout: fromPg.stdout, stderr: fromPg.stderr },
          { status: 0, stdout: fromFile.stdout, stderr: "" },
          `jitgate decisions ${args.join(" ")}`,
        );
      }
    }
    const all = jitgate(["--store", url, "--json"]);
    assert.deepEqual(
      all.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as DecisionRecord),
      [BATCHES[1]?.[1], BATCHES[1]?.[0], BATCHES[0]?.[2], BATCHES[0]?.[1], BATCHES[0]?.[0]],
    );
  });

  test("the store may come from JITGATE_STORE, and a password in its URL is accepted", () => {
    const withPassword = url.replace("://jitgate@", "://jitgate:hunter2@");
    const fromEnv = jitgate(["--limit", "1"], { JITGATE_STORE: withPassword, JITGATE_DATA_DIR: join(dir, "nowhere") });
    assert.equal(fromEnv.status, 0, fromEnv.stderr);
    assert.match(fromEnv.stdout, /dec-new\n$/);
    // --db names a file: it wins over the environment's store.
    const file = jitgate(["--db", join(dir, "decisions.db"), "--limit", "1"], { JITGATE_STORE: withPassword });
    assert.equal(file.status, 0, file.stderr);
    assert.equal(file.stdout, fromEnv.stdout);
  });

  test("reads only: a database with no decision log is said in one line, exit 2, and is left without one", async () => {
    const empty = await server.createDatabase();
    const run = jitgate(["--store", empty]);
    assert.equal(run.status, 2, run.stderr);
    const location = empty.replace("://jitgate@", "://");
    assert.equal(run.stderr, `jitgate: no decision log in ${location} (no jitgate server has written decisions there)\n`);
    const client = new pg.Client({ connectionString: empty });
    await client.connect();
    try {
      const { rows } = await client.query(
        "SELECT to_regclass('decisions') AS decisions, to_regclass('jitgate_decisions_schema') AS schema",
      );
      assert.deepEqual(rows, [{ decisions: null, schema: null }]);
    } finally {
      await client.end();
    }
  });

  test("an unreachable database is one UNAVAILABLE line naming it without the password, exit 3", () => {
    const run = jitgate(["--store", "postgres://jitgate:hunter2@127.0.0.1:1/decisions"]);
    assert.equal(run.status, 3, run.stderr);
    assert.equal(
      run.stderr,
      "jitgate: UNAVAILABLE: decision log: cannot connect to postgres://127.0.0.1:1/decisions: cannot reach PostgreSQL (ECONNREFUSED)\n",
    );
  });

  test("a database that does not exist is one UNAVAILABLE line saying so, exit 3", () => {
    const missing = server.url("no_such_database");
    const run = jitgate(["--store", missing]);
    assert.equal(run.status, 3, run.stderr);
    assert.equal(run.stderr.split("\n").length, 2, run.stderr);
    assert.match(
      run.stderr,
      /^jitgate: UNAVAILABLE: decision log: cannot connect to postgres:\/\/127\.0\.0\.1:\d+\/no_such_database: .*does not exist/,
    );
  });

  test("bad usage is INVALID_ARGUMENT naming the flag, exit 2, before any connection", () => {
    const both = jitgate(["--store", url, "--db", join(dir, "decisions.db")]);
    assert.equal(both.status, 2);
    assert.match(both.stderr, /^jitgate: INVALID_ARGUMENT: --db: names a SQLite file; it cannot be given with --store postgres:\/\//);
    const store = jitgate(["--store", "mysql://somewhere/db"]);
    assert.equal(store.status, 2);
    assert.match(store.stderr, /INVALID_ARGUMENT: --store \(JITGATE_STORE\):/);
    const limit = jitgate(["--store", "postgres://jitgate@127.0.0.1:1/decisions", "--limit", "0"]);
    assert.equal(limit.status, 2);
    assert.match(limit.stderr, /INVALID_ARGUMENT: --limit:/);
  });
});
