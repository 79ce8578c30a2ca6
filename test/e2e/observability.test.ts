// What operators and auditors see of a running server: every Check leaves exactly one decision record (also after
// a burst and a clean shutdown), Prometheus metrics and /healthz over HTTP reflect real traffic, and the policy
// bundle the server activated is in the audit trail.
import assert from "node:assert/strict";
import { copyFileSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import Database from "better-sqlite3";
import { DECISIONS_FILE } from "../../src/store/decision-store.ts";
import { STORE_FILE } from "../../src/store/sqlite.ts";
import { api, type Caller, orderReadGrant, tokenFor } from "../support/api.ts";
import { REAL_BUNDLE, removeDir, tempDir } from "../support/bundles.ts";
import { startTestJitgate } from "../support/jitgate.ts";

const FROM_OFFICE = { source_ip: "10.1.2.3" };
const BURST = 10_000;
/** Calls in flight at once: enough to queue decisions faster than one batch interval. */
const CONCURRENCY = 64;

/** The value of one series in a Prometheus text exposition; undefined when absent. */
function series(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

function readRows<T>(file: string, sql: string): T[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

describe("observability", () => {
  test("10,000 checks leave 10,000 decision records, one per call, after a clean shutdown", async () => {
    const dataDir = await tempDir("jitgate-decisions-");
    const decisionLines = join(dataDir, "decisions.jsonl");
    const jitgate = await startTestJitgate(dataDir, { decisionLog: decisionLines });
    const client = api(jitgate.address);
    let closed = false;
    try {
      const service = client.as(await tokenFor(dataDir, "svc-orders", ["jitgate-checkers"]));
      const holder = client.as(await tokenFor(dataDir, "tess", ["engineering"]));
      const { grantId } = await orderReadGrant(holder);
      const answered = new Map<string, { subject: string; action: string; allow: boolean }>();
      let next = 0;
      const worker = async () => {
        while (next < BURST) {
          const i = next++;
          // Alternate subjects and actions so allows and denials, with and without a grant, are all logged.
          const subject = i % 3 === 0 ? "nobody" : "tess";
          const action = i % 2 === 0 ? "read" : "write";
          const r = await service.call("Check", {
            subject,
            subject_groups: ["engineering"],
            resource: "db/orders",
            action,
            context: FROM_OFFICE,
          });
          answered.set(r.decision_id, { subject, action, allow: r.allow });
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      assert.equal(answered.size, BURST, "every call got its own decision id");
      assert.equal(jitgate.decisionLog.dropped, 0);
      client.close();
      await jitgate.close();
      closed = true;

      const rows = readRows<{ decision_id: string; caller: string; subject: string; action: string; allow: number; grant_id: string }>(
        join(dataDir, DECISIONS_FILE),
        "SELECT decision_id, caller, subject, action, allow, grant_id FROM decisions",
      );
      assert.equal(rows.length, BURST);
      for (const row of rows) {
        const call = answered.get(row.decision_id);
        assert.ok(call, `decision ${row.decision_id} matches a call`);
        assert.deepEqual([row.caller, row.subject, row.action, row.allow === 1], ["svc-orders", call.subject, call.action, call.allow]);
        assert.equal(row.grant_id, call.allow ? grantId : "");
      }
      const allowed = rows.filter((r) => r.allow === 1).length;
      assert.ok(allowed > 0 && allowed < BURST, "the burst holds both allows and denials");

      const lines = readFileSync(decisionLines, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { decision_id: string; path: string });
      assert.equal(lines.length, BURST);
      assert.deepEqual(new Set(lines.map((l) => l.decision_id)), new Set(answered.keys()));
      assert.ok(lines.every((l) => l.path === "jit/check/decision"));
    } finally {
      client.close();
      if (!closed) await jitgate.close();
      await removeDir(dataDir);
    }
  });

  test("metrics scraped over HTTP count real decisions, requests, tokens and revocations; /healthz says decisions are served and writes possible", async () => {
    const dataDir = await tempDir("jitgate-metrics-");
    const jitgate = await startTestJitgate(dataDir);
    const client = api(jitgate.address);
    try {
      assert.ok(jitgate.metricsUrl);
      const as = async (id: string, groups: string[]): Promise<Caller> => client.as(await tokenFor(dataDir, id, groups));
      const tess = await as("tess", ["engineering"]);
      const admin = await as("ada", ["jitgate-admins"]);
      const { grantId } = await orderReadGrant(tess);
      await orderReadGrant(await as("tom", ["engineering"]));
      const check = (action: string) => admin.call("Check", { subject: "tess", resource: "db/orders", action, context: FROM_OFFICE });
      assert.equal((await check("read")).allow, true);
      assert.equal((await check("read")).allow, true);
      assert.equal((await check("write")).allow, false);
      await admin.call("RevokeGrant", { grant_id: grantId, reason: "done" });

      const response = await fetch(jitgate.metricsUrl);
      assert.equal(response.status, 200);
      const text = await response.text();
      assert.equal(series(text, 'jitgate_decisions_total{result="allow"}'), 2);
      assert.equal(series(text, 'jitgate_decisions_total{result="deny"}'), 1);
      assert.equal(series(text, "jitgate_decision_duration_seconds_count"), 3);
      assert.equal(series(text, 'jitgate_access_requests_total{outcome="approved"}'), 2);
      assert.equal(series(text, "jitgate_time_to_approval_seconds_count"), 2);
      assert.equal(series(text, "jitgate_tokens_issued_total"), 2);
      assert.equal(series(text, "jitgate_revocations_total"), 1);
      assert.equal(series(text, "jitgate_active_grants"), 1);
      assert.equal(series(text, `jitgate_policy_bundle_info{revision="${jitgate.engine.active?.revision}"}`), 1);
      assert.equal(series(text, 'jitgate_policy_reloads_total{result="activated"}'), 1);
      assert.equal(series(text, "jitgate_policy_last_reload_success"), 1);
      assert.equal(series(text, "jitgate_decision_log_dropped_total"), 0);
      assert.notEqual(series(text, "jitgate_decision_log_queue_depth"), undefined);
      assert.equal(series(text, "jitgate_serving"), 1);

      const health = await fetch(jitgate.metricsUrl.replace(/\/metrics$/, "/healthz"));
      assert.equal(health.status, 200);
      const body = (await health.json()) as {
        decisions: unknown;
        writes: unknown;
        policy: unknown;
        decision_log: { keeping_up: boolean; writes: unknown; dropped: number };
      };
      assert.deepEqual(body.decisions, { serving: true });
      assert.deepEqual(body.writes, { possible: true });
      assert.deepEqual(body.policy, { ready: true, revision: jitgate.engine.active?.revision });
      assert.equal(body.decision_log.keeping_up, true);
      assert.deepEqual(body.decision_log.writes, { possible: true });
      assert.equal(body.decision_log.dropped, 0);
    } finally {
      client.close();
      await jitgate.close();
      await removeDir(dataDir);
    }
  });

  test("policy bundles activated and rejected are in the audit trail, with their revisions", async () => {
    const dataDir = await tempDir("jitgate-policy-audit-");
    const bundle = join(dataDir, "bundle.tar.gz");
    copyFileSync(REAL_BUNDLE, bundle);
    const jitgate = await startTestJitgate(dataDir, { bundle });
    const revision = jitgate.engine.active?.revision;
    const policyRows = () =>
      readRows<{ kind: string; actor: string; policy_revision: string; reason: string; details: string }>(
        join(dataDir, STORE_FILE),
        "SELECT kind, actor, policy_revision, reason, details FROM audit WHERE kind LIKE 'POLICY_BUNDLE_%' ORDER BY seq",
      );
    try {
      writeFileSync(`${bundle}.tmp`, "not a bundle");
      renameSync(`${bundle}.tmp`, bundle);
      const deadline = Date.now() + 10_000;
      while (policyRows().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const rows = policyRows();
      assert.deepEqual(
        rows.map((r) => [r.kind, r.actor, r.policy_revision]),
        [
          ["POLICY_BUNDLE_ACTIVATED", "jitgate", revision],
          ["POLICY_BUNDLE_REJECTED", "jitgate", revision],
        ],
      );
      assert.equal((JSON.parse(rows[0]?.details ?? "{}") as { previous: unknown }).previous, null);
      assert.match(rows[1]?.reason ?? "", /gzip|bundle/i);
      assert.equal(jitgate.engine.active?.revision, revision, "still serving the good bundle");
    } finally {
      await jitgate.close();
      await removeDir(dataDir);
    }
  });
});
