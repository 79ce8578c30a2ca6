// `make bench` (decision path): Check over gRPC against a real `jitgate serve` (authentication, live-grant read,
// Rego in Wasm, decision log, metrics), each server in its own process, against a do-nothing grpc-js Check
// measured in the same run. Also proves the decision log keeps up: after the run and a clean shutdown, the
// decisions table holds one record per call made, and the drop counter is 0.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import Database from "better-sqlite3";
import { DECISIONS_FILE } from "../src/store/decision-store.ts";
import { api, type Caller, orderReadGrant, tokenFor } from "../test/support/api.ts";
import { removeDir, ROOT, tempDir } from "../test/support/bundles.ts";
import { spawnDevServe } from "../test/support/jitgate.ts";
import { pct } from "./stats.ts";

const SEQUENTIAL = 3_000;
const BURST = 20_000;
const IN_FLIGHT = 64;

/** The baseline server process; resolves with its address once it listens. */
async function startBaseline(): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(process.execPath, [join(ROOT, "bench", "baseline-server.ts")], { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
  const [line] = (await once(child.stderr as NodeJS.ReadableStream, "data")) as [Buffer];
  const address = /listening on (\S+)/.exec(line.toString())?.[1];
  if (!address) throw new Error(`baseline server: ${line.toString()}`);
  return { child, address };
}

async function metric(url: string, name: string): Promise<number> {
  const line = (await (await fetch(url)).text()).split("\n").find((l) => l.startsWith(`${name} `));
  return Number(line?.slice(name.length + 1));
}

const dataDir = await tempDir("jitgate-bench-check-");
// One process, beside one baseline process.
const jitgate = await spawnDevServe(dataDir, ["--workers", "1"]);
const baseline = await startBaseline();
const jg = api(jitgate.address);
const bl = api(baseline.address);
const holder = jg.as(await tokenFor(dataDir, "tess", ["engineering"]));
await orderReadGrant(holder);
const serviceToken = await tokenFor(dataDir, "svc-orders", ["jitgate-checkers"]);
const callers: [string, Caller][] = [
  ["baseline", bl.as(serviceToken)],
  ["jitgate", jg.as(serviceToken)],
];
const request = {
  subject: "tess",
  subject_groups: ["engineering"],
  resource: "db/orders",
  action: "read",
  context: { source_ip: "10.1.2.3" },
};
let jitgateChecks = 0;
const check = async (name: string, caller: Caller) => {
  if (name === "jitgate") jitgateChecks++;
  const r = await caller.call("Check", request);
  if (!r.allow) throw new Error(`${name}: Check denied: ${JSON.stringify(r.reasons)}`);
};

for (const [name, caller] of callers) for (let i = 0; i < 500; i++) await check(name, caller);
// Sequential latency, alternating rounds so neither side gains from running second on a warmer process.
const samples = new Map<string, number[]>(callers.map(([name]) => [name, []]));
for (let round = 0; round < 10; round++) {
  for (const [name, caller] of callers) {
    for (let i = 0; i < SEQUENTIAL / 10; i++) {
      const t0 = performance.now();
      await check(name, caller);
      samples.get(name)?.push((performance.now() - t0) * 1000);
    }
  }
}

// Throughput: IN_FLIGHT calls outstanding at all times; jitgate's decision-log queue is sampled meanwhile.
const throughput = new Map<string, number>();
let maxQueue = 0;
for (const [name, caller] of callers) {
  let sent = 0;
  const sampler =
    name === "jitgate"
      ? setInterval(() => {
          void metric(jitgate.metricsUrl, "jitgate_decision_log_queue_depth").then((q) => (maxQueue = Math.max(maxQueue, q)));
        }, 50)
      : undefined;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (sent < BURST) {
        sent++;
        await check(name, caller);
      }
    }),
  );
  throughput.set(name, BURST / ((performance.now() - t0) / 1000));
  clearInterval(sampler);
}
const dropped = await metric(jitgate.metricsUrl, "jitgate_decision_log_dropped_total");

jg.close();
bl.close();
const exited = once(jitgate.child, "exit");
jitgate.child.kill("SIGTERM");
baseline.child.kill("SIGTERM");
await exited;
const db = new Database(join(dataDir, DECISIONS_FILE), { readonly: true });
const records = db.prepare("SELECT count(*) AS n FROM decisions").get() as { n: number };
// The time jitgate itself spent deciding (store read + policy), as each record states it.
const deciding = pct(db.prepare("SELECT latency_us FROM decisions").pluck().all() as number[]);
db.close();
await removeDir(dataDir);

const f = (x: number) => x.toFixed(1).padStart(8);
const [base, ours] = [pct(samples.get("baseline") ?? []), pct(samples.get("jitgate") ?? [])];
console.log(`Check over gRPC on loopback (Node ${process.version}); each server in its own process`);
console.log(`Check, do-nothing grpc-js handler (baseline)   p50/p99 µs ${f(base.p50)} / ${f(base.p99)}  (${SEQUENTIAL} sequential)`);
console.log(`Check, jitgate (auth + SQLite + Wasm + log)    p50/p99 µs ${f(ours.p50)} / ${f(ours.p99)}`);
console.log(`deciding inside jitgate (decision records' latency)   p50/p99 µs ${f(deciding.p50)} / ${f(deciding.p99)}`);
console.log(
  `throughput, ${IN_FLIGHT} in flight, ${BURST} calls each        baseline ${f(throughput.get("baseline") ?? 0)} /s   jitgate ${f(throughput.get("jitgate") ?? 0)} /s`,
);
console.log(
  `decision log: ${jitgateChecks} checks -> ${records.n} records after shutdown; dropped ${dropped}; queue depth peak (sampled) ${maxQueue}`,
);
if (records.n !== jitgateChecks || dropped !== 0) {
  console.error("decision log lost records");
  process.exit(1);
}
