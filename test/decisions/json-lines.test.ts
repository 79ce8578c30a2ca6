import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import type { DecisionRecord } from "../../src/access/model.ts";
import { FailedPrecondition } from "../../src/errors.ts";
import { DECISION_PATH, openJsonLinesSink } from "../../src/decisions/json-lines.ts";
import { aDecisionRecord, T0 } from "./fixtures.ts";

const LABELS = { id: "4ca636c1-55e4-417a-b1d8-4aceb67960d1", version: "0.1.0" };
const dir = mkdtempSync(join(tmpdir(), "jitgate-json-lines-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function aDecision(n: number, over: Partial<DecisionRecord> = {}): DecisionRecord {
  const grant = { code: "grant", message: "an active grant allows it" };
  return aDecisionRecord({
    decisionId: `d${n}`,
    at: T0 + n,
    reasons: [grant],
    policyRevision: "rev-7",
    tokenId: "jti-1",
    latencyUs: 250,
    ...over,
  });
}

const linesOf = (file: string) =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe("decision log as JSON lines", () => {
  test("each record is one line in OPA's decision log event shape", async () => {
    const file = join(dir, "one.jsonl");
    const sink = openJsonLinesSink(file, LABELS);
    sink.write(aDecision(1));
    await sink.close();
    assert.deepEqual(linesOf(file), [
      {
        labels: { app: "jitgate", id: LABELS.id, version: "0.1.0" },
        decision_id: "d1",
        path: DECISION_PATH,
        input: { subject: "alice", resource: "orders-db", action: "read", caller: "orders-service", token_id: "jti-1" },
        result: { allow: true, reasons: [{ code: "grant", message: "an active grant allows it" }], grant_id: "g1" },
        requested_by: "orders-service",
        bundles: { jitgate: { revision: "rev-7" } },
        timestamp: "2026-11-23T09:00:00.001Z",
        metrics: { timer_server_handler_ns: 250_000 },
      },
    ]);
    assert.equal(DECISION_PATH, "jit/check/decision");
  });

  test("the file is created 0600 and appended to, and close writes out everything buffered", async () => {
    const file = join(dir, "appended.jsonl");
    const first = openJsonLinesSink(file, LABELS);
    first.write(aDecision(1));
    await first.close();
    const second = openJsonLinesSink(file, LABELS);
    for (let i = 2; i <= 5000; i++) second.write(aDecision(i, { allow: i % 2 === 0 }));
    await second.close();
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const events = linesOf(file);
    assert.equal(events.length, 5000);
    assert.deepEqual(
      events.map((e) => e.decision_id),
      Array.from({ length: 5000 }, (_, i) => `d${i + 1}`),
    );
    assert.equal(second.dropped, 0);
  });

  test("a file that cannot be opened fails at once, naming it", () => {
    const file = join(dir, "no-such-dir", "decisions.jsonl");
    assert.throws(
      () => openJsonLinesSink(file, LABELS),
      (err: unknown) => err instanceof FailedPrecondition && err.message.includes(file),
    );
  });

  test('"-" writes to standard output', () => {
    const src = resolve(import.meta.dirname, "..", "..", "src", "decisions", "json-lines.ts");
    const script = `
      import { openJsonLinesSink } from ${JSON.stringify(src)};
      const sink = openJsonLinesSink("-", { id: "i1", version: "v" });
      sink.write({ decisionId: "d1", at: 0, caller: "c", subject: "s", resource: "r", action: "a", allow: false,
        reasons: [], policyRevision: "rev", grantId: "", tokenId: "", latencyUs: 1 });
      await sink.close();`;
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 30_000 });
    assert.equal(run.status, 0, run.stderr);
    const event = JSON.parse(run.stdout) as { decision_id: string; result: { allow: boolean }; timestamp: string };
    assert.equal(event.decision_id, "d1");
    assert.equal(event.result.allow, false);
    assert.equal(event.timestamp, "1970-01-01T00:00:00.000Z");
  });
});
