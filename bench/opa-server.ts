// OPA's own server on jitgate's Rego, for bench/speed.ts: `opa run --server` on a free loopback port over a copy of
// policies/ without its tests (the same modules and catalogue the bundle is built from), plain HTTP/1.1 or with
// --h2c (prior-knowledge HTTP/2 on the same listener). The body every load POSTs is {"input": ...} with the input
// jitgate's policy gets for the bench's Check (src/access/policy-input.ts), alice's live grant in input.grants;
// before any load it is sent once with a real client (fetch over HTTP/1.1, node:http2 over h2c) and the decision
// must be allow with that grant, or the bench stops.
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { cp, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { connect } from "node:http2";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { CheckDecision } from "../src/policy/entrypoints.ts";
import { OPA, POLICIES, removeDir } from "../test/support/bundles.ts";
import { started } from "./servers.ts";

/** The Check entrypoint (jit/check/decision) in OPA's Data API. */
export const OPA_DECISION_PATH = "/v1/data/jit/check/decision";
const READY_WITHIN_MS = 30_000;

export interface OpaServer {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** host:port */
  readonly address: string;
  readonly h2c: boolean;
  stop(): Promise<void>;
}

export function opaVersion(): string {
  return /^Version: (\S+)/m.exec(execFileSync(OPA, ["version"], { encoding: "utf8" }))?.[1] ?? "unknown";
}

/** The request body OPA's Data API takes: the policy's input, as jitgate builds it, under "input". */
export function opaBody(input: object): Buffer {
  return Buffer.from(JSON.stringify({ input }));
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  server.close();
  await once(server, "close");
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

/**
 * `opa run --server` on 127.0.0.1:<free port> (log level error, no telemetry) over a copy of policies/ in a scratch
 * directory under `under`; resolves once /health answers 200. `stop` ends it and removes the copy.
 */
export async function startOpa(options: { h2c: boolean; under?: string }): Promise<OpaServer> {
  const scratch = await mkdtemp(join(options.under ?? tmpdir(), "jitgate-bench-opa-"));
  // A copy without *_test.rego: the modules the bundle is built from (Makefile: --ignore '*_test.rego').
  const policies = join(scratch, "policies");
  await cp(POLICIES, policies, { recursive: true, filter: (src) => !src.endsWith("_test.rego") });
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const args = ["run", "--server", "--addr", address, "--log-level", "error", "--disable-telemetry", ...(options.h2c ? ["--h2c"] : [])];
  const child = started(spawn(OPA, [...args, policies], { stdio: ["ignore", "ignore", "pipe"] }));
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(killer);
    }
    await removeDir(scratch);
  };
  const deadline = Date.now() + READY_WITHIN_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await removeDir(scratch);
      throw new Error(`opa run exited (${child.exitCode ?? child.signalCode}): ${stderr}`);
    }
    const ok = await fetch(`http://${address}/health`, { signal: AbortSignal.timeout(1_000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`opa run did not answer /health within ${READY_WITHIN_MS} ms: ${stderr}`);
    }
    await sleep(50);
  }
  if (child.pid === undefined) throw new Error("opa run has no pid");
  const name = options.h2c ? "OPA server (h2c)" : "OPA server (HTTP/1.1)";
  return { name, child, pid: child.pid, address, h2c: options.h2c, stop };
}

/** Throws unless `answer` (the Data API's response body) is an allow by grant `grantId`. */
function expectAllow(what: string, status: number, answer: string, grantId: string): CheckDecision {
  if (status !== 200) throw new Error(`${what}: HTTP ${status}: ${answer}`);
  const result = (JSON.parse(answer) as { result?: CheckDecision }).result;
  if (!result?.allow || result.grant_id !== grantId) throw new Error(`${what}: not an allow by grant ${grantId}: ${answer}`);
  return result;
}

