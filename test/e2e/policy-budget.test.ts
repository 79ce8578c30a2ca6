// The policy time budget, end to end: a rule that runs away on one input costs its own caller the budget
// (a Check is denied with policy_timeout, a request is UNAVAILABLE) while every other call is answered; a
// bundle that is slow on its verification inputs is refused and the good one keeps serving.
import assert from "node:assert/strict";
import { copyFile, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Jitgate } from "../../src/app.ts";
import * as grpc from "@grpc/grpc-js";
import { api, type Api, failsWith, reasonCodes, tokenFor } from "../support/api.ts";
import { buildVariant, removeDir, tempDir } from "../support/bundles.ts";
import { startTestJitgate } from "../support/jitgate.ts";

const BURN = "count([x | some x in numbers.range(1, 3000000)]) < 0";
const FROM_OFFICE = { source_ip: "10.1.2.3" };

async function patch(file: string, from: string, to: string, append: string): Promise<void> {
  const text = await readFile(file, "utf8");
  const patched = text.replace(from, to);
  assert.notEqual(patched, text, `${file}: '${from.trim()}' not found`);
  await writeFile(file, `${patched}\n${append}\n`);
}

describe("policy time budget", () => {
  let dir: string;
  let bundle: string;
  let slowVerification: string;
  let jitgate: Jitgate;
  let client: Api;
  before(async () => {
    dir = await tempDir();
    bundle = join(dir, "served.tar.gz");
    await buildVariant(join(dir, "slow-on-some"), bundle, async (policies) => {
      // Checks carrying context burn=yes, and requests with ticket INC-999999, run for tens of seconds.
      await patch(
        join(policies, "jit", "check.rego"),
        "permitted if {\n",
        "permitted if {\n\tnot burns\n",
        `burns if {\n\tinput.context.burn == "yes"\n\t${BURN}\n}`,
      );
      await patch(
        join(policies, "jit", "request.rego"),
        "well_formed if {\n",
        "well_formed if {\n\tnot burns\n",
        `burns if {\n\tinput.ticket == "INC-999999"\n\t${BURN}\n}`,
      );
    });
    slowVerification = join(dir, "slow-verification.tar.gz");
    await buildVariant(join(dir, "slow-on-all"), slowVerification, async (policies) => {
      const catalog = join(policies, "jit", "catalog.rego");
      await writeFile(catalog, `${await readFile(catalog, "utf8")}\nerrors contains "never" if {\n\t${BURN}\n}\n`);
    });
    jitgate = await startTestJitgate(join(dir, "data"), { bundle, policyTimeout: "200ms" });
    client = api(jitgate.address);
  });
  after(async () => {
    client.close();
    await jitgate.close();
    await removeDir(dir);
  });

  test("a Check whose rule runs away is denied with policy_timeout; Checks asked meanwhile are answered first", async () => {
    const alice = client.as(await tokenFor(join(dir, "data"), "alice", ["engineering"]));
    const grant = await alice.call("RequestAccess", {
      resource: "db/orders",
      actions: ["read"],
      duration: { seconds: 600 },
      justification: "investigate stuck orders",
      ticket: "INC-1",
    });
    assert.equal(grant.state, "APPROVED");
    const order: string[] = [];
    const slow = alice
      .call("Check", {
        subject: "alice",
        subject_groups: ["engineering"],
        resource: "db/orders",
        action: "read",
        context: { ...FROM_OFFICE, burn: "yes" },
      })
      .then((answer) => {
        order.push("slow");
        return answer;
      });
    await new Promise((r) => setTimeout(r, 30));
    for (let i = 0; i < 5; i++) {
      const quick = await alice.call("Check", {
        subject: "alice",
        subject_groups: ["engineering"],
        resource: "db/orders",
        action: "read",
        context: FROM_OFFICE,
      });
      assert.equal(quick.allow, true);
      order.push("quick");
    }
    const answer = await slow;
    assert.equal(answer.allow, false);
    assert.deepEqual(reasonCodes(answer.reasons), ["policy_timeout"]);
    assert.match(answer.reasons[0]?.message ?? "", /did not answer within 200 ms/);
    assert.deepEqual(order, ["quick", "quick", "quick", "quick", "quick", "slow"]);
    // Counted apart from denials: the policy could not decide.
    const text = await jitgate.metrics.metricsText();
    assert.match(text, /jitgate_decisions_total\{result="error"\} 1\b/);
    assert.match(text, /jitgate_policy_failures_total\{entrypoint="jit\/check\/decision",kind="timeout"\} 1\b/);
  });

  test("a request whose plan runs away is UNAVAILABLE, recorded nowhere; the next request is planned as usual", async () => {
    const bob = client.as(await tokenFor(join(dir, "data"), "bob", ["engineering"]));
    const ask = { resource: "db/orders", actions: ["read"], duration: { seconds: 600 }, justification: "investigate stuck orders" };
    const failure = await failsWith(grpc.status.UNAVAILABLE, bob.call("RequestAccess", { ...ask, ticket: "INC-999999" }));
    assert.match(failure.message, /did not answer within 200 ms/);
    const mine = await bob.call("ListAccessRequests", {});
    assert.equal(mine.requests.length, 0, "nothing was stored for the request that timed out");
    const next = await bob.call("RequestAccess", { ...ask, ticket: "INC-2" });
    assert.equal(next.state, "APPROVED");
  });

  test("a bundle that is slow on its verification inputs is refused; the good one keeps serving", async () => {
    const serving = jitgate.engine.active?.revision;
    const rejected = new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        void jitgate.metrics.metricsText().then((text) => {
          if (/jitgate_policy_reloads_total\{result="rejected"\} [1-9]/.test(text)) {
            clearInterval(timer);
            resolve();
          }
        });
      }, 50);
    });
    await copyFile(slowVerification, `${bundle}.tmp`);
    await rename(`${bundle}.tmp`, bundle);
    await rejected;
    assert.equal(jitgate.engine.active?.revision, serving, "still serving the good bundle");
    // Dana: alice's checks of db/orders are quarantined for a while after her run-away one (the first test).
    const dana = client.as(await tokenFor(join(dir, "data"), "dana", ["engineering"]));
    const check = await dana.call("Check", {
      subject: "dana",
      subject_groups: ["engineering"],
      resource: "db/orders",
      action: "read",
      context: FROM_OFFICE,
    });
    assert.equal(check.policy_revision, serving);
  });
});
