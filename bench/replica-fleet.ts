// The processes the replicas bench runs: one PostgreSQL server on loopback (test/support/postgres.ts),
// `jitgate serve --dev` replicas, each a process of its own with its own data directory (so its own dev key), on a
// shared PostgreSQL database or on its own SQLite file, and h2load. None outlives the bench: at exit, SIGINT and
// SIGTERM included (exitOnSignals), the children are killed, PostgreSQL stopped and the temp dir removed.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { type Api, api, type Caller, status, tokenFor } from "../test/support/api.ts";
import { REAL_BUNDLE, removeDir } from "../test/support/bundles.ts";
import { spawnServe } from "../test/support/jitgate.ts";
import { type PostgresServer, startPostgres } from "../test/support/postgres.ts";
import { type H2loadLoad, h2loadArgs, parseSummary } from "./h2load.ts";
import { CHECK, started } from "./servers.ts";
import { pct } from "./stats.ts";

export interface Replica {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly address: string;
  readonly metricsUrl: string;
  readonly dataDir: string;
  readonly client: Api;
  /** The Bearer token of a caller in jitgate-checkers, signed with this replica's dev key (for h2load). */
  readonly checkerToken: string;
  /** A caller `id` in `groups`, with a dev token from this replica's own data directory. */
  as(id: string, groups: readonly string[]): Promise<Caller>;
  /** Warnings and errors it logged since it started listening (grant feed reconnects among them): count and last few. */
  logged(): { readonly lines: number; readonly last: readonly string[] };
}

export interface Fleet {
  /** The bench's temp directory (replicas' data directories, h2load's bodies and logs). */
  readonly dir: string;
  readonly postgres: PostgresServer;
  /** The PostgreSQL postmaster's pid: its tree (the backends) is the database's CPU. */
  readonly postgresPid: number;
  /** A new, empty database on the server. */
  database(): Promise<string>;
  /** `jitgate serve --dev --workers 1` on `store` (a postgres:// URL, or undefined for its own SQLite file). */
  replica(name: string, store: string | undefined): Promise<Replica>;
  stop(replica: Replica): Promise<void>;
  /** Stops every replica still running, then PostgreSQL, and removes the temp dir. */
  close(): Promise<void>;
}

