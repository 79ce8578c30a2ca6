// `jitgate serve --workers N`: the primary forks N workers that each run jitgate (node:cluster shares the one
// listening socket, round-robin), serves /metrics (its workers' aggregated) and /healthz (each worker's), replaces
// a worker that dies, and drains them all on SIGINT/SIGTERM. The primary itself serves no gRPC.
import cluster, { type Worker } from "node:cluster";
import { AggregatorRegistry } from "prom-client";
import type { ServeConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import { type HealthReport, healthBody, type RenderedHealth, startMetricsServer } from "../observe/metrics-server.ts";
import { servingBanner } from "./serve-banner.ts";
import { type PrimaryMessage, serveAsWorker, WORKER_SLOT_ENV, type WorkerMessage } from "./serve-worker.ts";

/** How long the workers get to finish their calls and flush their decision logs before they are killed. */
const DRAIN_TIMEOUT_MS = 30_000;
const METRICS_TIMEOUT_MS = 5_000;
/** Workers report every 2 s; a worker silent this long (its event loop stuck) counts as not serving. */
const HEALTH_STALE_MS = 10_000;
/** A worker that dies this soon after its start is replaced only after RESTART_DELAY_MS, so a crash cannot spin. */
const SHORT_LIFE_MS = 10_000;
const RESTART_DELAY_MS = 1_000;

type MetricsJson = Extract<WorkerMessage, { type: "jitgate:metrics" }>["metrics"];

interface Slot {
  readonly worker: Worker;
  readonly startedAt: number;
  listening: boolean;
  health: HealthReport | undefined;
  reportedAt: number;
  decisions: number;
}

interface MetricsRequest {
  readonly waitingFor: Set<number>;
  readonly responses: MetricsJson[];
  finish(err?: Error): void;
}

export async function serveCluster(config: ServeConfig, log: Logger): Promise<void> {
  if (cluster.isWorker) return serveAsWorker(config, log);
  const slots = new Map<number, Slot>();
  const metricsRequests = new Map<number, MetricsRequest>();
  let lastRequestId = 0;
  let started = false;
  let stopping = false;

  const send = (worker: Worker, message: PrimaryMessage) => {
    if (worker.isConnected()) worker.send(message);
  };

  const settleMetrics = (requestId: number, workerId: number, metrics?: MetricsJson) => {
    const request = metricsRequests.get(requestId);
    if (!request?.waitingFor.delete(workerId)) return;
    if (metrics) request.responses.push(metrics);
    if (request.waitingFor.size === 0) request.finish();
  };

  const clusterMetrics = () =>
    new Promise<string>((ok, fail) => {
      const requestId = ++lastRequestId;
      const targets = [...slots.values()].filter((s) => s.listening && s.worker.isConnected());
      const timer = setTimeout(
        () => request.finish(new Error(`a worker sent no metrics within ${METRICS_TIMEOUT_MS} ms`)),
        METRICS_TIMEOUT_MS,
      );
      const request: MetricsRequest = {
        waitingFor: new Set(targets.map((s) => s.worker.id)),
        responses: [],
        finish(err) {
          clearTimeout(timer);
          metricsRequests.delete(requestId);
          if (err) fail(err);
          else AggregatorRegistry.aggregate(request.responses).metrics().then(ok, fail);
        },
      };
      metricsRequests.set(requestId, request);
      if (targets.length === 0) request.finish();
      for (const s of targets) send(s.worker, { type: "jitgate:metrics?", requestId });
    });

  // Node's round-robin (the primary accepts and hands each connection to a worker in turn) balances connections
  // across workers. Known gap: a connection handed to a worker at the moment it dies is kept by nobody, and its
  // client waits for an HTTP/2 handshake until it gives up (a node:cluster issue; `make test-long` kills workers
  // under load and counts it). NODE_CLUSTER_SCHED_POLICY=none lets workers accept for themselves instead: no such
  // orphans, but the kernel may hand every connection to one worker.
  const fork = (slot: number) =>
    new Promise<{ address: string; revision: string | undefined }>((ok, fail) => {
      const worker = cluster.fork({ [WORKER_SLOT_ENV]: String(slot) });
      const entry: Slot = { worker, startedAt: Date.now(), listening: false, health: undefined, reportedAt: 0, decisions: 0 };
      slots.set(slot, entry);
      worker.on("message", (message: WorkerMessage) => {
        if (message.type === "jitgate:listening") {
          entry.listening = true;
          ok({ address: message.address, revision: message.revision });
        } else if (message.type === "jitgate:health") {
          entry.health = message.health;
          entry.decisions = message.decisions;
          entry.reportedAt = Date.now();
        } else if (message.type === "jitgate:metrics") settleMetrics(message.requestId, worker.id, message.metrics);
      });
      worker.once("exit", (code, signal) => {
        fail(new Error(`worker ${slot} exited (${signal ?? code}) before it listened`));
        if (slots.get(slot) === entry) slots.delete(slot);
        for (const requestId of [...metricsRequests.keys()]) settleMetrics(requestId, worker.id);
        if (stopping || !started) return;
        log.error({ worker: slot, pid: worker.process.pid, code, signal }, "worker died; starting another");
        const delay = Date.now() - entry.startedAt < SHORT_LIFE_MS ? RESTART_DELAY_MS : 0;
        setTimeout(() => {
          if (stopping) return;
          fork(slot).then(
            ({ address }) => log.info({ worker: slot, address }, "worker replaced"),
            (err: unknown) => log.error({ err }, "replacing a worker failed; trying again"),
          );
        }, delay);
      });
    });

  const health = (): RenderedHealth => {
    const now = Date.now();
    const workers = [...slots.entries()]
      .sort(([a], [b]) => a - b)
      .map(([slot, s]) => {
        const fresh = s.health !== undefined && now - s.reportedAt < HEALTH_STALE_MS;
        return {
          worker: slot,
          pid: s.worker.process.pid,
          serving: fresh && s.health?.decisions.serving === true,
          decisions_answered: s.decisions,
          health: s.health && (JSON.parse(healthBody(s.health)) as unknown),
          ...(s.health && !fresh ? { stale: `no report for ${Math.round((now - s.reportedAt) / 1000)} s` } : {}),
        };
      });
    const serving = workers.some((w) => w.serving);
    const decisions = serving ? { serving } : { serving, reason: "no worker serves decisions" };
    return { serving, body: JSON.stringify({ decisions, workers }) };
  };

  const metricsServer =
    config.metricsListen &&
    (await startMetricsServer({
      ...config.metricsListen,
      metrics: { metricsText: clusterMetrics, contentType: AggregatorRegistry.PROMETHEUS_CONTENT_TYPE },
      health,
      onError: (err) => log.error({ err }, "metrics: a scrape failed"),
    }).catch((err: unknown) => {
      throw new Error(
        `metrics: cannot listen on ${config.metricsListen?.host}:${config.metricsListen?.port} (${(err as Error).message}); give --metrics-listen another address or off`,
        { cause: err },
      );
    }));

  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, workers: slots.size }, "shutting down: draining every worker");
    const exits = [...slots.values()].map(
      ({ worker, listening }) =>
        new Promise<boolean>((done) => {
          if (worker.isDead()) return done(false);
          const kill = setTimeout(() => {
            log.error({ pid: worker.process.pid, timeout_ms: DRAIN_TIMEOUT_MS }, "worker did not drain in time; killing it");
            worker.process.kill("SIGKILL");
          }, DRAIN_TIMEOUT_MS);
          worker.once("exit", (code) => {
            clearTimeout(kill);
            done(code === 0);
          });
          // A worker still starting has no drain handler yet; its default SIGTERM ends it.
          if (listening) send(worker, { type: "jitgate:drain" });
          else worker.process.kill("SIGTERM");
        }),
    );
    void Promise.all(exits)
      .then(async (clean) => {
        await metricsServer?.close();
        process.exit(clean.every(Boolean) ? 0 : 1);
      })
      .catch((err: unknown) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      });
  };
  process.once("SIGINT", () => stop("SIGINT"));
  process.once("SIGTERM", () => stop("SIGTERM"));

  // Worker 1 first: it creates what the others then open (the store's schema, the dev issuer's and token keys).
  let listening: { address: string; revision: string | undefined }[];
  try {
    const first = await fork(1);
    listening = [first, ...(await Promise.all(Array.from({ length: config.workers - 1 }, (_, i) => fork(i + 2))))];
  } catch (err) {
    if (stopping) return;
    stopping = true;
    for (const { worker } of slots.values()) worker.process.kill("SIGTERM");
    await metricsServer?.close();
    throw err;
  }
  started = true;
  const last = listening[listening.length - 1];
  process.stderr.write(
    servingBanner({
      address: last?.address ?? "",
      revision: last?.revision,
      metricsUrl: metricsServer?.url,
      dev: config.identity.dev,
      workers: config.workers,
    }),
  );
}
