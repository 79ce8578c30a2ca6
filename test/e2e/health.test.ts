// Truthful health on a real server whose data directory sits on a small real file system: when the disk fills up
// or turns read-only, the writes health name goes NOT_SERVING while "" and jit.v1.AccessService stay SERVING and
// Checks are answered; /healthz says why; freed space brings writes back with no user traffic.
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { Jitgate } from "../../src/app.ts";
import type { ServeFlags } from "../../src/config.ts";
import { DECISION_HEALTH_SERVICES, WRITES_HEALTH_SERVICE } from "../../src/server/grpc/server.ts";
import { api, type Caller, type CallFailure, failsWith, failureOf, orderReadGrant, status, tokenFor } from "../support/api.ts";
import { removeDir, tempDir } from "../support/bundles.ts";
import { healthStatus, startTestJitgate } from "../support/jitgate.ts";
import { mountExt4, mountTmpfs } from "../support/scratch-fs.ts";

const FROM_OFFICE = { source_ip: "10.1.2.3" };
/** The server re-checks health every 2 s; a change must show within a few rounds. */
const HEALTH_BOUND_MS = 10_000;
/** Requests that may still fit in space SQLite already holds before one needs a new block. */
const MAX_REQUESTS_UNTIL_FULL = 50;

interface HealthzBody {
  decisions: { serving: boolean; reason?: string };
  writes: { possible: boolean; reason?: string; since?: string };
  policy: { ready: boolean; revision?: string };
  decision_log: { keeping_up: boolean; queue_depth: number; queue_capacity: number; dropped: number; writes: { possible: boolean } };
}

async function healthz(jitgate: Jitgate): Promise<{ status: number; body: HealthzBody }> {
  assert.ok(jitgate.metricsUrl);
  const res = await fetch(jitgate.metricsUrl.replace(/\/metrics$/, "/healthz"));
  return { status: res.status, body: (await res.json()) as HealthzBody };
}

/** Polls `probe` until it answers `wanted`, failing after `HEALTH_BOUND_MS` with the last answer. */
async function eventually<T>(what: string, probe: () => Promise<T>, wanted: T): Promise<void> {
  const deadline = Date.now() + HEALTH_BOUND_MS;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await probe();
    if (last === wanted) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`${what}: still ${String(last)} after ${HEALTH_BOUND_MS} ms, wanted ${String(wanted)}`);
}

async function assertDecisionsServing(jitgate: Jitgate): Promise<void> {
  for (const name of DECISION_HEALTH_SERVICES) assert.equal(await healthStatus(jitgate.address, name), "SERVING", `health "${name}"`);
}

/** A server on `dataDir` with a checker, a grant holder, and fresh requesters made before the disk fails. */
async function serverWithCallers(dataDir: string, flags: ServeFlags = {}) {
  const jitgate = await startTestJitgate(dataDir, flags);
  const client = api(jitgate.address);
  const as = async (id: string, groups: string[]): Promise<Caller> => client.as(await tokenFor(dataDir, id, groups));
  const checker = await as("svc-orders", ["jitgate-checkers"]);
  await orderReadGrant(await as("tess", ["engineering"]));
  const requesters: Caller[] = [];
  for (let i = 0; i < MAX_REQUESTS_UNTIL_FULL + 1; i++) requesters.push(await as(`engineer-${i}`, ["engineering"]));
  const check = (subject: string) =>
    checker.call("Check", { subject, subject_groups: ["engineering"], resource: "db/orders", action: "read", context: FROM_OFFICE });
  const requestAccess = (caller: Caller) =>
    caller.call("RequestAccess", {
      resource: "db/orders",
      actions: ["read"],
      duration: { seconds: 600 },
      justification: "reading stuck orders for INC-77",
      ticket: "INC-77",
    });
  return { jitgate, client, requesters, check, requestAccess };
}

