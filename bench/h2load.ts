// Runs h2load (nghttp2-client) against a gRPC unary method and reads what it printed and logged. h2load sees
// HTTP/2 only: every gRPC answer, RESOURCE_EXHAUSTED included, is HTTP 200, so its counts say "answered",
// never "allowed"; callers check grpc-status and the answer some other way.
import { execFileSync, spawn } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pct } from "./stats.ts";

export interface H2loadLoad {
  /** http://host:port/package.Service/Method */
  readonly url: string;
  /** A file holding one gRPC frame (see grpcFrame), POSTed as every request's body. */
  readonly bodyFile: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Connections (h2load -c). */
  readonly clients: number;
  /** Streams in flight per connection at most (h2load -m). */
  readonly streams: number;
  /** How long to run (h2load -D), in seconds; or `requests` (h2load -n). */
  readonly seconds?: number;
  readonly requests?: number;
  /**
   * Offered rate across all connections (h2load --rps, which is per connection). h2load 1.52 keeps a backlog
   * of the requests it owes and sends them as soon as a stream is free, at most `streams` per connection, and
   * times each from when it was sent: a client-side queue never shows in its latencies.
   */
  readonly ratePerSecond?: number;
  /** Where h2load writes one line per request (--log-file); removed after reading. */
  readonly logFile: string;
  /** h2load is killed after this many seconds; default 60 s past `seconds` (or 120 s with `requests`). */
  readonly timeoutSeconds?: number;
}

export interface H2loadResult {
  readonly seconds: number;
  /** Answered (completed streams) per second, as h2load computes it. */
  readonly perSecond: number;
  readonly started: number;
  readonly done: number;
  /** Completed with an HTTP 2xx status: every gRPC answer, whatever its grpc-status. */
  readonly succeeded: number;
  readonly failed: number;
  readonly errored: number;
  /** Requests offered by the rate (rate x duration), when a rate was given. */
  readonly offered: number | undefined;
  /** Latency of the completed streams (µs), from the per-request log. */
  readonly latencyUs: { p50: number; p99: number; max: number };
  readonly output: string;
}

/** The 5-byte gRPC length-prefixed frame header (not compressed) and the message. */
export function grpcFrame(message: Uint8Array): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(0, 0);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

export async function writeGrpcBody(dir: string, name: string, message: Uint8Array): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, grpcFrame(message));
  return file;
}

export function h2loadVersion(): string {
  return execFileSync("h2load", ["--version"], { encoding: "utf8" }).trim();
}

export function h2loadArgs(load: H2loadLoad): string[] {
  const args = ["-c", String(load.clients), "-m", String(load.streams), "-d", load.bodyFile, "--log-file", load.logFile];
  for (const [name, value] of Object.entries(load.headers)) args.push("-H", `${name}: ${value}`);
  if (load.seconds !== undefined) args.push("-D", String(load.seconds));
  else args.push("-n", String(load.requests ?? 1));
  if (load.ratePerSecond !== undefined) args.push("--rps", (load.ratePerSecond / load.clients).toFixed(2));
  args.push(load.url);
  return args;
}

/** Runs h2load once (bounded: killed 60 s past its own duration, or at timeoutSeconds) and parses its summary and log. */
export async function runH2load(load: H2loadLoad): Promise<H2loadResult> {
  await rm(load.logFile, { force: true });
  const output = await run(h2loadArgs(load), (load.timeoutSeconds ?? (load.seconds ?? 60) + 60) * 1000);
  const summary = parseSummary(output);
  const latencyUs = await latencyFromLog(load.logFile);
  await rm(load.logFile, { force: true });
  const offered = load.ratePerSecond !== undefined && load.seconds !== undefined ? load.ratePerSecond * load.seconds : undefined;
  return { ...summary, offered, latencyUs, output };
}

function run(args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("h2load", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", reject);
    // "close", not "exit": the summary may still be in the pipes when the process has exited.
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`h2load ${args.join(" ")} exited (${code ?? signal}):\n${out}`));
    });
  });
}

type Summary = Omit<H2loadResult, "offered" | "latencyUs" | "output">;

/**
 * h2load 1.52's summary lines:
 *   finished in 8.00s, 7868.25 req/s, 1.21MB/s
 *   requests: 62946 total, 63202 started, 62946 done, 62946 succeeded, 0 failed, 0 errored, 0 timeout
 */
export function parseSummary(text: string): Summary {
  const finished = /finished in ([\d.]+)(us|ms|s), ([\d.]+) req\/s/.exec(text);
  const requests = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(text);
  if (!finished || !requests) throw new Error(`h2load printed no summary:\n${text}`);
  const scale = { us: 1e-6, ms: 1e-3, s: 1 }[finished[2] as "us" | "ms" | "s"];
  const n = (i: number) => Number(requests[i]);
  return {
    seconds: Number(finished[1]) * scale,
    perSecond: Number(finished[3]),
    started: n(2),
    done: n(3),
    succeeded: n(4),
    failed: n(5),
    errored: n(6),
  };
}

/** The log's lines: start (µs since the epoch), HTTP status (-1: the stream failed), µs to the response's end. */
async function latencyFromLog(file: string): Promise<{ p50: number; p99: number; max: number }> {
  const text = await readFile(file, "utf8").catch(() => "");
  const us: number[] = [];
  for (const line of text.split("\n")) {
    const [, status, latency] = line.split("\t");
    if (status === "200") us.push(Number(latency));
  }
  if (us.length === 0) return { p50: NaN, p99: NaN, max: NaN };
  return { ...pct(us), max: us.reduce((a, b) => Math.max(a, b), 0) };
}
