// examples/replicas/run.sh as a user runs it: PostgreSQL and two replicas on loopback, the commands it prints
// work (a grant requested through one replica is listed by the other), and Ctrl-C leaves nothing behind.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { test } from "node:test";
import { ROOT } from "../support/bundles.ts";

const run = promisify(execFile);

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

test("the replicas example starts PostgreSQL and two replicas, its commands work, and Ctrl-C cleans up", async () => {
  const [pgPort, a, b, ma, mb] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const child = spawn(join(ROOT, "examples", "replicas", "run.sh"), [], {
    cwd: ROOT,
    detached: true,
    env: { ...process.env, PG_PORT: String(pgPort), REPLICA_PORTS: `${a} ${b}`, METRICS_PORTS: `${ma} ${mb}` },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  try {
    const end = Date.now() + 60_000;
    while (!out.includes("Ctrl-C stops")) {
      if (Date.now() > end || child.exitCode !== null) assert.fail(`the example did not start:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const work = /\/\S*jitgate-replicas-\w+/.exec(out)?.[0] as string;
    const jitgate = (args: string[], env: Record<string, string> = {}) =>
      run(join(ROOT, "bin", "jitgate"), args, { cwd: ROOT, env: { ...process.env, ...env } });
    const token = async (dir: string) =>
      (await jitgate(["login", "--print", "--data-dir", join(work, dir), "--as", "alice", "--groups", "engineering"])).stdout.trim();
    const requested = await jitgate(
      [
        "request",
        "db/orders",
        "--address",
        `127.0.0.1:${a}`,
        "--actions",
        "read",
        "--duration",
        "10m",
        "--ticket",
        "INC-1",
        "--justification",
        "reading stuck orders",
      ],
      { JITGATE_TOKEN: await token("replica-0") },
    );
    assert.match(requested.stdout, /APPROVED/);
    const grantId = /grant (\S+):/.exec(requested.stdout)?.[1] as string;
    const listed = await jitgate(["grants", "--address", `127.0.0.1:${b}`], { JITGATE_TOKEN: await token("replica-1") });
    assert.match(listed.stdout, new RegExp(`${grantId}\\s+ACTIVE`));
    process.kill(-(child.pid as number), "SIGINT");
    await exited;
    assert.equal(existsSync(work), false, "the example's directory is removed");
  } finally {
    if (child.exitCode === null) process.kill(-(child.pid as number), "SIGKILL");
  }
});
