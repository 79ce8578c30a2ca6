// Starts jitgate in-process on a free loopback port with a temp data directory, as `jitgate serve` would.
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { pino } from "pino";
import { type Jitgate, startJitgate } from "../../src/app.ts";
import { loadServeConfig, type ServeFlags } from "../../src/config.ts";
import { REAL_BUNDLE, ROOT } from "./bundles.ts";

export async function startTestJitgate(dataDir: string, flags: ServeFlags = {}): Promise<Jitgate> {
  const config = loadServeConfig(
    { listen: "127.0.0.1:0", metricsListen: "127.0.0.1:0", dataDir, bundle: REAL_BUNDLE, dev: true, ...flags },
    {},
    ROOT,
  );
  return startJitgate(config, pino({ level: "silent" }));
}

const HealthClient = grpc.makeGenericClientConstructor(healthService, "Health");

/** grpc.health.v1.Health/Check for `service` ("" for the whole server): SERVING, NOT_SERVING, ... */
export function healthStatus(address: string, service = ""): Promise<string> {
  const client = new HealthClient(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    check: (req: { service: string }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: { status: string }) => void) => void;
  };
  return new Promise((ok, fail) => {
    client.check({ service }, { deadline: Date.now() + 5_000 }, (err: grpc.ServiceError | null, res: { status: string }) => {
      client.close();
      if (err) fail(err);
      else ok(res.status);
    });
  });
}

/** `jitgate serve --dev` as a child process on a free loopback port over `dataDir`, with `bundle` and quiet logs. */
export function spawnDevServe(dataDir: string, extra: readonly string[] = [], bundle = REAL_BUNDLE, logLevel = "warn") {
  return spawnServe(["--dev", ...extra, "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--bundle", bundle, "--log-level", logLevel]);
}

/**
 * `jitgate serve` as a child process (run by this Node directly, so the pid is the server itself and a signal
 * reaches it), with metrics on a free port; resolves once it prints its listening line.
 */
export function spawnServe(args: readonly string[]): Promise<{ child: ChildProcess; address: string; metricsUrl: string }> {
  const child = spawn(process.execPath, [join(ROOT, "bin", "jitgate"), "serve", "--metrics-listen", "127.0.0.1:0", ...args], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "pipe"],
  });
  return new Promise((ok, fail) => {
    let err = "";
    child.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
      const address = /jitgate listening on (\S+)/.exec(err)?.[1];
      const metricsUrl = /metrics: (\S+)/.exec(err)?.[1];
      if (address && metricsUrl) ok({ child, address, metricsUrl });
    });
    child.once("exit", (code, signal) => fail(new Error(`serve exited (${code ?? signal}): ${err}`)));
  });
}
