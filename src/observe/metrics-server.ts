// A small plain-HTTP listener for what operators poll: Prometheus scrapes /metrics, load balancers and
// orchestrators probe /healthz. It is separate from the gRPC port so it can be bound to an internal address.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { formatListen } from "../config.ts";
import type { JitgateMetrics } from "./metrics.ts";

/** Whether a database file takes writes now; why not, and since when (ms since the epoch). */
export interface WritesReport {
  readonly possible: boolean;
  readonly reason?: string;
  readonly since?: number;
}

/** What jitgate can do now; /healthz renders it with healthBody, and `decisions.serving` picks 200 or 503. */
export interface HealthReport {
  /** Checks are answered, and their records kept: a policy is loaded and the decision log keeps up. */
  decisions: { serving: boolean; reason?: string };
  /** Lifecycle writes (requests, reviews, grants, revocations, audit) to the store commit. */
  writes: WritesReport;
  policy: { ready: boolean; revision?: string };
  /** On a shared store (PostgreSQL): whether the grant feed was read within its bound (else grant-based allows are refused). */
  grantFeed?: { fresh: boolean; staleForMs: number; boundMs: number };
  decisionLog: {
    /** No decision record is at risk: the queue is below its high-water mark. */
    keepingUp: boolean;
    queueDepth: number;
    queueCapacity: number;
    dropped: number;
    /** Whether its own file (decisions.db) takes batches now; a failing batch waits in the queue. */
    writes: WritesReport;
  };
}

/** A health answer already rendered: a cluster's primary reports on its workers (src/cli/serve-cluster.ts). */
export interface RenderedHealth {
  readonly serving: boolean;
  readonly body: string;
}

export interface MetricsServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** One process's metrics, or a cluster's primary aggregating its workers'. */
  metrics: Pick<JitgateMetrics, "metricsText" | "contentType">;
  health: () => HealthReport | RenderedHealth;
  /** Told about a scrape or health check that threw; the client only sees a fixed 500 text. */
  onError?: (err: unknown) => void;
}

export interface RunningMetricsServer {
  /** The scrape URL, e.g. `http://127.0.0.1:9464/metrics`. */
  readonly url: string;
  /** `host:port` as bound (IPv6 in brackets). */
  readonly address: string;
  /** Stops listening and drops open connections, keep-alive ones included, so shutdown never waits. */
  close(): Promise<void>;
}

const ALLOW = "GET, HEAD";

export async function startMetricsServer(opts: MetricsServerOptions): Promise<RunningMetricsServer> {
  const server = createServer(
    // Scrapers and probes send tiny requests; there is no reason to wait long for their headers.
    { headersTimeout: 10_000, requestTimeout: 30_000 },
    // `answer` catches what the sources throw; this catch is for a failed write, so nothing is left unhandled.
    (req, res) => void answer(opts, req, res).catch(() => res.destroy()),
  );
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen({ host: opts.host, port: opts.port }, () => {
      server.off("error", fail);
      ok();
    });
  });
  const bound = server.address();
  const port = bound !== null && typeof bound === "object" ? bound.port : opts.port;
  const address = formatListen(opts.host, port);

  let closing: Promise<void> | undefined;
  return {
    url: `http://${address}/metrics`,
    address,
    close() {
      closing ??= new Promise<void>((done, fail) => {
        server.close((err) => (err ? fail(err) : done()));
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

async function answer(opts: MetricsServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? "/").split("?", 1)[0];
  if (path !== "/metrics" && path !== "/healthz") return send(res, req, 404, "text/plain; charset=utf-8", "not found\n");
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("Allow", ALLOW);
    return send(res, req, 405, "text/plain; charset=utf-8", "method not allowed\n");
  }
  try {
    if (path === "/metrics") {
      const text = await opts.metrics.metricsText();
      return send(res, req, 200, opts.metrics.contentType, text);
    }
    const report = opts.health();
    const health = "body" in report ? report : { serving: report.decisions.serving, body: healthBody(report) };
    return send(res, req, health.serving ? 200 : 503, "application/json", health.body);
  } catch (err) {
    // The cause can hold internals (paths, SQL); it goes to the caller's log, never to the client.
    opts.onError?.(err);
    return send(res, req, 500, "text/plain; charset=utf-8", `${path === "/metrics" ? "metrics" : "health"} unavailable\n`);
  }
}

/**
 * The /healthz body (times in RFC 3339, UTC):
 * `{"decisions": {"serving", "reason"?}, "writes": {"possible", "reason"?, "since"?},
 *   "policy": {"ready", "revision"?},
 *   "decision_log": {"keeping_up", "queue_depth", "queue_capacity", "dropped", "writes": {"possible", "reason"?, "since"?}},
 *   "grant_feed"?: {"fresh", "stale_for_ms", "bound_ms"}}` (grant_feed on a shared store only)
 */
export function healthBody(report: HealthReport): string {
  const log = report.decisionLog;
  return JSON.stringify({
    decisions: report.decisions.serving ? { serving: true } : { serving: false, reason: report.decisions.reason },
    writes: writesBody(report.writes),
    policy: report.policy.revision === undefined ? { ready: report.policy.ready } : { ...report.policy },
    decision_log: {
      keeping_up: log.keepingUp,
      queue_depth: log.queueDepth,
      queue_capacity: log.queueCapacity,
      dropped: log.dropped,
      writes: writesBody(log.writes),
    },
    ...(report.grantFeed === undefined
      ? {}
      : {
          grant_feed: { fresh: report.grantFeed.fresh, stale_for_ms: report.grantFeed.staleForMs, bound_ms: report.grantFeed.boundMs },
        }),
  });
}

/** Only the fields the body documents, whatever else the source carries. */
function writesBody(w: WritesReport): { possible: boolean; reason?: string; since?: string } {
  if (w.possible) return { possible: true };
  return w.since === undefined
    ? { possible: false, reason: w.reason }
    : { possible: false, reason: w.reason, since: new Date(w.since).toISOString() };
}

function send(res: ServerResponse, req: IncomingMessage, status: number, contentType: string, body: string): void {
  res.statusCode = status;
  res.setHeader("Content-Type", contentType);
  res.setHeader("Content-Length", Buffer.byteLength(body));
  // Every answer is a snapshot of now; a cached one would hide a change in health.
  res.setHeader("Cache-Control", "no-store");
  // HEAD gets the same status and headers, never a body.
  res.end(req.method === "HEAD" ? undefined : body);
}