export async function startFleet(feedBound: string): Promise<Fleet> {
  const dir = mkdtempSync(join(tmpdir(), "jitgate-bench-replicas-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const postgres = await startPostgres();
  const postgresPid = await postmasterPid(postgres.url());
  const running = new Set<Replica>();
  const stop = async (replica: Replica) => {
    running.delete(replica);
    replica.client.close();
    if (replica.child.exitCode === null && replica.child.signalCode === null) {
      const exited = once(replica.child, "exit");
      replica.child.kill("SIGTERM");
      const killer = setTimeout(() => replica.child.kill("SIGKILL"), 30_000);
      await exited;
      clearTimeout(killer);
    }
    await removeDir(replica.dataDir);
  };
  return {
    dir,
    postgres,
    postgresPid,
    database: () => postgres.createDatabase(),
    async replica(name, store) {
      const dataDir = await mkdtemp(join(dir, `${name}-`));
      const storeFlags = store === undefined ? [] : ["--store", store, "--feed-bound", feedBound];
      const served = await spawnServe([
        "--dev",
        ...storeFlags,
        "--workers",
        "1",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dataDir,
        "--bundle",
        REAL_BUNDLE,
        "--log-level",
        "warn",
      ]);
      started(served.child);
      const log = { lines: 0, last: [] as string[] };
      served.child.stderr?.on("data", (d: Buffer) => {
        for (const line of d.toString().split("\n").filter(Boolean)) {
          log.lines++;
          log.last = [...log.last.slice(-4), line.slice(0, 300)];
        }
      });
      const pid = served.child.pid;
      if (pid === undefined) throw new Error(`${name}: jitgate serve has no pid`);
      const client = api(served.address);
      const replica: Replica = {
        name,
        ...served,
        pid,
        dataDir,
        client,
        checkerToken: await tokenFor(dataDir, "svc-bench", ["jitgate-checkers"]),
        as: async (id, groups) => client.as(await tokenFor(dataDir, id, groups)),
        logged: () => ({ lines: log.lines, last: log.last }),
      };
      running.add(replica);
      return replica;
    },
    stop,
    async close() {
      for (const replica of [...running].reverse())
        await stop(replica).catch((err: unknown) => console.error(`stop ${replica.name}: ${String(err)}`));
      postgres.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The postmaster's pid, from postmaster.pid in the server's data directory (the bench runs as its superuser). */
async function postmasterPid(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const [row] = (await client.query<{ data_directory: string }>("SHOW data_directory")).rows;
    const pid = Number(readFileSync(join(row?.data_directory ?? "", "postmaster.pid"), "utf8").split("\n")[0]);
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no postmaster pid in ${row?.data_directory}`);
    return pid;
  } finally {
    await client.end();
  }
}

/** What a replica answered a Check: an allow, a deny, or a refusal (UNAVAILABLE: its grant feed is past the bound). */
export type Answer = "allow" | "deny" | "refused";

/** `checker`'s Check of `subject` reading db/orders from the office network (CHECK with another subject). */
export async function answerOf(checker: Caller, subject: string): Promise<Answer> {
  try {
    return (await checker.call("Check", { ...CHECK, subject })).allow ? "allow" : "deny";
  } catch (err) {
    if ((err as { code?: unknown }).code === status.UNAVAILABLE) return "refused";
    throw err;
  }
}

/** Asks back to back (one Check in flight) until `subject` is allowed; the ms it took, or a failure past `limitMs`. */
export async function untilAllowed(checker: Caller, subject: string, limitMs: number): Promise<number> {
  const since = performance.now();
  while ((await answerOf(checker, subject).catch(() => "error")) !== "allow") {
    if (performance.now() - since > limitMs) throw new Error(`${subject} not allowed within ${limitMs} ms`);
  }
  return performance.now() - since;
}

/** An engineer's read on db/orders with a ticket, which the catalogue auto-approves; the grant's id. */
export async function readGrant(caller: Caller, seconds = 600): Promise<string> {
  const request = await caller.call("RequestAccess", {
    resource: CHECK.resource,
    actions: ["read"],
    duration: { seconds },
    justification: "benchmark: reading stuck orders for INC-77",
    ticket: "INC-77",
  });
  if (request.state !== "APPROVED" || !request.grant) throw new Error(`read on db/orders not auto-approved: ${request.state_reason}`);
  return request.grant.id;
}

/**
 * One h2load run (bench/h2load.ts's arguments and summary parser), resolved once h2load's output has closed;
 * unlike runH2load, its process is tracked with the replicas, so a bench ended by a signal leaves none behind.
 * Killed 60 s past its duration.
 */
export async function h2loadRun(
  load: H2loadLoad,
): Promise<{ seconds: number; succeeded: number; failed: number; errored: number; latencyUs: { p50: number; p99: number } }> {
  await rm(load.logFile, { force: true });
  const args = h2loadArgs(load);
  const output = await new Promise<string>((resolve, reject) => {
    // Tracked like the replicas, so a bench ended by a signal leaves no h2load behind.
    const child = started(spawn("h2load", args, { stdio: ["ignore", "pipe", "pipe"] }));
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), ((load.seconds ?? 60) + 60) * 1000);
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`h2load ${args.join(" ")} exited (${code ?? signal}):\n${out}`));
    });
  });
  const latencies: number[] = [];
  for (const line of (await readFile(load.logFile, "utf8").catch(() => "")).split("\n")) {
    const [, httpStatus, us] = line.split("\t");
    if (httpStatus === "200") latencies.push(Number(us));
  }
  await rm(load.logFile, { force: true });
  return { ...parseSummary(output), latencyUs: latencies.length > 0 ? pct(latencies) : { p50: NaN, p99: NaN } };
}
