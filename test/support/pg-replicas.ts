// jitgate replicas on one PostgreSQL database as `jitgate serve` child processes, for the fault tests: each has
// its own data directory (its own dev issuer and decision log) and one process (--workers 1), so a SIGKILL ends
// the replica itself, and a restart runs on the same directory and database. Also the load those tests run and
// what they read back from PostgreSQL itself: whether every acknowledged change is stored whole, and the chain.
import type { ChildProcess } from "node:child_process";
import * as grpc from "@grpc/grpc-js";
import pg from "pg";
import { openPgStore } from "../../src/store/postgres/store.ts";
import { api, type Api, type Caller, type CheckResponse, tokenFor } from "./api.ts";
import { REAL_BUNDLE, removeDir, tempDir } from "./bundles.ts";
import { spawnServe } from "./jitgate.ts";

export const ORDERS = "db/orders";
export const READ_ORDERS = {
  resource: ORDERS,
  actions: ["read"],
  duration: { seconds: 1800 },
  justification: "reading stuck orders for INC-77",
  ticket: "INC-77",
};

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The gRPC status name of a failed call (or the error's message when it is not a gRPC failure). */
export const statusOf = (err: unknown): string => {
  const code = (err as grpc.ServiceError | null)?.code;
  return typeof code === "number" ? (grpc.status[code] ?? String(code)) : String((err as Error)?.message ?? err);
};

export interface ReplicaOptions {
  readonly name: string;
  /** The postgres:// URL this replica's store is on. */
  readonly store: string;
  readonly feedBound: string;
}

/** One replica: a `jitgate serve --dev --workers 1` child process that can be killed and restarted. */
export class Replica {
  readonly name: string;
  readonly dataDir: string;
  /** The decision id of every Check this replica answered (allow or deny), through `checkerOn`, since it was made. */
  readonly answered: string[] = [];
  readonly #args: readonly string[];
  readonly #tokens = new Map<string, string>();
  #child: ChildProcess | undefined;
  #client: Api | undefined;
  #address = "";
  #log = "";

  private constructor(opts: ReplicaOptions, dataDir: string) {
    this.name = opts.name;
    this.dataDir = dataDir;
    this.#args = [
      "--dev",
      "--workers",
      "1",
      "--store",
      opts.store,
      "--feed-bound",
      opts.feedBound,
      "--listen",
      "127.0.0.1:0",
      "--data-dir",
      dataDir,
      "--bundle",
      REAL_BUNDLE,
      "--log-level",
      "warn",
    ];
  }

  /** A new replica on a data directory of its own, started. */
  static async start(opts: ReplicaOptions): Promise<Replica> {
    const replica = new Replica(opts, await tempDir(`jitgate-replica-${opts.name}-`));
    await replica.start();
    return replica;
  }

  /** Starts the process (again) on the same data directory and database; resolves once it listens. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`replica ${this.name} is already running`);
    const served = await spawnServe(this.#args);
    this.#child = served.child;
    this.#address = served.address;
    this.#client = api(served.address);
    this.#log = "";
    served.child.stderr?.on("data", (d: Buffer) => {
      this.#log = (this.#log + d.toString()).slice(-4_000);
    });
  }

  get address(): string {
    return this.#address;
  }

  get pid(): number {
    return this.#child?.pid ?? 0;
  }

  get running(): boolean {
    const child = this.#child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** What the replica logged last (warnings and errors), for a failure message. */
  get logTail(): string {
    return this.#log;
  }

  /** A caller `id` in `groups` on the process running now, with a dev token from this replica's own data directory. */
  async as(id: string, groups: readonly string[]): Promise<Caller> {
    const client = this.#client;
    if (client === undefined) throw new Error(`replica ${this.name} was never started`);
    const key = `${id}\n${groups.join(",")}`;
    let token = this.#tokens.get(key);
    if (token === undefined) {
      token = await tokenFor(this.dataDir, id, groups);
      this.#tokens.set(key, token);
    }
    return client.as(token);
  }

  /** SIGKILL: no shutdown of any kind; resolves once the process is gone. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (child === undefined || !this.running) return;
    const gone = exited(child);
    child.kill("SIGKILL");
    await gone;
    this.#client?.close();
    if (child.signalCode !== "SIGKILL") throw new Error(`replica ${this.name} ended by ${child.signalCode ?? child.exitCode}, not SIGKILL`);
  }

  /** Kills the process if it still runs and removes the data directory. */
  async remove(): Promise<void> {
    await this.kill();
    this.#client?.close();
    await removeDir(this.dataDir);
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((ok) => child.once("exit", () => ok()));
}

/** Checks that may ask about anyone (a service in jitgate-checkers); each answer's decision id is kept in `answered`. */
export async function checkerOn(replica: Replica): Promise<(subject: string, deadlineMs?: number) => Promise<CheckResponse>> {
  const checker = await replica.as("svc-orders", ["jitgate-checkers"]);
  return async (subject, deadlineMs = 10_000) => {
    const answer = await checker.call(
      "Check",
      { subject, subject_groups: ["engineering"], resource: ORDERS, action: "read", context: { source_ip: "10.1.2.3" } },
      { deadlineMs },
    );
    replica.answered.push(answer.decision_id);
    return answer;
  };
}

// ---- what was acknowledged

export interface AckedGrant {
  readonly requestId: string;
  readonly subject: string;
  /** The replica that acknowledged it. */
  readonly via: string;
  /** A revocation not yet asked for, asked for with no answer (either outcome is allowed), or acknowledged. */
  revoke: "none" | "asked" | "acknowledged";
}

/** Every grant (by id) a caller was told of, and what it was told about its revocation. */
export type Ledger = Map<string, AckedGrant>;

/**
 * One round of the mixed load on `replica`: a fresh subject's auto-approved read and a Check by the replica that
 * granted it (its own commits reach its index at once); with a `revoker`, the subject's revocation there and a
 * Check there again. Wrong answers go to `problems`; a failed call throws (its outcome unknown to the caller).
 */
export async function mixedRound(
  replica: Replica,
  subject: string,
  revoker: Replica | undefined,
  ledger: Ledger,
  problems: string[],
): Promise<void> {
  const caller = await replica.as(subject, ["engineering"]);
  const check = await checkerOn(replica);
  const request = await caller.call("RequestAccess", READ_ORDERS);
  if (request.state !== "APPROVED" || !request.grant) {
    problems.push(`${replica.name}: ${subject}'s read was acknowledged ${request.state}: ${request.state_reason}`);
    return;
  }
  const grantId = request.grant.id;
  const acked: AckedGrant = { requestId: request.id, subject, via: replica.name, revoke: "none" };
  ledger.set(grantId, acked);
  if (!(await check(subject)).allow) problems.push(`${replica.name}: ${subject}'s acknowledged grant ${grantId} not allowed there`);
  if (revoker === undefined) return;
  acked.revoke = "asked";
  await (await revoker.as(subject, ["engineering"])).call("RevokeGrant", { grant_id: grantId, reason: "done with INC-77" });
  acked.revoke = "acknowledged";
  if ((await (await checkerOn(revoker))(subject)).allow) {
    problems.push(`${revoker.name}: ${subject}'s grant ${grantId} still allowed there after its revoke there returned`);
  }
}

/**
 * The mixed load over several replicas while some are killed: `loopsEach` loops per replica, each round on its
 * replica, every third one revoked (half of those through another replica still up). A failed round is
 * "cut off" when it used a replica marked `killing` by then; any other failure is a problem of a replica that
 * was up.
 */
export class MixedLoad {
  readonly ledger: Ledger;
  /** Wrong answers (an acknowledged grant not allowed by its replica, say). */
  readonly problems: string[] = [];
  /** Rounds that used only replicas that were up, and failed. */
  readonly failedWhileUp: string[] = [];
  /** Rounds that failed because a replica they used was killed under them. */
  cutOff = 0;
  /** Every failed round's status (UNAVAILABLE, ...), with how many. */
  readonly failures = new Map<string, number>();
  /** Rounds acknowledged, by replica; and of those, rounds started after the last kill. */
  readonly acks = new Map<string, number>();
  readonly acksAfterKill = new Map<string, number>();
  readonly #replicas: readonly Replica[];
  readonly #subjects: string;
  readonly #killed = new Set<Replica>();
  #stopped = false;
  #rounds = 0;
  readonly #running: Promise<void>;

  /** `subjects` prefixes each round's subject: a subject of one load is never one of another's on the same store. */
  constructor(replicas: readonly Replica[], opts: { loopsEach: number; subjects: string; ledger?: Ledger }) {
    this.ledger = opts.ledger ?? new Map();
    this.#replicas = replicas;
    this.#subjects = opts.subjects;
    const loopsEach = opts.loopsEach;
    this.#running = Promise.all(
      replicas.map((r) =>
        loops(
          loopsEach,
          () => this.#stopped || this.#killed.has(r),
          () => this.#round(r),
        ),
      ),
    ).then(() => undefined);
  }

  get rounds(): number {
    return this.#rounds;
  }

  /** Told before `replica` is killed: its loops end, and failures of rounds that used it are cut off, not problems. */
  killing(replica: Replica): void {
    this.#killed.add(replica);
    this.acksAfterKill.clear();
  }

  /** Ends the load once the rounds in flight are done. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#running;
  }

  async #round(on: Replica): Promise<void> {
    const i = ++this.#rounds;
    const kills = this.#killed.size;
    const up = this.#replicas.filter((r) => r !== on && !this.#killed.has(r));
    const revoker = i % 3 !== 0 ? undefined : i % 6 === 0 && up.length > 0 ? up[i % up.length] : on;
    try {
      await mixedRound(on, `${this.#subjects}-${on.name}-${i}`, revoker, this.ledger, this.problems);
      this.acks.set(on.name, (this.acks.get(on.name) ?? 0) + 1);
      if (kills > 0 && kills === this.#killed.size) this.acksAfterKill.set(on.name, (this.acksAfterKill.get(on.name) ?? 0) + 1);
    } catch (err) {
      this.failures.set(statusOf(err), (this.failures.get(statusOf(err)) ?? 0) + 1);
      if (this.#killed.has(on) || (revoker !== undefined && this.#killed.has(revoker))) this.cutOff++;
      else
        this.failedWhileUp.push(
          `round ${i} on ${on.name} (revoked via ${revoker?.name ?? "-"}): ${statusOf(err)} ${(err as Error).message}`,
        );
      // A client backs off a little after a failure (and a load against a store that is down does not spin).
      await sleep(20);
    }
  }
}

// ---- read back from PostgreSQL itself

interface StoredGrant {
  id: string;
  request_id: string;
  subject: string;
  revoked: boolean;
  events: string[];
  audits: string[];
}

/**
 * What is wrong in the database at `url`: an acknowledged grant (or revocation) missing or different, a change
 * stored in part (an approval without its grant, a grant or revocation without its event or audit entry), or a
 * broken audit chain. Empty when all is well.
 */
export async function storeProblems(url: string, ledger: Ledger): Promise<{ problems: string[]; auditRows: number; grants: number }> {
  const problems: string[] = [];
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  let grants: StoredGrant[];
  try {
    const ids = [...ledger.keys()];
    const requests = await db.query<{ id: string; state: string; grant_id: string | null }>(
      "SELECT id, state, grant_id FROM requests WHERE id = ANY($1)",
      [[...ledger.values()].map((g) => g.requestId)],
    );
    const requestById = new Map(requests.rows.map((r) => [r.id, r]));
    grants = (
      await db.query<StoredGrant>(
        `SELECT g.id, g.request_id, g.subject, g.revoked_at IS NOT NULL AS revoked,
           ARRAY(SELECT kind FROM grant_events e WHERE e.grant_id = g.id ORDER BY seq) AS events,
           ARRAY(SELECT kind FROM audit a WHERE a.grant_id = g.id AND a.kind IN ('GRANT_CREATED', 'GRANT_REVOKED', 'GRANT_EXPIRED') ORDER BY seq) AS audits
         FROM grants g`,
      )
    ).rows;
    const grantById = new Map(grants.map((g) => [g.id, g]));
    for (const id of ids) {
      const acked = ledger.get(id) as AckedGrant;
      const request = requestById.get(acked.requestId);
      const grant = grantById.get(id);
      const name = `${acked.subject}'s grant ${id} (acknowledged by ${acked.via})`;
      if (request?.state !== "APPROVED" || request.grant_id !== id) problems.push(`${name}: request ${request?.state ?? "missing"}`);
      if (!grant) problems.push(`${name}: not stored`);
      else if (grant.subject !== acked.subject || grant.request_id !== acked.requestId) problems.push(`${name}: stored for someone else`);
      else if (acked.revoke === "acknowledged" && !grant.revoked) problems.push(`${name}: its acknowledged revocation was lost`);
      else if (acked.revoke === "none" && grant.revoked) problems.push(`${name}: revoked, though nobody asked`);
    }
    // Whole or not at all, acknowledged or cut off: each approval has its grant, each grant and revocation its event and entry.
    const orphans = await db.query<{ id: string }>(
      "SELECT r.id FROM requests r LEFT JOIN grants g ON g.id = r.grant_id WHERE r.state = 'APPROVED' AND g.id IS NULL",
    );
    for (const r of orphans.rows) problems.push(`request ${r.id}: APPROVED without its grant`);
    for (const g of grants) {
      const want = g.revoked ? ["CREATED", "REVOKED"] : ["CREATED"];
      if (g.events.join() !== want.join()) problems.push(`grant ${g.id}: events ${g.events.join() || "none"}, want ${want.join()}`);
      const wantAudit = want.map((k) => `GRANT_${k}`);
      if (g.audits.join() !== wantAudit.join())
        problems.push(`grant ${g.id}: audit ${g.audits.join() || "none"}, want ${wantAudit.join()}`);
    }
  } finally {
    await db.end();
  }
  const store = await openPgStore(url);
  try {
    const chain = await store.verifyAuditChain();
    if (!chain.ok) problems.push(`audit chain broken at seq ${chain.seq}: ${chain.reason}`);
    return { problems, auditRows: chain.ok ? chain.rows : 0, grants: grants.length };
  } finally {
    await store.close();
  }
}

/** Of the decision ids `answered`, those without their record in the database at `url`. */
export async function unrecordedDecisions(url: string, answered: readonly string[]): Promise<string[]> {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    const { rows } = await db.query<{ decision_id: string }>("SELECT decision_id FROM decisions WHERE decision_id = ANY($1)", [
      [...answered],
    ]);
    const recorded = new Set(rows.map((r) => r.decision_id));
    return answered.filter((id) => !recorded.has(id));
  } finally {
    await db.end();
  }
}

/** Runs `task` over `items`, `limit` at a time. */
export async function forEach<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++] as T);
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

/** Runs `body` in `n` concurrent loops (told their number) until `until()` says stop. */
export async function loops(n: number, until: () => boolean, body: (loop: number) => Promise<void>): Promise<void> {
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      while (!until()) await body(i);
    }),
  );
}

/** Polls `probe` until it returns true; the elapsed ms, or a failure naming `what` after `limitMs`. */
export async function within(what: string, limitMs: number, probe: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  while (!(await probe().catch(() => false))) {
    if (performance.now() - started > limitMs) throw new Error(`${what}: not within ${limitMs} ms`);
    await sleep(10);
  }
  return performance.now() - started;
}

/** The `p`th percentile (nearest rank) of `values`, in ms with one decimal. */
export function percentile(values: readonly number[], p: number): string {
  if (values.length === 0) return "n/a";
  const sorted = [...values].sort((a, b) => a - b);
  const v = sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
  return `${v.toFixed(1)} ms`;
}
