// Faults under jitgate replicas on one real PostgreSQL (`jitgate serve` child processes on loopback): one replica
// SIGKILLed under load (the other serves on, nothing acknowledged is lost, the chain verifies, the killed one
// restarts seeing everything), PostgreSQL itself stopped and restarted (UNAVAILABLE, fail closed past the feed
// bound, recovery by itself), and a replica's feed connection killed as another replica revokes.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import pg from "pg";
import type { Caller, GrantEvent } from "../support/api.ts";
import { healthStatus } from "../support/jitgate.ts";
import {
  type AckedGrant,
  checkerOn,
  forEach,
  type Ledger,
  loops,
  MixedLoad,
  mixedRound,
  READ_ORDERS,
  Replica,
  sleep,
  statusOf,
  storeProblems,
  unrecordedDecisions,
  within,
} from "../support/pg-replicas.ts";
import { type PostgresServer, startPostgres } from "../support/postgres.ts";

/** The bound of the replicas PostgreSQL is stopped under, short to keep the test short. */
const SHORT_BOUND_MS = 500;
/** The role replica "b" of the second pair connects as: its feed backend is told apart from "a"'s by it. */
const B_ROLE = "replica_b";
const ACCESS_SERVICE = "jit.v1.AccessService";

/** An answer to a Check as a caller sees it: allow, deny, or the status it failed with. */
const outcomeOf = (answer: Promise<{ allow: boolean }>): Promise<string> =>
  answer.then(
    (r) => (r.allow ? "allow" : "deny"),
    (err: unknown) => statusOf(err),
  );

/** "allow 12, UNAVAILABLE 40": how many of each outcome. */
const tally = (xs: readonly { outcome: string }[]): string =>
  [...Map.groupBy(xs, (x) => x.outcome)].map(([o, v]) => `${o} ${v.length}`).join(", ");

const latestSeq = async (db: pg.Client): Promise<number> =>
  Number((await db.query<{ seq: string }>("SELECT coalesce(max(seq), 0) AS seq FROM grant_events")).rows[0]?.seq ?? 0);

/**
 * WatchGrants as a well-behaved client runs it: every event's seq kept; when a stream ends, its status kept and
 * the watch opened again after the last seq seen.
 */
class ResumingWatch {
  readonly seqs: number[] = [];
  readonly endings: string[] = [];
  readonly #caller: Caller;
  #after: number;
  #stream: grpc.ClientReadableStream<GrantEvent> | undefined;
  #closed = false;

  constructor(caller: Caller, afterSeq: number) {
    this.#caller = caller;
    this.#after = afterSeq;
    this.#open();
  }

  close(): void {
    this.#closed = true;
    this.#stream?.cancel();
  }

