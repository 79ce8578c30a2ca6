// `make bench` (overload): jitgate's decision path under faults and overload, loaded with h2load over gRPC on
// loopback. 1: its ceiling beside a do-nothing grpc-js server; 2: another process holding jitgate.db's write
// lock; 3: a rule that runs away on some inputs; 4: an offered rate of 2x and 10x the ceiling, and the time
// until a light probe's latency is back. Every jitgate run gets a fresh server and data directory, so its
// counters, memory and decision log (counted after a clean shutdown) are its own. h2load counts HTTP statuses
// only: a grpc-js probe beside every run checks grpc-status and the answer, and jitgate's /metrics say how
// many Checks were decided and how many refused.
import { availableParallelism } from "node:os";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { accessServiceDefinition, loadAccessPackage } from "../src/proto/loader.ts";
import { STORE_FILE } from "../src/store/sqlite.ts";
import { tokenFor } from "../test/support/api.ts";
import { buildVariant, REAL_BUNDLE, removeDir, tempDir } from "../test/support/bundles.ts";
import { type H2loadLoad, type H2loadResult, h2loadVersion, runH2load, writeGrpcBody } from "./h2load.ts";
import { idleProbe, type Probe, type ProbeSummary, recovery, startProbe, summarize, timedCheck } from "./probe.ts";
import * as servers from "./servers.ts";
import { CHECK, type CheckRequest, type JitgateServer, type Served, type ServerEnd } from "./servers.ts";
import * as watch from "./server-watch.ts";
import { pct } from "./stats.ts";

const CLIENTS = 8;
/** Streams per connection for the closed-loop ceiling runs (h2load -m), as in DESIGN.md's figures. */
const CEILING_STREAMS = 32;
/** For rate runs: grpc-js's max_concurrent_streams, so the offered rate, not h2load's window, sets the load. */
const OPEN_STREAMS = 256;
const CEILING_SECONDS = 8;
const HALF_RATE_SECONDS = 12;
const LOCK_RUN_SECONDS = 18;
const LOCK_AFTER_MS = 1_500;
const LOCK_HELD_MS = 15_000;
const OVERLOAD_SECONDS = 10;
const PROBE_EVERY_MS = 20;
const BURN_EVERY_MS = 200;
const RECOVERY = { windowMs: 1_000, everyMs: PROBE_EVERY_MS, limitMs: 30_000 };

// About bob, not alice: the quarantine of a run-away check covers its subject, resource and action, so "other
// Checks" are another subject's (alice's, the load's and the probe's).
const BURN_CHECK: CheckRequest = { ...CHECK, subject: "bob", context: { ...CHECK.context, burn: "yes" } };
// As test/e2e/policy-budget.test.ts builds it: Checks with context burn=yes run for tens of seconds.
const BURN_RULE = "count([x | some x in numbers.range(1, 3000000)]) < 0";

/** Body files, h2load's logs, the burn bundle and every server's data directory; removed at the end. */
const scratch = await tempDir("jitgate-bench-overload-");
const checkMessage = accessServiceDefinition(loadAccessPackage()).Check?.requestSerialize(CHECK);
if (!checkMessage) throw new Error("jit.v1.AccessService has no Check");
const bodyFile = await writeGrpcBody(scratch, "check.grpc", checkMessage);

// ---- one measured run

interface Row {
  readonly phase: string;
  readonly run: string;
  readonly h2: H2loadResult;
  /** Checks decided during the run (jitgate_decisions_total; probe calls included), and refusals by reason. */
  readonly decided: number | undefined;
  readonly refused: Readonly<Record<string, number>>;
  readonly cpuUsPerCall: number;
  readonly rss: { readonly before: number; readonly peak: number; readonly after: number };
  readonly gcMs: number | undefined;
  readonly loopLagMaxMs: number | undefined;
  readonly busyPercent: number;
  /** Of all cores, the share other processes took (other sessions' tests and benchmarks). */
  readonly othersPercent: number;
  /** The probe's answers while h2load ran. */
  readonly probe: ProbeSummary | undefined;
  end?: ServerEnd;
  readonly notes: string[];
}

interface RunOptions {
  readonly probe?: Probe;
  /** Runs beside h2load (a lock holder, a side loop). */
  readonly during?: () => Promise<void>;
  /** Runs after h2load ends, before the closing readings (a recovery wait); told when the load ended. */
  readonly settle?: (loadEnded: number) => Promise<void>;
}

