import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { JitgateMetrics, type MetricSources } from "../../src/observe/metrics.ts";
import { startMetricsServer, type RunningMetricsServer } from "../../src/observe/metrics-server.ts";

/** Sources a test can change between scrapes. */
function fakeSources(): MetricSources & { grants: number; queueDepth: number; dropped: number; revision?: string; up: boolean } {
  return {
    grants: 0,
    queueDepth: 0,
    dropped: 0,
    up: true,
    activeGrants() {
      return this.grants;
    },
    decisionLog() {
      return { queueDepth: this.queueDepth, dropped: this.dropped };
    },
    bundle() {
      return { revision: this.revision };
    },
    serving() {
      return this.up;
    },
  };
}

/** Samples of a Prometheus text exposition, keyed by `name{labels}` exactly as written. */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const split = line.lastIndexOf(" ");
    samples.set(line.slice(0, split), Number(line.slice(split + 1)));
  }
  return samples;
}

describe("JitgateMetrics over HTTP", () => {
  const servers: RunningMetricsServer[] = [];
  after(() => Promise.all(servers.map((s) => s.close())));

  async function serve(metrics: JitgateMetrics) {
    const server = await startMetricsServer({
      host: "127.0.0.1",
      port: 0,
      metrics,
      health: () => ({
        decisions: { serving: true },
        writes: { possible: true },
        policy: { ready: true },
        decisionLog: { keepingUp: true, queueDepth: 0, queueCapacity: 100_000, dropped: 0, writes: { possible: true } },
      }),
    });
    servers.push(server);
    return async () => {
      const res = await fetch(server.url);
      assert.equal(res.status, 200);
      return parseExposition(await res.text());
    };
  }

  test("counts decisions by result and times each one", async () => {
    const metrics = new JitgateMetrics(fakeSources());
    const scrape = await serve(metrics);
    for (let i = 0; i < 3; i++) metrics.decision("allow", 0.00003);
    for (let i = 0; i < 2; i++) metrics.decision("deny", 0.002);
    const s = await scrape();
    assert.equal(s.get('jitgate_decisions_total{result="allow"}'), 3);
    assert.equal(s.get('jitgate_decisions_total{result="deny"}'), 2);
    assert.equal(s.get("jitgate_decision_duration_seconds_count"), 5);
    assert.equal(s.get('jitgate_decision_duration_seconds_bucket{le="0.00005"}'), 3);
    assert.equal(s.get('jitgate_decision_duration_seconds_bucket{le="0.0025"}'), 5);
    assert.equal(s.get('jitgate_decision_duration_seconds_bucket{le="+Inf"}'), 5);
  });

  test("a decision with an unusable latency is still counted and never throws", async () => {
    const metrics = new JitgateMetrics(fakeSources());
    const scrape = await serve(metrics);
    metrics.decision("deny", Number.NaN);
    metrics.decision("deny", -1);
    const s = await scrape();
    assert.equal(s.get('jitgate_decisions_total{result="deny"}'), 2);
    assert.equal(s.get("jitgate_decision_duration_seconds_count"), 0);
  });

  test("shows every request outcome from the start and counts each, with time to approval", async () => {
    const metrics = new JitgateMetrics(fakeSources());
    const scrape = await serve(metrics);
    assert.equal((await scrape()).get('jitgate_access_requests_total{outcome="expired"}'), 0);
    metrics.requestOutcome("pending");
    metrics.requestOutcome("pending");
    metrics.requestOutcome("approved");
    metrics.approved(120);
    metrics.requestOutcome("denied");
    const s = await scrape();
    assert.equal(s.get('jitgate_access_requests_total{outcome="pending"}'), 2);
    assert.equal(s.get('jitgate_access_requests_total{outcome="approved"}'), 1);
    assert.equal(s.get('jitgate_access_requests_total{outcome="denied"}'), 1);
    assert.equal(s.get('jitgate_access_requests_total{outcome="cancelled"}'), 0);
    assert.equal(s.get("jitgate_time_to_approval_seconds_count"), 1);
    assert.equal(s.get("jitgate_time_to_approval_seconds_sum"), 120);
    assert.equal(s.get('jitgate_time_to_approval_seconds_bucket{le="60"}'), 0);
    assert.equal(s.get('jitgate_time_to_approval_seconds_bucket{le="300"}'), 1);
  });

  test("reads active grants, the decision log and serving from their sources at each scrape", async () => {
    const sources = fakeSources();
    const metrics = new JitgateMetrics(sources);
    const scrape = await serve(metrics);
    sources.grants = 7;
    sources.queueDepth = 12;
    sources.dropped = 4;
    let s = await scrape();
    assert.equal(s.get("jitgate_active_grants"), 7);
    assert.equal(s.get("jitgate_decision_log_queue_depth"), 12);
    assert.equal(s.get("jitgate_decision_log_dropped_total"), 4);
    assert.equal(s.get("jitgate_serving"), 1);

    sources.grants = 2;
    sources.dropped = 9;
    sources.up = false;
    s = await scrape();
    assert.equal(s.get("jitgate_active_grants"), 2);
    // The source's running total, not the sum of what earlier scrapes saw.
    assert.equal(s.get("jitgate_decision_log_dropped_total"), 9);
    assert.equal(s.get("jitgate_serving"), 0);
  });

  test("exposes the dropped total as a counter", async () => {
    const text = await new JitgateMetrics(fakeSources()).metricsText();
    assert.match(text, /^# TYPE jitgate_decision_log_dropped_total counter$/m);
  });

  test("counts tokens issued and revocations", async () => {
    const metrics = new JitgateMetrics(fakeSources());
    const scrape = await serve(metrics);
    metrics.tokenIssued();
    metrics.tokenIssued();
    metrics.revoked(3);
    metrics.revoked(0);
    const s = await scrape();
    assert.equal(s.get("jitgate_tokens_issued_total"), 2);
    assert.equal(s.get("jitgate_revocations_total"), 3);
  });

  test("bundle info shows only the revision being served", async () => {
    const sources = fakeSources();
    const metrics = new JitgateMetrics(sources);
    const scrape = await serve(metrics);
    let s = await scrape();
    assert.equal([...s.keys()].filter((k) => k.startsWith("jitgate_policy_bundle_info")).length, 0);

    sources.revision = "rev-a";
    assert.equal((await scrape()).get('jitgate_policy_bundle_info{revision="rev-a"}'), 1);
    sources.revision = "rev-b";
    s = await scrape();
    assert.equal(s.get('jitgate_policy_bundle_info{revision="rev-b"}'), 1);
    assert.equal(s.has('jitgate_policy_bundle_info{revision="rev-a"}'), false);
  });

  test("records policy reloads, the last result and when it happened", async () => {
    const metrics = new JitgateMetrics(fakeSources());
    const scrape = await serve(metrics);
    metrics.bundleActivated(1_700_000_000_000);
    let s = await scrape();
    assert.equal(s.get('jitgate_policy_reloads_total{result="activated"}'), 1);
    assert.equal(s.get('jitgate_policy_reloads_total{result="rejected"}'), 0);
    assert.equal(s.get("jitgate_policy_last_reload_success"), 1);
    assert.equal(s.get("jitgate_policy_last_reload_timestamp_seconds"), 1_700_000_000);

    metrics.bundleRejected(1_700_000_060_500);
    s = await scrape();
    assert.equal(s.get('jitgate_policy_reloads_total{result="rejected"}'), 1);
    assert.equal(s.get("jitgate_policy_last_reload_success"), 0);
    assert.equal(s.get("jitgate_policy_last_reload_timestamp_seconds"), 1_700_000_060.5);
  });

  test("includes the default process metrics under the jitgate_ prefix", async () => {
    const s = await (await serve(new JitgateMetrics(fakeSources())))();
    assert.ok(s.has("jitgate_process_cpu_user_seconds_total"));
    assert.ok([...s.keys()].some((k) => k.startsWith("jitgate_nodejs_heap_size_used_bytes")));
  });

  test("two instances in one process keep separate series", async () => {
    const one = new JitgateMetrics(fakeSources());
    const two = new JitgateMetrics(fakeSources());
    const [scrapeOne, scrapeTwo] = await Promise.all([serve(one), serve(two)]);
    one.decision("allow", 0.0001);
    one.tokenIssued();
    two.decision("deny", 0.0001);
    const [s1, s2] = await Promise.all([scrapeOne(), scrapeTwo()]);
    assert.equal(s1.get('jitgate_decisions_total{result="allow"}'), 1);
    assert.equal(s1.get('jitgate_decisions_total{result="deny"}'), 0);
    assert.equal(s1.get("jitgate_tokens_issued_total"), 1);
    assert.equal(s2.get('jitgate_decisions_total{result="allow"}'), 0);
    assert.equal(s2.get('jitgate_decisions_total{result="deny"}'), 1);
    assert.equal(s2.get("jitgate_tokens_issued_total"), 0);
  });
});
