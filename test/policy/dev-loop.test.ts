// The dev loop (`make dev`: serve --dev --watch-policies) as the server wires it: a policy source watcher that
// hands each build to the server's BundleWatcher over a policy pool. A saved edit is served at once; an edit
// that does not compile or that the server refuses is reported once and changes nothing, on disk or after a
// restart. The edit → live time is printed (bench/dev-loop.ts measures it), not asserted.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { EventEmitter, once } from "node:events";
import { cp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { type BuildResult, buildBundle, installVerified } from "../../src/policy/build.ts";
import { PolicyPool } from "../../src/policy/pool.ts";
import { PolicySourceWatcher } from "../../src/policy/source-watcher.ts";
import { BundleWatcher } from "../../src/policy/watcher.ts";
import { CAPABILITIES, OPA, POLICIES, ROOT, removeDir, tempDir } from "../support/bundles.ts";

const WAIT_MS = 10_000;
// Generous, so a busy machine does not fail verification on time; what is verified is the server's own check.
const BUDGET_MS = 2_000;
const NOW = 1_800_000_000;
/** An `sre` reading db/orders with no grant: denied until the catalogue gives `sre` standing access. */
const SRE_READ = {
  subject: { id: "sam", groups: ["sre"] },
  resource: "db/orders",
  action: "read",
  context: { source_ip: "10.1.2.3" },
  now: NOW,
  grants: [],
};

type Catalog = { resources: Record<string, Record<string, unknown> & { standing: { groups: string[] } }> };

function refusal(result: BuildResult): Extract<BuildResult, { ok: false }> {
  if (result.ok) assert.fail(`the build was accepted as revision ${result.revision}`);
  return result;
}

/** What a server started afresh on `file` serves: its revision and its answer to SRE_READ. */
async function restartOn(file: string): Promise<{ revision: string | undefined; allow: boolean }> {
  const pool = new PolicyPool({ workers: 1, timeoutMs: BUDGET_MS });
  const watcher = new BundleWatcher(file, pool, { activated: () => {}, rejected: () => {} });
  try {
    await watcher.start();
    return { revision: pool.active?.revision, allow: (await pool.checkDecision(SRE_READ)).result.allow };
  } finally {
    await watcher.close();
    await pool.close();
  }
}

describe("policy dev loop: edit, rebuild, verify, serve", () => {
  let dir: string;
  let catalog: string;
  let bundle: string;
  let pool: PolicyPool;
  let bundles: BundleWatcher;
  let sources: PolicySourceWatcher;
  const events = new EventEmitter();
  const builds: BuildResult[] = [];
  const activated: { revision: string; at: number }[] = [];
  const rejected: string[] = [];
  const built = () => once(events, "built", { signal: AbortSignal.timeout(WAIT_MS) }) as Promise<[BuildResult]>;

  before(async () => {
    dir = await tempDir();
    const policiesDir = join(dir, "policies");
    await cp(POLICIES, policiesDir, { recursive: true });
    catalog = join(policiesDir, "catalog", "data.json");
    bundle = join(dir, "jitgate.tar.gz");
    const opts = { opa: OPA, policiesDir, capabilities: CAPABILITIES, out: bundle };
    const first = await buildBundle(opts, installVerified);
    assert.ok(first.ok, `the shipped policies build: ${JSON.stringify(first)}`);
    pool = new PolicyPool({ workers: 2, timeoutMs: BUDGET_MS });
    bundles = new BundleWatcher(bundle, pool, {
      activated: ({ revision }) => activated.push({ revision, at: performance.now() }),
      rejected: ({ reason }) => rejected.push(reason),
    });
    await bundles.start();
    sources = new PolicySourceWatcher(
      opts,
      (result) => {
        builds.push(result);
        events.emit("built", result);
      },
      bundles,
    );
    await sources.start();
  });
  after(async () => {
    await sources?.close();
    await bundles?.close();
    await pool?.close();
    await removeDir(dir);
  });

  async function editCatalog(change: (c: Catalog) => void): Promise<void> {
    const data = JSON.parse(await readFile(catalog, "utf8")) as Catalog;
    change(data);
    await writeFile(catalog, JSON.stringify(data, null, 2));
  }

  /** The served revision, the bundle file's bytes and what a restart would serve, before a refused edit. */
  async function snapshot() {
    return { serving: pool.active?.revision, bytes: await readFile(bundle), activations: activated.length };
  }

  /** A refused edit changed nothing: same revision served, same bytes on disk, no candidate left, a restart agrees. */
  async function assertNothingChanged(was: Awaited<ReturnType<typeof snapshot>>): Promise<void> {
    assert.equal(pool.active?.revision, was.serving);
    assert.equal(activated.length, was.activations, "nothing was activated");
    assert.deepEqual(rejected, [], "reported once, by the build, not again by the bundle watcher");
    assert.ok((await readFile(bundle)).equals(was.bytes), "the bundle file on disk is byte for byte the last good one");
    assert.deepEqual((await readdir(dir)).sort(), ["jitgate.tar.gz", "policies"], "no candidate file is left beside it");
    const restarted = await restartOn(bundle);
    assert.equal(restarted.revision, was.serving, "a restart serves the last good revision");
    assert.equal(restarted.allow, true, "with the last good catalogue's decision");
  }

  test("a saved catalogue edit is served without a restart, with the decision it changes", async (t) => {
    const first = pool.active?.revision;
    assert.equal((await pool.checkDecision(SRE_READ)).result.allow, false, "sre has no standing access yet");
    const next = built();
    const t0 = performance.now();
    await editCatalog((c) => c.resources["db/orders"]?.standing.groups.push("sre"));
    const [result] = await next;
    assert.ok(result.ok, `the edit builds: ${JSON.stringify(result)}`);
    const live = activated.at(-1);
    assert.equal(live?.revision, result.revision);
    t.diagnostic(`edit → live: ${((live?.at ?? NaN) - t0).toFixed(0)} ms (opa build, verification, activation)`);
    assert.notEqual(pool.active?.revision, first);
    assert.equal(pool.active?.revision, result.revision);
    const decision = await pool.checkDecision(SRE_READ);
    assert.equal(decision.result.allow, true);
    assert.equal(decision.result.standing, true);
    assert.equal(decision.revision, result.revision);
    assert.equal((await restartOn(bundle)).revision, result.revision, "the served bundle is the one on disk");
  });

  test("a catalogue edit that compiles but that the server refuses is reported and changes nothing", async () => {
    const was = await snapshot();
    const good = await readFile(catalog, "utf8");
    const refused = built();
    await editCatalog((c) => {
      const orders = c.resources["db/orders"] as Record<string, unknown>;
      orders.actions = "write";
      orders.source_cidr = ["10.0.0.0/8"];
    });
    const result = refusal((await refused)[0]);
    assert.equal(result.stage, "install");
    assert.match(result.message, /compiled, but refused: .*the policy data has errors \(fix policies\/catalog\/data\.json\)/);
    assert.match(result.message, /source_cidr/);
    await assertNothingChanged(was);

    // Putting the catalogue back rebuilds the revision that serves: nothing to switch, one report in all.
    const failuresBefore = builds.filter((b) => !b.ok).length;
    const restored = built();
    await writeFile(catalog, good);
    const [back] = await restored;
    assert.deepEqual(back, { ok: true, revision: was.serving });
    assert.equal(activated.length, was.activations);
    assert.equal(builds.filter((b) => !b.ok).length, failuresBefore, "the refusal was reported once");
  });

  test("a Rego syntax error is reported and changes nothing", async () => {
    const was = await snapshot();
    const broken = join(dir, "policies", "jit", "broken.rego");
    const refused = built();
    await writeFile(broken, "package jit.broken\n\nallow if {\n");
    const result = refusal((await refused)[0]);
    assert.equal(result.stage, "compile");
    assert.match(result.message, /broken\.rego/);
    await assertNothingChanged(was);

    const restored = built();
    await rm(broken);
    const [back] = await restored;
    assert.deepEqual(back, { ok: true, revision: was.serving });
  });
});

describe("make bundle (scripts/build-bundle.ts)", () => {
  test("a catalogue the server would refuse fails the build with the reason and leaves the bundle as it was", async () => {
    const dir = await tempDir();
    try {
      const policiesDir = join(dir, "policies");
      await cp(POLICIES, policiesDir, { recursive: true });
      const out = join(dir, "jitgate.tar.gz");
      const script = [join(ROOT, "scripts", "build-bundle.ts"), OPA, policiesDir, CAPABILITIES, out];
      await promisify(execFile)(process.execPath, script);
      const good = await readFile(out);
      const catalog = join(policiesDir, "catalog", "data.json");
      const data = JSON.parse(await readFile(catalog, "utf8")) as Catalog;
      (data.resources["db/orders"] as Record<string, unknown>).actions = "write";
      await writeFile(catalog, JSON.stringify(data));
      const failed = await promisify(execFile)(process.execPath, script).then(
        () => assert.fail("the build succeeded"),
        (err: unknown) => err as { code: number; stderr: string },
      );
      assert.equal(failed.code, 1);
      assert.match(failed.stderr, /is unchanged:\ncompiled, but refused: .*the policy data has errors/);
      assert.ok((await readFile(out)).equals(good), "the bundle file is byte for byte the one before");
      assert.deepEqual((await readdir(dir)).sort(), ["jitgate.tar.gz", "policies"], "no candidate file is left beside it");
    } finally {
      await removeDir(dir);
    }
  });
});
