import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { after, before, describe, test } from "node:test";
import { audit } from "../../src/access/audit.ts";
import { auditRowHash, GENESIS_HASH } from "../../src/store/audit-chain.ts";
import type { ExportedAuditRecord, WhoHadRow } from "../../src/store/audit-queries.ts";
import { SCHEMA_VERSION } from "../../src/store/migrations.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { aGrant, aRequest, aReview, MINUTE, T0 } from "../store/fixtures.ts";
import { ROOT, removeDir, tempDir } from "../support/bundles.ts";
import { cliForUserWhoCannotWrite } from "../support/other-user.ts";

const JITGATE = join(ROOT, "bin", "jitgate");
const iso = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z");

function jitgate(args: string[], env: Record<string, string> = {}) {
  return spawnSync(JITGATE, args, { cwd: ROOT, encoding: "utf8", timeout: 30_000, env: { PATH: process.env.PATH, ...env } });
}

const jsonLines = <T>(text: string): T[] =>
  text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as T);

/**
 * A store where bob approved alice's write grant on orders-db [T0, T0+30m), and policy alone gave carol a read
 * grant on orders-db [T0+5m, T0+60m) that root revoked at T0+20m; each change with its audit entries.
 */
function buildTrail(file: string): void {
  const store = openSqliteStore(file);
  const alice = aRequest({ id: "r-alice", justification: "INC-7\u001b[2J fix stuck orders", ticket: "INC-7" });
  const aliceGrant = aGrant({ id: "g-alice", requestId: "r-alice", createdAt: T0, expiresAt: T0 + 30 * MINUTE });
  const carol = aRequest({ id: "r-carol", requester: { id: "carol", groups: [] }, actions: ["read"], createdAt: T0 + 5 * MINUTE });
  const carolGrant = aGrant({ id: "g-carol", requestId: "r-carol", subject: "carol", actions: ["read"], createdAt: T0 + 5 * MINUTE });
  store.transaction(() => {
    store.insertRequest(alice);
    store.appendAudit(audit.request("REQUEST_CREATED", { at: T0 - 2 * MINUTE, actor: "alice", reason: "asked", request: alice }));
    store.insertReview(aReview({ requestId: "r-alice", createdAt: T0 - MINUTE }));
    store.appendAudit(audit.request("REVIEW_RECORDED", { at: T0 - MINUTE, actor: "bob", reason: "approve", request: alice }));
    store.decideRequest("r-alice", "PENDING", { state: "APPROVED", decidedAt: T0, stateReason: "approved", grantId: "g-alice" });
    store.insertGrant(aliceGrant);
    store.appendAudit(audit.grant("GRANT_CREATED", { at: T0, actor: "jitgate", reason: "approved by bob", grant: aliceGrant }));
  });
  store.transaction(() => {
    store.insertRequest({ ...carol, state: "APPROVED", grantId: "g-carol" });
    store.insertGrant({ ...carolGrant, expiresAt: T0 + 60 * MINUTE });
    store.appendAudit(audit.grant("GRANT_CREATED", { at: T0 + 5 * MINUTE, actor: "jitgate", reason: "auto-approved", grant: carolGrant }));
  });
  store.transaction(() => {
    store.revokeGrant("g-carol", T0 + 20 * MINUTE, "root", "done");
    store.appendAudit(audit.grant("GRANT_REVOKED", { at: T0 + 20 * MINUTE, actor: "root", reason: "done", grant: carolGrant }));
  });
  store.close();
}

