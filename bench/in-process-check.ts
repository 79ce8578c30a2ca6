// `make bench` (in-process Check at scale): the access domain's Check, called in this process, on a real SQLite
// store holding 1,000,000 grant rows (~100k subjects; most live, some expired, some revoked), of which 10 are
// alice's live grants on db/orders. The domain is built by src/app.ts's startJitgate (via test/support's
// startTestJitgate: the composition root `jitgate serve` runs, so the policy pool with its time budget and worker
// hop, the decision log with its writer thread and whatever the root builds at start are all included); the
// bench calls `jitgate.access.checkAs(checker, ...)`, what the gRPC handler calls for a checker service. The rows
// are written straight into the store's own schema (after jitgate created it, modelled on a request and grant
// jitgate wrote itself) in one transaction, then jitgate is started again on that file. Second line: the same
// Check with the policy engine on this thread (no pool), on the same file, built as the domain tests build it
// (test/support/access-domain.ts); third: the store's read of the live grants alone.
// Reports p50/p99 µs over sequential Checks after a warm-up, and writes them to bench/results.json
// ("inProcessCheck"). Usage: node bench/in-process-check.ts [rows] [checks]
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import type { Access } from "../src/access/access.ts";
import type { CheckResult } from "../src/access/check.ts";
import { openSqliteStore, STORE_FILE } from "../src/store/sqlite.ts";
import { openAccessDomains } from "../test/support/access-domain.ts";
import { api, orderReadGrant, tokenFor } from "../test/support/api.ts";
import { removeDir, tempDir } from "../test/support/bundles.ts";
import { startTestJitgate } from "../test/support/jitgate.ts";
import catalog from "../policies/catalog/data.json" with { type: "json" };
import { loadAverage } from "./server-watch.ts";
import { pct, writeResults } from "./stats.ts";

/** `--fill <json>`: this file run as a child that writes the rows (its SQLite cache then leaves with it). */
const FILL = process.argv[2] === "--fill" ? (JSON.parse(process.argv[3] ?? "{}") as FillJob) : undefined;
const ROWS = FILL?.rows ?? Number(process.argv[2] ?? 1_000_000);
const CHECKS = Number(process.argv[3] ?? 20_000);
const WARM_UP = Math.min(5_000, CHECKS);
const SUBJECTS = Math.max(1, Math.round(ROWS / 10));
const ALICE_LIVE = 10;
/** Of the other rows: expired (their EXPIRED event recorded, as jitgate's sweep leaves them) and revoked. */
const EXPIRED_SHARE = 0.2;
const REVOKED_SHARE = 0.1;

const SUBJECT = { id: "alice", groups: ["engineering"] };
/** A checker service: `jitgate serve`'s default checker group, and the domain tests' (test/support/access-domain.ts). */
const CHECKER = { id: "svc-bench", groups: ["jitgate-checkers"] };
const TEST_CHECKER = { id: "svc-bench", groups: ["services"] };
const QUESTION = { subject: SUBJECT, resource: "db/orders", action: "read", context: { source_ip: "10.1.2.3" } };
const RESOURCES = Object.entries(catalog.resources).map(([name, r]) => ({ name, actions: r.actions }));

type Row = Record<string, string | number | null>;
interface FillJob {
  readonly file: string;
  readonly template: { request: Row; grant: Row };
  readonly now: number;
  readonly rows: number;
}

/** A request and grant as jitgate writes them (alice's auto-approved read), to model the bulk rows on. */
async function templateRows(dataDir: string): Promise<{ request: Row; grant: Row }> {
  const jitgate = await startTestJitgate(dataDir);
  const client = api(jitgate.address);
  try {
    await orderReadGrant(client.as(await tokenFor(dataDir, "template", ["engineering"])));
  } finally {
    client.close();
    await jitgate.close();
  }
  const db = new Database(join(dataDir, STORE_FILE), { readonly: true });
  const request = db.prepare("SELECT * FROM requests LIMIT 1").get() as Row;
  const grant = db.prepare("SELECT * FROM grants LIMIT 1").get() as Row;
  db.close();
  return { request, grant };
}

/**
 * Writes `ROWS` grants (each with its request and its CREATED event, plus REVOKED/EXPIRED events) in one
 * transaction. Returns alice's live grants' ids, the one expiring last first (the one an allow names).
 */
