// Replicas on one PostgreSQL, each a `jitgate serve --dev` process of its own, on loopback:
//   1. revoke on A, deny on B: per round a fresh engineer's auto-approved read on db/orders made through A, waited
//      for on B, revoked through A; then from the moment A's RevokeGrant returned, B is asked back to back (one
//      Check in flight) until it stops allowing, and A is asked once at the same time (its own commit is applied
//      at once, so its first answer must be a deny: anything else, an error included, breaks the guarantee);
//   2. RequestAccess (a write on s3/analytics-exports, one data-platform approval) and its approving review, 8
//      pairs in flight, on one replica with its SQLite file and with PostgreSQL; server (and database) CPU per call;
//   3. Check by subject (alice holds a live grant) with h2load on 1, 2 and 4 replicas at once, one h2load per
//      replica, 8 connections in all, beside one process on its own SQLite file; the exact bytes verified on
//      every replica first with a real client, and every answered Check counted as an allow by its /metrics.
// Prints tables and writes bench/results.json ("replicas"). Usage: node bench/replicas.ts [revocations] [requests] [seconds]
import { execFileSync } from "node:child_process";
import { availableParallelism, cpus } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { JitgateClient } from "../src/enforce/jitgate-client.ts";
import { RevocationFeed } from "../src/enforce/revocations.ts";
import { accessServiceDefinition, loadAccessPackage } from "../src/proto/loader.ts";
import { bearerMetadata, type Caller, type RequestAccessRequest, tokenFor } from "../test/support/api.ts";
import { postgresBin } from "../test/support/postgres.ts";
import { h2loadVersion, writeGrpcBody } from "./h2load.ts";
import { type Answer, answerOf, type Fleet, h2loadRun, readGrant, type Replica, startFleet, untilAllowed } from "./replica-fleet.ts";
import { CHECK, exitOnSignals, verifyCheck } from "./servers.ts";
import * as watch from "./server-watch.ts";
import { writeResults } from "./stats.ts";