/** POSTs the body file's exact bytes over HTTP/1.1 with fetch, as wrk sends them. */
export async function verifyOpaHttp1(server: OpaServer, bodyFile: string, grantId: string): Promise<CheckDecision> {
  const response = await fetch(`http://${server.address}${OPA_DECISION_PATH}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: await readFile(bodyFile),
    signal: AbortSignal.timeout(10_000),
  });
  return expectAllow(`${server.name}, HTTP/1.1`, response.status, await response.text(), grantId);
}

/** POSTs the body file's exact bytes over h2c (prior knowledge) with node:http2, as h2load sends them. */
export async function verifyOpaH2c(server: OpaServer, bodyFile: string, grantId: string): Promise<CheckDecision> {
  const session = connect(`http://${server.address}`);
  try {
    const stream = session.request({ ":method": "POST", ":path": OPA_DECISION_PATH, "content-type": "application/json" });
    const chunks: Buffer[] = [];
    let status = 0;
    stream.on("response", (h) => (status = Number(h[":status"])));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.end(await readFile(bodyFile));
    await new Promise((ok, fail) => stream.once("close", ok).once("error", fail));
    return expectAllow(`${server.name}, h2c`, status, Buffer.concat(chunks).toString(), grantId);
  } finally {
    session.close();
  }
}

// ---- wrk (HTTP/1.1), for OPA's plain server

export function wrkVersion(): string {
  // wrk prints its version in its usage text and exits 1.
  const out = spawnSync("wrk", ["--version"], { encoding: "utf8" });
  return /^wrk \S+/m.exec(`${out.stdout}${out.stderr}`)?.[0] ?? "wrk (unknown version)";
}

/** A wrk script that POSTs the body file's exact bytes as JSON (a Lua long string: no escapes to get wrong). */
export async function writeWrkScript(dir: string, bodyFile: string): Promise<string> {
  const body = await readFile(bodyFile, "latin1");
  let level = "=";
  while (body.includes(`]${level}]`)) level += "=";
  const file = join(dir, "opa-post.lua");
  await writeFile(
    file,
    `wrk.method = "POST"\nwrk.body = [${level}[${body}]${level}]\nwrk.headers["Content-Type"] = "application/json"\n`,
    "latin1",
  );
  return file;
}

/**
 * What wrk really sends with `script`: one second of wrk against a loopback HTTP/1.1 server that keeps the
 * first request. The bench compares it with the body file it verified against OPA.
 */
export async function wrkSentRequest(script: string): Promise<{ method: string; contentType: string; body: Buffer }> {
  let first: { method: string; contentType: string; body: Buffer } | undefined;
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      first ??= { method: req.method ?? "", contentType: String(req.headers["content-type"]), body: Buffer.concat(chunks) };
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  try {
    await runWrk({ url: `http://127.0.0.1:${address.port}/capture`, script, connections: 1, threads: 1, seconds: 1 });
  } finally {
    server.closeAllConnections();
    server.close();
  }
  if (!first) throw new Error("wrk sent nothing");
  return first;
}

export interface WrkLoad {
  readonly url: string;
  readonly script: string;
  readonly connections: number;
  readonly threads: number;
  readonly seconds: number;
}

export interface WrkResult {
  readonly requests: number;
  readonly seconds: number;
  readonly perSecond: number;
  /** HTTP responses outside 2xx/3xx, and socket errors (connect, read, write, timeout), as wrk counts them. */
  readonly non2xx: number;
  readonly socketErrors: number;
  /** From wrk's --latency distribution (µs). */
  readonly latencyUs: { p50: number; p99: number };
  readonly output: string;
}

const WRK_UNITS: Record<string, number> = { us: 1, ms: 1e3, s: 1e6, m: 60e6, h: 3600e6 };

/**
 * wrk 4.1's output:
 *   Latency Distribution
 *      50%   19.50ms
 *      99%  290.84ms
 *   11788 requests in 5.09s, 2.65MB read
 *   Socket errors: connect 0, read 0, write 0, timeout 0
 *   Non-2xx or 3xx responses: 5
 * Requests/sec:   2314.60
 */
export function parseWrk(output: string): Omit<WrkResult, "output"> {
  const us = (value: string, unit: string) => Number(value) * (WRK_UNITS[unit] ?? NaN);
  const at = (p: string) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m|h)$`, "m").exec(output);
    return m ? us(m[1] as string, m[2] as string) : NaN;
  };
  const total = /^\s+(\d+) requests in ([\d.]+)(us|ms|s|m|h),/m.exec(output);
  if (!total) throw new Error(`wrk printed no summary:\n${output}`);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const seconds = us(total[2] as string, total[3] as string) / 1e6;
  const requests = Number(total[1]);
  return {
    requests,
    seconds,
    perSecond: Number(/^Requests\/sec:\s+([\d.]+)/m.exec(output)?.[1] ?? requests / seconds),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0),
    socketErrors: socket ? socket.slice(1).reduce((n, x) => n + Number(x), 0) : 0,
    latencyUs: { p50: at("50"), p99: at("99") },
  };
}

/** Runs wrk once (bounded: killed 60 s past its own duration) with --latency, and parses what it printed. */
export function runWrk(load: WrkLoad): Promise<WrkResult> {
  const args = [
    "-t",
    String(load.threads),
    "-c",
    String(load.connections),
    "-d",
    `${load.seconds}s`,
    "--latency",
    "-s",
    load.script,
    load.url,
  ];
  return new Promise((resolve, reject) => {
    const child = started(spawn("wrk", args, { stdio: ["ignore", "pipe", "pipe"] }));
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), (load.seconds + 60) * 1000);
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`wrk ${args.join(" ")} exited (${code ?? signal}):\n${out}`));
      try {
        resolve({ ...parseWrk(out), output: out });
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}
