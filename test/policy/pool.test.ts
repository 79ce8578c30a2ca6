// The policy pool: evaluations off the serving thread, each within its time budget. A rule that runs away on one
// input is stopped and answered with policy_timeout while other evaluations go on; a bundle that is slow on its
// verification inputs is refused and the previous one keeps serving.
import assert from "node:assert/strict";
import { appendFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { PolicyTimeout } from "../../src/errors.ts";
import { loadBundle, loadBundleFile, type PolicyBundle } from "../../src/policy/bundle.ts";
import { PolicyEngine } from "../../src/policy/engine.ts";
import { PolicyPool } from "../../src/policy/pool.ts";
import { buildVariant, REAL_BUNDLE, removeDir, tempDir } from "../support/bundles.ts";

const NOW = 1_800_000_000;
const CHECK = {
  subject: { id: "alice", groups: ["engineering"] },
  resource: "db/orders",
  action: "read",
  context: { source_ip: "10.1.2.3" },
  now: NOW,
  grants: [{ id: "g1", actions: ["read"], expires_at: NOW + 600 }],
};
// Millions of elements: tens of seconds in opa-wasm, unless something stops it.
const BURN = "count([x | some x in numbers.range(1, 3000000)]) < 0";

describe("policy pool", () => {
  let dir: string;
  let real: PolicyBundle;
  let slowOnOne: PolicyBundle;
  let slowVerification: PolicyBundle;
  before(async () => {
    dir = await tempDir();
    real = await loadBundleFile(REAL_BUNDLE);
    const slowOnOneFile = join(dir, "slow-on-one.tar.gz");
    await buildVariant(join(dir, "a"), slowOnOneFile, async (policies) => {
      const check = join(policies, "jit", "check.rego");
      const text = await readFile(check, "utf8");
      // Every allow asks whether this input burns: an expensive rule on one kind of input only.
      const patched = text.replace("permitted if {\n", "permitted if {\n\tnot burns\n");
      assert.notEqual(patched, text);
      await writeFile(check, `${patched}\nburns if {\n\tinput.context.burn == "yes"\n\t${BURN}\n}\n`);
    });
    slowOnOne = await loadBundle(slowOnOneFile, await readFile(slowOnOneFile));
    const slowVerificationFile = join(dir, "slow-verification.tar.gz");
    await buildVariant(join(dir, "b"), slowVerificationFile, async (policies) => {
      await appendFile(join(policies, "jit", "catalog.rego"), `\nerrors contains "never" if {\n\t${BURN}\n}\n`);
    });
    // Read without loadBundle: verifying it here would take the tens of seconds the pool must not.
    slowVerification = { ...real, file: slowVerificationFile, revision: "slow-verification", bytes: await readFile(slowVerificationFile) };
  });
  after(() => removeDir(dir));

  test("answers exactly what the in-process engine answers, with the bundle's revision", async () => {
    const pool = new PolicyPool({ workers: 2, timeoutMs: 1000 });
    try {
      await pool.activate(real);
      const engine = new PolicyEngine();
      engine.activate(real);
      const answers = await Promise.all(
        Array.from({ length: 200 }, (_, i) => pool.checkDecision({ ...CHECK, action: i % 2 ? "read" : "write" })),
      );
      for (const [i, a] of answers.entries()) {
        assert.deepEqual(a, engine.checkDecision({ ...CHECK, action: i % 2 ? "read" : "write" }));
      }
    } finally {
      await pool.close();
    }
  });

  test("a rule that runs away on one input is stopped at the budget; other evaluations are answered meanwhile", async () => {
    const timeouts: string[] = [];
    const pool = new PolicyPool({ workers: 2, timeoutMs: 200, onTimeout: (e) => timeouts.push(`${e.entrypoint}@${e.revision}`) });
    try {
      await pool.activate(slowOnOne);
      const order: string[] = [];
      const slow = pool.checkDecision({ ...CHECK, context: { ...CHECK.context, burn: "yes" } }).then(
        () => order.push("slow answered"),
        (err: unknown) => {
          assert.ok(err instanceof PolicyTimeout, String(err));
          assert.equal(err.reason, "policy_timeout");
          assert.match(err.message, /did not answer within 200 ms/);
          order.push("slow stopped");
        },
      );
      // Asked after the slow one: answered by the other worker while the slow one burns.
      await new Promise((r) => setTimeout(r, 20));
      const fast = await pool.checkDecision(CHECK);
      order.push("fast answered");
      assert.equal(fast.result.allow, true);
      await slow;
      assert.deepEqual(order, ["fast answered", "slow stopped"]);
      assert.deepEqual(timeouts, [`jit/check/decision@${slowOnOne.revision}`]);
      // The stopped worker was replaced: the pool keeps answering, many at once (for another subject: alice's
      // checks of this resource and action are quarantined for a while, see the next test).
      const dana = { ...CHECK, subject: { id: "dana", groups: ["engineering"] } };
      const later = await Promise.all(Array.from({ length: 50 }, () => pool.checkDecision(dana)));
      assert.ok(later.every((a) => a.result.allow));
    } finally {
      await pool.close();
    }
  });

  test("the same question that ran away twice is refused at once; once is not enough, and the subject's other checks go on", async () => {
    const timeouts: string[] = [];
    const pool = new PolicyPool({ workers: 2, timeoutMs: 200, onTimeout: (e) => timeouts.push(e.entrypoint) });
    try {
      await pool.activate(slowOnOne);
      const burn = { ...CHECK, context: { ...CHECK.context, burn: "yes" } };
      await assert.rejects(pool.checkDecision(burn), /did not answer within 200 ms/);
      // Once may be machine noise: the same question, a moment later, is evaluated (and stopped) a second time...
      await assert.rejects(pool.checkDecision({ ...burn, now: NOW + 1 }), /did not answer within 200 ms/);
      // ...then refused without being evaluated.
      await assert.rejects(pool.checkDecision({ ...burn, now: NOW + 2 }), (err: unknown) => {
        assert.ok(err instanceof PolicyTimeout);
        assert.equal(err.reason, "policy_timeout");
        assert.match(err.message, /the same question ran past the 200 ms policy budget twice/);
        return true;
      });
      assert.deepEqual(timeouts, ["jit/check/decision", "jit/check/decision"], "no third worker was stopped");
      // One bad context does not condemn the subject: alice's ordinary check is evaluated and allowed.
      assert.equal((await pool.checkDecision(CHECK)).result.allow, true);
    } finally {
      await pool.close();
    }
  });

  test("checks of one subject, resource and action that run away with different contexts are all refused after two", async () => {
    const timeouts: string[] = [];
    const pool = new PolicyPool({ workers: 2, timeoutMs: 200, onTimeout: (e) => timeouts.push(e.entrypoint) });
    try {
      await pool.activate(slowOnOne);
      const burn = (n: string) => ({ ...CHECK, context: { ...CHECK.context, burn: "yes", n } });
      await assert.rejects(pool.checkDecision(burn("1")), /did not answer within 200 ms/);
      await assert.rejects(pool.checkDecision(burn("2")), /did not answer within 200 ms/);
      // A caller varying a key to dodge the quarantine: every further check of alice reading db/orders is refused.
      for (const again of [burn("3"), burn("4"), CHECK]) {
        await assert.rejects(pool.checkDecision(again), (err: unknown) => {
          assert.ok(err instanceof PolicyTimeout);
          assert.match(err.message, /2 different checks of the same subject, resource and action ran past the 200 ms policy budget/);
          return true;
        });
      }
      assert.equal(timeouts.length, 2, "no third worker was stopped");
      // Other subjects and actions are evaluated as usual, the burning question for another subject too.
      assert.equal((await pool.checkDecision({ ...CHECK, subject: { id: "carol", groups: ["engineering"] } })).result.allow, true);
      assert.equal(typeof (await pool.checkDecision({ ...CHECK, action: "write" })).result.allow, "boolean");
      await assert.rejects(
        pool.checkDecision({ ...burn("5"), subject: { id: "bob", groups: ["engineering"] } }),
        /did not answer within 200 ms/,
      );
      assert.equal(timeouts.length, 3);
    } finally {
      await pool.close();
    }
  });

  test("the others batched with a run-away evaluation are answered, not failed", async () => {
    const pool = new PolicyPool({ workers: 1, timeoutMs: 200 });
    try {
      await pool.activate(slowOnOne);
      const burning = pool.checkDecision({ ...CHECK, context: { ...CHECK.context, burn: "yes" } });
      const batched = Array.from({ length: 5 }, () => pool.checkDecision(CHECK));
      await assert.rejects(burning, PolicyTimeout);
      for (const a of await Promise.all(batched)) assert.equal(a.result.allow, true);
    } finally {
      await pool.close();
    }
  });

  test(
    "run-away questions that differ every time never starve the others: each is stopped, the others answered",
    { timeout: 30_000 },
    async () => {
      const pool = new PolicyPool({ workers: 2, timeoutMs: 100 });
      try {
        await pool.activate(slowOnOne);
        let stop = false;
        let stopped = 0;
        let answered = 0;
        // Two callers asking run-away questions nonstop, each about another subject (so the quarantine cannot help).
        const burners = Array.from({ length: 2 }, async (_, lane) => {
          for (let n = 0; !stop; n++) {
            const subject = { id: `burner-${lane}-${n}`, groups: ["engineering"] };
            await assert.rejects(pool.checkDecision({ ...CHECK, subject, context: { ...CHECK.context, burn: "yes" } }), PolicyTimeout);
            stopped++;
          }
        });
        // Meanwhile 40 ordinary questions, 4 at a time: every one is answered (with the engine's answer).
        const ordinary = Array.from({ length: 4 }, async () => {
          for (let i = 0; i < 10; i++) {
            assert.equal((await pool.checkDecision(CHECK)).result.allow, true);
            answered++;
          }
        });
        await Promise.all(ordinary);
        stop = true;
        await Promise.all(burners);
        assert.equal(answered, 40);
        assert.ok(stopped >= 2, `${stopped} run-away questions stopped`);
      } finally {
        await pool.close();
      }
    },
  );

  test("a bundle slow on its verification inputs is tried once more on fresh workers, then refused; the previous one keeps serving", async () => {
    const failures: string[] = [];
    const pool = new PolicyPool({ workers: 2, timeoutMs: 200, onLoadFailed: (e) => failures.push(e.reason) });
    try {
      await pool.activate(real);
      const started = performance.now();
      const activation = pool.activate(slowVerification);
      activation.catch(() => {});
      // Meanwhile, and after, the previous bundle answers.
      const during = await pool.checkDecision(CHECK);
      assert.equal(during.revision, real.revision);
      await assert.rejects(activation, /ran past the policy time budget \(200 ms\) on 2 attempts/);
      // Two attempts, each stopped at the budget: it cannot have been refused sooner (one timeout may be noise).
      assert.ok(performance.now() - started >= 2 * 200, "refused after a single attempt");
      assert.equal(failures.length, 1, "one refusal reported, for the last attempt");
      assert.match(failures[0] as string, /ran past the policy time budget \(200 ms\) on 2 attempts/);
      const afterwards = await pool.checkDecision(CHECK);
      assert.equal(afterwards.revision, real.revision);
      assert.equal(afterwards.result.allow, true);
    } finally {
      await pool.close();
    }
  });

  test("with no bundle loaded every evaluation fails closed", async () => {
    const pool = new PolicyPool({ workers: 1, timeoutMs: 200 });
    await assert.rejects(pool.checkDecision(CHECK), /no policy bundle is loaded/);
    await pool.close();
  });
});