function checkLoad(server: Served, shape: Partial<H2loadLoad>): H2loadLoad {
  return {
    url: `http://${server.address}/jit.v1.AccessService/Check`,
    bodyFile,
    headers: { "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${server.token}` },
    clients: CLIENTS,
    streams: CEILING_STREAMS,
    logFile: join(scratch, "h2load-requests.tsv"),
    ...shape,
  };
}

/** Offered `rate`/s for `seconds` (h2load --rps; see OPEN_STREAMS). */
const atRate = (rate: number, seconds: number): Partial<H2loadLoad> => ({ ratePerSecond: rate, seconds, streams: OPEN_STREAMS });

/** What is read about the server before and after a run. */
interface Reading {
  readonly counters: watch.JitgateCounters | undefined;
  readonly cpuUs: number;
  readonly rssMb: number;
  readonly machine: watch.MachineReading;
}

async function read(server: Served): Promise<Reading> {
  const counters = server.metricsUrl ? await watch.scrape(server.metricsUrl) : undefined;
  return { counters, cpuUs: watch.cpuMicros(server.pid), rssMb: watch.rssMb(server.pid), machine: watch.machineTime() };
}

async function measure(phase: string, run: string, server: Served, load: H2loadLoad, options: RunOptions = {}): Promise<Row> {
  const before = await read(server);
  const rss = watch.sampleRss(server.pid);
  const [h2] = await Promise.all([runH2load(load), options.during?.()]);
  const loadEnded = performance.now();
  await options.settle?.(loadEnded);
  await options.probe?.stop();
  const peak = rss.stop();
  const after = await read(server);
  const cpu = after.cpuUs - before.cpuUs;
  const [b, a] = [before.counters, after.counters];
  const decided = b && a ? watch.sum(watch.delta(a.decisions, b.decisions)) : undefined;
  const refused = b && a ? watch.delta(a.refused, b.refused) : {};
  const timeouts = b && a ? a.policyTimeouts - b.policyTimeouts : 0;
  return {
    phase,
    run,
    h2,
    decided,
    refused,
    cpuUsPerCall: cpu / (decided === undefined ? h2.done : decided + watch.sum(refused)),
    rss: { before: before.rssMb, peak, after: after.rssMb },
    gcMs: b && a ? a.gcMs - b.gcMs : undefined,
    loopLagMaxMs: a?.loopLagMaxMs,
    ...watch.busyBetween(before.machine, after.machine, cpu),
    probe: options.probe ? summarize(options.probe.samples.filter((s) => s.at < loadEnded)) : undefined,
    notes: timeouts > 0 ? [`policy timeouts (jitgate_policy_failures_total): ${timeouts}`] : [],
  };
}

type Setup = (server: JitgateServer, notes: string[]) => Promise<RunOptions> | RunOptions;

/** A jitgate run from start to clean shutdown: fresh server, warm-up, the measured run, a last look at answers. */
async function jitgateRun(phase: string, run: string, shape: Partial<H2loadLoad>, setup?: Setup, bundle = REAL_BUNDLE): Promise<Row> {
  const server = await servers.startJitgate(scratch, bundle);
  await runH2load(checkLoad(server, { requests: 3_000 }));
  const notes: string[] = [];
  const options = (await setup?.(server, notes)) ?? {};
  const probe = options.probe ?? startProbe(server.checker, CHECK, PROBE_EVERY_MS);
  const row = await measure(phase, run, server, checkLoad(server, shape), { ...options, probe });
  row.notes.push(...notes);
  const last = summarize(await Promise.all(Array.from({ length: 20 }, () => timedCheck(server.checker, CHECK))));
  if (last.answers.allow !== 20) row.notes.push(`after the run, 20 Checks answered ${formatAnswers(last.answers)}`);
  row.end = await servers.stopJitgate(server);
  return row;
}

// ---- the phases

/** 1: the ceiling, closed loop (h2load -c 8 -m 32), do-nothing grpc-js then jitgate. */
async function ceiling(): Promise<Row[]> {
  const baseline = await servers.startBaseline();
  await runH2load(checkLoad(baseline, { requests: 3_000 }));
  const base = await measure("1 ceiling", "do-nothing grpc-js", baseline, checkLoad(baseline, { seconds: CEILING_SECONDS }));
  await servers.stopBaseline(baseline);
  const ours = await jitgateRun("1 ceiling", "jitgate", { seconds: CEILING_SECONDS });
  ours.notes.push(`jitgate / do-nothing grpc-js: ${(ours.h2.perSecond / base.h2.perSecond).toFixed(2)} of the throughput`);
  return [base, ours];
}

/** 2: another process holds jitgate.db's write lock for 15 s while Checks arrive at half the ceiling. */
async function heldLock(rate: number): Promise<Row[]> {
  const rows: Row[] = [];
  for (const hold of [false, true]) {
    const run = hold ? "half rate, jitgate.db write-locked 15 s" : "half rate, no lock";
    const setup: Setup = (server, notes) => ({ during: () => lockAndWrite(server, hold, notes) });
    rows.push(await jitgateRun("2 write lock", run, atRate(rate, LOCK_RUN_SECONDS), setup));
  }
  rows[1]?.notes.push(`Checks' p99 with the lock ${p99s(rows[1])}, without ${p99s(rows[0])}`);
  return rows;
}

/** Takes the lock (if `hold`), then tries one lifecycle write meanwhile, which shows whether the lock bites. */
async function lockAndWrite(server: JitgateServer, hold: boolean, notes: string[]): Promise<void> {
  await sleep(LOCK_AFTER_MS);
  const lock = hold ? await servers.holdWriteLock(join(server.dataDir, STORE_FILE), LOCK_HELD_MS) : undefined;
  await sleep(2_000);
  const requester = server.client.as(await tokenFor(server.dataDir, hold ? "bob" : "carol", ["engineering"]));
  const at = performance.now();
  const ask = {
    resource: "db/orders",
    actions: ["read"],
    duration: { seconds: 600 },
    justification: "overload benchmark: a write",
    ticket: "INC-78",
  };
  const answer = await requester.call("RequestAccess", ask, { deadlineMs: 20_000 }).then(
    (r) => r.state,
    (err: grpc.ServiceError) => `${grpc.status[err.code]} (${err.details})`,
  );
  notes.push(`RequestAccess ${hold ? "while the lock was held" : "meanwhile"}: ${answer} in ${(performance.now() - at).toFixed(0)} ms`);
  await lock?.released;
}

/** 3: a bundle whose rule runs away on burn=yes; half-rate Checks without, then with, one burn Check every 200 ms. */
async function runawayRule(rate: number): Promise<Row[]> {
  const bundle = await burnBundle();
  const rows: Row[] = [];
  for (const burn of [false, true]) {
    const run = burn ? "half rate + 1 burn=yes Check / 200 ms" : "half rate, burn bundle, no burn calls";
    const setup: Setup = (server, notes) => ({ during: burn ? () => burnLoop(server, notes) : undefined });
    rows.push(await jitgateRun("3 runaway rule", run, atRate(rate, HALF_RATE_SECONDS), setup, bundle));
  }
  rows[1]?.notes.push(`other Checks' p99 with the burn calls ${p99s(rows[1])}, without ${p99s(rows[0])}`);
  return rows;
}

async function burnLoop(server: JitgateServer, notes: string[]): Promise<void> {
  const burns = startProbe(server.checker, BURN_CHECK, BURN_EVERY_MS);
  await sleep(HALF_RATE_SECONDS * 1000);
  await burns.stop();
  const ms = pct(burns.samples.map((b) => b.ms));
  const answers = formatAnswers(summarize(burns.samples).answers);
  notes.push(`burn=yes Checks: ${answers}; answered in p50 ${ms.p50.toFixed(0)} / p99 ${ms.p99.toFixed(0)} ms`);
}

async function burnBundle(): Promise<string> {
  const out = join(scratch, "burn.tar.gz");
  await buildVariant(join(scratch, "burn-variant"), out, async (policies) => {
    const file = join(policies, "jit", "check.rego");
    const text = await readFile(file, "utf8");
    const patched = text.replace("permitted if {\n", "permitted if {\n\tnot burns\n");
    if (patched === text) throw new Error(`${file}: no 'permitted if {' to patch`);
    await writeFile(file, `${patched}\nburns if {\n\tinput.context.burn == "yes"\n\t${BURN_RULE}\n}\n`);
  });
  return out;
}

/** 4: `factor` x the ceiling offered, then the time until the probe's p99 is back within twice its idle p99. */
async function overload(rate: number, factor: number): Promise<Row> {
  const setup: Setup = async (server, notes) => {
    const idle = await idleProbe(server.checker, CHECK, PROBE_EVERY_MS, 3_000);
    const bound = { ...RECOVERY, p99Ms: Math.max(2 * idle.allowed.p99, idle.allowed.p99 + 2) };
    const probe = startProbe(server.checker, CHECK, PROBE_EVERY_MS);
    const settle = async (loadEnded: number) => {
      const ms = await recovery(probe, loadEnded, bound);
      const back = Number.isNaN(ms) ? `not within ${RECOVERY.limitMs / 1000} s` : `${(ms / 1000).toFixed(1)} s after the load stopped`;
      notes.push(`recovery: probe p99 (idle ${idle.allowed.p99.toFixed(2)} ms) back within ${bound.p99Ms.toFixed(2)} ms ${back}`);
    };
    return { probe, settle };
  };
  return jitgateRun("4 overload", `${factor}x the ceiling offered`, atRate(rate * factor, OVERLOAD_SECONDS), setup);
}

// ---- the report

const fmt = (x: number | undefined, digits = 0) => (x === undefined || Number.isNaN(x) ? "-" : x.toFixed(digits));
const ms = (us: number) => fmt(us / 1000, 2);
function formatAnswers(a: Readonly<Record<string, number>>): string {
  return (
    Object.entries(a)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ") || "none"
  );
}

/** A run's p99: h2load's (over all answers) and the probe's (allowed calls only). */
const p99s = (r: Row | undefined) => (r ? `${ms(r.h2.latencyUs.p99)} ms (h2load) / ${fmt(r.probe?.allowed.p99, 2)} ms (probe)` : "-");

const COLUMNS = [
  "phase",
  "run",
  "offered /s",
  "sent /s",
  "answered /s (h2load)",
  "decided /s",
  "refused (RESOURCE_EXHAUSTED)",
  "p50 ms",
  "p99 ms",
  "probe answers",
  "probe allowed p50 / p99 ms",
  "server CPU µs/call",
  "RSS MB before → peak → after",
  "GC ms",
  "loop lag max ms",
  "decision records / Checks decided",
  "machine busy % (others)",
];

function tableRow(r: Row): string[] {
  const seconds = r.h2.seconds || 1;
  const refused = watch.sum(r.refused);
  const mixed = refused > 0 ? "*" : "";
  return [
    r.phase,
    r.run,
    r.h2.offered === undefined ? "max" : fmt(r.h2.offered / seconds),
    fmt(r.h2.started / seconds),
    fmt(r.h2.perSecond),
    r.decided === undefined ? "-" : fmt(r.decided / seconds),
    refused === 0 ? "0" : `${refused} (${formatAnswers(r.refused)})`,
    ms(r.h2.latencyUs.p50) + mixed,
    ms(r.h2.latencyUs.p99) + mixed,
    r.probe ? formatAnswers(r.probe.answers) : "-",
    r.probe ? `${fmt(r.probe.allowed.p50, 2)} / ${fmt(r.probe.allowed.p99, 2)}` : "-",
    fmt(r.cpuUsPerCall),
    `${fmt(r.rss.before)} → ${fmt(r.rss.peak)} → ${fmt(r.rss.after)}`,
    fmt(r.gcMs),
    fmt(r.loopLagMaxMs),
    r.end ? `${r.end.records} / ${r.end.checks}${r.end.dropped ? ` (${r.end.dropped} dropped)` : ""}` : "-",
    `${fmt(r.busyPercent)} (${fmt(r.othersPercent)})`,
  ];
}

const LEGEND = `
offered: the rate asked of h2load (--rps); sent: what it sent (it holds back past -m streams in flight per
connection); answered: completed streams, which include refusals (every gRPC answer is HTTP 200 to h2load);
decided: Checks jitgate answered with a decision (jitgate_decisions_total, probe included); refused: its
RESOURCE_EXHAUSTED answers by limit (jitgate_refused_total). \\* p50/p99 over every answer h2load saw,
refusals included; the probe (grpc-js, one Check every ${PROBE_EVERY_MS} ms) gives allowed calls' latency apart.
server CPU: utime+stime of the server process over the run, per call decided or refused. others: the share of
both cores taken by processes other than the server, h2load and this bench (other sessions' work).`;

function report(rows: readonly Row[]): void {
  console.log(`| ${COLUMNS.join(" | ")} |`);
  console.log(`|${COLUMNS.map(() => "---").join("|")}|`);
  for (const r of rows) console.log(`| ${tableRow(r).join(" | ")} |`);
  console.log(LEGEND);
  for (const r of rows) for (const n of r.notes) console.log(`- ${r.phase}, ${r.run}: ${n}`);
}

const lostRecords = (rows: readonly Row[]) => rows.filter((r) => r.end && (r.end.records !== r.end.checks || r.end.dropped !== 0));

const startedAt = performance.now();
console.log(`# jitgate under faults and overload (bench/overload.ts)\n`);
console.log(
  `Node ${process.version}, ${h2loadVersion()}, ${availableParallelism()} cores, h2load -c ${CLIENTS}; load average at start ${watch.loadAverage()}\n`,
);
try {
  const rows = await ceiling();
  const rate = rows[1]?.h2.perSecond ?? NaN;
  rows.push(...(await heldLock(rate / 2)));
  rows.push(...(await runawayRule(rate / 2)));
  rows.push(await overload(rate, 2), await overload(rate, 10));
  report(rows);
  console.log(`\nload average at end ${watch.loadAverage()}; ${((performance.now() - startedAt) / 1000).toFixed(0)} s in all`);
  if (lostRecords(rows).length > 0) {
    console.error(
      `decision log: records and Checks decided differ in: ${lostRecords(rows)
        .map((r) => r.run)
        .join("; ")}`,
    );
    process.exitCode = 1;
  }
} finally {
  await removeDir(scratch);
}
