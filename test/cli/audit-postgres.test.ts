// The offline audit commands on a PostgreSQL store: the same lifecycle written through the port into a SQLite file
// and into PostgreSQL gives the same answers, byte for byte (tables and JSON lines, exit codes and notes), from a
// read-only snapshot that never migrates or writes; a tampered row, a wrong port or a newer schema is one line.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { audit } from "../../src/access/audit.ts";
import type { AccessWrites } from "../../src/access/ports.ts";
import type { ExportedAuditRecord, WhoHadRow } from "../../src/store/audit-queries.ts";
import { openPgStore } from "../../src/store/postgres/store.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { aGrant, aRequest, aReview, anAuditEntry, MINUTE, T0, withRaw } from "../store/fixtures.ts";
import { ROOT, removeDir, tempDir } from "../support/bundles.ts";
import { startPostgres, type PostgresServer, withClient } from "../support/postgres.ts";

const JITGATE = join(ROOT, "bin", "jitgate");
const iso = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z");
/** Entries by dave: more than a page of history (500) and of the PostgreSQL export (1000). */
const DAVE_ENTRIES = 1_100;

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI as an operator would, to its end (asynchronously: the runs on each store go side by side). */
function jitgate(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const child = spawn(JITGATE, args, { cwd: ROOT, timeout: 60_000, env: { PATH: process.env.PATH, ...env } });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (status) => resolve({ status, stdout, stderr }));
  });
}

const jsonLines = <T>(text: string): T[] =>
  text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as T);

/**
 * bob and erin (erin first, at the same time) approved alice's write grant on orders-db [T0, T0+30m); policy alone
 * gave carol a read grant [T0+5m, T0+60m) that root revoked at T0+20m; frank broke the glass on orders-db after
 * mallory denied him; dave did DAVE_ENTRIES things on billing. Each change with its audit entries.
 */
async function writeLifecycle(store: AccessWrites): Promise<void> {
  const alice = aRequest({ id: "r-alice", justification: "INC-7\u001b[2J fix stuck orders", ticket: "INC-7" });
  const aliceGrant = aGrant({ id: "g-alice", requestId: "r-alice", createdAt: T0, expiresAt: T0 + 30 * MINUTE });
  await store.write(async (tx) => {
    await tx.insertRequest(alice);
    await tx.appendAudit(audit.request("REQUEST_CREATED", { at: T0 - 2 * MINUTE, actor: "alice", reason: "asked", request: alice }));
    for (const reviewer of ["erin", "bob"]) {
      await tx.insertReview(aReview({ requestId: "r-alice", reviewer: { id: reviewer, groups: ["db-admins"] }, createdAt: T0 - MINUTE }));
      await tx.appendAudit(audit.request("REVIEW_RECORDED", { at: T0 - MINUTE, actor: reviewer, reason: "approve", request: alice }));
    }
    await tx.decideRequest("r-alice", "PENDING", { state: "APPROVED", decidedAt: T0, stateReason: "approved", grantId: "g-alice" });
    await tx.insertGrant(aliceGrant);
    await tx.appendAudit(audit.grant("GRANT_CREATED", { at: T0, actor: "jitgate", reason: "approved by erin, bob", grant: aliceGrant }));
  });
  const carol = aRequest({ id: "r-carol", requester: { id: "carol", groups: [] }, actions: ["read"], createdAt: T0 + 5 * MINUTE });
  const carolGrant = aGrant({
    id: "g-carol",
    requestId: "r-carol",
    subject: "carol",
    actions: ["read"],
    createdAt: T0 + 5 * MINUTE,
    expiresAt: T0 + 60 * MINUTE,
  });
  await store.write(async (tx) => {
    await tx.insertRequest({ ...carol, state: "APPROVED", grantId: "g-carol" });
    await tx.insertGrant(carolGrant);
    await tx.appendAudit(
      audit.grant("GRANT_CREATED", { at: T0 + 5 * MINUTE, actor: "jitgate", reason: "auto-approved", grant: carolGrant }),
    );
  });
  await store.write(async (tx) => {
    await tx.revokeGrant("g-carol", T0 + 20 * MINUTE, "root", "done");
    await tx.appendAudit(audit.grant("GRANT_REVOKED", { at: T0 + 20 * MINUTE, actor: "root", reason: "done", grant: carolGrant }));
  });
  const frank = aRequest({ id: "r-frank", requester: { id: "frank", groups: [] }, emergency: true, createdAt: T0 + 6 * MINUTE });
  const frankGrant = aGrant({ id: "g-frank", requestId: "r-frank", subject: "frank", breakGlass: true, createdAt: T0 + 7 * MINUTE });
  await store.write(async (tx) => {
    await tx.insertRequest({ ...frank, state: "APPROVED", grantId: "g-frank" });
    await tx.insertReview(
      aReview({ requestId: "r-frank", reviewer: { id: "mallory", groups: ["db-admins"] }, decision: "deny", createdAt: T0 + 6 * MINUTE }),
    );
    await tx.insertGrant(frankGrant);
    const details = { note: "caf\u00e9 \u202etxt.exe", tags: ["\u2603"] };
    await tx.appendAudit(
      audit.grant("GRANT_CREATED", { at: T0 + 7 * MINUTE, actor: "frank", reason: "break glass \u2615", grant: frankGrant, details }),
    );
  });
  await store.write(async (tx) => {
    for (let i = 1; i <= DAVE_ENTRIES; i++) {
      const at = T0 + 60 * MINUTE + i * 1_000;
      await tx.appendAudit(
        anAuditEntry({ at, actor: "dave", subject: "dave", resource: "billing", grantId: undefined, reason: `entry ${i}` }),
      );
    }
  });
}

