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
    health = { serving: true, policy: { ready: true, revision: "rev-1" }, store: { writable: true } };
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

  test("GET /healthz answers the health report, 200 while serving and 503 when not", async () => {
    let res = await fetch(`${base}/healthz`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    assert.deepEqual(await res.json(), health);

    health = { serving: false, policy: { ready: false }, store: { writable: true } };
    res = await fetch(`${base}/healthz`);
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), { serving: false, policy: { ready: false }, store: { writable: true } });

    health = { serving: true, policy: { ready: true, revision: "rev-2" }, store: { writable: true } };
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
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
      health: () => ({ serving: true, policy: { ready: true }, store: { writable: true } }),
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
      health: () => ({ serving: true, policy: { ready: true }, store: { writable: true } }),
    });
    try {
      const port = Number(new URL(first.url).port);
      await assert.rejects(
        startMetricsServer({
          host: "127.0.0.1",
          port,
          metrics: new JitgateMetrics(sources()),
          health: () => ({ serving: true, policy: { ready: true }, store: { writable: true } }),
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
      health: () => ({ serving: true, policy: { ready: true }, store: { writable: true } }),
    });
    try {
      assert.match(server.url, /^http:\/\/\[::1\]:\d+\/metrics$/);
      assert.equal((await fetch(server.url)).status, 200);
    } finally {
      await server.close();
    }
  });
});
