// One worker of `jitgate serve --workers N`: runs jitgate as one process would, without a metrics server, and
// tells the primary (over the cluster's IPC channel) when it listens, how healthy it is, and its metrics.
import type { Jitgate } from "../app.ts";
import { startJitgate } from "../app.ts";
import type { ServeConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import type { HealthReport } from "../observe/metrics-server.ts";
import type { JitgateMetrics } from "../observe/metrics.ts";

/** The environment variable naming a worker's slot (1..N); slot 1 also signs checkpoints and watches sources. */
export const WORKER_SLOT_ENV = "JITGATE_WORKER_SLOT";

const HEALTH_REPORT_MS = 2_000;

export type WorkerMessage =
  | { readonly type: "jitgate:listening"; readonly address: string; readonly revision: string | undefined }
  | { readonly type: "jitgate:health"; readonly health: HealthReport; readonly decisions: number }
  | { readonly type: "jitgate:metrics"; readonly requestId: number; readonly metrics: Awaited<ReturnType<JitgateMetrics["metricsJson"]>> };

export type PrimaryMessage = { readonly type: "jitgate:drain" } | { readonly type: "jitgate:metrics?"; readonly requestId: number };

export async function serveAsWorker(config: ServeConfig, log: Logger): Promise<void> {
  const slot = Number(process.env[WORKER_SLOT_ENV]);
  const first = slot === 1;
  // The primary serves /metrics and /healthz; one worker per data directory signs checkpoints and rebuilds bundles
  // (every worker watches the bundle file, so a swap reaches all of them, and each records its own activation).
  const own: ServeConfig = Object.freeze({
    ...config,
    metricsListen: undefined,
    watchPolicies: first && config.watchPolicies,
    auditCheckpoints: first ? config.auditCheckpoints : undefined,
  });
  const workerLog = log.child({ worker: slot });
  const jitgate = await startJitgate(own, workerLog);
  const send = (message: WorkerMessage) => {
    if (process.connected) process.send?.(message);
  };
  send({ type: "jitgate:listening", address: jitgate.address, revision: jitgate.engine.active?.revision });
  const report = () =>
    void jitgate.metrics.decisionsAnswered().then(
      (decisions) => send({ type: "jitgate:health", health: jitgate.health(), decisions }),
      () => undefined,
    );
  report();
  const reporter = setInterval(report, HEALTH_REPORT_MS);

  let draining = false;
  const drain = (why: string) => {
    if (draining) return;
    draining = true;
    clearInterval(reporter);
    workerLog.info({ why }, "worker draining");
    closeAndExit(jitgate, workerLog);
  };
  process.on("message", (message: PrimaryMessage) => {
    if (message.type === "jitgate:drain") drain("asked by the primary");
    else if (message.type === "jitgate:metrics?")
      jitgate.metrics.metricsJson().then(
        (metrics) => send({ type: "jitgate:metrics", requestId: message.requestId, metrics }),
        (err: unknown) => workerLog.error({ err }, "metrics: collecting for the primary failed"),
      );
  });
  // A Ctrl-C reaches the whole process group: the primary drains every worker, so a worker waits to be told.
  process.on("SIGINT", () => undefined);
  process.once("SIGTERM", () => drain("SIGTERM"));
  // The primary is gone (killed): nobody is left to replace or stop this worker, so it stops itself.
  process.once("disconnect", () => drain("the primary is gone"));
}

function closeAndExit(jitgate: Jitgate, log: Logger): void {
  jitgate.close().then(
    () => process.exit(0),
    (err: unknown) => {
      log.error({ err }, "shutdown failed");
      process.exit(1);
    },
  );
}