/** A loopback port nothing listens on. */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

describe("jitgate audit on --store postgres://", () => {
  let server: PostgresServer;
  let dir: string;
  let file: string;
  let url: string;
  let outs = 0;

  /** Runs `args` on the SQLite file and on PostgreSQL; asserts both ended alike, said the same, and returns the run. */
  const same = async (args: string[], status = 0): Promise<Run> => {
    const [onFile, onPg] = await Promise.all([jitgate([...args, "--db", file]), jitgate([...args, "--store", url])]);
    assert.equal(onFile.status, status, `SQLite: ${onFile.stderr}`);
    assert.equal(onPg.status, status, `PostgreSQL: ${onPg.stderr}`);
    assert.equal(onPg.stdout, onFile.stdout, `stdout of ${args.join(" ")}`);
    assert.equal(onPg.stderr, onFile.stderr, `stderr of ${args.join(" ")}`);
    return onFile;
  };

  /** A SQLite file and a PostgreSQL database holding the same `write`s. */
  const twins = async (name: string, write: (store: AccessWrites) => Promise<void>): Promise<{ file: string; url: string }> => {
    const twinFile = join(dir, `${name}.db`);
    const sqlite = openSqliteStore(twinFile);
    await write(sqlite);
    await sqlite.close();
    const twinUrl = await server.createDatabase();
    const postgres = await openPgStore(twinUrl);
    await write(postgres);
    await postgres.close();
    return { file: twinFile, url: twinUrl };
  };

  before(async () => {
    server = await startPostgres();
    dir = await tempDir();
    ({ file, url } = await twins("jitgate", writeLifecycle));
  });
  after(async () => {
    server.stop();
    await removeDir(dir);
  });

  test("who-had gives the same table and JSON lines, approvers in the order they approved", async () => {
    const at = (t: number, ...more: string[]) => ["audit", "who-had", "--resource", "orders-db", "--at", iso(t), ...more];
    for (const t of [T0 - 1, T0 + 20 * MINUTE, T0 + 60 * MINUTE]) await Promise.all([same(at(t)), same(at(t, "--json"))]);
    const [table, json] = await Promise.all([same(at(T0 + 10 * MINUTE)), same(at(T0 + 10 * MINUTE, "--json"))]);
    assert.match(table.stdout, /^orders-db at \S+: 3 subject\(s\) held 3 grant\(s\)\n/);
    assert.match(table.stdout, /\nalice\s+g-alice\s+read,write\s.*\serin, bob\s+r-alice\s+INC-7\s+INC-7 \[2J fix stuck orders\n/);
    assert.match(table.stdout, /\nfrank\s+g-frank \(break-glass\)\s.*\spolicy \(auto-approved\)\s+r-frank/);
    assert.deepEqual(
      jsonLines<WhoHadRow>(json.stdout).map((r) => [r.subject, r.approved_by, r.break_glass]),
      [
        ["alice", ["erin", "bob"], false],
        ["carol", ["policy (auto-approved)"], false],
        ["frank", ["policy (auto-approved)"], true],
      ],
    );
    const nothing = ["audit", "who-had", "--resource", "nothing-here", "--at", iso(T0)];
    await Promise.all([same(nothing), same([...nothing, "--json"])]);
  });

  test("history gives the same entries, tables and notes, across pages and within --since/--until", async () => {
    for (const subject of ["alice", "erin", "frank", "nobody"]) {
      const args = ["audit", "history", "--subject", subject];
      await Promise.all([same(args), same([...args, "--json"])]);
    }
    const dave = ["audit", "history", "--subject", "dave", "--json"];
    const window = ["--since", iso(T0 + 60 * MINUTE + 200_000), "--until", iso(T0 + 60 * MINUTE + 900_000)];
    const [inWindow, all, cut] = await Promise.all([
      same([...dave, ...window]),
      same([...dave, "--limit", "5000"]),
      same(["audit", "history", "--subject", "dave", "--limit", "600"]),
    ]);
    assert.equal(jsonLines(inWindow.stdout).length, 700);
    assert.equal(jsonLines(all.stdout).length, DAVE_ENTRIES);
    assert.match(cut.stderr, /showing the first 600 entries/);
    await same(["audit", "history", "--subject", "alice", "--since", iso(T0 - MINUTE), "--until", iso(T0)]);
  });

  test("export gives the same JSON lines in seq order, whole, after a seq and within a window", async () => {
    const whole = await same(["audit", "export"]);
    const seqs = jsonLines<ExportedAuditRecord>(whole.stdout).map((r) => r.seq);
    assert.deepEqual(
      seqs,
      Array.from({ length: DAVE_ENTRIES + 7 }, (_, i) => i + 1),
    );
    await Promise.all([same(["audit", "export", "--after-seq", "4"]), same(["audit", "export", "--after-seq", "999999"])]);
    await Promise.all([
      same(["audit", "export", "--since", iso(T0), "--until", iso(T0 + 60 * MINUTE + 2_000_000)]),
      same(["audit", "export", "--since", iso(T0 + 60 * MINUTE)]),
    ]);
  });

  test("export --out writes the same file and says the same, but for its name", async () => {
    const runs = await Promise.all(
      [
        ["--db", file],
        ["--store", url],
      ].map(async (store) => {
        const out = join(dir, `export-${++outs}.jsonl`);
        const run = await jitgate(["audit", "export", "--after-seq", "2", "--out", out, ...store]);
        assert.equal(run.status, 0, run.stderr);
        return { out, run, text: readFileSync(out, "utf8") };
      }),
    );
    const [onFile, onPg] = runs as [(typeof runs)[0], (typeof runs)[0]];
    assert.equal(onPg.text, onFile.text);
    assert.equal(onPg.run.stderr.replace(onPg.out, "OUT"), onFile.run.stderr.replace(onFile.out, "OUT"));
    assert.match(onPg.run.stderr, /^exported \d+ audit entries to .*; next time give --after-seq \d+\n$/);
  });

  test("verify reports the same intact chain and head; JITGATE_STORE names the store as --store does", async () => {
    const run = await same(["audit", "verify"]);
    assert.match(run.stdout, new RegExp(`^audit chain intact: ${DAVE_ENTRIES + 7} entries, head #${DAVE_ENTRIES + 7} [0-9a-f]{64}\\n$`));
    const who = ["audit", "who-had", "--resource", "orders-db", "--at", iso(T0), "--json"];
    const [byEnv, whoByEnv, whoOnFile] = await Promise.all([
      jitgate(["audit", "verify"], { JITGATE_STORE: url, JITGATE_DATA_DIR: join(dir, "nowhere") }),
      jitgate(who, { JITGATE_STORE: url }),
      jitgate([...who, "--db", file]),
    ]);
    assert.equal(byEnv.status, 0, byEnv.stderr);
    assert.equal(byEnv.stdout, run.stdout);
    assert.equal(whoByEnv.status, 0, whoByEnv.stderr);
    assert.equal(whoByEnv.stdout, whoOnFile.stdout);
  });

  test("verify finds a row edited in PostgreSQL as it finds one edited in SQLite: broken at its seq, exit 1", async () => {
    const tampered = await twins("tampered", async (store) => {
      for (let i = 1; i <= 3; i++) await store.write(async (tx) => tx.appendAudit(anAuditEntry({ at: T0 + i, reason: `entry ${i}` })));
    });
    const edit = "UPDATE audit SET reason = 'nothing happened' WHERE seq = 2";
    await withClient(tampered.url, (c) => c.query(edit));
    withRaw(tampered.file, (db) => db.prepare(edit).run());
    const [onFile, onPg] = await Promise.all([
      jitgate(["audit", "verify", "--db", tampered.file]),
      jitgate(["audit", "verify", "--store", tampered.url]),
    ]);
    assert.equal(onPg.status, 1);
    assert.equal(onPg.stdout, "");
    assert.equal(onPg.stderr, "audit chain broken at #2: hash mismatch\n");
    assert.equal(onFile.status, 1);
    assert.equal(onFile.stderr, onPg.stderr);

    // A details text that is no longer JSON still shows, as its text, the same on both stores.
    const garble = "UPDATE audit SET details = 'not json {' WHERE seq = 3";
    await withClient(tampered.url, (c) => c.query(garble));
    withRaw(tampered.file, (db) => db.prepare(garble).run());
    const [onPgExport, onFileExport] = await Promise.all([
      jitgate(["audit", "export", "--store", tampered.url]),
      jitgate(["audit", "export", "--db", tampered.file]),
    ]);
    assert.equal(onPgExport.stdout, onFileExport.stdout);
    assert.equal(jsonLines<ExportedAuditRecord>(onPgExport.stdout)[2]?.details, "not json {");
  });

  test("checkpoint signs PostgreSQL's head with the data directory's keys, and verify --checkpoints checks it", async () => {
    const keys = join(dir, "keys");
    mkdirSync(keys);
    const signed = await jitgate(["audit", "checkpoint", "--store", url, "--data-dir", keys]);
    assert.equal(signed.status, 0, signed.stderr);
    const onFile = await jitgate(["audit", "verify", "--db", file]);
    const head = /^audit chain intact: \d+ entries, head (#\d+ [0-9a-f]{64})\n$/.exec(onFile.stdout)?.[1];
    assert.ok(head !== undefined);
    assert.match(signed.stdout, new RegExp(`^checkpoint ${head} signed by key \\S+, appended to .*audit-checkpoints\\.jsonl\\n$`));
    const checkpoints = join(keys, "audit-checkpoints.jsonl");
    const run = await jitgate(["audit", "verify", "--store", url, "--data-dir", keys, "--checkpoints", checkpoints]);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /\naudit checkpoints intact: 1 verified, latest #\d+ signed .*; 0 newer entries not yet checkpointed\n$/);
  });

  test("an empty trail has nothing to checkpoint, naming the store without its password, exit 6", async () => {
    const empty = await server.createDatabase();
    await (await openPgStore(empty)).close();
    const secret = empty.replace("://jitgate@", "://jitgate:hunter2@");
    const run = await jitgate(["audit", "checkpoint", "--store", secret, "--data-dir", join(dir, "keys")]);
    assert.equal(run.status, 6);
    assert.equal(run.stderr, `jitgate: the audit trail in ${empty.replace("jitgate@", "")} is empty; nothing to checkpoint\n`);
  });

  test("a wrong port is one UNAVAILABLE line naming the store without its password, exit 3, for every command", async () => {
    const port = await closedPort();
    const wrong = `postgres://jitgate:hunter2@127.0.0.1:${port}/jitgate`;
    for (const args of [
      ["verify"],
      ["checkpoint", "--data-dir", join(dir, "keys")],
      ["who-had", "--resource", "orders-db"],
      ["history", "--subject", "alice"],
      ["export"],
    ]) {
      const run = await jitgate(["audit", ...args, "--store", wrong]);
      assert.equal(run.status, 3, `${args[0]}: ${run.stderr}`);
      assert.equal(run.stdout, "");
      assert.equal(
        run.stderr,
        `jitgate: UNAVAILABLE: audit: cannot open database postgres://127.0.0.1:${port}/jitgate: cannot reach PostgreSQL (ECONNREFUSED)\n`,
      );
      assert.ok(!run.stderr.includes("hunter2"));
    }
    const out = join(dir, "never.jsonl");
    assert.equal((await jitgate(["audit", "export", "--store", wrong, "--out", out])).status, 3);
    assert.throws(() => readFileSync(out), /ENOENT/, "a failed export leaves no file");
  });

  test("a database jitgate never migrated is refused, and stays as it was: nothing created or written", async () => {
    const bare = await server.createDatabase();
    for (const [args, what] of [
      [["verify"], "the audit chain"],
      [["who-had", "--resource", "orders-db"], "the audit queries"],
    ] as const) {
      const run = await jitgate(["audit", ...args, "--store", bare]);
      assert.equal(run.status, 6, run.stderr);
      assert.equal(
        run.stderr,
        `jitgate: FAILED_PRECONDITION: audit: database ${bare.replace("jitgate@", "")} has schema version 0, before ${what}; open it with jitgate once to migrate\n`,
      );
    }
    const tables = await withClient(bare, (c) => c.query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'"));
    assert.deepEqual(tables.rows, [{ n: 0 }]);
  });

  test("a schema newer than this jitgate knows is refused, exit 6", async () => {
    const newer = await server.createDatabase();
    await (await openPgStore(newer)).close();
    await withClient(newer, (c) => c.query("INSERT INTO jitgate_schema (version, description) VALUES (99, 'from the future')"));
    for (const args of [["verify"], ["export"]]) {
      const run = await jitgate(["audit", ...args, "--store", newer]);
      assert.equal(run.status, 6);
      assert.match(
        run.stderr,
        /^jitgate: FAILED_PRECONDITION: audit: database .* has schema version 99, newer than this jitgate knows \(1\); upgrade jitgate\n$/,
      );
    }
  });

  test("a store that is neither sqlite nor postgres://, or --db with --store postgres://, is a usage error", async () => {
    const bad = await jitgate(["audit", "verify", "--store", "mysql://x"]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^jitgate: INVALID_ARGUMENT: --store \(JITGATE_STORE\): is neither sqlite nor a postgres:\/\/ URL/);
    const both = await jitgate(["audit", "history", "--subject", "alice", "--store", url, "--db", file]);
    assert.equal(both.status, 2);
    assert.match(both.stderr, /^jitgate: INVALID_ARGUMENT: --db: names a SQLite file/);
    const dbBeatsEnv = await jitgate(["audit", "verify", "--db", file], { JITGATE_STORE: "postgres://nobody@127.0.0.1:1/none" });
    assert.equal(dbBeatsEnv.status, 0, dbBeatsEnv.stderr);
  });
});
