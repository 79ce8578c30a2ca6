// `make bench` (policy isolation): what moving a Check's evaluation off the serving thread costs. The same
// check input, evaluated (1) in-process on the serving thread, as before the pool, and (2) through the
// PolicyPool, one at a time and with 8, 32 and 128 in flight (the pool batches what arrives together). For
// each: wall time per evaluation and the serving thread's own busy time per evaluation (event loop
// utilisation), which is what the transport thread pays.
import { loadBundleFile } from "../src/policy/bundle.ts";
import { PolicyEngine } from "../src/policy/engine.ts";
import { PolicyPool } from "../src/policy/pool.ts";
import { REAL_BUNDLE } from "../test/support/bundles.ts";

const NOW = 1_800_000_000;
const input = {
  subject: { id: "alice", groups: ["engineering"] },
  resource: "db/orders",
  action: "read",
  context: { source_ip: "10.1.2.3" },
  now: NOW,
  grants: Array.from({ length: 10 }, (_, i) => ({ id: `g${i}`, actions: ["read"], expires_at: NOW + 600 })),
};
const bundle = await loadBundleFile(REAL_BUNDLE);

function busyPerCall(started: ReturnType<typeof performance.eventLoopUtilization>, calls: number): number {
  return (performance.eventLoopUtilization(started).active / calls) * 1000;
}

const engine = new PolicyEngine();
engine.activate(bundle);
for (let i = 0; i < 2000; i++) engine.checkDecision(input);
let n = 20_000;
let elu = performance.eventLoopUtilization();
let t = performance.now();
for (let i = 0; i < n; i++) engine.checkDecision(input);
const inProcess = ((performance.now() - t) / n) * 1000;
const inProcessBusy = busyPerCall(elu, n);

const pool = new PolicyPool({ workers: 2, timeoutMs: 1000 });
await pool.activate(bundle);
const rows: string[] = [`| in-process, on the serving thread (before) | ${inProcess.toFixed(1)} | ${inProcessBusy.toFixed(1)} |`];
for (const inFlight of [1, 8, 32, 128]) {
  n = inFlight === 1 ? 5_000 : 40_000;
  for (let i = 0; i < 500; i++) await pool.checkDecision(input);
  elu = performance.eventLoopUtilization();
  t = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next++ < n) await pool.checkDecision(input);
    }),
  );
  rows.push(
    `| pool (2 workers), ${inFlight} in flight | ${(((performance.now() - t) / n) * 1000).toFixed(1)} | ${busyPerCall(elu, n).toFixed(1)} |`,
  );
}
await pool.close();
console.log("\npolicy evaluation: in-process vs the policy pool (check input with 10 grants)\n");
console.log("| how | wall µs per evaluation | serving thread busy µs per evaluation |");
console.log("|---|---|---|");
for (const r of rows) console.log(r);
