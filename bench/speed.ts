// `make bench` (decision speed): the same question asked of every server in one run, in alternating rounds.
//   - do-nothing grpc-js with a fixed allow (bench/baseline-server.ts): 1 process, the single-process ceiling;
//     and N processes (N = cores) in node:cluster on one port, the every-core ceiling. node:cluster, not N ports,
//     because `jitgate serve --workers N` is node:cluster too (the primary hands each connection to a worker
//     round-robin), so both are loaded by the same single h2load with the same 8 connections;
//   - jitgate Check over gRPC by subject and by token (`jitgate serve`, 1 process), and by subject with every
//     core (`jitgate serve --workers 2`);
//   - OPA's own server (`opa run --server`) on the same Rego, the grants in its input: h2c with h2load, and
//     HTTP/1.1 with wrk (-c64 -t2).
// Each round records the load average, the machine's busy share, and the server's CPU µs per answered request
// (utime+stime from /proc, a cluster's primary and workers summed; jitgate's decision log is let drain before
// the closing reading). Before the rounds, the exact bytes every load sends are sent with a real client and the
// answer decoded: grpc-status 0 and an allow by alice's grant (node:http2), OPA's allow with that grant (fetch
// over HTTP/1.1, node:http2 over h2c; wrk's own request is captured on loopback and compared byte for byte), or
// the bench stops. During the rounds jitgate's counters must show every answered Check allowed.
// Prints each round, then a summary (median of rounds) with the ratios the targets are stated in, and writes the
// figures to bench/results.json ("speed"). Usage: node bench/speed.ts [rounds] [seconds]
import { execFileSync } from "node:child_process";
import { availableParallelism, cpus } from "node:os";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { checkInput } from "../src/access/policy-input.ts";
import { accessServiceDefinition, loadAccessPackage } from "../src/proto/loader.ts";
import { removeDir } from "../test/support/bundles.ts";
import { h2loadVersion, runH2load, writeGrpcBody } from "./h2load.ts";
import {
  OPA_DECISION_PATH,
  opaBody,
  opaVersion,
  runWrk,
  startOpa,
  verifyOpaH2c,
  verifyOpaHttp1,
  writeWrkScript,
  wrkSentRequest,
  wrkVersion,
} from "./opa-server.ts";
import {
  aliceGrant,
  CHECK,
  type CheckCall,
  exitOnSignals,
  type JitgateServer,
  startBaseline,
  startBaselineCluster,
  startJitgate,
  stopBaseline,
  stopJitgate,
  verifyCheck,
} from "./servers.ts";
import * as watch from "./server-watch.ts";
import { median, writeResults } from "./stats.ts";

const ROUNDS = Number(process.argv[2] ?? 5);
const SECONDS = Number(process.argv[3] ?? 5);
const CONNECTIONS = 8;
const STREAMS = 32;
const WRK_CONNECTIONS = 64;
const WRK_THREADS = 2;
const CORES = availableParallelism();
const DRAIN_LIMIT_MS = 15_000;

const check = accessServiceDefinition(loadAccessPackage()).Check;
if (!check) throw new Error("no Check in the proto");
exitOnSignals();

/** What one round of load against a target measured. */
interface Round {
  readonly round: number;
  readonly loadAverage: readonly number[];
  readonly perSecond: number;
  readonly answered: number;
  /** Answered but not an allow (jitgate's counters: denials and refusals), or not HTTP 2xx (OPA), or failed. */
  readonly notAllowed: number;
  /** What the not-allowed answers were (jitgate: decisions by result, refusals by reason; "failed": the load tool's). */
  readonly besidesAllow: Readonly<Record<string, number>>;
  /** jitgate's evaluations stopped at the policy's time budget; each also quarantines the question for a while. */
  readonly policyTimeouts: number;
  readonly cpuUsPerCall: number;
  readonly p50Us: number;
  readonly p99Us: number;
  /** Share of all cores busy during the round, and the share taken by processes other than server and load. */
  readonly busyPercent: number;
  readonly othersPercent: number;
}

