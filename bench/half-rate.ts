// `make bench` (latency at half the max rate): Check by subject over gRPC with h2load, jitgate (`jitgate serve`,
// 1 process) beside the do-nothing grpc-js server (the ceiling). First each one's max rate, closed loop as
// bench/speed.ts's rounds (h2load -c 8 -m 32, alternating rounds, median); then both at half of jitgate's max
// rate (h2load --rps with -m 128, jitgate's per-connection limit, so the rate sets the load; see the note on --rps
// in h2load.ts), again in alternating rounds, and the ratio of their p99s at that same rate. The exact bytes are
// verified first with a real client (grpc-status 0, an allow by alice's grant), and jitgate's counters must show
// every answer an allow. Writes bench/results.json ("halfRate"). Usage: node bench/half-rate.ts [rounds] [max-s] [rate-s]
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { accessServiceDefinition, loadAccessPackage } from "../src/proto/loader.ts";
import { removeDir } from "../test/support/bundles.ts";
import { type H2loadResult, h2loadVersion, runH2load, writeGrpcBody } from "./h2load.ts";
import {
  aliceGrant,
  CHECK,
  type CheckCall,
  exitOnSignals,
  type Served,
  startBaseline,
  startJitgate,
  stopBaseline,
  stopJitgate,
  verifyCheck,
} from "./servers.ts";
import * as watch from "./server-watch.ts";
import { median, writeResults } from "./stats.ts";

const ROUNDS = Number(process.argv[2] ?? 3);
const MAX_SECONDS = Number(process.argv[3] ?? 5);
const RATE_SECONDS = Number(process.argv[4] ?? 10);
const CONNECTIONS = 8;
const CLOSED_STREAMS = 32;
/**
 * Streams per connection for the rate runs: jitgate's per-connection limit (--max-in-flight-per-connection, 128 by
 * default), so the rate, not h2load's window, sets the load, and a stall is never answered with refusals.
 */
const OPEN_STREAMS = 128;

exitOnSignals();
const check = accessServiceDefinition(loadAccessPackage()).Check;
if (!check) throw new Error("no Check in the proto");

interface Run {
  readonly round: number;
  readonly offered: number | undefined;
  readonly perSecond: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly cpuUsPerCall: number;
  /** Answered but not an allow (jitgate's counters: denials, errors, refusals), plus h2load's failed streams. */
  readonly notAllowed: number;
  readonly besidesAllow: Readonly<Record<string, number>>;
  /** jitgate's evaluations stopped at the policy's time budget; each also quarantines the question for a while. */
  readonly policyTimeouts: number;
  readonly loadAverage: string;
}

interface Side {
  readonly key: string;
  readonly name: string;
  readonly server: Served;
  readonly call: CheckCall;
}