  #open(): void {
    if (this.#closed) return;
    const stream = this.#caller.watch({ after_seq: String(this.#after) }).stream;
    this.#stream = stream;
    stream.on("data", (e: GrantEvent) => {
      this.#after = Number(e.seq);
      this.seqs.push(this.#after);
    });
    stream.on("error", () => undefined); // the status below says it
    stream.on("status", (s: grpc.StatusObject) => {
      if (this.#closed) return;
      this.endings.push(grpc.status[s.code] ?? String(s.code));
      setTimeout(() => this.#open(), 200);
    });
  }
}

describe("replica faults on one PostgreSQL", () => {
  let postgres: PostgresServer;
  const replicas: Replica[] = [];
  let second: Promise<{ a: Replica; b: Replica; url: string }> | undefined;
  before(async () => {
    postgres = await startPostgres();
  });
  after(async () => {
    for (const r of replicas) await r.remove();
    postgres?.stop();
  });

  /** A second pair, bound 500 ms, for the outages: "b" connects as B_ROLE. Started once, by whichever test needs it first. */
  const shortBoundPair = () => {
    second ??= (async () => {
      const url = await postgres.createDatabase();
      const db = new pg.Client({ connectionString: postgres.url() });
      await db.connect();
      await db.query(`CREATE ROLE ${B_ROLE} LOGIN SUPERUSER`).finally(() => db.end());
      const feedBound = `${SHORT_BOUND_MS}ms`;
      const started = await Promise.all([
        Replica.start({ name: "a2", store: url, feedBound }),
        Replica.start({ name: "b2", store: url.replace("postgres://jitgate@", `postgres://${B_ROLE}@`), feedBound }),
      ]);
      replicas.push(...started);
      return { a: started[0], b: started[1], url };
    })();
    return second;
  };

  test(
    "a replica SIGKILLed under load: the other serves on, every acknowledged grant and revocation is stored, the chain verifies, and the restarted one sees it all",
    { timeout: 60_000 },
    async (t) => {
      const url = await postgres.createDatabase();
      const [a, b] = await Promise.all([
        Replica.start({ name: "a", store: url, feedBound: "2s" }),
        Replica.start({ name: "b", store: url, feedBound: "2s" }),
      ]);
      replicas.push(a, b);
      const load = new MixedLoad([a, b], { loopsEach: 4, subjects: "load" });
      let killedAt: number | undefined;
      try {
        await sleep(1_500);
        await within("acknowledgements on b before the kill", 10_000, async () => (load.acks.get("b") ?? 0) >= 10);
        load.killing(b);
        await b.kill();
        killedAt = performance.now();
        t.diagnostic(`${load.acks.get("b")} rounds acknowledged by b before its SIGKILL`);
        // A serves on: every call to it after the kill succeeds (failedWhileUp below), for a while.
        await sleep(2_000);
        await within("acknowledgements on a after the kill", 10_000, async () => (load.acksAfterKill.get("a") ?? 0) >= 10);
      } finally {
        await load.stop();
      }
      const { ledger, problems } = load;
      // B answers nothing once killed: what it answered before is all it ever answered.
      const answeredByKilledB = b.answered.length;
      assert.deepEqual(problems, []);
      assert.deepEqual(load.failedWhileUp, [], "a call to a replica that was up failed");

      // Read back through A, and from PostgreSQL itself.
      const auditorA = await a.as("auditor", ["jitgate-auditors"]);
      const statusOnA = new Map<string, string>();
      await forEach([...ledger], 8, async ([grantId, acked]) => {
        const request = await auditorA.call("GetAccessRequest", { id: acked.requestId });
        assert.equal(request.state, "APPROVED");
        assert.equal(request.grant?.id, grantId);
        const status = request.grant?.status ?? "none";
        statusOnA.set(grantId, status);
        if (acked.revoke === "acknowledged") assert.equal(status, "GRANT_STATUS_REVOKED", `${grantId}'s revocation lost`);
        if (acked.revoke === "none") assert.equal(status, "GRANT_STATUS_ACTIVE", `${grantId} not active`);
      });
      const stored = await storeProblems(url, ledger);
      assert.deepEqual(stored.problems, []);
      assert.ok(stored.auditRows > 0);

      // B again, on the same data directory and database: it serves, and sees every change, its own and A's. And
      // A (its feed bound long past since B's last commit) checks every grant as stored, B's last ones included.
      await b.start();
      // B's last commits were before its kill: the feed bound (2 s) has passed since then.
      await sleep((killedAt ?? 0) + 2_000 - performance.now());
      const checks = { a: await checkerOn(a), b: await checkerOn(b) };
      const auditorB = await b.as("auditor", ["jitgate-auditors"]);
      const wrong: string[] = [];
      await forEach([...ledger], 8, async ([grantId, acked]) => {
        const request = await auditorB.call("GetAccessRequest", { id: acked.requestId });
        if (request.grant?.status !== statusOnA.get(grantId)) wrong.push(`${grantId}: ${request.grant?.status} on b`);
        for (const [on, check] of Object.entries(checks)) {
          const allowed = (await check(acked.subject)).allow;
          if (allowed !== (statusOnA.get(grantId) === "GRANT_STATUS_ACTIVE")) wrong.push(`${acked.subject}: allow ${allowed} on ${on}`);
        }
      });
      assert.deepEqual(wrong, []);
      await mixedRound(b, "b-after-restart", b, ledger, problems);
      assert.deepEqual(problems, []);
      assert.deepEqual((await storeProblems(url, ledger)).problems, []);
      // Every Check answered by a process that lived on has its decision record in the shared table; the killed
      // process's queue (records not yet in a committed batch) died with it.
      const mustBeRecorded = [...a.answered, ...b.answered.slice(answeredByKilledB)];
      await within("every decision record written", 15_000, async () => (await unrecordedDecisions(url, mustBeRecorded)).length === 0);
      const lostWithB = await unrecordedDecisions(url, b.answered.slice(0, answeredByKilledB));

      const revoked = [...ledger.values()].filter((g) => g.revoke === "acknowledged").length;
      t.diagnostic(
        `${load.rounds} rounds: ${ledger.size} grants acknowledged (${revoked} revocations), ${stored.grants} stored; ` +
          `${load.acksAfterKill.get("a")} rounds on a after b's kill, ${load.cutOff} rounds cut off by it; ${stored.auditRows} audit entries chained`,
      );
      t.diagnostic(
        `decision records: ${mustBeRecorded.length} of the processes that lived on, all written; of ${answeredByKilledB} Checks answered by b before its SIGKILL, ${lostWithB.length} not recorded`,
      );
    },
  );

  for (const mode of ["fast", "immediate"] as const) {
    test(
      `PostgreSQL stopped (${mode}) under load and restarted: writes are UNAVAILABLE, grant-based Checks are UNAVAILABLE past the bound, and all recovers by itself with nothing acknowledged lost`,
      { timeout: 60_000 },
      async (t) => {
        const [heldA, heldB, revokedR] = [`held-a-${mode}`, `held-b-${mode}`, `revoked-r-${mode}`];
        const { a, b, url } = await shortBoundPair();
        const db = new pg.Client({ connectionString: url });
        await db.connect();
        const startSeq = await latestSeq(db);
        await db.end();
        const watches = [new ResumingWatch(await a.as("auditor", ["jitgate-auditors"]), startSeq)];
        watches.push(new ResumingWatch(await b.as("auditor", ["jitgate-auditors"]), startSeq));
        const ledger: Ledger = new Map();
        const problems: string[] = [];
        let load: MixedLoad | undefined;
        try {
          // Acknowledged before the stop: a grant made on each, one made on A and revoked on B.
          await mixedRound(a, heldA, undefined, ledger, problems);
          await mixedRound(b, heldB, undefined, ledger, problems);
          await mixedRound(a, revokedR, b, ledger, problems);
          // And a request waiting for its approvals (a write on db/orders needs dba and security).
          const pendingBy = `pending-${mode}`;
          const pending = await (
            await a.as(pendingBy, ["engineering"])
          ).call("RequestAccess", {
            ...READ_ORDERS,
            actions: ["write"],
            justification: "bulk repair of order states after the outage",
          });
          assert.equal(pending.state, "PENDING");
          assert.deepEqual(problems, []);
          // B's revocation binds A within the bound (usually far sooner).
          await sleep(SHORT_BOUND_MS);
          const checks = { a: await checkerOn(a), b: await checkerOn(b) };
          for (const check of Object.values(checks)) {
            await within(
              "both grants allowed on both replicas",
              5_000,
              async () => (await check(heldA)).allow && (await check(heldB)).allow,
            );
            assert.equal((await check(revokedR)).allow, false);
          }

          // A mixed load on both, through the stop and the restart: what it had acknowledged must be there after.
          load = new MixedLoad([a, b], { loopsEach: 2, subjects: `${mode}-load`, ledger });
          await sleep(300);
          postgres.stopServer(mode);
          const stoppedAt = performance.now();
          const OUTAGE_MS = 6 * SHORT_BOUND_MS;
          const answers: { on: string; at: number; outcome: string }[] = [];
          const writes: { what: string; ms: number; outcome: string }[] = [];
          const denials: string[] = [];
          // Down for OUTAGE_MS, and until both replicas' health says NOT_SERVING (it is re-checked every 2 s).
          let notServing = false;
          const down = () => notServing && performance.now() - stoppedAt > OUTAGE_MS;
          let n = 0;
          const checking = loops(4, down, async (loop) => {
            const on = loop % 2 === 0 ? "a" : "b";
            const at = performance.now() - stoppedAt;
            answers.push({ on, at, outcome: await outcomeOf(checks[on](loop < 2 ? heldA : heldB)) });
          });
          // Every kind of lifecycle write, and the reads, each with a deadline it must not reach.
          const grantOf = (subject: string) => [...ledger].find(([, g]) => g.subject === subject)?.[0] ?? "";
          const opts = { deadlineMs: 8_000 };
          const calls: [string, (on: Replica) => Promise<unknown>][] = [
            ["RequestAccess", async (on) => (await on.as(`down-${mode}-${++n}`, ["engineering"])).call("RequestAccess", READ_ORDERS, opts)],
            [
              "RevokeGrant",
              async (on) => (await on.as(heldA, ["engineering"])).call("RevokeGrant", { grant_id: grantOf(heldA), reason: "drill" }, opts),
            ],
            [
              "RevokeSubject",
              async (on) => (await on.as("root", ["jitgate-admins"])).call("RevokeSubject", { subject: heldA, reason: "drill" }, opts),
            ],
            ["IssueToken", async (on) => (await on.as(heldB, ["engineering"])).call("IssueToken", { grant_id: grantOf(heldB) }, opts)],
            [
              "ReviewAccessRequest",
              async (on) =>
                (await on.as("dora", ["dba"])).call("ReviewAccessRequest", { id: pending.id, decision: "REVIEW_DECISION_APPROVE" }, opts),
            ],
            [
              "CancelAccessRequest",
              async (on) =>
                (await on.as(pendingBy, ["engineering"])).call("CancelAccessRequest", { id: pending.id, reason: "drill" }, opts),
            ],
            ["ListGrants", async (on) => (await on.as("auditor", ["jitgate-auditors"])).call("ListGrants", {}, opts)],
            [
              "GetAccessRequest",
              async (on) => (await on.as("auditor", ["jitgate-auditors"])).call("GetAccessRequest", { id: pending.id }, opts),
            ],
            ["ListAuditEntries", async (on) => (await on.as("auditor", ["jitgate-auditors"])).call("ListAuditEntries", {}, opts)],
          ];
          let kind = 0;
          const writing = loops(2, down, async (loop) => {
            const on = loop === 0 ? a : b;
            const [what, call] = calls[kind++ % calls.length] as (typeof calls)[number];
            const started = performance.now();
            const outcome = await call(on).then(
              () => "succeeded",
              (err: unknown) => statusOf(err),
            );
            writes.push({ what: `${what} on ${on.name}`, ms: performance.now() - started, outcome });
          });
          const denying = loops(1, down, async () => {
            for (const [on, check] of Object.entries(checks)) {
              const outcome = await outcomeOf(check("nobody-at-all"));
              if (outcome !== "deny") denials.push(`${on}: ${outcome}`);
            }
            await sleep(100);
          });
          const unhealthy = Promise.all(
            [a, b].map((r) =>
              within(`${r.name} NOT_SERVING`, 10_000, async () => (await healthStatus(r.address, ACCESS_SERVICE)) === "NOT_SERVING"),
            ),
          ).finally(() => (notServing = true));
          await Promise.all([checking, writing, denying, unhealthy]);

          const past = answers.filter((x) => x.at > SHORT_BOUND_MS);
          assert.ok(past.length > 0, "no Check was asked past the bound");
          assert.deepEqual(
            past.filter((x) => x.outcome !== "UNAVAILABLE"),
            [],
            "a grant-based Check past the bound was not refused with UNAVAILABLE",
          );
          assert.deepEqual(
            answers.filter((x) => x.outcome !== "allow" && x.outcome !== "UNAVAILABLE"),
            [],
          );
          assert.ok(writes.length >= calls.length * 2, "each call was tried while it was down");
          assert.deepEqual(
            writes.filter((w) => w.outcome !== "UNAVAILABLE"),
            [],
            "a write while PostgreSQL was down was not UNAVAILABLE",
          );
          assert.deepEqual(denials, [], "a Check needing no grant was not answered with a deny");

          postgres.start();
          const restartedAt = performance.now();
          // Everything comes back by itself; meanwhile a failure is UNAVAILABLE, nothing else.
          const meanwhile = new Set<string>();
          const noted = (p: Promise<boolean>) =>
            p.catch((err: unknown) => {
              meanwhile.add(statusOf(err));
              return false;
            });
          const RECOVERY_MS = 30_000;
          let k = 0;
          const recovered = await Promise.all(
            [a, b].flatMap((r) => [
              within(`writes on ${r.name}`, RECOVERY_MS, () =>
                noted(mixedRound(r, `${mode}-${r.name}-back-${++k}`, r, ledger, problems).then(() => true)),
              ),
              within(`grant-based allows on ${r.name}`, RECOVERY_MS, () =>
                noted(
                  (async () => {
                    const check = await checkerOn(r);
                    return (await check(heldA)).allow && (await check(heldB)).allow;
                  })(),
                ),
              ),
              within(`${r.name} SERVING`, RECOVERY_MS, async () => (await healthStatus(r.address, ACCESS_SERVICE)) === "SERVING"),
            ]),
          );
          await load.stop();
          assert.deepEqual(problems, []);
          assert.deepEqual(load.problems, []);
          assert.deepEqual(
            [...load.failures.keys()].filter((s) => s !== "UNAVAILABLE"),
            [],
            "a call of the load failed otherwise than UNAVAILABLE",
          );
          assert.deepEqual(
            [...meanwhile].filter((s) => s !== "UNAVAILABLE"),
            [],
            "a call failed otherwise than UNAVAILABLE while PostgreSQL came back",
          );
          for (const check of Object.values(checks)) assert.equal((await check(revokedR)).allow, false);
          // Nothing refused while it was down happened: the request still waits, unreviewed.
          const stillPending = await (await a.as("auditor", ["jitgate-auditors"])).call("GetAccessRequest", { id: pending.id });
          assert.deepEqual([stillPending.state, stillPending.reviews.length], ["PENDING", 0]);

          // Every grant event from before the stop to now reached both watches, each once and in order (resumed or not).
          const dbAgain = new pg.Client({ connectionString: url });
          await dbAgain.connect();
          const lastSeq = await latestSeq(dbAgain).finally(() => dbAgain.end());
          const everySeq = Array.from({ length: lastSeq - startSeq }, (_, i) => startSeq + 1 + i);
          for (const w of watches) {
            await within("the watches to catch up", 10_000, async () => w.seqs.length >= everySeq.length).catch(() => undefined);
            assert.deepEqual(w.seqs, everySeq);
            assert.deepEqual(
              w.endings.filter((s) => s !== "UNAVAILABLE"),
              [],
              "a watch ended with a status a client cannot resume after",
            );
          }

          const stored = await storeProblems(url, ledger);
          assert.deepEqual(stored.problems, []);
          // Every Check answered, before, during and after the outage, has its decision record once PostgreSQL is back.
          const answered = [...a.answered, ...b.answered];
          await within("every decision record written", 20_000, async () => (await unrecordedDecisions(url, answered)).length === 0);
          t.diagnostic(`${answered.length} Checks answered by the pair so far, each with its decision record`);
          t.diagnostic(
            `down ${(restartedAt - stoppedAt).toFixed(0)} ms: Checks ${tally(answers)}; writes ${tally(writes)} (slowest ${Math.max(...writes.map((w) => w.ms)).toFixed(0)} ms)`,
          );
          const times = (xs: number[]) => xs.map((ms) => ms.toFixed(0)).join("/");
          t.diagnostic(
            `back after the restart (writes/allows/health) on a in ${times(recovered.slice(0, 3))} ms, on b in ${times(recovered.slice(3))} ms`,
          );
          t.diagnostic(
            `the load: ${load.rounds} rounds, ${ledger.size} grants acknowledged, failures ${[...load.failures].map(([s, n]) => `${s} ${n}`).join(", ")}`,
          );
          t.diagnostic(`watch endings: a ${watches[0]?.endings.join(",") || "none"}; b ${watches[1]?.endings.join(",") || "none"}`);
        } finally {
          postgres.start();
          await load?.stop();
          for (const w of watches) w.close();
        }
      },
    );
  }

  test(
    "A revokes while B's feed connection is killed: B refuses the grant within the bound, never allows it after, and its feed comes back",
    { timeout: 60_000 },
    async (t) => {
      const { a, b, url } = await shortBoundPair();
      const admin = new pg.Client({ connectionString: postgres.url() });
      await admin.connect();
      const feedOfB = "application_name = 'jitgate-feed' AND usename = $1";
      const feedPidsOfB = async () =>
        (await admin.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE ${feedOfB}`, [B_ROLE])).rows.map((r) => r.pid);
      const killFeedOfB = async () =>
        (await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE ${feedOfB}`, [B_ROLE])).rowCount ?? 0;
      let loginRefused = false;
      const restoreLogin = async () => {
        if (loginRefused) await admin.query(`ALTER ROLE ${B_ROLE} LOGIN`);
        loginRefused = false;
      };
      const checkOnB = await checkerOn(b);
      const ledger: Ledger = new Map();
      const problems: string[] = [];
      const report: string[] = [];
      try {
        for (let round = 1; round <= 4; round++) {
          // Odd rounds: the feed connection killed once, right before the revoke. Even: killed while the role
          // may not log in, so it stays down until 1.5 bounds after the revoke (the pools keep their connections).
          const kept = round % 2 === 0;
          const subject = `cut-${round}`;
          await mixedRound(a, subject, undefined, ledger, problems);
          assert.deepEqual(problems, []);
          const [grantId, acked] = [...ledger].at(-1) as [string, AckedGrant];
          await within(`${subject} allowed on b`, 5_000, async () => (await checkOnB(subject)).allow);
          const feedBefore = await feedPidsOfB();
          assert.equal(feedBefore.length, 1, "b has one feed connection");

          if (kept) {
            loginRefused = true;
            await admin.query(`ALTER ROLE ${B_ROLE} NOLOGIN`);
          }
          assert.equal(await killFeedOfB(), 1);
          await (await a.as(subject, ["engineering"])).call("RevokeGrant", { grant_id: grantId, reason: "incident INC-9" });
          const ackAt = performance.now();
          acked.revoke = "acknowledged";
          const answers: { at: number; outcome: string }[] = [];
          while (performance.now() - ackAt < 4 * SHORT_BOUND_MS) {
            const at = performance.now() - ackAt;
            if (kept && at > 1.5 * SHORT_BOUND_MS) await restoreLogin();
            answers.push({ at, outcome: await outcomeOf(checkOnB(subject, 5_000)) });
          }
          await restoreLogin();
          assert.deepEqual(
            answers.filter((x) => x.outcome === "allow" && x.at > SHORT_BOUND_MS),
            [],
            `round ${round}: b allowed a grant revoked more than the bound before`,
          );
          assert.deepEqual(
            answers.filter((x) => !["allow", "deny", "UNAVAILABLE"].includes(x.outcome)),
            [],
          );
          if (kept) {
            // Cut off past the bound: B could neither read the revocation nor vouch for the grant, so it refused.
            const cutOff = answers.filter((x) => x.at > SHORT_BOUND_MS && x.at < 1.5 * SHORT_BOUND_MS);
            assert.ok(cutOff.length > 0);
            assert.deepEqual(
              cutOff.filter((x) => x.outcome !== "UNAVAILABLE"),
              [],
            );
          }
          // B's feed comes back by itself (a new backend) and reads the revocation by seq: a deny, not UNAVAILABLE.
          await within(`round ${round}: b's feed connection back`, 10_000, async () => {
            const now = await feedPidsOfB();
            return now.length === 1 && !feedBefore.includes(now[0] as number);
          });
          await within(`round ${round}: b denies ${subject}`, 10_000, async () => (await outcomeOf(checkOnB(subject))) === "deny");
          const first = answers.find((x) => x.outcome !== "allow");
          report.push(
            `round ${round} (${kept ? "kept cut" : "cut once"}): first refusal +${first?.at.toFixed(1)} ms (${first?.outcome}); ${tally(answers)}`,
          );
        }
        // A fresh grant on A is honoured by B again.
        await mixedRound(a, "after-the-cuts", undefined, ledger, problems);
        await within("a new grant allowed on b", 5_000, async () => (await checkOnB("after-the-cuts")).allow);
        assert.deepEqual((await storeProblems(url, ledger)).problems, []);
        const answered = [...a.answered, ...b.answered];
        await within("every decision record written", 15_000, async () => (await unrecordedDecisions(url, answered)).length === 0);
        for (const line of report) t.diagnostic(line);
      } finally {
        await restoreLogin();
        await admin.end();
      }
    },
  );
});