const REVOCATIONS = Number(process.argv[2] ?? 1000);
const REQUESTS = Number(process.argv[3] ?? 300);
const SECONDS = Number(process.argv[4] ?? 10);
for (const [name, n] of Object.entries({ REVOCATIONS, REQUESTS, SECONDS })) {
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name.toLowerCase()} must be a whole number >= 1, not ${n}`);
}
const FEED_BOUND = "2s";
const FEED_BOUND_MS = 2_000;
/** How long a wait for a replica's answer may take before the round counts it as never given. */
const WAIT_LIMIT_MS = FEED_BOUND_MS + 5_000;
const IN_FLIGHT = 8;
const WARM_PAIRS = 16;
const CONNECTIONS = 8;
const STREAMS = 32;
const CORES = availableParallelism();
const REPLICA_COUNTS = [1, 2, 4];
const EXPORT_WRITE: RequestAccessRequest = {
  resource: "s3/analytics-exports",
  actions: ["write"],
  duration: { seconds: 600 },
  justification: "benchmark: writing the weekly export",
};
exitOnSignals();

type Spread = { p50: number; p90: number; p99: number; max: number };
/** Nearest-rank percentiles, as stats.ts's pct, with p90 and the maximum. */
function spread(samples: readonly number[]): Spread {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => (s.length === 0 ? NaN : (s[Math.min(s.length - 1, Math.floor(q * s.length))] as number));
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) };
}
const ms = (x: number) => x.toFixed(2);
const count = (xs: readonly string[]) => xs.reduce<Record<string, number>>((n, x) => ({ ...n, [x]: (n[x] ?? 0) + 1 }), {});

// ---- 1. revoke on A, deny on B

interface AfterRevoke {
  /** ms from RevokeGrant's return to the first answer that was not an allow. */
  readonly ms: number;
  /** Allows answered after the revocation returned. */
  readonly allows: number;
  readonly ended: Answer | "error" | "timeout";
  readonly errors: readonly string[];
}

/**
 * Asks back to back (one Check in flight) until an answer other than an allow, at most WAIT_LIMIT_MS. A failed call
 * is noted and asked again, or with `stopAtError` ends the wait (on A, whose first answer must be a deny).
 */
async function afterRevoke(checker: Caller, subject: string, since: number, stopAtError = false): Promise<AfterRevoke> {
  let allows = 0;
  const errors: string[] = [];
  for (;;) {
    const answer = await answerOf(checker, subject).catch((err: unknown) => void errors.push(String(err)));
    const elapsed = performance.now() - since;
    if (answer !== undefined && answer !== "allow") return { ms: elapsed, allows, ended: answer, errors };
    if (answer === "allow") allows++;
    if (stopAtError && answer === undefined) return { ms: elapsed, allows, ended: "error", errors };
    if (elapsed > WAIT_LIMIT_MS) return { ms: elapsed, allows, ended: "timeout", errors };
  }
}

async function revocations(a: Replica, b: Replica, rounds: number) {
  const admin = await a.as("root", ["jitgate-admins"]);
  const checkerA = await a.as("orders-service", ["jitgate-checkers"]);
  const checkerB = await b.as("orders-service", ["jitgate-checkers"]);
  const visible: number[] = [];
  const onA: AfterRevoke[] = [];
  const onB: AfterRevoke[] = [];
  /** B's ms from the moment RevokeGrant was sent (the commit lies between sending and the return). */
  const bSinceSent: number[] = [];
  let allowedOnABefore = 0;
  // An enforcer attached to B (the enforcement library's own revocation feed over B's WatchRevocations): when
  // each revocation reached it.
  const heardAt = new Map<string, number>();
  const enforcerToken = await tokenFor(b.dataDir, "enforcer-on-b", ["jitgate-checkers"]);
  const enforcerClient = new JitgateClient({ address: b.address, credentials: grpc.credentials.createInsecure() }, () =>
    bearerMetadata(enforcerToken),
  );
  const enforcer = new RevocationFeed(enforcerClient, { now: Date.now, onRevoked: (grantId) => heardAt.set(grantId, performance.now()) });
  await enforcer.start();
  const byEnforcer: number[] = [];
  let enforcerMissed = 0;
  for (let i = 0; i < rounds; i++) {
    const subject = `revokee-${i}`;
    const grantId = await readGrant(await a.as(subject, ["engineering"]));
    visible.push(await untilAllowed(checkerB, subject, WAIT_LIMIT_MS));
    if ((await answerOf(checkerA, subject)) === "allow") allowedOnABefore++;
    const sentAt = performance.now();
    await admin.call("RevokeGrant", { grant_id: grantId, reason: "benchmark: revoke on A, deny on B" });
    const revokedAt = performance.now();
    const [b1, a1] = await Promise.all([afterRevoke(checkerB, subject, revokedAt), afterRevoke(checkerA, subject, revokedAt, true)]);
    onB.push(b1);
    onA.push(a1);
    bSinceSent.push(b1.ms + revokedAt - sentAt);
    const until = performance.now() + FEED_BOUND_MS;
    while (!heardAt.has(grantId) && performance.now() < until) await sleep(1);
    const heard = heardAt.get(grantId);
    if (heard === undefined || !enforcer.isRevoked(grantId)) enforcerMissed++;
    else byEnforcer.push(Math.max(0, heard - revokedAt));
    if ((i + 1) % Math.max(1, Math.floor(rounds / 4)) === 0) console.log(`  revocations: ${i + 1}/${rounds}`);
  }
  const side = (rs: readonly AfterRevoke[]) => ({
    ms: spread(rs.map((r) => r.ms)),
    allowsAfterRevoke: spread(rs.map((r) => r.allows)),
    ended: count(rs.map((r) => r.ended)),
    overBound: rs.filter((r) => r.ms > FEED_BOUND_MS || r.ended === "timeout").length,
    /** Rounds whose first Check after the revoke already denied: the figure is then one Check's round trip. */
    firstDenied: rs.filter((r) => r.allows === 0 && r.ended === "deny").length,
    errors: rs.flatMap((r) => r.errors).slice(0, 5),
  });
  // A's guarantee: its first answer after its own revoke is a deny; anything else (an allow, a refusal, an error) breaks it.
  const aBroken = onA.filter((r) => r.ended !== "deny" || r.allows > 0).length;
  enforcer.close();
  enforcerClient.close();
  return {
    rounds,
    feedBoundMs: FEED_BOUND_MS,
    visibleOnB: spread(visible),
    /** ms from A's RevokeGrant return to the revocation reaching an enforcer attached to B (0 when it came first). */
    enforcerOnB: { ms: spread(byEnforcer), missedWithinBound: enforcerMissed },
    allowedOnABefore,
    onB: { ...side(onB), sinceSentMs: spread(bSinceSent) },
    onA: { ...side(onA), broken: aBroken },
  };
}

// ---- 2. RequestAccess + review

async function inPool<T>(items: readonly T[], inFlight: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, items.length) }, worker));
}

async function lifecycle(replica: Replica, pairs: number, databasePid: number | undefined) {
  const reviewer = await replica.as("dp-reviewer", ["data-platform"]);
  const requesters: Caller[] = [];
  for (let i = 0; i < WARM_PAIRS + pairs; i++) requesters.push(await replica.as(`requester-${i}`, ["engineering"]));
  const latency = { request: [] as number[], review: [] as number[] };
  const failures: string[] = [];
  const pair = async (requester: Caller) => {
    const t0 = performance.now();
    const pending = await requester
      .call("RequestAccess", EXPORT_WRITE)
      .catch((err: unknown) => void failures.push(`request: ${String(err)}`));
    const t1 = performance.now();
    if (!pending) return;
    if (pending.state !== "PENDING") return void failures.push(`request: ${pending.state} ${pending.state_reason}`);
    latency.request.push(t1 - t0);
    const decided = await reviewer
      .call("ReviewAccessRequest", { id: pending.id, decision: "REVIEW_DECISION_APPROVE" })
      .catch((err: unknown) => void failures.push(`review: ${String(err)}`));
    if (!decided) return;
    if (decided.state !== "APPROVED" || !decided.grant) return void failures.push(`review: ${decided.state} ${decided.state_reason}`);
    latency.review.push(performance.now() - t1);
  };
  await inPool(requesters.slice(0, WARM_PAIRS), IN_FLIGHT, pair);
  latency.request.length = latency.review.length = failures.length = 0;
  const cpu0 = watch.treeCpuMicros(replica.pid);
  const db0 = databasePid === undefined ? 0 : watch.treeCpuMicros(databasePid);
  const started = performance.now();
  await inPool(requesters.slice(WARM_PAIRS), IN_FLIGHT, pair);
  const seconds = (performance.now() - started) / 1000;
  const calls = latency.request.length + latency.review.length;
  return {
    pairs,
    inFlight: IN_FLIGHT,
    seconds,
    callsPerSecond: calls / seconds,
    approvedPerSecond: latency.review.length / seconds,
    requestMs: spread(latency.request),
    reviewMs: spread(latency.review),
    serverCpuUsPerCall: (watch.treeCpuMicros(replica.pid) - cpu0) / calls,
    databaseCpuUsPerCall: databasePid === undefined ? undefined : (watch.treeCpuMicros(databasePid) - db0) / calls,
    failed: failures.length,
    failures: Object.entries(count(failures)).slice(0, 5),
  };
}

// ---- 3. Check by subject on 1, 2 and 4 replicas

/** Waits (bounded) until jitgate's decision log has written every record, so its CPU is counted in the run. */
async function drained(metricsUrl: string): Promise<void> {
  const until = Date.now() + 15_000;
  while ((await watch.decisionQueueDepth(metricsUrl)) > 0 && Date.now() < until) await sleep(50);
}

async function checkLoad(fleet: Fleet, replicas: readonly Replica[], bodyFile: string) {
  const clients = Math.max(1, Math.floor(CONNECTIONS / replicas.length));
  const h2 = (r: Replica, shape: { seconds?: number; requests?: number }) =>
    h2loadRun({
      url: `http://${r.address}/jit.v1.AccessService/Check`,
      bodyFile,
      headers: { "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${r.checkerToken}` },
      clients,
      streams: STREAMS,
      logFile: join(fleet.dir, `h2load-${r.name}.tsv`),
      ...shape,
    });
  await Promise.all(replicas.map((r) => h2(r, { requests: 3_000 })));
  for (const r of replicas) await drained(r.metricsUrl);
  const loadAtStart = watch.loadAverage();
  const counters0 = await Promise.all(replicas.map((r) => watch.scrape(r.metricsUrl)));
  const cpu0 = replicas.map((r) => watch.treeCpuMicros(r.pid));
  const db0 = watch.treeCpuMicros(fleet.postgresPid);
  const machine0 = watch.machineTime();
  const runs = await Promise.all(replicas.map((r) => h2(r, { seconds: SECONDS })));
  for (const r of replicas) await drained(r.metricsUrl);
  const cpu = replicas.map((r, i) => watch.treeCpuMicros(r.pid) - (cpu0[i] ?? 0));
  const db = watch.treeCpuMicros(fleet.postgresPid) - db0;
  const serverUs = cpu.reduce((x, y) => x + y, 0);
  const machine = watch.busyBetween(machine0, watch.machineTime(), serverUs + db);
  const counters = await Promise.all(replicas.map((r) => watch.scrape(r.metricsUrl)));
  const perReplica = replicas.map((r, i) => {
    const run = runs[i];
    const before = counters0[i];
    const after = counters[i];
    if (!run || !before || !after) throw new Error(`${r.name}: no run`);
    const logged = r.logged();
    const besidesAllow = {
      ...watch.besidesAllow(before, after),
      ...(run.failed + run.errored > 0 ? { failed: run.failed + run.errored } : {}),
    };
    return {
      name: r.name,
      perSecond: run.succeeded / run.seconds,
      answered: run.succeeded,
      p50Ms: run.latencyUs.p50 / 1000,
      p99Ms: run.latencyUs.p99 / 1000,
      cpuUsPerCheck: (cpu[i] ?? 0) / run.succeeded,
      besidesAllow,
      /** Evaluations stopped at the policy's time budget (each answered as a deny, counted as "error" above). */
      policyTimeouts: after.policyTimeouts - before.policyTimeouts,
      /** Warnings and errors logged since the replica started (grant feed reconnects, refusals). */
      logged,
    };
  });
  const answered = perReplica.reduce((n, r) => n + r.answered, 0);
  return {
    replicas: replicas.length,
    h2load: `${replicas.length} x (-c ${clients} -m ${STREAMS})`,
    perSecond: perReplica.reduce((n, r) => n + r.perSecond, 0),
    worstP50Ms: Math.max(...perReplica.map((r) => r.p50Ms)),
    worstP99Ms: Math.max(...perReplica.map((r) => r.p99Ms)),
    serverCpuUsPerCheck: serverUs / answered,
    databaseCpuPercentOfOneCore: (100 * db) / (SECONDS * 1e6),
    ...machine,
    loadAverage: { start: loadAtStart, end: watch.loadAverage() },
    notAllowed: perReplica.reduce((n, r) => n + watch.sum(r.besidesAllow), 0),
    perReplica,
  };
}

