// `jitgate serve`: starts jitgate and stops it cleanly on SIGINT/SIGTERM (with --workers N > 1: serve-cluster.ts).
import { startJitgate } from "../app.ts";
import { loadServeConfig, type ServeFlags } from "../config.ts";
import { createLogger } from "../log.ts";
import { servingBanner } from "./serve-banner.ts";

export async function serveCommand(flags: ServeFlags): Promise<void> {
  const config = loadServeConfig(flags, process.env, process.cwd());
  // With decision records on standard output, logs move to standard error: each stream stays one kind of line.
  const log = createLogger(config.logLevel, config.decisionLog.jsonLines === "-" ? process.stderr : process.stdout);
  // Several processes on one address: their own module, so one process stays exactly as it was.
  if (config.workers > 1) return (await import("./serve-cluster.ts")).serveCluster(config, log);
  const jitgate = await startJitgate(config, log);
  process.stderr.write(
    servingBanner({
      address: jitgate.address,
      revision: jitgate.engine.active?.revision,
      metricsUrl: jitgate.metricsUrl,
      dev: config.identity.dev,
    }),
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    jitgate.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGINT", () => stop("SIGINT"));
  process.once("SIGTERM", () => stop("SIGTERM"));
}
