import assert from "node:assert/strict";
import { copyFile, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { BundleError } from "../../src/errors.ts";
import { PolicyEngine } from "../../src/policy/engine.ts";
import { BundleWatcher } from "../../src/policy/watcher.ts";
import { buildVariant, REAL_BUNDLE, removeDir, tempDir, touchRevision } from "../support/bundles.ts";

const CHECK_INPUT = {
  subject: { id: "alice", groups: ["oncall"] },
  resource: "db/orders",
  action: "read",
  context: {},
  now: 1_763_900_000,
  grants: [{ id: "g1", actions: ["read"], expires_at: 1_763_900_600 }],
};

/** Resolves once `predicate` holds, checking after every macrotask; fails after `ms`. */
async function until(predicate: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Replaces `target` atomically, the way `make bundle` does. */
async function install(source: string, target: string): Promise<void> {
  const tmp = `${target}.incoming`;
  await copyFile(source, tmp);
  await rename(tmp, target);
}

describe("bundle hot reload", () => {
  let dir: string;
  let variant: string;
  let variantRevision: string;
  before(async () => {
    dir = await tempDir();
    variant = join(dir, "variant.tar.gz");
    variantRevision = await buildVariant(dir, variant, (p) => touchRevision(p, "v2"));
  });
  after(() => removeDir(dir));

  function watcherOn(file: string) {
    const engine = new PolicyEngine();
    const activated: string[] = [];
    const rejected: string[] = [];
    const watcher = new BundleWatcher(file, engine, {
      activated: ({ revision }) => activated.push(revision),
      rejected: ({ reason, serving }) => rejected.push(`${reason} [serving ${serving}]`),
    });
    return { engine, watcher, activated, rejected };
  }

  test("a bundle whose switch cannot be recorded (the activating hook throws) is refused; the old one keeps serving", async () => {
    const file = join(dir, "unaudited.tar.gz");
    await copyFile(REAL_BUNDLE, file);
    const engine = new PolicyEngine();
    const rejected: string[] = [];
    let auditWorks = true;
    const watcher = new BundleWatcher(file, engine, {
      activating: () => {
        if (!auditWorks) throw new Error("audit store is read-only");
      },
      activated: () => undefined,
      rejected: ({ reason }) => rejected.push(reason),
    });
    await watcher.start();
    const first = engine.active?.revision;
    auditWorks = false;
    await install(variant, file);
    await until(() => rejected.length > 0);
    await watcher.close();
    assert.equal(engine.active?.revision, first);
    assert.notEqual(first, variantRevision);
    assert.match(rejected[0] ?? "", /audit store is read-only/);
  });

  test("without a valid bundle at start-up the watcher refuses to start", async () => {
    const file = join(dir, "startup-missing.tar.gz");
    const { watcher, engine } = watcherOn(file);
    await assert.rejects(watcher.start(), BundleError);
    assert.equal(engine.ready, false);
    await assert.rejects(async () => engine.checkDecision(CHECK_INPUT), /no policy bundle is loaded/);
  });

  test("a new bundle is swapped in while evaluations run in a tight loop, with no error", async () => {
    const file = join(dir, "swap.tar.gz");
    await copyFile(REAL_BUNDLE, file);
    const { engine, watcher, activated } = watcherOn(file);
    await watcher.start();
    const first = engine.active?.revision as string;
    assert.notEqual(first, variantRevision);

    const seen = new Map<string, number>();
    let errors = 0;
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        for (let i = 0; i < 200; i++) {
          try {
            const { result, revision } = engine.checkDecision(CHECK_INPUT);
            assert.equal(typeof result.allow, "boolean");
            seen.set(revision, (seen.get(revision) ?? 0) + 1);
          } catch {
            errors++;
          }
        }
        await new Promise((r) => setImmediate(r));
      }
    })();
    await until(() => (seen.get(first) ?? 0) > 1000);
    await install(variant, file);
    await until(() => (seen.get(variantRevision) ?? 0) > 1000);
    stop = true;
    await loop;
    await watcher.close();

    assert.equal(errors, 0);
    assert.deepEqual([...seen.keys()].sort(), [first, variantRevision].sort());
    assert.deepEqual(activated, [first, variantRevision]);
  });

  for (const [name, expected, corrupt] of [
    ["truncated", /cannot be decompressed/, async (f: string) => writeFile(f, (await readFile(REAL_BUNDLE)).subarray(0, 300))],
    ["empty", /is empty/, async (f: string) => writeFile(f, "")],
    ["not gzip", /is not a gzip file/, async (f: string) => writeFile(f, "this is not a bundle")],
  ] as const) {
    test(`a ${name} bundle is rejected with a log line and the previous revision keeps serving`, async () => {
      const file = join(dir, `corrupt-${name.replace(" ", "-")}.tar.gz`);
      await copyFile(REAL_BUNDLE, file);
      const { engine, watcher, rejected } = watcherOn(file);
      await watcher.start();
      const serving = engine.active?.revision;
      const staged = `${file}.bad`;
      await corrupt(staged);
      await rename(staged, file);
      await until(() => rejected.length > 0);
      assert.match(rejected[0] as string, expected);
      assert.equal(engine.active?.revision, serving);
      assert.equal(typeof engine.checkDecision(CHECK_INPUT).result.allow, "boolean");
      // A valid bundle later is picked up again.
      await install(variant, file);
      await until(() => engine.active?.revision === variantRevision);
      await watcher.close();
    });
  }
});
