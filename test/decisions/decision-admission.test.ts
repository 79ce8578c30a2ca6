// The decision log never drops the record of an answered Check: while its queue is full, Checks are refused
// (RESOURCE_EXHAUSTED) before they are decided, and every Check that was answered has its record written once
// the writer catches up. `--decision-log-overflow drop` keeps the old rule: answer, drop the record, count it.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { Access } from "../../src/access/access.ts";
import { ChangeFeed } from "../../src/access/feed.ts";
import { LiveGrantIndex } from "../../src/access/live-grants.ts";
import type { Caller, DecisionRecord } from "../../src/access/model.ts";
import type { PolicyDecider, TokenPort } from "../../src/access/ports.ts";
import { DecisionLog, type DecisionWriter } from "../../src/decisions/decision-log.ts";
import { ResourceExhausted, Unauthenticated, Unavailable } from "../../src/errors.ts";
import { toStatus } from "../../src/server/grpc/status.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { removeDir, tempDir } from "../support/bundles.ts";
import { aDecisionRecord, T0 } from "./fixtures.ts";

/** A decision store that can be stalled (every batch fails as unavailable) and resumed; keeps what it wrote. */
class StallableWriter implements DecisionWriter {
  readonly written: DecisionRecord[] = [];
  stalled = true;
  async insertBatch(records: readonly DecisionRecord[]): Promise<void> {
    if (this.stalled) throw new Unavailable("decision log: the disk is stalled");
    this.written.push(...records);
  }
  async pruneBefore(): Promise<number> {
    return 0;
  }
}

const quietLog = (writer: DecisionWriter, capacity: number, overflow?: "refuse" | "drop") =>
  new DecisionLog({ writer, capacity, overflow, retentionMs: 0, retryBaseMs: 5, retryMaxMs: 20, now: () => T0, onError: () => {} });

describe("decision log admission", () => {
  test("admit holds a place per record: no more are admitted than the queue can hold", async () => {
    const writer = new StallableWriter();
    const log = quietLog(writer, 3);
    assert.deepEqual([log.admit(), log.admit(), log.admit(), log.admit()], [true, true, true, false]);
    assert.equal(log.reserved, 3);
    for (let i = 0; i < 3; i++) log.record(aDecisionRecord({ decisionId: `d${i}` }));
    assert.deepEqual([log.queueDepth, log.reserved, log.admit()], [3, 0, false]);
    writer.stalled = false;
    await log.flush();
    assert.equal(log.admit(), true, "room again once the writer caught up");
    assert.deepEqual([writer.written.length, log.dropped], [3, 0]);
    await log.close();
  });

  test("a closing log admits nothing", async () => {
    const log = quietLog(new StallableWriter(), 3);
    const closing = log.close();
    assert.equal(log.admit(), false);
    await closing;
  });

  test("in drop mode admit always says yes and records past the capacity are dropped and counted", async () => {
    const log = quietLog(new StallableWriter(), 3, "drop");
    for (let i = 0; i < 5; i++) {
      assert.equal(log.admit(), true);
      log.record(aDecisionRecord({ decisionId: `d${i}` }));
    }
    assert.deepEqual([log.queueDepth, log.dropped], [3, 2]);
    await log.close();
  });
});

describe("checks while the decision log is stalled", () => {
  let dir: string;
  before(async () => {
    dir = await tempDir();
  });
  after(() => removeDir(dir));

  const allowAll: PolicyDecider = {
    requestPlan: () => assert.fail("not used"),
    reviewVerdict: () => assert.fail("not used"),
    checkDecision: () => ({ result: { allow: true, reasons: [], grant_id: "", expires_at: 0, standing: true }, revision: "rev-1" }),
  };
  /** Verification takes a turn of the event loop (as WebCrypto does), so token checks overlap. */
  const refusingTokens: TokenPort = {
    issue: () => assert.fail("not used"),
    jwks: () => assert.fail("not used"),
    verifyIssued: () => new Promise((_, reject) => setImmediate(() => reject(new Unauthenticated("TOKEN_INVALID: not a token")))),
  };
  const service: Caller = { id: "orders-service", groups: ["services"] };

  test("past the queue's capacity Checks are refused, and every answered Check's record is written once it resumes", async () => {
    const writer = new StallableWriter();
    const log = quietLog(writer, 50);
    const store = openSqliteStore(join(dir, "checks.db"));
    let ids = 0;
    const access = new Access(
      {
        store,
        policy: allowAll,
        clock: { now: () => T0 },
        newId: () => `d-${++ids}`,
        feed: new ChangeFeed(store),
        liveGrants: new LiveGrantIndex(store, T0),
        adminGroups: [],
        auditorGroups: [],
        checkerGroups: ["services"],
        tokens: refusingTokens,
        decisions: log,
      },
      (err) => assert.fail(String(err)),
    );
    try {
      const question = { resource: "db/orders", action: "read", context: {} };
      // 120 concurrent Checks, by subject and by token, against a queue of 50 that nothing drains.
      const outcomes = await Promise.allSettled(
        Array.from({ length: 120 }, (_, i) =>
          Promise.resolve().then(() =>
            i % 2 === 0
              ? access.checkAs(service, { ...question, subject: { id: `user-${i}`, groups: [] } })
              : access.checkToken({ ...question, token: `token-${i}`, caller: service.id }),
          ),
        ),
      );
      const refused = outcomes.flatMap((o) => (o.status === "rejected" && o.reason instanceof ResourceExhausted ? [o.reason] : []));
      const answered = outcomes.length - refused.length;
      assert.equal(answered, 50, "exactly as many answered as the queue holds");
      for (const err of refused) {
        assert.equal(err.limit, "decision_log");
        assert.equal(err.message, "the decision log cannot keep up; retry with backoff");
        assert.equal(toStatus(err, pino({ level: "silent" })).code, grpc.status.RESOURCE_EXHAUSTED);
      }
      // Every answer is an allow (by subject) or an UNAUTHENTICATED (by token); nothing else went wrong.
      const answers = outcomes.filter((o) => !(o.status === "rejected" && o.reason instanceof ResourceExhausted));
      assert.ok(answers.every((o) => (o.status === "fulfilled" ? o.value.allow : o.reason instanceof Unauthenticated)));

      writer.stalled = false;
      await log.flush();
      assert.equal(writer.written.length, answered, "one record per answered Check");
      assert.equal(new Set(writer.written.map((d) => d.decisionId)).size, answered, "each written once");
      const allowedIds = answers.flatMap((o) => (o.status === "fulfilled" ? [o.value.decisionId] : []));
      assert.ok(
        allowedIds.every((id) => writer.written.some((d) => d.decisionId === id)),
        "every allow's record is among them",
      );
      assert.equal(log.dropped, 0);

      // Once caught up, Checks are answered again.
      assert.equal((await access.checkAs(service, { ...question, subject: { id: "late", groups: [] } })).allow, true);
    } finally {
      access.stop();
      await log.close();
      store.close();
    }
  });
});
