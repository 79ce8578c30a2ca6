// `make bench` (memory over millions of Checks): one `jitgate serve` (1 process), Checks by subject over gRPC with
// h2load (-c 8 -m 32, -n 1,000,000 three times), and its RSS (VmRSS from /proc) after each million, once its
// decision log has drained; the target is RSS flat (±5%) from the 2nd to the 3rd million. The exact bytes are
// verified first with a real client (grpc-status 0, an allow by alice's grant); jitgate's counters must show every
// answer an allow and the decision log must keep every record. Takes ~5 min at ~10k Checks/s.
// Writes the figures to bench/results.json ("rssMillions"). Usage: node bench/rss-millions.ts [batches] [per-batch]
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { accessServiceDefinition, loadAccessPackage } from "../src/proto/loader.ts";
import { removeDir } from "../test/support/bundles.ts";
import { h2loadVersion, runH2load, writeGrpcBody } from "./h2load.ts";
import { aliceGrant, CHECK, exitOnSignals, startJitgate, stopJitgate, verifyCheck } from "./servers.ts";
import * as watch from "./server-watch.ts";
import { writeResults } from "./stats.ts";

const BATCHES = Number(process.argv[2] ?? 3);
const PER_BATCH = Number(process.argv[3] ?? 1_000_000);
const CONNECTIONS = 8;
const STREAMS = 32;
/** h2load is stopped past this; 1,000,000 Checks at 2,000/s would take 500 s. */
const BATCH_LIMIT_S = Math.max(120, PER_BATCH / 2_000 + 60);
const DRAIN_LIMIT_MS = 30_000;
const SETTLE_MS = 5_000;

exitOnSignals();
const check = accessServiceDefinition(loadAccessPackage()).Check;
if (!check) throw new Error("no Check in the proto");

/** The V8 heap in use (MB), from jitgate's /metrics (prom-client's default metrics). */
async function heapUsedMb(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl, { signal: AbortSignal.timeout(30_000) })).text();
  return Number(/^jitgate_nodejs_heap_size_used_bytes (\S+)$/m.exec(text)?.[1] ?? NaN) / 2 ** 20;
}

interface Batch {
  readonly batch: number;
  readonly checks: number;
  readonly perSecond: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly cpuUsPerCall: number;
  readonly allowed: number;
  readonly notAllowed: number;
  readonly besidesAllow: Readonly<Record<string, number>>;
  /** Evaluations stopped at the policy's time budget (jitgate_policy_failures_total{kind="timeout"}). */
  readonly policyTimeouts: number;
  readonly rssMb: number;
  /** RSS once the server has sat idle for SETTLE_MS after the batch. */
  readonly settledRssMb: number;
  readonly peakRssMb: number;
  readonly heapUsedMb: number;
  readonly loadAverage: string;
}

