// `make bench` (dev loop part): how long a saved policy edit takes to serve under `make dev`, measured on a copy
// of policies/ through the same parts the server wires (source watcher -> BundleWatcher -> policy pool).
// Prints `opa build` alone, then for each of EDITS catalogue edits: edit -> compiled (file event, debounce,
// opa build) and compiled -> live (load, verification in the pool's workers, switch), with p50 and max.
import { execFile } from "node:child_process";
import { EventEmitter, once } from "node:events";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { type BuildResult, buildBundle, installVerified } from "../src/policy/build.ts";
import { REQUIRED_ENTRYPOINTS } from "../src/policy/entrypoints.ts";
import { PolicyPool } from "../src/policy/pool.ts";
import { PolicySourceWatcher } from "../src/policy/source-watcher.ts";
import { BundleWatcher } from "../src/policy/watcher.ts";
import { pct } from "./stats.ts";

const ROOT = resolve(import.meta.dirname, "..");
const OPA = process.env.OPA ?? join(ROOT, "tools", "bin", "opa");
const CAPABILITIES = join(ROOT, "build", "wasm-capabilities.json");
const EDITS = 5;
// The server's defaults (--policy-workers 2, --policy-timeout 100ms).
const WORKERS = 2;
const BUDGET_MS = 100;

const dir = await mkdtemp(join(tmpdir(), "jitgate-bench-dev-loop-"));
try {
  const policiesDir = join(dir, "policies");
  await cp(join(ROOT, "policies"), policiesDir, { recursive: true });
  const out = join(dir, "jitgate.tar.gz");
  const opts = { opa: OPA, policiesDir, capabilities: CAPABILITIES, out };
  const first = await buildBundle(opts, installVerified);
  if (!first.ok) throw new Error(`policies/ does not build: ${first.message}`);

  const opaAlone: number[] = [];
  for (let i = 0; i < EDITS; i++) {
    const args = ["build", "-t", "wasm", "--capabilities", CAPABILITIES, "--ignore", "*_test.rego", "--revision", "bench"];
    for (const e of REQUIRED_ENTRYPOINTS) args.push("-e", e);
    const t0 = performance.now();
    await promisify(execFile)(OPA, [...args, "-o", join(dir, "alone.tar.gz"), policiesDir]);
    opaAlone.push(performance.now() - t0);
  }

  const pool = new PolicyPool({ workers: WORKERS, timeoutMs: BUDGET_MS });
  const bundles = new BundleWatcher(out, pool, {
    activated: () => {},
    rejected: ({ reason }) => console.error(`rejected: ${reason}`),
  });
  await bundles.start();
  const events = new EventEmitter();
  let compiledAt = 0;
  const sources = new PolicySourceWatcher(opts, (result) => events.emit("built", result), {
    install: (candidate, file) => {
      compiledAt = performance.now();
      return bundles.install(candidate, file);
    },
  });
  await sources.start();

  const catalog = join(policiesDir, "catalog", "data.json");
  const totals: number[] = [];
  const compiles: number[] = [];
  const activations: number[] = [];
  try {
    for (let i = 0; i < EDITS; i++) {
      const data = JSON.parse(await readFile(catalog, "utf8"));
      data.resources["db/orders"].standing.groups.push(`bench-${i}`);
      const built = once(events, "built", { signal: AbortSignal.timeout(30_000) }) as Promise<[BuildResult]>;
      const t0 = performance.now();
      await writeFile(catalog, JSON.stringify(data, null, 2));
      const [result] = await built;
      const live = performance.now();
      if (!result.ok || pool.active?.revision !== result.revision) throw new Error(`edit ${i} did not serve: ${JSON.stringify(result)}`);
      totals.push(live - t0);
      compiles.push(compiledAt - t0);
      activations.push(live - compiledAt);
    }
  } finally {
    await sources.close();
    await bundles.close();
    await pool.close();
  }

  const fmt = (samples: number[]) =>
    `p50 ${pct(samples).p50.toFixed(0).padStart(4)} ms, max ${Math.max(...samples)
      .toFixed(0)
      .padStart(4)} ms`;
  console.log(`dev loop, ${EDITS} catalogue edits (Node ${process.version}, ${WORKERS} policy workers)`);
  console.log(`  opa build alone           ${fmt(opaAlone)}`);
  console.log(`  edit -> compiled          ${fmt(compiles)}   (file event, debounce, policy digest, opa build)`);
  console.log(`  compiled -> live          ${fmt(activations)}   (load, verification in fresh workers, switch)`);
  console.log(`  edit -> live              ${fmt(totals)}`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
