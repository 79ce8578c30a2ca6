import assert from "node:assert/strict";
import { appendFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { BuildResult } from "../../src/policy/build.ts";
import { PolicyEngine } from "../../src/policy/engine.ts";
import { PolicySourceWatcher } from "../../src/policy/source-watcher.ts";
import { BundleWatcher } from "../../src/policy/watcher.ts";
import { buildVariant, CAPABILITIES, OPA, removeDir, tempDir } from "../support/bundles.ts";

async function until(predicate: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("policy dev loop (serve --watch-policies)", () => {
  let dir: string;
  let policiesDir: string;
  let bundle: string;
  let engine: PolicyEngine;
  let bundles: BundleWatcher;
  let sources: PolicySourceWatcher;
  const builds: BuildResult[] = [];

  before(async () => {
    dir = await tempDir();
    policiesDir = join(dir, "policies");
    bundle = join(dir, "bundle.tar.gz");
    await buildVariant(dir, bundle);
    engine = new PolicyEngine();
    bundles = new BundleWatcher(bundle, engine, { activated: () => {}, rejected: () => {} });
    await bundles.start();
    sources = new PolicySourceWatcher({ opa: OPA, policiesDir, capabilities: CAPABILITIES, out: bundle }, (r) => builds.push(r));
    await sources.start();
  });
  after(async () => {
    await sources.close();
    await bundles.close();
    await removeDir(dir);
  });

  test("an edit to the catalogue is rebuilt and served without a restart", async () => {
    const before = engine.active?.revision;
    const catalog = join(policiesDir, "catalog", "data.json");
    const data = JSON.parse(await readFile(catalog, "utf8"));
    data.resources["db/orders"].actions.push("vacuum");
    await writeFile(catalog, JSON.stringify(data, null, 2));
    await until(() => engine.active?.revision !== before);
    assert.equal(builds.at(-1)?.ok, true);
    const input = {
      subject: { id: "alice", groups: [] },
      resource: "db/orders",
      action: "vacuum",
      context: { source_ip: "10.0.0.1" },
      now: 100,
      grants: [],
    };
    const { result } = engine.checkDecision(input);
    assert.ok(!result.reasons.some((r) => r.code === "action_not_allowed"), "the new action is known to the served policy");
  });

  test("a Rego compile error is reported and the last good bundle keeps serving", async () => {
    const serving = engine.active?.revision;
    const seen = builds.length;
    const broken = join(policiesDir, "jit", "broken.rego");
    await writeFile(broken, "package jit.broken\n\nallow if {\n");
    await until(() => builds.length > seen);
    const last = builds.at(-1) as BuildResult;
    assert.equal(last.ok, false);
    assert.match((last as { message: string }).message, /broken\.rego/);
    assert.equal(engine.active?.revision, serving);
    // Fixing the file brings the dev loop back.
    await writeFile(broken, "package jit.broken\n\nallow := false\n");
    await until(() => engine.active?.revision !== serving);
    assert.equal(builds.at(-1)?.ok, true);
  });

  test("a data file that is not JSON is reported by name and nothing is swapped", async () => {
    const serving = engine.active?.revision;
    const seen = builds.length;
    await appendFile(join(policiesDir, "catalog", "data.json"), "}{");
    await until(() => builds.length > seen);
    const last = builds.at(-1) as BuildResult;
    assert.equal(last.ok, false);
    assert.match((last as { message: string }).message, /catalog\/data\.json/);
    assert.equal(engine.active?.revision, serving);
  });
});
