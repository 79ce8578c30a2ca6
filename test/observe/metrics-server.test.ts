import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, test } from "node:test";
import { JitgateMetrics, type MetricSources } from "../../src/observe/metrics.ts";
import { type HealthReport, type RunningMetricsServer, startMetricsServer } from "../../src/observe/metrics-server.ts";

function sources(overrides: Partial<MetricSources> = {}): MetricSources {
  return {
    activeGrants: () => 0,
    decisionLog: () => ({ queueDepth: 0, dropped: 0 }),
    bundle: () => ({ revision: "rev-1" }),
    serving: () => true,
    ...overrides,
  };
}

const LOG_KEEPING_UP: HealthReport["decisionLog"] = {
  keepingUp: true,
  queueDepth: 0,
  queueCapacity: 100_000,
  dropped: 0,
  writes: { possible: true },
};

/** A report of a healthy jitgate serving `revision`. */
function healthy(revision = "rev-1"): HealthReport {
  return { decisions: { serving: true }, writes: { possible: true }, policy: { ready: true, revision }, decisionLog: LOG_KEEPING_UP };
}

/** A raw request, for what fetch hides (HEAD bodies, methods fetch refuses). */
function raw(url: string, method: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((ok, fail) => {
    const req = request(url, { method, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => ok({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", fail);
    req.end();
  });
}

describe("metrics server", () => {
  let health: HealthReport;
  let server: RunningMetricsServer;
  let base: string;
  before(async () => {
    health = healthy();
    server = await startMetricsServer({ host: "127.0.0.1", port: 0, metrics: new JitgateMetrics(sources()), health: () => health });
    base = server.url.replace(/\/metrics$/, "");
  });
  after(() => server.close());

  test("names its scrape URL and address on the loopback port it bound", () => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    assert.equal(server.url, `http://${server.address}/metrics`);
    assert.notEqual(server.address, "127.0.0.1:0");
  });

  test("GET /metrics answers the exposition with Prometheus' content type", async () => {
    const res = await fetch(server.url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    assert.match(await res.text(), /^jitgate_policy_bundle_info\{revision="rev-1"\} 1$/m);
  });

  test("a query string does not change the route", async () => {
    assert.equal((await fetch(`${server.url}?name[]=x`)).status, 200);
  });

  test("GET /healthz answers the health report, 200 while serving decisions and 503 when not", async () => {
    let res = await fetch(`${base}/healthz`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    assert.deepEqual(await res.json(), {
      decisions: { serving: true },
      writes: { possible: true },
      policy: { ready: true, revision: "rev-1" },
      decision_log: { keeping_up: true, queue_depth: 0, queue_capacity: 100_000, dropped: 0, writes: { possible: true } },
    });

    health = {
      decisions: { serving: false, reason: "no policy bundle is loaded" },
      writes: { possible: true },
      policy: { ready: false },
      decisionLog: LOG_KEEPING_UP,
    };
    res = await fetch(`${base}/healthz`);
    assert.equal(res.status, 503);
    assert.deepEqual(((await res.json()) as { decisions: unknown }).decisions, { serving: false, reason: "no policy bundle is loaded" });

    health = healthy("rev-2");
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
  });

  test("writes that are not possible leave /healthz at 200 and say why and since when", async () => {
    const since = Date.UTC(2026, 11, 1, 9, 30);
    const full = { possible: false, reason: "the disk is full", since };
    health = { ...healthy(), writes: full, decisionLog: { ...LOG_KEEPING_UP, queueDepth: 42, writes: full } };
    const res = await fetch(`${base}/healthz`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { writes: unknown; decision_log: unknown };
    assert.deepEqual(body.writes, { possible: false, reason: "the disk is full", since: "2026-12-01T09:30:00.000Z" });
    assert.deepEqual(body.decision_log, {
      keeping_up: true,
      queue_depth: 42,
      queue_capacity: 100_000,
      dropped: 0,
      writes: { possible: false, reason: "the disk is full", since: "2026-12-01T09:30:00.000Z" },
    });
    health = healthy();
  });

  test("HEAD answers the same status and headers without a body", async () => {
    const get = await raw(`${base}/healthz`, "GET");
    const head = await raw(`${base}/healthz`, "HEAD");
    assert.equal(head.status, get.status);
    assert.equal(head.headers["content-type"], get.headers["content-type"]);
    assert.equal(head.headers["content-length"], get.headers["content-length"]);
    assert.equal(head.body, "");
    const metrics = await raw(server.url, "HEAD");
    assert.equal(metrics.status, 200);
    assert.equal(metrics.body, "");
  });

  test("an unknown path is 404", async () => {
    assert.equal((await fetch(`${base}/`)).status, 404);
    assert.equal((await fetch(`${base}/metrics/extra`)).status, 404);
  });

  test("a method other than GET or HEAD is 405 and names the allowed ones", async () => {
    for (const method of ["POST", "DELETE", "OPTIONS"]) {
      const res = await raw(server.url, method);
      assert.equal(res.status, 405, method);
      assert.equal(res.headers["allow"], "GET, HEAD");
    }
  });
});

describe("metrics server failures and shutdown", () => {
  test("a scrape whose source throws answers 500 with a short text and reports the error", async () => {
    const reported: unknown[] = [];
    const failing = new JitgateMetrics(
      sources({
        activeGrants: () => {
          throw new Error("SQLITE_BUSY at /var/lib/jitgate/store.db");
        },
      }),
    );
    const server = await startMetricsServer({
      host: "127.0.0.1",
      port: 0,
      metrics: failing,
      health: () => {
        throw new Error("secret detail");
      },
      onError: (err) => reported.push(err),
    });
    try {
      const scrape = await fetch(server.url);
      assert.equal(scrape.status, 500);
      assert.equal(await scrape.text(), "metrics unavailable\n");
      const probe = await fetch(server.url.replace(/metrics$/, "healthz"));
      assert.equal(probe.status, 500);
      assert.equal(await probe.text(), "health unavailable\n");
      assert.equal(reported.length, 2);
    } finally {
      await server.close();
    }
  });

  test("close does not wait for an idle keep-alive connection, and may be called twice", { timeout: 5_000 }, async () => {
    const server = await startMetricsServer({
      host: "127.0.0.1",
      port: 0,
      metrics: new JitgateMetrics(sources()),
      health: () => healthy(),
    });
    const res = await fetch(server.url, { headers: { connection: "keep-alive" } });
    await res.text();
    await server.close();
    await server.close();
    await assert.rejects(fetch(server.url));
  });

  test("a port already in use fails the start", async () => {
    const first = await startMetricsServer({
      host: "127.0.0.1",
      port: 0,
      metrics: new JitgateMetrics(sources()),
      health: () => healthy(),
    });
    try {
      const port = Number(new URL(first.url).port);
      await assert.rejects(
        startMetricsServer({
          host: "127.0.0.1",
          port,
          metrics: new JitgateMetrics(sources()),
          health: () => healthy(),
        }),
        { code: "EADDRINUSE" },
      );
    } finally {
      await first.close();
    }
  });

  test("an IPv6 host is written in brackets", async () => {
    // These machines have an IPv6 loopback; where one has none, this fails rather than passing unseen.
    const server = await startMetricsServer({
      host: "::1",
      port: 0,
      metrics: new JitgateMetrics(sources()),
      health: () => healthy(),
    });
    try {
      assert.match(server.url, /^http:\/\/\[::1\]:\d+\/metrics$/);
      assert.equal((await fetch(server.url)).status, 200);
    } finally {
      await server.close();
    }
  });
});