// ---- the run

const startedAt = new Date().toISOString();
const loadAtStart = watch.loadAverage();
const runStart = performance.now();
const since = (t: number) => ((performance.now() - t) / 1000).toFixed(0);
const fleet = await startFleet(FEED_BOUND);
try {
  const versions = {
    node: process.version,
    postgres: execFileSync(join(postgresBin(), "postgres"), ["--version"], { encoding: "utf8" }).trim(),
    h2load: h2loadVersion(),
  };
  console.log(
    `${versions.postgres}, ${versions.h2load}, Node ${versions.node}; ${CORES} cores (${cpus()[0]?.model ?? "?"}); load average ${loadAtStart}`,
  );

  console.log(`\n1. revoke on A, deny on B: ${REVOCATIONS} rounds, --feed-bound ${FEED_BOUND}`);
  const shared = await fleet.database();
  const a = await fleet.replica("A", shared);
  const b = await fleet.replica("B", shared);
  const revocation = { ...(await revocations(a, b, REVOCATIONS)), logged: { A: a.logged(), B: b.logged() } };
  await fleet.stop(a);
  await fleet.stop(b);
  console.log(`  took ${since(runStart)} s in all`);

  console.log(`\n2. RequestAccess + approving review: ${REQUESTS} pairs, ${IN_FLIGHT} in flight, one replica`);
  const sqlite = await fleet.replica("sqlite", undefined);
  const onSqlite = await lifecycle(sqlite, REQUESTS, undefined);
  await fleet.stop(sqlite);
  const postgres = await fleet.replica("postgres", await fleet.database());
  const onPostgres = await lifecycle(postgres, REQUESTS, fleet.postgresPid);
  await fleet.stop(postgres);
  console.log(`  took ${since(runStart)} s in all`);

  console.log(`\n3. Check by subject, h2load ${CONNECTIONS} connections in all, ${SECONDS} s per run`);
  const checks = accessServiceDefinition(loadAccessPackage()).Check;
  if (!checks) throw new Error("no Check in the proto");
  const bodyFile = await writeGrpcBody(fleet.dir, "check.grpc", checks.requestSerialize(CHECK));
  /** alice's grant (made on the first replica) allowed on every one, the load's exact bytes verified on each. */
  const verified = async (replicas: readonly Replica[], grantId: string) => {
    for (const r of replicas) {
      await untilAllowed(await r.as("orders-service", ["jitgate-checkers"]), CHECK.subject ?? "", WAIT_LIMIT_MS);
      await verifyCheck(r.name, { address: r.address, body: bodyFile, bearer: r.checkerToken, grantId });
    }
  };
  const aliceRead = async (r: Replica) => readGrant(await r.as(CHECK.subject ?? "", ["engineering"]), 1800);
  const loads = [];
  // The same load on one replica with its own SQLite file: the single process the replicas are weighed against.
  const single = await fleet.replica("S1", undefined);
  await verified([single], await aliceRead(single));
  const reference = { ...(await checkLoad(fleet, [single], bodyFile)), store: "SQLite (reference)" };
  await fleet.stop(single);
  loads.push(reference);
  console.log(`  1 process on SQLite: ${reference.perSecond.toFixed(0)} Checks/s, busy ${reference.busyPercent.toFixed(0)}%`);
  const db = await fleet.database();
  const replicas: Replica[] = [];
  let grantId = "";
  for (const n of REPLICA_COUNTS) {
    while (replicas.length < n) replicas.push(await fleet.replica(`R${replicas.length + 1}`, db));
    grantId ||= await aliceRead(replicas[0] as Replica);
    await verified(replicas, grantId);
    const load = { ...(await checkLoad(fleet, replicas, bodyFile)), store: "PostgreSQL" };
    loads.push(load);
    console.log(`  ${n} replica(s) on PostgreSQL: ${load.perSecond.toFixed(0)} Checks/s, busy ${load.busyPercent.toFixed(0)}%`);
  }

  console.log(`  took ${since(runStart)} s in all`);

  // ---- tables
  const loadAtEnd = watch.loadAverage();
  console.log(
    `\nRevoke on A -> first non-allow (ms from RevokeGrant's return on A; feed bound ${FEED_BOUND_MS} ms), ${REVOCATIONS} rounds`,
  );
  console.log("| asked | p50 ms | p90 ms | p99 ms | max ms | allows after revoke (p50 / max) | ended by | over the bound |");
  console.log("|---|---|---|---|---|---|---|---|");
  for (const [name, s] of [
    ["B (other replica)", revocation.onB],
    ["A (revoking replica)", revocation.onA],
  ] as const) {
    console.log(
      `| ${name} | ${ms(s.ms.p50)} | ${ms(s.ms.p90)} | ${ms(s.ms.p99)} | ${ms(s.ms.max)} | ${s.allowsAfterRevoke.p50} / ${s.allowsAfterRevoke.max} | ${JSON.stringify(s.ended)} | ${s.overBound} |`,
    );
  }
  const e = revocation.enforcerOnB;
  console.log(
    `an enforcer attached to B (WatchRevocations) heard each revocation after: p50 ${ms(e.ms.p50)} p90 ${ms(e.ms.p90)} p99 ${ms(e.ms.p99)} max ${ms(e.ms.max)} ms; missed within the bound: ${e.missedWithinBound}`,
  );
  const v = revocation.visibleOnB;
  console.log(
    `grant made on A first allowed on B after: p50 ${ms(v.p50)} p90 ${ms(v.p90)} p99 ${ms(v.p99)} max ${ms(v.max)} ms; A allowed before its revoke in ${revocation.allowedOnABefore}/${REVOCATIONS} rounds`,
  );
  console.log(
    `A's guarantee (first Check after its own revoke denies): broken in ${revocation.onA.broken}/${REVOCATIONS} rounds` +
      (revocation.onA.errors.length > 0 ? `; errors: ${revocation.onA.errors.join("; ")}` : ""),
  );
  const sent = revocation.onB.sinceSentMs;
  console.log(
    `B from RevokeGrant sent (the commit is in between): p50 ${ms(sent.p50)} p90 ${ms(sent.p90)} p99 ${ms(sent.p99)} max ${ms(sent.max)} ms; ` +
      `B's first Check after the return already denied in ${revocation.onB.firstDenied}/${REVOCATIONS} rounds (the figure is then one Check's round trip)`,
  );
  console.log(`B's bound (${FEED_BOUND_MS} ms): exceeded in ${revocation.onB.overBound}/${REVOCATIONS} rounds`);
  if (revocation.onB.errors.length > 0) console.log(`errors on B: ${revocation.onB.errors.join("; ")}`);
  for (const [name, l] of Object.entries(revocation.logged)) {
    if (l.lines > 0) console.log(`${name} logged ${l.lines} warnings or errors, the last: ${l.last.join(" | ")}`);
  }

  console.log(`\nRequestAccess (pending) + ReviewAccessRequest (approves), ${REQUESTS} pairs, ${IN_FLIGHT} in flight, one replica`);
  console.log(
    "| store | calls/s (requests+reviews) | approved/s | RequestAccess p50 / p99 ms | Review p50 / p99 ms | server CPU µs/call | PostgreSQL CPU µs/call | failed |",
  );
  console.log("|---|---|---|---|---|---|---|---|");
  for (const [name, s] of [
    ["SQLite", onSqlite],
    ["PostgreSQL", onPostgres],
  ] as const) {
    console.log(
      `| ${name} | ${s.callsPerSecond.toFixed(0)} | ${s.approvedPerSecond.toFixed(0)} | ${ms(s.requestMs.p50)} / ${ms(s.requestMs.p99)} | ${ms(s.reviewMs.p50)} / ${ms(s.reviewMs.p99)} | ${s.serverCpuUsPerCall.toFixed(0)} | ${s.databaseCpuUsPerCall?.toFixed(0) ?? "-"} | ${s.failed} |`,
    );
    for (const [failure, n] of s.failures) console.log(`  ${name} failure x${n}: ${failure}`);
  }

  console.log(`\nCheck by subject (alice's live grant), ${SECONDS} s per run, ${CORES} cores`);
  console.log(
    "| store | replicas | h2load | Checks/s | per replica | worst p50 ms | worst p99 ms | server CPU µs/Check | PostgreSQL % of a core | busy % (others) | load average start → end | not allowed |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
  for (const l of loads) {
    console.log(
      `| ${l.store} | ${l.replicas} | ${l.h2load} | ${l.perSecond.toFixed(0)} | ${l.perReplica.map((r) => r.perSecond.toFixed(0)).join(" + ")} | ${ms(l.worstP50Ms)} | ${ms(l.worstP99Ms)} | ${l.serverCpuUsPerCheck.toFixed(1)} | ${l.databaseCpuPercentOfOneCore.toFixed(1)} | ${l.busyPercent.toFixed(0)} (${l.othersPercent.toFixed(0)}) | ${l.loadAverage.start} → ${l.loadAverage.end} | ${l.notAllowed} |`,
    );
  }
  for (const l of loads) {
    for (const r of l.perReplica) {
      if (watch.sum(r.besidesAllow) > 0 || r.logged.lines > 0) {
        console.log(
          `${l.store} x${l.replicas}, ${r.name}: not allowed ${JSON.stringify(r.besidesAllow)}, policy timeouts ${r.policyTimeouts}, ` +
            `${r.logged.lines} warnings or errors logged since start${r.logged.lines > 0 ? `, the last: ${r.logged.last.join(" | ")}` : ""}`,
        );
      }
    }
  }
  const crowded = loads.filter((l) => l.othersPercent > 15);
  if (crowded.length > 0) {
    console.log(
      `NOT CLEAN: other processes on this machine took ${crowded.map((l) => `${l.othersPercent.toFixed(0)}%`).join(" / ")} of the cores in ` +
        `${crowded.map((l) => `${l.store} x${l.replicas}`).join(", ")}: those Checks/s are low by about that share`,
    );
  }
  const cpuBound = loads.filter((l) => l.store === "PostgreSQL" && l.replicas > 1 && l.busyPercent >= 90);
  if (cpuBound.length > 0) {
    console.log(
      `${cpuBound.map((l) => l.replicas).join(" and ")} replicas: the ${CORES} cores were ${cpuBound.map((l) => `${l.busyPercent.toFixed(0)}%`).join(" / ")} busy ` +
        `(replicas, their policy threads and h2load share them): on this machine more replicas cannot add Checks/s, only split them`,
    );
  }
  console.log(`load average at end ${loadAtEnd}`);

  const file = await writeResults("replicas", {
    command: `node bench/replicas.ts ${REVOCATIONS} ${REQUESTS} ${SECONDS}`,
    machine: {
      cores: CORES,
      cpu: cpus()[0]?.model ?? "",
      kernel: execFileSync("uname", ["-r"], { encoding: "utf8" }).trim(),
      startedAt,
      loadAverage: { start: loadAtStart, end: loadAtEnd },
      ...versions,
    },
    replica: "jitgate serve --dev --workers 1, a data directory of its own; PostgreSQL on loopback in a temp dir",
    revocation,
    lifecycle: { request: EXPORT_WRITE, reviewer: "data-platform", sqlite: onSqlite, postgres: onPostgres },
    checks: { connections: CONNECTIONS, streamsPerConnection: STREAMS, seconds: SECONDS, runs: loads },
  });
  console.log(`figures written to ${file}`);
  if (revocation.onA.broken > 0 || revocation.onB.overBound > 0 || loads.some((l) => l.notAllowed > 0)) process.exitCode = 1;
} finally {
  await fleet.close();
}