async function run(side: Side, round: number, rate: number | undefined, dir: string): Promise<Run> {
  const loadAverage = watch.loadAverage();
  const counters0 = side.server.metricsUrl ? await watch.scrape(side.server.metricsUrl) : undefined;
  const cpu0 = watch.cpuMicros(side.server.pid);
  const h2: H2loadResult = await runH2load({
    url: `http://${side.call.address}/jit.v1.AccessService/Check`,
    bodyFile: side.call.body,
    headers: { "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${side.call.bearer}` },
    clients: CONNECTIONS,
    streams: rate === undefined ? CLOSED_STREAMS : OPEN_STREAMS,
    seconds: rate === undefined ? MAX_SECONDS : RATE_SECONDS,
    ratePerSecond: rate,
    logFile: join(dir, "h2load.tsv"),
  });
  const cpu = watch.cpuMicros(side.server.pid) - cpu0;
  const counters = side.server.metricsUrl ? await watch.scrape(side.server.metricsUrl) : undefined;
  const failed = h2.failed + h2.errored;
  const besidesAllow = { ...(counters0 && counters ? watch.besidesAllow(counters0, counters) : {}), ...(failed > 0 ? { failed } : {}) };
  return {
    round,
    offered: rate,
    perSecond: h2.succeeded / h2.seconds,
    p50Us: h2.latencyUs.p50,
    p99Us: h2.latencyUs.p99,
    cpuUsPerCall: cpu / h2.succeeded,
    notAllowed: watch.sum(besidesAllow),
    besidesAllow,
    policyTimeouts: counters0 && counters ? counters.policyTimeouts - counters0.policyTimeouts : 0,
    loadAverage,
  };
}

/** Alternating rounds (forward, then reverse) of both sides, at `rate` or closed loop. */
async function rounds(sides: readonly Side[], rate: number | undefined, dir: string): Promise<Map<string, Run[]>> {
  const runs = new Map<string, Run[]>(sides.map((s) => [s.key, []]));
  for (let i = 0; i < ROUNDS; i++) {
    for (const side of i % 2 === 0 ? sides : [...sides].reverse()) {
      const r = await run(side, i + 1, rate, dir);
      runs.get(side.key)?.push(r);
      const what = rate === undefined ? "max rate" : `at ${rate.toFixed(0)}/s`;
      console.log(
        `  round ${i + 1} ${side.name.padEnd(20)} ${what.padEnd(12)} ${r.perSecond.toFixed(0).padStart(6)}/s  p50 ${(r.p50Us / 1000).toFixed(2)} ms  p99 ${(r.p99Us / 1000).toFixed(2)} ms  cpu ${r.cpuUsPerCall.toFixed(1)} µs/call  load ${r.loadAverage}${r.notAllowed > 0 ? `  NOT ALLOWED: ${JSON.stringify(r.besidesAllow)}` : ""}${r.policyTimeouts > 0 ? `  policy timeouts: ${r.policyTimeouts}` : ""}`,
      );
    }
  }
  return runs;
}

const dir = await mkdtemp(join(tmpdir(), "jitgate-bench-half-rate-"));
const cleanups: (() => Promise<unknown>)[] = [];
try {
  const baseline = await startBaseline();
  cleanups.push(() => stopBaseline(baseline));
  const jitgate = await startJitgate(dir);
  cleanups.push(() => stopJitgate(jitgate));
  const grant = await aliceGrant(jitgate);
  const body = await writeGrpcBody(dir, "subject.grpc", check.requestSerialize(CHECK));
  const sides: Side[] = [
    {
      key: "ceiling",
      name: "do-nothing grpc-js",
      server: baseline,
      call: { address: baseline.address, body, bearer: "baseline", grantId: "" },
    },
    {
      key: "jitgate",
      name: "jitgate by subject",
      server: jitgate,
      call: { address: jitgate.address, body, bearer: jitgate.token, grantId: grant.id },
    },
  ];
  for (const s of sides) await verifyCheck(s.name, s.call);
  for (const s of sides) await run(s, 0, undefined, dir); // warm-up
  console.log(`Check by subject over gRPC, ${h2loadVersion()}, h2load -c ${CONNECTIONS}; load average at start ${watch.loadAverage()}`);
  console.log(`max rate: closed loop, -m ${CLOSED_STREAMS}, ${ROUNDS} rounds of ${MAX_SECONDS} s`);
  const max = await rounds(sides, undefined, dir);
  const maxOf = (key: string) => median((max.get(key) ?? []).map((r) => r.perSecond));
  const half = maxOf("jitgate") / 2;
  console.log(`half of jitgate's max rate: ${half.toFixed(0)}/s (--rps, -m ${OPEN_STREAMS}), ${ROUNDS} rounds of ${RATE_SECONDS} s`);
  const atHalf = await rounds(sides, half, dir);

  const p99 = (runs: Map<string, Run[]>, key: string) => median((runs.get(key) ?? []).map((r) => r.p99Us));
  const p50 = (runs: Map<string, Run[]>, key: string) => median((runs.get(key) ?? []).map((r) => r.p50Us));
  const rate = (runs: Map<string, Run[]>, key: string) => median((runs.get(key) ?? []).map((r) => r.perSecond));
  const ratio = p99(atHalf, "jitgate") / p99(atHalf, "ceiling");
  console.log(`\nmedian of ${ROUNDS} rounds; load average at end ${watch.loadAverage()}\n`);
  console.log("| server | max rate /s | p99 at max ms | rate run /s | p50 at it ms | p99 at it ms |");
  console.log("|---|---|---|---|---|---|");
  for (const s of sides) {
    console.log(
      `| ${s.name} | ${maxOf(s.key).toFixed(0)} | ${(p99(max, s.key) / 1000).toFixed(2)} | ${rate(atHalf, s.key).toFixed(0)} | ${(p50(atHalf, s.key) / 1000).toFixed(2)} | ${(p99(atHalf, s.key) / 1000).toFixed(2)} |`,
    );
  }
  const met = ratio <= 1.3;
  console.log(`\n${met ? "met  " : "SHORT"} p99 at half jitgate's max rate <= 1.3x the ceiling's p99 at that rate: ${ratio.toFixed(2)}`);
  const file = await writeResults("halfRate", {
    command: `node bench/half-rate.ts ${ROUNDS} ${MAX_SECONDS} ${RATE_SECONDS}`,
    machine: { node: process.version, h2load: h2loadVersion(), loadAverageEnd: watch.loadAverage() },
    load: { connections: CONNECTIONS, closedStreams: CLOSED_STREAMS, openStreams: OPEN_STREAMS },
    maxRate: Object.fromEntries(sides.map((s) => [s.key, { median: maxOf(s.key), p99Us: p99(max, s.key), rounds: max.get(s.key) }])),
    halfRate: half,
    atHalfRate: Object.fromEntries(
      sides.map((s) => [
        s.key,
        { perSecond: rate(atHalf, s.key), p50Us: p50(atHalf, s.key), p99Us: p99(atHalf, s.key), rounds: atHalf.get(s.key) },
      ]),
    ),
    p99Ratio: ratio,
    goal: { goal: "p99 at half the max rate <= 1.3x the ceiling's p99 at the same rate", value: ratio, met },
  });
  console.log(`figures written to ${file}`);
  if ([...max.values(), ...atHalf.values()].flat().some((r) => r.notAllowed > 0)) process.exitCode = 1;
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup().catch((err: unknown) => console.error(`cleanup: ${String(err)}`));
  await removeDir(dir);
}