function fill(file: string, template: { request: Row; grant: Row }, now: number): string[] {
  const db = new Database(file);
  db.pragma("journal_mode = MEMORY");
  db.pragma("synchronous = OFF");
  db.pragma("cache_size = -1000000");
  const insert = (table: string, row: Row) =>
    db.prepare(
      `INSERT INTO ${table} (${Object.keys(row).join(", ")}) VALUES (${Object.keys(row)
        .map((c) => `@${c}`)
        .join(", ")})`,
    );
  const insertRequest = insert("requests", template.request);
  const insertGrant = insert("grants", template.grant);
  const insertEvent = db.prepare("INSERT INTO grant_events (grant_id, kind, at) VALUES (?, ?, ?)");
  const minute = 60_000;
  const alice: { id: string; expiresAt: number }[] = [];
  let n = 1; // the template's own grant
  const add = (subject: string, resource: { name: string; actions: string[] }, state: "live" | "expired" | "revoked", k: number) => {
    const id = randomUUID();
    const requestId = randomUUID();
    const actions = JSON.stringify(
      resource.name === "db/orders" && subject === SUBJECT.id ? ["read"] : resource.actions.slice(0, 1 + (k % 2)),
    );
    // Live grants end 30 min to 2 h from now; the others ended up to 2 days ago (or are revoked before their end).
    const expiresAt = state === "expired" ? now - minute * (1 + (k % 2880)) : now + minute * (30 + (k % 90));
    const createdAt = Math.min(expiresAt, now) - minute * (10 + (k % 50));
    insertRequest.run({
      ...template.request,
      id: requestId,
      requester: subject,
      resource: resource.name,
      actions,
      created_at: createdAt,
      pending_until: 0,
      decided_at: createdAt,
      grant_id: id,
      client_key: "",
    });
    const revokedAt = state === "revoked" ? Math.min(now - minute, createdAt + minute) : null;
    insertGrant.run({
      ...template.grant,
      id,
      request_id: requestId,
      subject,
      resource: resource.name,
      actions,
      created_at: createdAt,
      expires_at: expiresAt,
      revoked_at: revokedAt,
      revoked_by: revokedAt === null ? null : "admin",
      revoke_reason: revokedAt === null ? null : "bench: revoked",
      expiry_recorded: state === "expired" ? 1 : 0,
    });
    insertEvent.run(id, "CREATED", createdAt);
    if (revokedAt !== null) insertEvent.run(id, "REVOKED", revokedAt);
    if (state === "expired") insertEvent.run(id, "EXPIRED", expiresAt);
    if (subject === SUBJECT.id && resource.name === "db/orders" && state === "live") alice.push({ id, expiresAt });
    n++;
  };
  const orders = RESOURCES.find((r) => r.name === "db/orders");
  if (!orders) throw new Error("no db/orders in the catalogue");
  // The tables' own indexes, dropped for the inserts and built again after from the schema's SQL (sorting once is
  // far quicker than a million random B-tree inserts per index); the schema ends as the migrations made it.
  const indexes = db
    .prepare<[], { name: string; sql: string }>(
      "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ('requests', 'grants', 'grant_events')",
    )
    .all();
  db.transaction(() => {
    for (const i of indexes) db.exec(`DROP INDEX "${i.name}"`);
    // alice: 10 live grants on db/orders, 6 that no longer count there, and some on other resources.
    for (let k = 0; k < ALICE_LIVE; k++) add(SUBJECT.id, orders, "live", k * 7);
    for (let k = 0; k < 3; k++) add(SUBJECT.id, orders, "expired", k);
    for (let k = 0; k < 3; k++) add(SUBJECT.id, orders, "revoked", k);
    const others = RESOURCES.filter((r) => r.name !== orders.name);
    for (let k = 0; k < 4; k++) add(SUBJECT.id, others[k % others.length] ?? orders, "live", k);
    for (let i = 0; n < ROWS; i++) {
      const k = i * 7919;
      const share = (i % 100) / 100;
      const state = share < EXPIRED_SHARE ? "expired" : share < EXPIRED_SHARE + REVOKED_SHARE ? "revoked" : "live";
      add(`user-${i % SUBJECTS}`, RESOURCES[(i * 31 + Math.floor(i / SUBJECTS)) % RESOURCES.length] ?? orders, state, k);
    }
    for (const i of indexes) db.exec(i.sql);
  })();
  db.pragma("journal_mode = WAL");
  db.close();
  return alice.sort((a, b) => b.expiresAt - a.expiresAt || (a.id < b.id ? -1 : 1)).map((g) => g.id);
}

/** Sequential calls of `fn` after a warm-up: p50/p99 in µs, and how many answers were not `ok`. */
async function timed<T>(fn: () => Promise<T> | T, ok: (r: T) => boolean): Promise<{ p50: number; p99: number; wrong: number }> {
  let wrong = 0;
  for (let i = 0; i < WARM_UP; i++) if (!ok(await fn())) wrong++;
  const us: number[] = [];
  for (let i = 0; i < CHECKS; i++) {
    const t = performance.now();
    const r = await fn();
    us.push((performance.now() - t) * 1000);
    if (!ok(r)) wrong++;
  }
  return { ...pct(us), wrong };
}

const checkOf =
  (access: Access, checker = CHECKER) =>
  () =>
    access.checkAs(checker, QUESTION);
const fmt = (x: number) => x.toFixed(1);
const mb = () => process.memoryUsage().rss / 2 ** 20;

