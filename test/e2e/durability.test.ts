// Durability: `jitgate serve` killed with SIGKILL in the middle of a burst of approvals loses none that it
// acknowledged. A real child process on loopback, restarted on the same data directory.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { type AccessRequest, api, type Api, type Caller, tokenFor } from "../support/api.ts";
import { REAL_BUNDLE, removeDir, tempDir } from "../support/bundles.ts";
import { spawnServe } from "../support/jitgate.ts";

const REQUESTS = 40;
const CONCURRENCY = 8;
const KILL_AFTER_ACKS = REQUESTS / 2;

/** `jitgate serve --dev` on a free loopback port; resolves with the child and its address once it listens. */
function serve(dataDir: string): Promise<{ child: ChildProcess; address: string }> {
  return spawnServe(["--dev", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--bundle", REAL_BUNDLE]);
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((ok) => child.once("exit", () => ok()));
}

/** Runs `task` over `items`, `limit` at a time, until the items run out or `stop()` says so. */
async function pool<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>, stop = () => false): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length && !stop()) await task(items[next++] as T);
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

describe("durability", () => {
  let dataDir: string;
  const children: ChildProcess[] = [];
  const clients: Api[] = [];
  before(async () => {
    dataDir = await tempDir("jitgate-e2e-kill-");
  });
  after(async () => {
    for (const c of clients) c.close();
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited(child);
    }
    await removeDir(dataDir);
  });

  test("every approval acknowledged before a SIGKILL is APPROVED with its grant after a restart", { timeout: 60_000 }, async (t) => {
    const first = await serve(dataDir);
    children.push(first.child);
    const firstApi = api(first.address);
    clients.push(firstApi);
    const as = async (id: string, groups: string[]): Promise<Caller> => firstApi.as(await tokenFor(dataDir, id, groups));

    // Each requester may have one pending write on db/orders, so one requester per request.
    const requesters = Array.from({ length: REQUESTS }, (_, i) => `dev-${String(i).padStart(2, "0")}`);
    const dba = await as("dora", ["dba"]);
    const security = await as("seth", ["security"]);
    const pending = new Map<string, string>(); // request id -> requester
    await pool(requesters, CONCURRENCY, async (requester) => {
      const caller = await as(requester, ["engineering"]);
      const r = await caller.call("RequestAccess", {
        resource: "db/orders",
        actions: ["write"],
        duration: { seconds: 3600 },
        justification: "bulk repair of order states after the outage",
        ticket: "INC-900",
      });
      assert.equal(r.state, "PENDING");
      pending.set(r.id, requester);
    });
    const ids = [...pending.keys()];
    await pool(ids, CONCURRENCY, async (id) => {
      const r = await dba.call("ReviewAccessRequest", { id, decision: "REVIEW_DECISION_APPROVE" });
      assert.equal(r.state, "PENDING", "one approval of two");
    });

    // The burst: security's approvals, 8 at a time; SIGKILL once half of them are acknowledged.
    const acknowledged: string[] = [];
    const failedBeforeKill: unknown[] = [];
    let killed = false;
    await pool(
      ids,
      CONCURRENCY,
      async (id) => {
        try {
          const r = await security.call("ReviewAccessRequest", { id, decision: "REVIEW_DECISION_APPROVE" }, { deadlineMs: 5_000 });
          assert.equal(r.state, "APPROVED");
          acknowledged.push(id);
          if (!killed && acknowledged.length >= KILL_AFTER_ACKS) {
            killed = true;
            first.child.kill("SIGKILL");
          }
        } catch (err) {
          if (!killed) failedBeforeKill.push(err);
        }
      },
      () => killed,
    );
    await exited(first.child);
    assert.deepEqual(failedBeforeKill, []);
    assert.equal(first.child.signalCode, "SIGKILL");
    assert.ok(acknowledged.length >= KILL_AFTER_ACKS && acknowledged.length < REQUESTS, `${acknowledged.length} acknowledged`);
    firstApi.close();

    const second = await serve(dataDir);
    children.push(second.child);
    const secondApi = api(second.address);
    clients.push(secondApi);
    const reader = secondApi.as(await tokenFor(dataDir, "auditor", ["jitgate-auditors"]));
    const stored = new Map<string, AccessRequest>();
    for (const id of ids) stored.set(id, await reader.call("GetAccessRequest", { id }));

    for (const id of acknowledged) {
      const r = stored.get(id) as AccessRequest;
      assert.equal(r.state, "APPROVED", `acknowledged approval of ${id} was lost`);
      assert.ok(r.grant, `approved request ${id} has no grant`);
      assert.equal(r.grant.status, "GRANT_STATUS_ACTIVE");
      const { grants } = await reader.call("ListGrants", { subject: pending.get(id) as string });
      assert.deepEqual(
        grants.map((g) => g.id),
        [r.grant.id],
      );
    }
    // The rest were cut off: either approved in full (grant and all) or still pending with the dba review only.
    for (const [id, r] of stored) {
      if (r.state === "APPROVED") assert.ok(r.grant && r.reviews.length === 2, `half-approved request ${id}`);
      else assert.deepEqual([r.state, r.reviews.length, r.grant], ["PENDING", 1, null], `request ${id}`);
    }
    const approvedAtKill = [...stored.values()].filter((r) => r.state === "APPROVED").length;
    t.diagnostic(`${acknowledged.length} approvals acknowledged before SIGKILL, ${approvedAtKill} committed`);
    // And the restarted server finishes the job on the same store.
    const sethAgain = secondApi.as(await tokenFor(dataDir, "seth", ["security"]));
    const unfinished = ids.filter((id) => stored.get(id)?.state === "PENDING");
    await pool(unfinished, CONCURRENCY, async (id) => {
      assert.equal((await sethAgain.call("ReviewAccessRequest", { id, decision: "REVIEW_DECISION_APPROVE" })).state, "APPROVED");
    });
    const { requests } = await reader.call("ListAccessRequests", { state: "APPROVED", resource: "db/orders", page_size: 500 });
    assert.equal(requests.length, REQUESTS);
  });
});
