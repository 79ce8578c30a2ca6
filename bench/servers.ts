// The processes the overload bench runs: the do-nothing grpc-js server, a fresh `jitgate serve --dev` per run
// (alice holds a read on db/orders, so CHECK is allowed), and another process holding jitgate.db's write lock.
// None outlives the bench, even when a phase fails.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import Database from "better-sqlite3";
import { DECISIONS_FILE } from "../src/store/decision-store.ts";
import { type Api, api, type Caller, tokenFor, type UnaryMethods } from "../test/support/api.ts";
import { REAL_BUNDLE, removeDir, ROOT } from "../test/support/bundles.ts";
import { spawnDevServe } from "../test/support/jitgate.ts";
import * as watch from "./server-watch.ts";

export type CheckRequest = UnaryMethods["Check"][0];

/** The Check every load sends: alice (who holds a read grant) reading db/orders from the office network. */
export const CHECK: CheckRequest = {
  subject: "alice",
  subject_groups: ["engineering"],
  resource: "db/orders",
  action: "read",
  context: { source_ip: "10.1.2.3" },
};

export interface Served {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly address: string;
  /** The Bearer token h2load sends (jitgate: a caller in jitgate-checkers). */
  readonly token: string;
  /** jitgate's /metrics; undefined for the baseline. */
  readonly metricsUrl: string | undefined;
}

export interface JitgateServer extends Served {
  readonly dataDir: string;
  readonly metricsUrl: string;
  readonly client: Api;
  /** A caller in jitgate-checkers, the same identity h2load's token names. */
  readonly checker: Caller;
}

/** What a jitgate run left: Checks it counted as decided, and the decision records on disk after shutdown. */
export interface ServerEnd {
  readonly checks: number;
  readonly records: number;
  readonly dropped: number;
}

const children = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

function started<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

export async function startBaseline(): Promise<Served> {
  const child = started(
    spawn(process.execPath, [join(ROOT, "bench", "baseline-server.ts")], { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] }),
  );
  const [line] = (await once(child.stderr as NodeJS.ReadableStream, "data")) as [Buffer];
  const address = /listening on (\S+)/.exec(line.toString())?.[1];
  if (!address || child.pid === undefined) throw new Error(`baseline server: ${line.toString()}`);
  return { name: "do-nothing grpc-js", child, pid: child.pid, address, token: "baseline", metricsUrl: undefined };
}

export async function stopBaseline(server: Served): Promise<void> {
  const exited = once(server.child, "exit");
  server.child.kill("SIGTERM");
  await exited;
}

/** A fresh `jitgate serve --dev` on `bundle` with its data directory under `under`. */
export async function startJitgate(under: string, bundle = REAL_BUNDLE): Promise<JitgateServer> {
  const dataDir = await mkdtemp(join(under, "data-"));
  // One process: the bench reads that process's CPU and memory from /proc.
  process.env.JITGATE_WORKERS = "1";
  const served = await spawnDevServe(dataDir, [], bundle, "error");
  started(served.child);
  const client = api(served.address);
  const alice = client.as(await tokenFor(dataDir, "alice", ["engineering"]));
  const grant = await alice.call("RequestAccess", {
    resource: "db/orders",
    actions: ["read"],
    duration: { seconds: 3600 },
    justification: "overload benchmark: Checks for alice",
    ticket: "INC-77",
  });
  if (grant.state !== "APPROVED") throw new Error(`alice's read on db/orders was not auto-approved: ${grant.state_reason}`);
  const token = await tokenFor(dataDir, "svc-bench", ["jitgate-checkers"]);
  const pid = served.child.pid;
  if (pid === undefined) throw new Error("jitgate serve has no pid");
  return { name: "jitgate", ...served, pid, dataDir, client, token, checker: client.as(token) };
}

/** SIGTERM, wait for a clean exit (the decision log drains), then count the records it wrote. */
export async function stopJitgate(server: JitgateServer): Promise<ServerEnd> {
  const final = await watch.scrape(server.metricsUrl);
  server.client.close();
  const exited = once(server.child, "exit");
  server.child.kill("SIGTERM");
  const killer = setTimeout(() => server.child.kill("SIGKILL"), 60_000);
  await exited;
  clearTimeout(killer);
  const db = new Database(join(server.dataDir, DECISIONS_FILE), { readonly: true });
  const records = (db.prepare("SELECT count(*) AS n FROM decisions").get() as { n: number }).n;
  db.close();
  await removeDir(server.dataDir);
  return { checks: watch.sum(final.decisions), records, dropped: final.dropped };
}

/** Another process (`node -e` with better-sqlite3) takes `file`'s write lock (BEGIN IMMEDIATE) and holds it `ms`. */
export async function holdWriteLock(file: string, ms: number): Promise<{ released: Promise<unknown> }> {
  const script = [
    `const db = new (require("better-sqlite3"))(process.argv[1]);`,
    `db.pragma("busy_timeout = 10000");`,
    `db.exec("BEGIN IMMEDIATE");`,
    `process.stdout.write("locked\\n");`,
    `Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(process.argv[2]));`,
    `db.exec("COMMIT");`,
  ].join(" ");
  const holder = started(spawn(process.execPath, ["-e", script, file, String(ms)], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] }));
  const released = once(holder, "exit");
  await Promise.race([once(holder.stdout, "data"), released.then(() => Promise.reject(new Error("the lock holder exited")))]);
  return { released };
}