/** Runs fill() in a child process (this file with --fill); resolves to alice's live grant ids. */
async function fillInChild(job: FillJob): Promise<string[]> {
  const { stdout } = await promisify(execFile)(process.execPath, [import.meta.filename, "--fill", JSON.stringify(job)], {
    timeout: 30 * 60_000,
    maxBuffer: 1 << 20,
  });
  return JSON.parse(stdout) as string[];
}

if (FILL) {
  process.stdout.write(JSON.stringify(fill(FILL.file, FILL.template, FILL.now)));
  process.exit(0);
}

const dataDir = await tempDir("jitgate-bench-in-process-");
try {
  console.log(
    `in-process Check, ${ROWS.toLocaleString("en")} grant rows (~${SUBJECTS.toLocaleString("en")} subjects), ${ALICE_LIVE} live for the subject checked; load average ${loadAverage()}`,
  );
  const template = await templateRows(dataDir);
  const file = join(dataDir, STORE_FILE);
  let t = performance.now();
  const alice = await fillInChild({ file, template, now: Date.now(), rows: ROWS });
  const fillS = (performance.now() - t) / 1000;
  const expected = alice[0];
  const db = new Database(file, { readonly: true });
  const counts = db
    .prepare(
      "SELECT count(*) AS total, sum(revoked_at IS NULL AND expires_at > ?) AS live, sum(revoked_at IS NOT NULL) AS revoked, count(DISTINCT subject) AS subjects FROM grants",
    )
    .get(Date.now()) as { total: number; live: number; revoked: number; subjects: number };
  db.close();
  console.log(
    `  store: ${counts.total} grants (${counts.live} live, ${counts.revoked} revoked, the rest expired), ${counts.subjects} subjects; written in ${fillS.toFixed(1)} s`,
  );

  const rssBefore = mb();
  t = performance.now();
  const jitgate = await startTestJitgate(dataDir);
  const startS = (performance.now() - t) / 1000;
  const isAllow = (r: CheckResult) => r.allow && r.grantId === expected;
  const first = await checkOf(jitgate.access)();
  if (!isAllow(first)) throw new Error(`the Check is not an allow by ${expected}: ${JSON.stringify(first)}`);
  const pool = await timed(checkOf(jitgate.access), isAllow);
  const rssAfter = mb();
  await jitgate.close();
  console.log(`  jitgate started on it in ${startS.toFixed(1)} s; this process's RSS ${rssBefore.toFixed(0)} -> ${rssAfter.toFixed(0)} MB`);

  // Without the pool: the engine on this thread, as the domain tests build the domain (array decision sink).
  const domains = await openAccessDomains(() => Date.now());
  const domain = domains.open({ file });
  const engine = await timed(checkOf(domain.access, TEST_CHECKER), isAllow);
  domain.close();
  await domains.remove();

  const store = openSqliteStore(file);
  const read = await timed(
    () => store.liveGrantsOn(SUBJECT.id, QUESTION.resource, Date.now()),
    (live) => live.length === ALICE_LIVE,
  );
  store.close();

  const lines = [
    { how: "check(), as jitgate serve builds it (policy pool, decision log)", ...pool },
    { how: "check(), policy engine on this thread (no pool), array decision sink", ...engine },
    { how: "store.liveGrantsOn() alone (the SQLite read)", ...read },
  ];
  console.log(`\n${CHECKS.toLocaleString("en")} sequential calls after ${WARM_UP.toLocaleString("en")} to warm up:\n`);
  console.log("| what | p50 µs | p99 µs | wrong answers |");
  console.log("|---|---|---|---|");
  for (const l of lines) console.log(`| ${l.how} | ${fmt(l.p50)} | ${fmt(l.p99)} | ${l.wrong} |`);
  const goals = [
    { goal: "in-process p50 <= 10 µs (as served: with the pool)", value: pool.p50, met: pool.p50 <= 10 },
    { goal: "in-process p99 <= 30 µs (as served: with the pool)", value: pool.p99, met: pool.p99 <= 30 },
  ];
  console.log("");
  for (const g of goals) console.log(`${g.met ? "met  " : "SHORT"} ${g.goal}: ${fmt(g.value)}`);
  const out = await writeResults("inProcessCheck", {
    command: `node bench/in-process-check.ts ${ROWS} ${CHECKS}`,
    machine: { node: process.version, loadAverage: loadAverage() },
    store: { ...counts, aliceLive: ALICE_LIVE, writtenInS: fillS },
    jitgateStartS: startS,
    rssMb: { beforeStart: rssBefore, afterChecks: rssAfter },
    checks: CHECKS,
    warmUp: WARM_UP,
    lines,
    goals,
  });
  console.log(`figures written to ${out}`);
  if (lines.some((l) => l.wrong > 0)) process.exitCode = 1;
} finally {
  await removeDir(dataDir);
}
