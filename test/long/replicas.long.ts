// The long replica runs, behind `make test-long`: three `jitgate serve` replicas on one real PostgreSQL, a random
// one SIGKILLed under load and restarted, 10 times (the others serve on, nothing acknowledged is lost, the chain
// verifies); and 1,000 revocations on one replica, each checked on another until it refuses. Each asserts what
// callers see (never how fast); the revocation delays are reported as diagnostics only.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  checkerOn,
  forEach,
  type Ledger,
  loops,
  MixedLoad,
  mixedRound,
  percentile,
  READ_ORDERS,
  Replica,
  sleep,
  statusOf,
  storeProblems,
  unrecordedDecisions,
  within,
} from "../support/pg-replicas.ts";
import { type PostgresServer, startPostgres } from "../support/postgres.ts";

const FEED_BOUND_MS = 2_000;
const FEED_BOUND = `${FEED_BOUND_MS}ms`;

const randomDelay = () => 300 + Math.floor(Math.random() * 1_200);

describe("replicas on one PostgreSQL, for minutes", () => {
  let postgres: PostgresServer;
  const replicas: Replica[] = [];
  before(async () => {
    postgres = await startPostgres();
  });
  after(async () => {
    for (const r of replicas) await r.remove();
    postgres?.stop();
  });

  test(
    "10 SIGKILLs of a random one of 3 replicas under load: the others serve on, nothing acknowledged is lost, the chain verifies, and the restarted one sees it all",
    { timeout: 600_000 },
    async (t) => {
      const CYCLES = 10;
      const url = await postgres.createDatabase();
      const fleet = await Promise.all(["r0", "r1", "r2"].map((name) => Replica.start({ name, store: url, feedBound: FEED_BOUND })));
      replicas.push(...fleet);
      const ledger: Ledger = new Map();
      const cycles: string[] = [];
      /** Per replica, how many of its answered Checks were found recorded (or lost with a kill) so far. */
      const accounted = new Map(fleet.map((r) => [r, 0]));
      let lostWithKills = 0;
      let recorded = 0;
      for (let cycle = 1; cycle <= CYCLES; cycle++) {
        const victim = fleet[Math.floor(Math.random() * fleet.length)] as Replica;
        const survivors = fleet.filter((r) => r !== victim);
        const acknowledgedBefore = ledger.size;
        const load = new MixedLoad(fleet, { loopsEach: 3, subjects: `c${cycle}`, ledger });
        const delay = randomDelay();
        let answeredBeforeKill = 0;
        try {
          await sleep(delay);
          load.killing(victim);
          await victim.kill();
          answeredBeforeKill = victim.answered.length;
          // The others serve on: each has rounds started after the kill acknowledged (and none failed, below).
          await sleep(1_000);
          await within(`cycle ${cycle}: survivors acknowledging after the kill`, 20_000, async () =>
            survivors.every((r) => (load.acksAfterKill.get(r.name) ?? 0) >= 3),
          );
        } finally {
          await load.stop();
        }
        assert.deepEqual(load.problems, [], `cycle ${cycle}`);
        assert.deepEqual(load.failedWhileUp, [], `cycle ${cycle}: a call to a replica that was up failed`);
        const stored = await storeProblems(url, ledger);
        assert.deepEqual(stored.problems, [], `cycle ${cycle}: after ${victim.name}'s SIGKILL`);

        // The victim again, on its data directory and the database: it serves, and sees this cycle's changes
        // (its own and the others'), each as the store has it.
        await victim.start();
        const checkOnVictim = await checkerOn(victim);
        const auditor = await victim.as("auditor", ["jitgate-auditors"]);
        const wrong: string[] = [];
        await forEach([...ledger].slice(acknowledgedBefore), 8, async ([grantId, acked]) => {
          const request = await auditor.call("GetAccessRequest", { id: acked.requestId });
          const active = request.grant?.status === "GRANT_STATUS_ACTIVE";
          if (request.grant?.id !== grantId) wrong.push(`${grantId}: request ${request.id} names grant ${request.grant?.id}`);
          if (acked.revoke === "acknowledged" && active)
            wrong.push(`${grantId}: active on ${victim.name}, though its revocation was acknowledged`);
          if (acked.revoke === "none" && !active) wrong.push(`${grantId}: ${request.grant?.status} on ${victim.name}`);
          const allowed = (await checkOnVictim(acked.subject)).allow;
          if (allowed !== active) wrong.push(`${acked.subject}: allow ${allowed} on ${victim.name}, grant ${request.grant?.status}`);
        });
        assert.deepEqual(wrong, [], `cycle ${cycle}: the restarted ${victim.name}`);
        const problems: string[] = [];
        await mixedRound(victim, `${victim.name}-back-${cycle}`, victim, ledger, problems);
        assert.deepEqual(problems, []);
        // Decision records: every Check answered by a process that lived on is recorded; the victim's queue (what
        // was not in a committed batch yet) died with it.
        const mustBeRecorded = fleet.flatMap((r) => r.answered.slice(r === victim ? answeredBeforeKill : (accounted.get(r) ?? 0)));
        await within(
          `cycle ${cycle}: every decision record written`,
          20_000,
          async () => (await unrecordedDecisions(url, mustBeRecorded)).length === 0,
        );
        const lost = await unrecordedDecisions(url, victim.answered.slice(accounted.get(victim), answeredBeforeKill));
        lostWithKills += lost.length;
        recorded += mustBeRecorded.length;
        for (const r of fleet) accounted.set(r, r.answered.length);
        cycles.push(
          `cycle ${cycle}: ${victim.name} killed after ${delay} ms; ${ledger.size - acknowledgedBefore} grants acknowledged, ` +
            `${load.cutOff} rounds cut off, ${lost.length} decision records lost with it; ${stored.grants} grants and ${stored.auditRows} chained audit entries stored`,
        );
      }
      const final = await storeProblems(url, ledger);
      assert.deepEqual(final.problems, []);
      for (const line of cycles) t.diagnostic(line);
      const revoked = [...ledger.values()].filter((g) => g.revoke === "acknowledged").length;
      t.diagnostic(`${ledger.size} grants and ${revoked} revocations acknowledged in all; ${final.auditRows} audit entries, chain intact`);
      t.diagnostic(
        `decision records: ${recorded} of processes that lived on, all written; ${lostWithKills} answered by killed ones just before, lost with them`,
      );
    },
  );

  test(
    "1,000 revocations on A, each checked on B: B refuses each, and allows none of them once the feed bound has passed",
    { timeout: 600_000 },
    async (t) => {
      const REVOCATIONS = 1_000;
      const PIPELINES = 4;
      const url = await postgres.createDatabase();
      const [onA, b] = await Promise.all([
        Replica.start({ name: "ra", store: url, feedBound: FEED_BOUND }),
        Replica.start({ name: "rb", store: url, feedBound: FEED_BOUND }),
      ]);
      replicas.push(onA, b);
      const checkOnB = await checkerOn(b);
      const outcome = (subject: string) =>
        checkOnB(subject).then(
          (r) => (r.allow ? "allow" : "deny"),
          (err: unknown) => statusOf(err),
        );

      const grantToAllow: number[] = [];
      const revokeToRefusal: number[] = [];
      const firstRefusals = new Map<string, number>();
      /** A Check on B that allowed a grant whose revocation was acknowledged more than the bound before it was asked. */
      const lateAllows: string[] = [];
      const odd: string[] = [];
      const revoked: { subject: string; ackAt: number }[] = [];
      let next = 0;
      let done = false;

      const pipeline = async () => {
        for (let i = next++; i < REVOCATIONS; i = next++) {
          const subject = `rv-${String(i).padStart(4, "0")}`;
          const caller = await onA.as(subject, ["engineering"]);
          const request = await caller.call("RequestAccess", READ_ORDERS);
          assert.equal(request.state, "APPROVED", request.state_reason);
          // B honours it first (else its refusal below would prove nothing).
          grantToAllow.push(await within(`${subject} allowed on B`, 10_000, async () => (await outcome(subject)) === "allow"));
          await caller.call("RevokeGrant", { grant_id: request.grant?.id as string, reason: "rotation drill" });
          const ackAt = performance.now();
          for (;;) {
            const askedAt = performance.now() - ackAt;
            const answer = await outcome(subject);
            if (answer === "allow") {
              if (askedAt > FEED_BOUND_MS) lateAllows.push(`${subject}: allowed on B ${askedAt.toFixed(0)} ms after its revoke returned`);
              if (askedAt > FEED_BOUND_MS + 10_000) assert.fail(`${subject}: still allowed on B ${askedAt.toFixed(0)} ms after its revoke`);
              continue;
            }
            if (answer !== "deny" && answer !== "UNAVAILABLE") odd.push(`${subject}: ${answer}`);
            revokeToRefusal.push(performance.now() - ackAt);
            firstRefusals.set(answer, (firstRefusals.get(answer) ?? 0) + 1);
            break;
          }
          revoked.push({ subject, ackAt });
        }
      };
      // Meanwhile, B is asked again about revocations older than the bound: a refusal must stay one.
      let rechecks = 0;
      const rechecking = loops(
        1,
        () => done,
        async () => {
          const old = revoked.filter((r) => performance.now() - r.ackAt > FEED_BOUND_MS);
          const pick = old[Math.floor(Math.random() * old.length)];
          if (pick === undefined) return sleep(50);
          const askedAt = performance.now() - pick.ackAt;
          const answer = await outcome(pick.subject);
          rechecks++;
          if (answer === "allow") lateAllows.push(`${pick.subject}: allowed again on B ${askedAt.toFixed(0)} ms after its revoke returned`);
        },
      );
      const started = performance.now();
      try {
        await Promise.all(Array.from({ length: PIPELINES }, pipeline));
      } finally {
        done = true;
        await rechecking;
      }
      const elapsed = performance.now() - started;
      // Last, every one of them once more, all well past the bound.
      await forEach(revoked, 8, async ({ subject, ackAt }) => {
        const answer = await outcome(subject);
        if (answer === "allow")
          lateAllows.push(`${subject}: allowed on B ${(performance.now() - ackAt).toFixed(0)} ms after its revoke (final pass)`);
      });

      assert.equal(revoked.length, REVOCATIONS);
      assert.deepEqual(lateAllows, []);
      assert.deepEqual(odd, []);
      assert.deepEqual((await storeProblems(url, new Map())).problems, []);
      const answered = [...onA.answered, ...b.answered];
      await within("every decision record written", 20_000, async () => (await unrecordedDecisions(url, answered)).length === 0);
      t.diagnostic(
        `revoke acknowledged on A -> first refusal on B (${REVOCATIONS}): p50 ${percentile(revokeToRefusal, 50)}, p99 ${percentile(revokeToRefusal, 99)}, max ${percentile(revokeToRefusal, 100)}; ` +
          `first refusals: ${[...firstRefusals].map(([o, n]) => `${o} ${n}`).join(", ")}`,
      );
      t.diagnostic(
        `grant acknowledged on A -> first allow on B: p50 ${percentile(grantToAllow, 50)}, p99 ${percentile(grantToAllow, 99)}, max ${percentile(grantToAllow, 100)}`,
      );
      t.diagnostic(`${answered.length} Checks answered, each with its decision record`);
      t.diagnostic(
        `${rechecks} re-checks of revocations older than the bound, ${revoked.length} in the final pass; ${(elapsed / 1000).toFixed(1)} s in all`,
      );
    },
  );
});