describe("jitgate audit who-had | history | export", () => {
  let dir: string;
  let file: string;
  let exports = 0;

  before(async () => {
    dir = await tempDir();
    file = join(dir, "jitgate.db");
    buildTrail(file);
  });
  after(() => {
    if (existsSync(join(dir, "readonly"))) chmodSync(join(dir, "readonly"), 0o755);
    return removeDir(dir);
  });

  test("who-had lists each subject's grant with its approvers as a table, without terminal escapes", () => {
    const run = jitgate(["audit", "who-had", "--db", file, "--resource", "orders-db", "--at", iso(T0 + 10 * MINUTE)]);
    assert.equal(run.status, 0, run.stderr);
    const [heading, header, aliceLine, carolLine, ...rest] = run.stdout.trimEnd().split("\n");
    assert.equal(heading, `orders-db at ${iso(T0 + 10 * MINUTE)}: 2 subject(s) held 2 grant(s)`);
    assert.match(
      header ?? "",
      /^SUBJECT\s+GRANT\s+ACTIONS\s+CREATED\s+EXPIRES\s+REVOKED\s+APPROVED BY\s+REQUEST\s+TICKET\s+JUSTIFICATION$/,
    );
    assert.match(aliceLine ?? "", /^alice\s+g-alice\s+read,write\s.*\sbob\s+r-alice\s+INC-7\s+INC-7 \[2J fix stuck orders$/);
    assert.match(carolLine ?? "", /^carol\s+g-carol\s+read\s.*by root\s+policy \(auto-approved\)\s+r-carol/);
    assert.deepEqual(rest, []);
    assert.ok(!run.stdout.includes("\u001b"), "the escape reached the terminal");
  });

  test("who-had --json gives one grant per line; at the revocation the revoked grant is gone", () => {
    const at = (t: number) =>
      jsonLines<WhoHadRow>(jitgate(["audit", "who-had", "--db", file, "--resource", "orders-db", "--at", iso(t), "--json"]).stdout);
    assert.deepEqual(
      at(T0 + 10 * MINUTE).map((r) => [r.subject, r.grant_id, r.approved_by]),
      [
        ["alice", "g-alice", ["bob"]],
        ["carol", "g-carol", ["policy (auto-approved)"]],
      ],
    );
    assert.deepEqual(
      at(T0 + 20 * MINUTE).map((r) => r.subject),
      ["alice"],
    );
    assert.deepEqual(at(T0 - 1), []);
  });

  test("history shows what happened to a subject and what they did, oldest first, within --since/--until", () => {
    const seqs = (...args: string[]) =>
      jsonLines<ExportedAuditRecord>(jitgate(["audit", "history", "--db", file, "--json", ...args]).stdout).map(
        (r) => `${r.seq}:${r.kind}`,
      );
    assert.deepEqual(seqs("--subject", "alice"), ["1:REQUEST_CREATED", "2:REVIEW_RECORDED", "3:GRANT_CREATED"]);
    assert.deepEqual(seqs("--subject", "bob"), ["2:REVIEW_RECORDED"]);
    assert.deepEqual(seqs("--subject", "carol"), ["4:GRANT_CREATED", "5:GRANT_REVOKED"]);
    assert.deepEqual(seqs("--subject", "alice", "--since", iso(T0 - MINUTE), "--until", iso(T0)), ["2:REVIEW_RECORDED"]);
    assert.deepEqual(seqs("--subject", "alice", "--since", "3650d"), ["1:REQUEST_CREATED", "2:REVIEW_RECORDED", "3:GRANT_CREATED"]);
  });

  test("history as a table, and a note on stderr when --limit cuts it short", () => {
    const run = jitgate(["audit", "history", "--db", file, "--subject", "carol", "--limit", "1"]);
    assert.equal(run.status, 0, run.stderr);
    const lines = run.stdout.trimEnd().split("\n");
    assert.match(lines[0] ?? "", /^SEQ\s+TIME\s+KIND\s+ACTOR\s+SUBJECT\s+RESOURCE\s+REQUEST\s+GRANT\s+REASON$/);
    assert.match(
      lines[1] ?? "",
      new RegExp(`^#4\\s+${iso(T0 + 5 * MINUTE)}\\s+GRANT_CREATED\\s+jitgate\\s+carol\\s+orders-db\\s+r-carol\\s+g-carol`),
    );
    assert.equal(lines.length, 2);
    assert.match(run.stderr, /showing the first 1 entries/);
  });

  test("export writes every entry once, in seq order, each checkable against the chain", () => {
    const run = jitgate(["audit", "export", "--db", file]);
    assert.equal(run.status, 0, run.stderr);
    const records = jsonLines<ExportedAuditRecord>(run.stdout);
    assert.deepEqual(
      records.map((r) => r.seq),
      [1, 2, 3, 4, 5],
    );
    let prev = GENESIS_HASH;
    for (const r of records) {
      assert.equal(r.prev_hash, prev);
      assert.equal(r.hash, auditRowHash({ ...r, details: JSON.stringify(r.details) }));
      prev = r.hash as string;
    }
    const rest = jsonLines<ExportedAuditRecord>(jitgate(["audit", "export", "--db", file, "--after-seq", "3"]).stdout);
    assert.deepEqual(
      rest.map((r) => r.seq),
      [4, 5],
    );
  });

  test("export --out writes a new 0600 file and never overwrites one", () => {
    const out = join(dir, `export-${++exports}.jsonl`);
    const run = jitgate(["audit", "export", "--db", file, "--out", out]);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, "");
    assert.match(run.stderr, /^exported 5 audit entries to .*; next time give --after-seq 5\n$/);
    assert.equal(statSync(out).mode & 0o777, 0o600);
    assert.equal(jsonLines(readFileSync(out, "utf8")).length, 5);

    writeFileSync(out, "keep me\n");
    const again = jitgate(["audit", "export", "--db", file, "--out", out]);
    assert.equal(again.status, 2);
    assert.match(again.stderr, /^jitgate: INVALID_ARGUMENT: --out: .* already exists; give a new file name\n$/);
    assert.equal(readFileSync(out, "utf8"), "keep me\n");
  });

  // Root ignores file modes: as root, the CLI runs as nobody (from an installed copy, since the checkout may be
  // where nobody cannot go) to make "read-only" real.
  test("works on a read-only copy in a read-only directory, and leaves nothing beside it", async () => {
    const ro = join(dir, "readonly");
    mkdirSync(ro);
    copyFileSync(file, join(ro, "jitgate.db"));
    chmodSync(join(ro, "jitgate.db"), 0o444);
    chmodSync(ro, 0o555);
    chmodSync(dir, 0o755); // mkdtemp's 0700 would keep nobody out
    const cli = await cliForUserWhoCannotWrite();
    try {
      const run = cli.run(["audit", "who-had", "--data-dir", ro, "--resource", "orders-db", "--at", iso(T0), "--json"]);
      assert.equal(run.status, 0, `as ${cli.user}: ${run.error?.message ?? run.stderr}`);
      assert.deepEqual(
        jsonLines<WhoHadRow>(run.stdout).map((r) => r.grant_id),
        ["g-alice"],
      );
      const history = cli.run(["audit", "history", "--subject", "carol", "--json"], { JITGATE_DATA_DIR: ro });
      assert.equal(jsonLines(history.stdout).length, 2, `as ${cli.user}: ${history.error?.message ?? history.stderr}`);
      assert.deepEqual(readdirSync(ro), ["jitgate.db"]);
    } finally {
      await cli.close();
    }
  });

  test("a time that is not one is one line naming the option, exit 2", () => {
    for (const [option, value] of [
      ["--at", "yesterday"],
      ["--at", "2026-02-30T10:00:00Z"],
      ["--at", "2026-11-23 10:00"],
    ]) {
      const run = jitgate(["audit", "who-had", "--db", file, "--resource", "orders-db", option as string, value as string]);
      assert.equal(run.status, 2, `${value}: ${run.stderr}`);
      assert.equal(run.stderr.trim().split("\n").length, 1);
      assert.match(run.stderr, /--at: ".*" is not a time; give an RFC 3339 time \(2026-11-23T10:00:00Z\), now, or a time ago/);
    }
    const until = jitgate(["audit", "history", "--db", file, "--subject", "alice", "--until", "soon"]);
    assert.equal(until.status, 2);
    assert.match(until.stderr, /--until: "soon" is not a time/);
    const limit = jitgate(["audit", "history", "--db", file, "--subject", "alice", "--limit", "0"]);
    assert.equal(limit.status, 2);
    assert.match(limit.stderr, /--limit: "0" is not a whole number above 0/);
  });

  test("a store written by a newer jitgate is refused, not misread, by every offline reader (exit 6)", () => {
    const newer = join(dir, "newer.db");
    copyFileSync(file, newer);
    const db = new Database(newer);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    for (const args of [
      ["verify"],
      ["who-had", "--resource", "orders-db", "--at", iso(T0)],
      ["export"],
      ["history", "--subject", "alice"],
    ]) {
      const run = jitgate(["audit", ...args, "--db", newer]);
      assert.equal(run.status, 6, `audit ${args[0]}: ${run.stderr}`);
      assert.match(
        run.stderr,
        new RegExp(`has schema version ${SCHEMA_VERSION + 1}, newer than this jitgate knows \\(${SCHEMA_VERSION}\\); upgrade jitgate`),
      );
    }
  });

  test("a missing database file is one line naming it, exit 2", () => {
    for (const args of [["who-had", "--resource", "orders-db"], ["history", "--subject", "alice"], ["export"]]) {
      const run = jitgate(["audit", ...args, "--data-dir", join(dir, "nowhere")]);
      assert.equal(run.status, 2);
      assert.equal(run.stdout, "");
      assert.equal(run.stderr.trim().split("\n").length, 1);
      assert.match(run.stderr, /no database at .*nowhere/);
    }
  });
});
