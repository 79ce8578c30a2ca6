// `jitgate serve --workers N`: N processes on one address and one data directory, behind one primary that serves
// /metrics and /healthz, replaces a worker that dies and drains them all on SIGTERM.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import Database from "better-sqlite3";
import { accessServiceDefinition, loadAccessPackage } from "../../src/proto/loader.ts";
import { STORE_FILE } from "../../src/store/sqlite.ts";
import type { AccessRequest, CheckResponse, Grant } from "../support/api.ts";
import { tokenFor } from "../support/api.ts";
import { removeDir, tempDir } from "../support/bundles.ts";
import { spawnDevServe } from "../support/jitgate.ts";

const AccessClient = grpc.makeGenericClientConstructor(accessServiceDefinition(loadAccessPackage()), "AccessService");
type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

/** A client on a TCP connection of its own (grpc-js otherwise shares one connection per address in a process). */
function freshConnection(address: string) {
  const client = new AccessClient(address, grpc.credentials.createInsecure(), {
    "grpc.use_local_subchannel_pool": 1,
  }) as unknown as grpc.Client & Record<string, Unary>;
  return {
    call<T>(method: string, token: string, request: object, deadlineMs = 5_000): Promise<T> {
      const md = new grpc.Metadata();
      md.set("authorization", `Bearer ${token}`);
      return new Promise((ok, fail) =>
        (client[method] as Unary).call(client, request, md, { deadline: Date.now() + deadlineMs }, (err, res) =>
          err ? fail(err) : ok(res as T),
        ),
      );
    },
    close: () => client.close(),
  };
}

interface WorkerHealth {
  worker: number;
  pid: number;
  serving: boolean;
  decisions_answered: number;
}

