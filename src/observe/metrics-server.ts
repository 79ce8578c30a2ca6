// A small plain-HTTP listener for what operators poll: Prometheus scrapes /metrics, load balancers and
// orchestrators probe /healthz. It is separate from the gRPC port so it can be bound to an internal address.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { formatListen } from "../config.ts";
import type { JitgateMetrics } from "./metrics.ts";

/** What /healthz reports; `serving` decides the status code (200 or 503). */
export interface HealthReport {
  serving: boolean;
  policy: { ready: boolean; revision?: string };
  store: { writable: boolean };
}

export interface MetricsServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  metrics: JitgateMetrics;
  health: () => HealthReport;
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
    return send(res, req, report.serving ? 200 : 503, "application/json", JSON.stringify(report));
  } catch (err) {
    // The cause can hold internals (paths, SQL); it goes to the caller's log, never to the client.
    opts.onError?.(err);
    return send(res, req, 500, "text/plain; charset=utf-8", `${path === "/metrics" ? "metrics" : "health"} unavailable\n`);
  }
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
