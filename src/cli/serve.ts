// `jitgate serve`: starts jitgate and stops it cleanly on SIGINT/SIGTERM.
import { startJitgate } from "../app.ts";
import { loadServeConfig, type ServeFlags } from "../config.ts";
import { createLogger } from "../log.ts";

export async function serveCommand(flags: ServeFlags): Promise<void> {
  const config = loadServeConfig(flags, process.env, process.cwd());
  // With decision records on standard output, logs move to standard error: each stream stays one kind of line.
  const log = createLogger(config.logLevel, config.decisionLog.jsonLines === "-" ? process.stderr : process.stdout);
  const jitgate = await startJitgate(config, log);
  const next = config.identity.dev
    ? [
        `  DEV MODE: callers are whoever \`jitgate login\` says they are; never expose this server`,
        `  next:   ./bin/jitgate login --as alice --groups engineering`,
        `          ./bin/jitgate request db/orders --actions read --duration 30m --justification "investigate orders stuck in PAYING" --ticket INC-1`,
      ]
    : [`  next:   ./bin/jitgate requests --address ${jitgate.address}`];
  const metrics = jitgate.metricsUrl
    ? [`  metrics: ${jitgate.metricsUrl} (health: ${jitgate.metricsUrl.replace(/\/metrics$/, "/healthz")})`]
    : [];
  process.stderr.write(
    [`jitgate listening on ${jitgate.address} (policy revision ${jitgate.engine.active?.revision})`, ...metrics, ...next, ""].join("\n"),
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
