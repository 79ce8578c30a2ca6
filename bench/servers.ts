// The processes the overload bench runs: the do-nothing grpc-js server, a fresh `jitgate serve --dev` per run
// (alice holds a read on db/orders, so CHECK is allowed), and another process holding jitgate.db's write lock.
// None outlives the bench, even when a phase fails.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile } from "node:fs/promises";
import { connect } from "node:http2";
import { join } from "node:path";
import Database from "better-sqlite3";
import { accessServiceDefinition, loadAccessPackage } from "../src/proto/loader.ts";
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
  /** alice's own caller token (she holds the read on db/orders). */
  readonly aliceToken: string;
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

/** Tracks `child`: it is killed (SIGKILL) if still running when this process exits. */
export function started<T extends ChildProcess>(child: T): T {
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

/**
 * The do-nothing grpc-js server in `processes` node:cluster workers sharing one port (the primary hands connections
 * to the workers round-robin, as `jitgate serve --workers N` does). `pid` is the primary's; its workers are its
 * children (see server-watch.ts treeCpuMicros).
 */
export async function startBaselineCluster(processes: number): Promise<Served> {
  const script = [
    `const cluster = require("node:cluster");`,
    `cluster.setupPrimary({ exec: process.argv[1], execArgv: [] });`,
    `for (let i = 0; i < Number(process.argv[2]); i++) cluster.fork();`,
    `process.once("SIGTERM", () => { for (const w of Object.values(cluster.workers)) w.process.kill("SIGTERM"); });`,
    `cluster.on("exit", () => { if (Object.keys(cluster.workers).length === 0) process.exit(0); });`,
  ].join(" ");
  const child = started(
    spawn(process.execPath, ["-e", script, join(ROOT, "bench", "baseline-server.ts"), String(processes)], {
      cwd: ROOT,
      stdio: ["ignore", "ignore", "pipe"],
    }),
  );
  const addresses = await new Promise<string[]>((ok, fail) => {
    let err = "";
    child.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
      const found = [...err.matchAll(/listening on (\S+)/g)].map((m) => m[1] as string);
      if (found.length === processes) ok(found);
    });
    child.once("exit", (code, signal) => fail(new Error(`baseline cluster exited (${code ?? signal}): ${err}`)));
  });
  const address = addresses[0];
  if (!address || addresses.some((a) => a !== address) || child.pid === undefined) {
    child.kill("SIGKILL");
    throw new Error(`baseline cluster: workers listen on ${addresses.join(", ")}, not one shared port`);
  }
  return { name: `do-nothing grpc-js x${processes}`, child, pid: child.pid, address, token: "baseline", metricsUrl: undefined };
}

/** SIGINT or SIGTERM to the bench ends it through process.exit, so the exit handler above kills every child. */
export function exitOnSignals(): void {
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));
}

export async function stopBaseline(server: Served): Promise<void> {
  const exited = once(server.child, "exit");
  server.child.kill("SIGTERM");
  await exited;
}

/**
 * A fresh `jitgate serve --dev` on `bundle` with its data directory under `under`; `extra` flags for serve
 * (`["--workers", "2"]`: `pid` is then the cluster primary, its workers its children).
 */
export async function startJitgate(under: string, bundle = REAL_BUNDLE, extra: readonly string[] = []): Promise<JitgateServer> {
  const dataDir = await mkdtemp(join(under, "data-"));
  // One process unless `extra` says otherwise: the bench reads that process's CPU and memory from /proc.
  process.env.JITGATE_WORKERS = "1";
  const served = await spawnDevServe(dataDir, extra, bundle, "error");
  started(served.child);
  const client = api(served.address);
  // alice holds a read on db/orders, for the loads' Checks; bob the same, for the overload bench's run-away ones.
  const readFor = async (id: string, ticket: string): Promise<string> => {
    const token = await tokenFor(dataDir, id, ["engineering"]);
    const request = await client.as(token).call("RequestAccess", {
      resource: "db/orders",
      actions: ["read"],
      duration: { seconds: 3600 },
      justification: `benchmark: Checks for ${id}`,
      ticket,
    });
    if (request.state !== "APPROVED") throw new Error(`${id}'s read on db/orders was not auto-approved: ${request.state_reason}`);
    return token;
  };
  const aliceToken = await readFor("alice", "INC-77");
  await readFor("bob", "INC-78");
  const token = await tokenFor(dataDir, "svc-bench", ["jitgate-checkers"]);
  const pid = served.child.pid;
  if (pid === undefined) throw new Error("jitgate serve has no pid");
  return { name: "jitgate", ...served, pid, dataDir, client, token, checker: client.as(token), aliceToken };
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

/** What a load sends to Check: the body file (one gRPC frame) and the Bearer token, and the answer it must get. */
export interface CheckCall {
  readonly address: string;
  readonly body: string;
  readonly bearer: string;
  /** The grant the allow must name; "" for any (the do-nothing server names a fixed one). */
  readonly grantId: string;
}

/**
 * Sends `call.body`'s exact bytes once to Check over a new HTTP/2 connection (node:http2, the headers h2load sends)
 * and decodes the answer; throws unless grpc-status 0 and an allow by `call.grantId`.
 */
export async function verifyCheck(name: string, call: CheckCall): Promise<void> {
  const check = accessServiceDefinition(loadAccessPackage()).Check;
  if (!check) throw new Error("no Check in the proto");
  const session = connect(`http://${call.address}`);
  try {
    const stream = session.request({
      ":method": "POST",
      ":path": "/jit.v1.AccessService/Check",
      "content-type": "application/grpc",
      te: "trailers",
      authorization: `Bearer ${call.bearer}`,
    });
    const chunks: Buffer[] = [];
    let status = "";
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("trailers", (t) => (status = String(t["grpc-status"])));
    stream.on("response", (h) => {
      if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
    });
    stream.end(await readFile(call.body));
    await new Promise((ok, fail) => stream.once("close", ok).once("error", fail));
    if (status !== "0") throw new Error(`${name}: grpc-status ${status}`);
    const answer = check.responseDeserialize(Buffer.concat(chunks).subarray(5)) as { allow: boolean; reasons: unknown[]; grant_id: string };
    if (!answer.allow) throw new Error(`${name}: denied: ${JSON.stringify(answer.reasons)}`);
    if (call.grantId !== "" && answer.grant_id !== call.grantId)
      throw new Error(`${name}: allowed by ${answer.grant_id}, not ${call.grantId}`);
  } finally {
    session.close();
  }
}

/** alice's live grant on db/orders (startJitgate asked for it), as the policy input carries it, and a token for it. */
export async function aliceGrant(server: JitgateServer): Promise<{ id: string; actions: string[]; expiresAt: number; token: string }> {
  const alice = server.client.as(server.aliceToken);
  const { grants } = await alice.call("ListGrants", {});
  const grant = grants.find((g) => g.resource === CHECK.resource && g.status === "GRANT_STATUS_ACTIVE");
  if (!grant?.expire_time) throw new Error("alice holds no live grant on db/orders");
  const expiresAt = Number(grant.expire_time.seconds) * 1000 + Math.round(grant.expire_time.nanos / 1e6);
  const token = (await alice.call("IssueToken", { grant_id: grant.id })).token;
  return { id: grant.id, actions: grant.actions, expiresAt, token };
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