const dir = await mkdtemp(join(tmpdir(), "jitgate-bench-rss-"));
const jitgate = await startJitgate(dir);
try {
  const grant = await aliceGrant(jitgate);
  const body = await writeGrpcBody(dir, "subject.grpc", check.requestSerialize(CHECK));
  await verifyCheck("jitgate by subject", { address: jitgate.address, body, bearer: jitgate.token, grantId: grant.id });
  const startRss = watch.rssMb(jitgate.pid);
  console.log(
    `jitgate serve (1 process), Check by subject, ${h2loadVersion()} -c ${CONNECTIONS} -m ${STREAMS}, ${BATCHES} x ${PER_BATCH.toLocaleString("en")}; RSS at start ${startRss.toFixed(0)} MB; load average ${watch.loadAverage()}`,
  );
  const batches: Batch[] = [];
  for (let b = 1; b <= BATCHES; b++) {
    const loadAverage = watch.loadAverage();
    const before = await watch.scrape(jitgate.metricsUrl);
    const cpu0 = watch.cpuMicros(jitgate.pid);
    const rss = watch.sampleRss(jitgate.pid, 250);
    const h2 = await runH2load({
      url: `http://${jitgate.address}/jit.v1.AccessService/Check`,
      bodyFile: body,
      headers: { "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${jitgate.token}` },
      clients: CONNECTIONS,
      streams: STREAMS,
      requests: PER_BATCH,
      timeoutSeconds: BATCH_LIMIT_S,
      logFile: join(dir, "h2load.tsv"),
    });
    const until = Date.now() + DRAIN_LIMIT_MS;
    while ((await watch.decisionQueueDepth(jitgate.metricsUrl)) > 0 && Date.now() < until) await sleep(100);
    const peak = rss.stop();
    const cpu = watch.cpuMicros(jitgate.pid) - cpu0;
    const after = await watch.scrape(jitgate.metricsUrl);
    const allowed = watch.delta(after.decisions, before.decisions).allow ?? 0;
    const failed = h2.failed + h2.errored;
    const besidesAllow = { ...watch.besidesAllow(before, after), ...(failed > 0 ? { failed } : {}) };
    const notAllowed = watch.sum(besidesAllow);
    const row: Batch = {
      batch: b,
      checks: h2.succeeded,
      perSecond: h2.succeeded / h2.seconds,
      p50Us: h2.latencyUs.p50,
      p99Us: h2.latencyUs.p99,
      cpuUsPerCall: cpu / h2.succeeded,
      allowed,
      notAllowed,
      besidesAllow,
      policyTimeouts: after.policyTimeouts - before.policyTimeouts,
      rssMb: watch.rssMb(jitgate.pid),
      peakRssMb: Math.max(peak, watch.rssMb(jitgate.pid)),
      heapUsedMb: await heapUsedMb(jitgate.metricsUrl),
      settledRssMb: await sleep(SETTLE_MS).then(() => watch.rssMb(jitgate.pid)),
      loadAverage,
    };
    batches.push(row);
    console.log(
      `  after ${(b * PER_BATCH).toLocaleString("en").padStart(10)} Checks: RSS ${row.rssMb.toFixed(1)} MB (peak ${row.peakRssMb.toFixed(1)}, ${row.settledRssMb.toFixed(1)} after ${SETTLE_MS / 1000} s idle), heap used ${row.heapUsedMb.toFixed(1)} MB; ${row.perSecond.toFixed(0)}/s, p50 ${(row.p50Us / 1000).toFixed(2)} ms, p99 ${(row.p99Us / 1000).toFixed(2)} ms, cpu ${row.cpuUsPerCall.toFixed(1)} µs/call; load ${loadAverage}${notAllowed > 0 ? `; NOT ALLOWED: ${JSON.stringify(besidesAllow)}` : ""}${row.policyTimeouts > 0 ? `; policy timeouts: ${row.policyTimeouts}` : ""}`,
    );
  }
  const [second, third] = [batches[1], batches[2]];
  const change = second && third ? (100 * (third.rssMb - second.rssMb)) / second.rssMb : NaN;
  const settledChange = second && third ? (100 * (third.settledRssMb - second.settledRssMb)) / second.settledRssMb : NaN;
  const met = Math.abs(change) <= 5;
  const signed = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(1)}%`;
  console.log(
    `\n${met ? "met  " : "SHORT"} RSS flat (±5%) from the 2nd to the 3rd batch: ${signed(change)} (after ${SETTLE_MS / 1000} s idle: ${signed(settledChange)})`,
  );
  const end = await stopJitgate(jitgate);
  console.log(`decision log: ${end.records} records for ${end.checks} Checks decided, ${end.dropped} dropped`);
  const file = await writeResults("rssMillions", {
    command: `node bench/rss-millions.ts ${BATCHES} ${PER_BATCH}`,
    machine: { node: process.version, h2load: h2loadVersion(), loadAverageEnd: watch.loadAverage() },
    load: { connections: CONNECTIONS, streams: STREAMS, perBatch: PER_BATCH },
    startRssMb: startRss,
    batches,
    rssChange2to3Percent: change,
    settledRssChange2to3Percent: settledChange,
    decisionLog: end,
    goal: { goal: "gRPC RSS flat (±5%) from the 2nd to the 3rd million Checks", value: change, met },
  });
  console.log(`figures written to ${file}`);
  if (batches.some((b) => b.notAllowed > 0) || end.records !== end.checks || end.dropped > 0) process.exitCode = 1;
} finally {
  if (jitgate.child.exitCode === null && jitgate.child.signalCode === null) await stopJitgate(jitgate).catch(() => undefined);
  await removeDir(dir);
}