describe("health while writes fail", () => {
  test("a full disk: writes NOT_SERVING, decisions SERVING and answered; freed space brings writes back unprompted", async (t) => {
    const fs = mountTmpfs(32 << 20);
    if (typeof fs === "string") return t.skip(fs);
    const { jitgate, client, requesters, check, requestAccess } = await serverWithCallers(join(fs.dir, "data"));
    try {
      assert.equal(await healthStatus(jitgate.address, WRITES_HEALTH_SERVICE), "SERVING");
      assert.deepEqual((await healthz(jitgate)).body.writes, { possible: true });

      fs.fill();
      // Each new requester's grant is a write; the first that needs a new block is refused.
      let refused: CallFailure | undefined;
      for (const caller of requesters.slice(0, MAX_REQUESTS_UNTIL_FULL)) {
        refused = await requestAccess(caller).then(
          () => undefined,
          (err: unknown) => failureOf(Promise.reject(err)),
        );
        if (refused) break;
      }
      assert.ok(refused, `${MAX_REQUESTS_UNTIL_FULL} requests were granted on a full disk`);
      assert.equal(refused.code, status.UNAVAILABLE, refused.message);
      assert.match(refused.message, /disk is full/);

      await eventually("writes health", () => healthStatus(jitgate.address, WRITES_HEALTH_SERVICE), "NOT_SERVING");
      await assertDecisionsServing(jitgate);
      assert.equal((await check("tess")).allow, true);
      assert.equal((await check("nobody")).allow, false);
      const down = await healthz(jitgate);
      assert.equal(down.status, 200);
      assert.deepEqual(down.body.decisions, { serving: true });
      assert.equal(down.body.writes.possible, false);
      assert.equal(down.body.writes.reason, "the disk is full");
      assert.ok(Date.parse(down.body.writes.since ?? "") > 0, `since: ${down.body.writes.since}`);
      assert.equal(down.body.decision_log.keeping_up, true);
      const last = requesters.at(-1);
      assert.ok(last);
      await failsWith(status.UNAVAILABLE, requestAccess(last));

      fs.free();
      // No user write from here on: the server's own probe sees the space come back.
      await eventually("writes health", () => healthStatus(jitgate.address, WRITES_HEALTH_SERVICE), "SERVING");
      assert.deepEqual((await healthz(jitgate)).body.writes, { possible: true });
      assert.equal((await requestAccess(last)).state, "APPROVED");
      // The checks answered during the outage were queued, not lost.
      await jitgate.decisionLog.flush();
      assert.equal(jitgate.decisionLog.dropped, 0);
      assert.deepEqual((await healthz(jitgate)).body.decision_log.writes, { possible: true });
    } finally {
      client.close();
      // A test that failed with the disk still full must still shut down: the last checkpoint needs room.
      try {
        fs.free();
      } catch {
        // Already freed.
      }
      try {
        await jitgate.close();
      } finally {
        fs.unmount();
      }
    }
  });

  test("a file system turned read-only: the probe finds it with no user write; Checks go on", async (t) => {
    const fs = mountExt4(32 << 20);
    if (typeof fs === "string") return t.skip(fs);
    // The signed audit checkpoints go elsewhere: at shutdown jitgate writes a last one, which a read-only disk
    // refuses, and this test is about the store.
    const elsewhere = await tempDir("jitgate-health-ro-");
    const auditCheckpoints = join(elsewhere, "audit-checkpoints.jsonl");
    const { jitgate, client, requesters, check, requestAccess } = await serverWithCallers(join(fs.dir, "data"), { auditCheckpoints });
    try {
      assert.equal(await healthStatus(jitgate.address, WRITES_HEALTH_SERVICE), "SERVING");
      fs.turnReadOnly();

      await eventually("writes health", () => healthStatus(jitgate.address, WRITES_HEALTH_SERVICE), "NOT_SERVING");
      await assertDecisionsServing(jitgate);
      const down = await healthz(jitgate);
      assert.equal(down.status, 200);
      assert.equal(down.body.writes.possible, false);
      assert.equal(down.body.writes.reason, "the file system is read-only");
      assert.equal((await check("tess")).allow, true);
      const caller = requesters[0];
      assert.ok(caller);
      await failsWith(status.UNAVAILABLE, requestAccess(caller));
      // ext4 keeps an aborted journal read-only until the disk is checked and mounted again; jitgate says so.
      assert.equal(await healthStatus(jitgate.address, WRITES_HEALTH_SERVICE), "NOT_SERVING");
    } finally {
      client.close();
      try {
        await jitgate.close();
      } finally {
        fs.unmount();
        await removeDir(elsewhere);
      }
    }
  });
});
