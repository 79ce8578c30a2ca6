// `./bin/jitgate` on a Node older than 24 re-runs itself under tools/node: a signal to that wrapper must reach the
// server behind it, and the wrapper must end the way the server ended (exit code, or the same signal).
// The wrapper runs under the older Node found on PATH; without one, JITGATE_REEXEC=1 makes Node 24 take the same path.
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { connect } from "node:net";
import { delimiter, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { REAL_BUNDLE, removeDir, ROOT, tempDir } from "../support/bundles.ts";

const BOUND_MS = 20_000;

/**
 * The Node 24 the wrapper re-runs with: the one `make` installs into tools/node, or (where a newer system node
 * made `make` skip that) the one running this test, named by JITGATE_NODE24.
 */
const TOOLS_NODE = join(ROOT, "tools", "node", "node_modules", "node", "bin", "node");
const NODE24 = existsSync(TOOLS_NODE) ? TOOLS_NODE : process.execPath;

/** The first `node` on PATH older than 24, else Node 24 told to re-run itself anyway. */
function wrapperRuntime(): { node: string; env: NodeJS.ProcessEnv } {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const node = join(dir, "node");
    if (!existsSync(node)) continue;
    try {
      const major = Number(execFileSync(node, ["-p", "process.versions.node.split('.')[0]"], { timeout: 10_000 }).toString());
      if (major < 24) return { node, env: { ...process.env, JITGATE_NODE24: NODE24 } };
    } catch {
      continue; // not a runnable node
    }
  }
  return { node: process.execPath, env: { ...process.env, JITGATE_REEXEC: "1", JITGATE_NODE24: NODE24 } };
}

interface Wrapped {
  readonly wrapper: ChildProcess & { pid: number };
  readonly server: number;
  readonly ports: readonly string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly stdout: () => string;
}

async function childrenOf(pid: number): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) found.push(Number(entry));
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** "R", "S", "T" (stopped), ... from /proc/<pid>/stat. */
async function stateOf(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
}

async function until(what: string, ok: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + BOUND_MS;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50)); // a process state cannot be awaited, only looked at
  }
}

function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`${what} did not happen within ${BOUND_MS} ms`)), BOUND_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** What connecting to host:port gives: "connected" or the error code (ECONNREFUSED once nothing listens). */
function connectOutcome(address: string): Promise<string> {
  const at = address.lastIndexOf(":");
  return new Promise((ok) => {
    const socket = connect({ host: address.slice(0, at), port: Number(address.slice(at + 1)) });
    socket.once("connect", () => {
      socket.destroy();
      ok("connected");
    });
    socket.once("error", (err: NodeJS.ErrnoException) => ok(err.code ?? err.message));
  });
}