async function workersOf(metricsUrl: string): Promise<{ status: number; workers: WorkerHealth[] }> {
  const res = await fetch(metricsUrl.replace(/\/metrics$/, "/healthz"));
  return { status: res.status, workers: ((await res.json()) as { workers: WorkerHealth[] }).workers };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const parentOf = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ")[1]);
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const checkRequest = (subject: string) => ({
  subject,
  subject_groups: ["engineering"],
  resource: "db/orders",
  action: "read",
  context: { source_ip: "10.1.2.3" },
});

describe("jitgate serve --workers 2", { timeout: 120_000 }, () => {
  let dataDir: string;
  let serve: { child: ChildProcess; address: string; metricsUrl: string };
  let checker: string;

  before(async () => {
    dataDir = await tempDir("jitgate-workers-");
    serve = await spawnDevServe(dataDir, ["--workers", "2"]);
    checker = await tokenFor(dataDir, "svc-orders", ["jitgate-checkers"]);
  });
  after(async () => {
    if (serve.child.exitCode === null && serve.child.signalCode === null) {
      serve.child.kill("SIGKILL");
      await once(serve.child, "exit");
    }
    await removeDir(dataDir);
  });

  it("runs two worker processes under the primary, and Checks on many connections are served by both", async () => {
    const { workers } = await workersOf(serve.metricsUrl);
    assert.equal(workers.length, 2);
    for (const w of workers) assert.equal(parentOf(w.pid), serve.child.pid, `worker ${w.worker} is a child of the primary`);

    const connections = Array.from({ length: 8 }, () => freshConnection(serve.address));
    const answers = await Promise.all(
      connections.flatMap((c) => Array.from({ length: 25 }, () => c.call<CheckResponse>("Check", checker, checkRequest("nobody")))),
    );
    for (const c of connections) c.close();
    assert.equal(answers.length, 200);
    assert.ok(answers.every((a) => a.allow === false));

    const total = async () => {
      const text = await (await fetch(serve.metricsUrl)).text();
      return [...text.matchAll(/^jitgate_decisions_total\{result="\w+"\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    };
    // Workers report their counts every 2 s; the aggregated metric is collected at scrape time.
    assert.equal(await total(), 200);
    const served = await until("both workers' reports", async () => {
      const { workers: now } = await workersOf(serve.metricsUrl);
      return now.reduce((s, w) => s + w.decisions_answered, 0) === 200 ? now : undefined;
    });
    for (const w of served) assert.ok(w.decisions_answered > 0, `worker ${w.worker} served some of the Checks`);
  });

  it("refuses a revoked grant on every other connection right after the revoke returns", async () => {
    const holder = await tokenFor(dataDir, "tess", ["engineering"]);
    const own = freshConnection(serve.address);
    const request = await own.call<AccessRequest>("RequestAccess", holder, {
      resource: "db/orders",
      actions: ["read"],
      duration: { seconds: 600 },
      justification: "reading stuck orders for INC-77",
      ticket: "INC-77",
    });
    assert.equal(request.state, "APPROVED");
    const others = Array.from({ length: 8 }, () => freshConnection(serve.address));
    for (const c of others) assert.equal((await c.call<CheckResponse>("Check", checker, checkRequest("tess"))).allow, true);
    const revoked = await own.call<Grant>("RevokeGrant", holder, { grant_id: request.grant?.id, reason: "done early" });
    assert.equal(revoked.status, "GRANT_STATUS_REVOKED");
    for (const c of others) assert.equal((await c.call<CheckResponse>("Check", checker, checkRequest("tess"))).allow, false);
    for (const c of [own, ...others]) c.close();
  });

  it("replaces a worker killed with SIGKILL, and keeps every acknowledged request", async () => {
    const { workers } = await workersOf(serve.metricsUrl);
    const victim = workers[1] as WorkerHealth;
    const connections = Array.from({ length: 4 }, () => freshConnection(serve.address));
    const acknowledged: string[] = [];
    let failed = 0;
    let i = 0;
    const requestOne = async () => {
      const n = i++;
      const token = await tokenFor(dataDir, `subject-${n}`, ["engineering"]);
      const c = connections[n % connections.length] as ReturnType<typeof freshConnection>;
      try {
        const r = await c.call<AccessRequest>("RequestAccess", token, {
          resource: "db/orders",
          actions: ["read"],
          duration: { seconds: 600 },
          justification: `reading stuck orders for INC-${n}`,
          ticket: `INC-${n}`,
        });
        acknowledged.push(r.id);
      } catch {
        failed++;
      }
    };
    for (let k = 0; k < 20; k++) await requestOne();
    process.kill(victim.pid, "SIGKILL");
    const replaced = await until("a replacement worker", async () => {
      await requestOne();
      const { status, workers: now } = await workersOf(serve.metricsUrl);
      const slot = now.find((w) => w.worker === victim.worker);
      return status === 200 && slot && slot.pid !== victim.pid && slot.serving && now.length === 2 ? slot : undefined;
    });
    assert.equal(alive(victim.pid), false);
    assert.equal(parentOf(replaced.pid), serve.child.pid);
    const before = acknowledged.length;
    for (let k = 0; k < 20; k++) await requestOne();
    assert.ok(acknowledged.length - before >= 19, `calls keep being answered after the replacement (failed ${failed} in all)`);
    for (const c of connections) c.close();

    const db = new Database(join(dataDir, STORE_FILE), { readonly: true, fileMustExist: true });
    const stored = new Set(db.prepare("SELECT id FROM requests").pluck().all() as string[]);
    db.close();
    const missing = acknowledged.filter((id) => !stored.has(id));
    assert.deepEqual(missing, [], `every one of ${acknowledged.length} acknowledged requests is in the store`);
  });

  it("ends every worker on SIGTERM to the primary, exits 0 and frees the port", async () => {
    const { workers } = await workersOf(serve.metricsUrl);
    const exited = once(serve.child, "exit");
    serve.child.kill("SIGTERM");
    const [code, signal] = (await exited) as [number | null, string | null];
    assert.deepEqual({ code, signal }, { code: 0, signal: null });
    for (const w of workers) assert.equal(alive(w.pid), false, `worker ${w.worker} (pid ${w.pid}) has ended`);
    const port = Number(serve.address.split(":").pop());
    const probe = createServer();
    await new Promise<void>((ok, fail) => probe.once("error", fail).listen(port, "127.0.0.1", () => ok()));
    await new Promise<void>((ok) => probe.close(() => ok()));
  });
});

describe("jitgate serve with the default --workers (auto: one per core)", { timeout: 120_000 }, () => {
  it("runs one worker per core, and a SIGKILL of the primary leaves no worker behind holding the port", async () => {
    const dataDir = await tempDir("jitgate-workers-auto-");
    try {
      const serve = await spawnDevServe(dataDir);
      const { workers } = await workersOf(serve.metricsUrl);
      assert.equal(workers.length, availableParallelism());
      const exited = once(serve.child, "exit");
      serve.child.kill("SIGKILL");
      await exited;
      // The workers see their primary gone (the IPC channel closes) and end on their own.
      await until("every worker has ended", () => Promise.resolve(workers.every((w) => !alive(w.pid)) || undefined));
      const port = Number(serve.address.split(":").pop());
      await until("the port is free", async () => {
        const probe = createServer();
        const free = await new Promise<boolean>((ok) => probe.once("error", () => ok(false)).listen(port, "127.0.0.1", () => ok(true)));
        if (!free) return undefined;
        await new Promise<void>((ok) => probe.close(() => ok()));
        return true;
      });
    } finally {
      await removeDir(dataDir);
    }
  });
});
