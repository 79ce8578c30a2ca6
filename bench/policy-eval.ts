// `make bench` (policy part): in-process evaluation of jit/check/decision on the real bundle, p50/p99 in
// microseconds for a subject with 1, 10 and 100 live grants on the resource. Baseline in the same run:
// opa-wasm's own evaluate() given the input as an object (what a plain SDK user would call).
import { randomUUID } from "node:crypto";
import { loadBundleFile } from "../src/policy/bundle.ts";
import { PolicyEngine } from "../src/policy/engine.ts";
import { ENTRYPOINTS } from "../src/policy/entrypoints.ts";

const BUNDLE = process.argv[2] ?? "bundles/jitgate.tar.gz";
const NOW = 1_763_900_000;

function checkInput(grants: number) {
  return {
    subject: { id: "alice@example.com", groups: ["oncall", "engineering"] },
    resource: "db/orders",
    action: "write",
    context: { source_ip: "10.1.2.3", method: "/orders.v1.Orders/Update" },
    now: NOW,
    // The last grant is the one that allows: the policy has to look at all of them.
    grants: Array.from({ length: grants }, (_, i) => ({
      id: randomUUID(),
      actions: i === grants - 1 ? ["read", "write"] : ["read"],
      expires_at: NOW + 600 + i,
    })),
  };
}

function percentiles(samples: Float64Array): { p50: number; p99: number } {
  samples.sort();
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] as number;
  return { p50: at(0.5), p99: at(0.99) };
}

function measure(run: () => unknown, iterations: number): { p50: number; p99: number } {
  for (let i = 0; i < Math.min(iterations, 5_000); i++) run();
  const samples = new Float64Array(iterations);
  for (let i = 0; i < iterations; i++) {
    const t0 = process.hrtime.bigint();
    run();
    samples[i] = Number(process.hrtime.bigint() - t0) / 1_000;
  }
  return percentiles(samples);
}

const bundle = await loadBundleFile(BUNDLE);
const engine = new PolicyEngine();
engine.activate(bundle);
const fmt = (n: number) => n.toFixed(1).padStart(7);

console.log(`jit/check/decision on bundle ${bundle.revision} (Node ${process.version}); latency in µs per evaluation`);
console.log("grants   jitgate engine p50/p99   opa-wasm evaluate(object) p50/p99   allow");
for (const grants of [1, 10, 100]) {
  const input = checkInput(grants);
  const iterations = grants >= 100 ? 20_000 : 100_000;
  const ours = measure(() => engine.checkDecision(input), iterations);
  const base = measure(() => bundle.policy.evaluate(input, ENTRYPOINTS.checkDecision), iterations);
  const allow = engine.checkDecision(input).result.allow;
  console.log(
    `${String(grants).padStart(6)}   ${fmt(ours.p50)} / ${fmt(ours.p99)}       ${fmt(base.p50)} / ${fmt(base.p99)}                 ${allow}`,
  );
}