interface Target {
  readonly key: string;
  readonly name: string;
  readonly pid: number;
  readonly processes: number;
  /** Sends the load's exact bytes with a real client and throws unless the answer is the expected allow. */
  verify(): Promise<void>;
  /** A short load to warm the server up (JIT, caches) before the measured rounds. */
  warm(): Promise<void>;
  /** One measured load: answered requests, seconds, latency (µs), and failed requests as the load tool saw them. */
  load(): Promise<{ answered: number; seconds: number; p50Us: number; p99Us: number; failed: number }>;
  /** jitgate's /metrics, to count allows and let the decision log drain. */
  readonly metricsUrl?: string;
}

function grpcTarget(key: string, name: string, server: { pid: number; metricsUrl?: string }, processes: number, call: CheckCall): Target {
  const h2 = (shape: { seconds?: number; requests?: number }) =>
    runH2load({
      url: `http://${call.address}/jit.v1.AccessService/Check`,
      bodyFile: call.body,
      headers: { "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${call.bearer}` },
      clients: CONNECTIONS,
      streams: STREAMS,
      logFile: join(dir, "h2load.tsv"),
      ...shape,
    });
  return {
    key,
    name,
    pid: server.pid,
    processes,
    metricsUrl: server.metricsUrl,
    // One connection per process: node:cluster hands each new connection to the next worker.
    verify: async () => {
      for (let i = 0; i < processes; i++) await verifyCheck(name, call);
    },
    warm: async () => void (await h2({ requests: 5_000 })),
    load: async () => {
      const r = await h2({ seconds: SECONDS });
      return { answered: r.succeeded, seconds: r.seconds, p50Us: r.latencyUs.p50, p99Us: r.latencyUs.p99, failed: r.failed + r.errored };
    },
  };
}

const jitgateCall = (server: JitgateServer, body: string, grantId: string): CheckCall => ({
  address: server.address,
  body,
  bearer: server.token,
  grantId,
});

/** Waits until jitgate's decision log has written every record (bounded), so its CPU is counted in the round. */
async function drained(metricsUrl: string | undefined): Promise<void> {
  if (!metricsUrl) return;
  const until = Date.now() + DRAIN_LIMIT_MS;
  while ((await watch.decisionQueueDepth(metricsUrl)) > 0 && Date.now() < until) await sleep(50);
}

async function measure(target: Target, round: number): Promise<Round> {
  const loadAverage = watch.loadAverage().split(" ").map(Number);
  const counters0 = target.metricsUrl ? await watch.scrape(target.metricsUrl) : undefined;
  const machine0 = watch.machineTime();
  const cpu0 = watch.treeCpuMicros(target.pid);
  const r = await target.load();
  await drained(target.metricsUrl);
  const cpu = watch.treeCpuMicros(target.pid) - cpu0;
  const machine = watch.busyBetween(machine0, watch.machineTime(), cpu);
  const counters = target.metricsUrl ? await watch.scrape(target.metricsUrl) : undefined;
  const besidesAllow = {
    ...(counters0 && counters ? watch.besidesAllow(counters0, counters) : {}),
    ...(r.failed > 0 ? { failed: r.failed } : {}),
  };
  const notAllowed = watch.sum(besidesAllow);
  return {
    round,
    loadAverage,
    perSecond: r.answered / r.seconds,
    answered: r.answered,
    notAllowed,
    besidesAllow,
    policyTimeouts: counters0 && counters ? counters.policyTimeouts - counters0.policyTimeouts : 0,
    cpuUsPerCall: cpu / r.answered,
    p50Us: r.p50Us,
    p99Us: r.p99Us,
    ...machine,
  };
}

const dir = await mkdtemp(join(tmpdir(), "jitgate-bench-speed-"));
const cleanups: (() => Promise<unknown>)[] = [];
const startedAt = new Date().toISOString();
const loadAtStart = watch.loadAverage();
try {
  const baseline = await startBaseline();
  cleanups.push(() => stopBaseline(baseline));
  const cluster = await startBaselineCluster(CORES);
  cleanups.push(() => stopBaseline(cluster));
  const jitgate = await startJitgate(dir);
  cleanups.push(() => stopJitgate(jitgate));
  const jitgate2 = await startJitgate(dir, undefined, ["--workers", String(CORES)]);
  cleanups.push(() => stopJitgate(jitgate2));
  const opaH2c = await startOpa({ h2c: true, under: dir });
  cleanups.push(() => opaH2c.stop());
  const opaHttp1 = await startOpa({ h2c: false, under: dir });
  cleanups.push(() => opaHttp1.stop());

  const grant = await aliceGrant(jitgate);
  const grant2 = await aliceGrant(jitgate2);
  const bySubject = await writeGrpcBody(dir, "subject.grpc", check.requestSerialize(CHECK));
  const byToken = await writeGrpcBody(
    dir,
    "token.grpc",
    check.requestSerialize({ token: grant.token, resource: CHECK.resource, action: CHECK.action, context: CHECK.context }),
  );
  // OPA gets the input jitgate's policy gets for this Check (src/access/policy-input.ts), alice's grant in it.
  const subject = { id: CHECK.subject ?? "", groups: CHECK.subject_groups ?? [] };
  const input = checkInput(subject, CHECK.resource ?? "", CHECK.action ?? "", CHECK.context ?? {}, Date.now(), [grant]);
  const opaBodyFile = join(dir, "opa-input.json");
  await writeFile(opaBodyFile, opaBody(input));
  const wrkScript = await writeWrkScript(dir, opaBodyFile);

  const opaTarget = (server: typeof opaH2c): Omit<Target, "verify" | "warm" | "load"> => ({
    key: server.h2c ? "opa-h2c" : "opa-http1",
    name: server.h2c ? "OPA server, h2c (h2load)" : "OPA server, HTTP/1.1 (wrk)",
    pid: server.pid,
    processes: 1,
  });
  const opaH2load = (shape: { seconds?: number; requests?: number }) =>
    runH2load({
      url: `http://${opaH2c.address}${OPA_DECISION_PATH}`,
      bodyFile: opaBodyFile,
      headers: { "content-type": "application/json" },
      clients: CONNECTIONS,
      streams: STREAMS,
      logFile: join(dir, "h2load.tsv"),
      ...shape,
    });
  const opaWrk = (seconds: number) =>
    runWrk({
      url: `http://${opaHttp1.address}${OPA_DECISION_PATH}`,
      script: wrkScript,
      connections: WRK_CONNECTIONS,
      threads: WRK_THREADS,
      seconds,
    });

  const targets: Target[] = [
    grpcTarget("baseline-1", "do-nothing grpc-js, 1 process", baseline, 1, {
      address: baseline.address,
      body: bySubject,
      bearer: "baseline",
      grantId: "",
    }),
    grpcTarget("baseline-n", `do-nothing grpc-js, ${CORES} processes`, cluster, CORES, {
      address: cluster.address,
      body: bySubject,
      bearer: "baseline",
      grantId: "",
    }),
    grpcTarget("jitgate-subject", "jitgate by subject", jitgate, 1, jitgateCall(jitgate, bySubject, grant.id)),
    grpcTarget("jitgate-token", "jitgate by token", jitgate, 1, jitgateCall(jitgate, byToken, grant.id)),
    grpcTarget(
      "jitgate-workers-subject",
      `jitgate --workers ${CORES} by subject`,
      jitgate2,
      CORES,
      jitgateCall(jitgate2, bySubject, grant2.id),
    ),
    {
      ...opaTarget(opaH2c),
      verify: async () => void (await verifyOpaH2c(opaH2c, opaBodyFile, grant.id)),
      warm: async () => void (await opaH2load({ requests: 3_000 })),
      load: async () => {
        const r = await opaH2load({ seconds: SECONDS });
        return { answered: r.succeeded, seconds: r.seconds, p50Us: r.latencyUs.p50, p99Us: r.latencyUs.p99, failed: r.failed + r.errored };
      },
    },
    {
      ...opaTarget(opaHttp1),
      verify: async () => {
        const sent = await wrkSentRequest(wrkScript);
        const expected = await readFile(opaBodyFile);
        if (sent.method !== "POST" || sent.contentType !== "application/json" || !sent.body.equals(expected)) {
          throw new Error(`wrk sends ${sent.method} ${sent.contentType} ${JSON.stringify(sent.body.toString())}, not the verified body`);
        }
        await verifyOpaHttp1(opaHttp1, opaBodyFile, grant.id);
      },
      warm: async () => void (await opaWrk(1)),
      load: async () => {
        const r = await opaWrk(SECONDS);
        return {
          answered: r.requests - r.non2xx,
          seconds: r.seconds,
          p50Us: r.latencyUs.p50,
          p99Us: r.latencyUs.p99,
          failed: r.non2xx + r.socketErrors,
        };
      },
    },
  ];
  for (const t of targets) await t.verify();
  for (const t of targets) await t.warm();
  for (const t of targets) await drained(t.metricsUrl);

  const versions = { node: process.version, h2load: h2loadVersion(), wrk: wrkVersion(), opa: opaVersion() };
  console.log(
    `Node ${versions.node}, ${versions.h2load}, ${versions.wrk}, OPA ${versions.opa}; ${CORES} cores (${cpus()[0]?.model ?? "?"}); load average at start ${loadAtStart}`,
  );
  console.log(
    `h2load -c ${CONNECTIONS} -m ${STREAMS} (gRPC and OPA h2c), wrk -c ${WRK_CONNECTIONS} -t ${WRK_THREADS} (OPA HTTP/1.1); ${ROUNDS} rounds of ${SECONDS} s; every request verified once with a real client`,
  );
  const results = new Map<string, Round[]>(targets.map((t) => [t.key, []]));
  for (let i = 0; i < ROUNDS; i++) {
    for (const t of i % 2 === 0 ? targets : [...targets].reverse()) {
      const r = await measure(t, i + 1);
      results.get(t.key)?.push(r);
      const flag =
        (r.notAllowed > 0 ? `  NOT ALLOWED: ${JSON.stringify(r.besidesAllow)}` : "") +
        (r.policyTimeouts > 0 ? `  policy timeouts: ${r.policyTimeouts}` : "");
      console.log(
        `  round ${i + 1} ${t.name.padEnd(34)} ${r.perSecond.toFixed(0).padStart(6)}/s  cpu ${r.cpuUsPerCall.toFixed(1).padStart(6)} µs/call  p50 ${(r.p50Us / 1000).toFixed(2)} ms  p99 ${(r.p99Us / 1000).toFixed(2)} ms  load ${r.loadAverage.join(" ")}  busy ${r.busyPercent.toFixed(0)}% (others ${r.othersPercent.toFixed(0)}%)${flag}`,
      );
    }
  }

  // ---- summary: median of rounds
  const summary = new Map(
    targets.map((t) => {
      const rs = results.get(t.key) ?? [];
      const m = (f: (r: Round) => number) => median(rs.map(f));
      return [
        t.key,
        {
          name: t.name,
          processes: t.processes,
          perSecond: m((r) => r.perSecond),
          cpuUsPerCall: m((r) => r.cpuUsPerCall),
          p50Us: m((r) => r.p50Us),
          p99Us: m((r) => r.p99Us),
          notAllowed: rs.reduce((n, r) => n + r.notAllowed, 0),
        },
      ] as const;
    }),
  );
  const get = (key: string) =>
    summary.get(key) ?? { name: key, processes: 0, perSecond: NaN, cpuUsPerCall: NaN, p50Us: NaN, p99Us: NaN, notAllowed: 0 };
  const ceiling = get("baseline-1");
  const ceilingN = get("baseline-n");
  const opaBest = [get("opa-h2c"), get("opa-http1")].sort((a, b) => b.perSecond - a.perSecond)[0] ?? get("opa-h2c");
  const ratio = (a: number, b: number) => a / b;
  const ratios = {
    subjectOfCeiling: ratio(get("jitgate-subject").perSecond, ceiling.perSecond),
    tokenOfCeiling: ratio(get("jitgate-token").perSecond, ceiling.perSecond),
    /** Tie-breaker: the ceiling's CPU per call over jitgate's (1 = as cheap as doing nothing). */
    subjectCpuOfCeiling: ratio(ceiling.cpuUsPerCall, get("jitgate-subject").cpuUsPerCall),
    tokenCpuOfCeiling: ratio(ceiling.cpuUsPerCall, get("jitgate-token").cpuUsPerCall),
    opaBestTransport: opaBest.name,
    subjectOverOpaBest: ratio(get("jitgate-subject").perSecond, opaBest.perSecond),
    workersOverOpaBest: ratio(get("jitgate-workers-subject").perSecond, opaBest.perSecond),
    workersOfCeilingN: ratio(get("jitgate-workers-subject").perSecond, ceilingN.perSecond),
    subjectCpuOverOpaBestCpu: ratio(opaBest.cpuUsPerCall, get("jitgate-subject").cpuUsPerCall),
  };
  const goals = [
    { goal: "by subject >= 0.85 of the 1-process ceiling", value: ratios.subjectOfCeiling, met: ratios.subjectOfCeiling >= 0.85 },
    { goal: "by token >= 0.75 of the 1-process ceiling", value: ratios.tokenOfCeiling, met: ratios.tokenOfCeiling >= 0.75 },
    {
      goal: `by subject (1 process) >= 3x OPA's best transport (${opaBest.name})`,
      value: ratios.subjectOverOpaBest,
      met: ratios.subjectOverOpaBest >= 3,
    },
    {
      goal: `--workers ${CORES} by subject >= 4x OPA's best transport`,
      value: ratios.workersOverOpaBest,
      met: ratios.workersOverOpaBest >= 4,
    },
  ];

  const loadAtEnd = watch.loadAverage();
  console.log(`\nmedian of ${ROUNDS} rounds; load average at end ${loadAtEnd}\n`);
  console.log(
    "| target | processes | req/s | of the 1-process ceiling | server CPU µs/call | p50 ms | p99 ms | answered, not allowed or failed |",
  );
  console.log("|---|---|---|---|---|---|---|---|");
  for (const s of summary.values()) {
    console.log(
      `| ${s.name} | ${s.processes} | ${s.perSecond.toFixed(0)} | ${(s.perSecond / ceiling.perSecond).toFixed(2)} | ${s.cpuUsPerCall.toFixed(1)} | ${(s.p50Us / 1000).toFixed(2)} | ${(s.p99Us / 1000).toFixed(2)} | ${s.notAllowed} |`,
    );
  }
  console.log("");
  for (const g of goals) console.log(`${g.met ? "met  " : "SHORT"} ${g.goal}: ${g.value.toFixed(2)}`);
  console.log(
    `tie-breaker, server CPU per call: ceiling/by subject ${ratios.subjectCpuOfCeiling.toFixed(2)}, ceiling/by token ${ratios.tokenCpuOfCeiling.toFixed(2)}; ` +
      `OPA best/by subject ${ratios.subjectCpuOverOpaBestCpu.toFixed(2)}; --workers ${CORES} / ${CORES}-process ceiling ${ratios.workersOfCeilingN.toFixed(2)}`,
  );

  const file = await writeResults("speed", {
    command: `node bench/speed.ts ${ROUNDS} ${SECONDS}`,
    machine: {
      cores: CORES,
      cpu: cpus()[0]?.model ?? "",
      kernel: execFileSync("uname", ["-r"], { encoding: "utf8" }).trim(),
      startedAt,
      loadAverage: { start: loadAtStart, end: loadAtEnd },
      ...versions,
    },
    load: {
      h2load: { connections: CONNECTIONS, streamsPerConnection: STREAMS, seconds: SECONDS },
      wrk: { connections: WRK_CONNECTIONS, threads: WRK_THREADS, seconds: SECONDS },
      everyCoreCeiling: `node:cluster, ${CORES} workers on one port (round-robin by connection, as jitgate serve --workers)`,
      opa: "opa run --server on policies/ without *_test.rego, the grants in input; OPA's own threads unrestricted (GOMAXPROCS default)",
    },
    targets: Object.fromEntries(
      targets.map((t) => [t.key, { name: t.name, processes: t.processes, rounds: results.get(t.key), median: summary.get(t.key) }]),
    ),
    ratios,
    goals,
  });
  console.log(`figures written to ${file}`);
  if ([...summary.values()].some((s) => s.notAllowed > 0)) {
    console.error("some answered requests were not allowed (see NOT ALLOWED above)");
    process.exitCode = 1;
  }
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup().catch((err: unknown) => console.error(`cleanup: ${String(err)}`));
  await removeDir(dir);
}