describe("bin/jitgate re-run under Node 24 passes signals through", { skip: process.platform !== "linux" && "reads /proc" }, () => {
  const runtime = wrapperRuntime();
  const started: number[] = [];
  let dir: string;
  before(async () => {
    dir = await tempDir();
  });
  after(async () => {
    for (const pid of started) if (alive(pid)) process.kill(pid, "SIGKILL");
    await removeDir(dir);
  });

  // detached: the wrapper leads a process group of its own, as a terminal's foreground job does.
  async function serve(name: string): Promise<Wrapped> {
    // One process: what is under test is the wrapper's signal forwarding (serve-workers.test.ts has the cluster's).
    const args = [
      "serve",
      "--dev",
      "--workers",
      "1",
      "--listen",
      "127.0.0.1:0",
      "--metrics-listen",
      "127.0.0.1:0",
      "--data-dir",
      join(dir, name),
    ];
    const wrapper = spawn(runtime.node, [join(ROOT, "bin", "jitgate"), ...args, "--bundle", REAL_BUNDLE], {
      cwd: ROOT,
      env: runtime.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    assert.ok(wrapper.pid !== undefined, "wrapper started");
    started.push(wrapper.pid);
    const exited = once(wrapper, "exit").then(([code, signal]) => ({
      code: code as number | null,
      signal: signal as NodeJS.Signals | null,
    }));
    let stdout = "";
    let stderr = "";
    wrapper.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    const ports = await within(
      new Promise<string[]>((ok, fail) => {
        wrapper.stderr.on("data", (d: Buffer) => {
          stderr += d.toString();
          const m = /jitgate listening on (\S+).*\n\s+metrics: http:\/\/([^/\s]+)\//.exec(stderr);
          if (m) ok([m[1] as string, m[2] as string]);
        });
        void exited.then((e) => fail(new Error(`serve exited (${e.code ?? e.signal}): ${stderr}`)));
      }),
      "serve listening",
    );
    const children = await childrenOf(wrapper.pid);
    assert.equal(children.length, 1, `one server process under the wrapper, found ${children.join(", ")}`);
    const server = children[0] as number;
    started.push(server);
    const cmdline = await readFile(`/proc/${server}/cmdline`, "utf8");
    assert.ok(cmdline.startsWith(`${NODE24}\0`) && /bin\/jitgate\0serve\0/.test(cmdline), `the server runs under ${NODE24}: ${cmdline}`);
    return { wrapper: wrapper as ChildProcess & { pid: number }, server, ports, exited, stdout: () => stdout };
  }

  async function assertAllGone(w: Wrapped): Promise<void> {
    assert.equal(alive(w.server), false, "the server process is gone when the wrapper exits");
    for (const port of w.ports) assert.equal(await connectOutcome(port), "ECONNREFUSED", `${port} is free again`);
  }

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    test(`${signal} to the wrapper drains the server, frees its ports, and the wrapper exits 0`, async () => {
      const w = await serve(signal);
      process.kill(w.wrapper.pid, signal);
      assert.deepEqual(await within(w.exited, "wrapper exit"), { code: 0, signal: null });
      await assertAllGone(w);
      assert.match(w.stdout(), new RegExp(`"signal":"${signal}","msg":"shutting down"`));
    });
  }

  test("a Ctrl-C to the wrapper's process group reaches the server once, so it drains and exits 0", async () => {
    const w = await serve("group-sigint");
    process.kill(-w.wrapper.pid, "SIGINT"); // what a terminal does: the whole foreground group
    assert.deepEqual(await within(w.exited, "wrapper exit"), { code: 0, signal: null });
    await assertAllGone(w);
    assert.equal(w.stdout().match(/"msg":"shutting down"/g)?.length, 1);
  });

  test("SIGHUP, which serve does not catch, ends the server and the wrapper dies of SIGHUP too", async () => {
    const w = await serve("sighup");
    process.kill(w.wrapper.pid, "SIGHUP");
    assert.deepEqual(await within(w.exited, "wrapper exit"), { code: null, signal: "SIGHUP" });
    await assertAllGone(w);
  });

  test("a server killed on its own takes the wrapper down with the same signal", async () => {
    const w = await serve("server-killed");
    process.kill(w.server, "SIGKILL");
    assert.deepEqual(await within(w.exited, "wrapper exit"), { code: null, signal: "SIGKILL" });
    await assertAllGone(w);
  });

  test("Ctrl-Z stops the server with the wrapper, SIGCONT resumes both, and SIGTERM still drains", async () => {
    const w = await serve("job-control");
    process.kill(w.wrapper.pid, "SIGTSTP");
    await until("both stopped", async () => (await stateOf(w.wrapper.pid)) === "T" && (await stateOf(w.server)) === "T");
    process.kill(w.wrapper.pid, "SIGCONT");
    await until("both running", async () => (await stateOf(w.wrapper.pid)) !== "T" && (await stateOf(w.server)) !== "T");
    assert.equal(await connectOutcome(w.ports[0] as string), "connected");
    process.kill(w.wrapper.pid, "SIGTERM");
    assert.deepEqual(await within(w.exited, "wrapper exit"), { code: 0, signal: null });
    await assertAllGone(w);
  });
});
