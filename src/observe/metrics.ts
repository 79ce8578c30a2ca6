// jitgate's Prometheus metrics. Each instance owns its own Registry, never prom-client's global one, so
// several servers (tests, or a future embedded use) can live in one process without clashing series.
// Values that other parts already know (grants, queue depth, bundle revision) are read by callbacks at scrape
// time instead of being pushed, so they can never drift from the source. In a cluster (`serve --workers`) the
// primary aggregates the workers' registries (metricsJson) with prom-client's AggregatorRegistry: sums, except
// gauges of one shared fact (grants, bundle, serving), which take the max.
import { collectDefaultMetrics, Counter, Gauge, Histogram, type MetricObjectWithValues, type MetricValue, Registry } from "prom-client";
import type { ResourceLimit } from "../errors.ts";

/** Where the scrape-time values come from; each callback is called once per scrape, so keep it cheap. */
export interface MetricSources {
  /** Grants live right now. */
  activeGrants(): number | Promise<number>;
  /** The batched decision log: entries waiting to be written, and entries dropped since start. */
  decisionLog(): { queueDepth: number; dropped: number };
  /** The policy bundle being served; `undefined` before the first one is active. */
  bundle(): { revision: string | undefined };
  /** True while jitgate answers (policy loaded, store writable): the same fact gRPC health reports. */
  serving(): boolean;
}

/** What became of an access request: "pending" counts requests created and waiting for review. */
export type RequestOutcome = "approved" | "denied" | "cancelled" | "expired" | "pending";

const REQUEST_OUTCOMES: readonly RequestOutcome[] = ["approved", "denied", "cancelled", "expired", "pending"];

const REFUSAL_REASONS: readonly ResourceLimit[] = ["in_flight", "connection_in_flight", "request_rate", "decision_log"];

// A decision is a WebAssembly evaluation plus a prepared-statement read: tens of microseconds when warm, a
// slow one is a few milliseconds; 100 ms would already be an incident.
const DECISION_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1];
// Approval waits for a person: from seconds (a colleague at hand) to a day (overnight or across time zones).
const APPROVAL_BUCKETS = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 14400, 86400];

// prom-client's `labels()` returns `{ inc }` with the label values bound; holding them avoids resolving labels
// again on every call.
type CounterChild = ReturnType<Counter["labels"]>;

export class JitgateMetrics {
  readonly #registry = new Registry();

  readonly #decisions: Counter<"result">;
  readonly #allowed: CounterChild;
  readonly #denied: CounterChild;
  readonly #decisionSeconds: Histogram;
  readonly #requestOutcomes: ReadonlyMap<RequestOutcome, CounterChild>;
  readonly #timeToApproval: Histogram;
  readonly #tokensIssued: Counter;
  readonly #revocations: Counter;
  readonly #reloadsActivated: CounterChild;
  readonly #reloadsRejected: CounterChild;
  readonly #failed: CounterChild;
  readonly #policyFailures: Counter<"entrypoint" | "kind">;
  readonly #lastReloadSuccess: Gauge;
  readonly #lastReloadTimestamp: Gauge;
  readonly #refusals: ReadonlyMap<ResourceLimit, CounterChild>;

  constructor(sources: MetricSources) {
    const registers = [this.#registry];

    const decisions = new Counter({
      name: "jitgate_decisions_total",
      help: "Access decisions answered, by result: allow, deny, or error (the policy failed or ran past its time budget, so the answer was a denial).",
      labelNames: ["result"] as const,
      registers,
    });
    this.#decisions = decisions;
    this.#allowed = decisions.labels("allow");
    this.#denied = decisions.labels("deny");
    this.#failed = decisions.labels("error");
    const policyFailures = new Counter({
      name: "jitgate_policy_failures_total",
      help: "Policy evaluations that failed (error) or were stopped at the time budget (timeout), by entrypoint.",
      labelNames: ["entrypoint", "kind"] as const,
      registers,
    });
    this.#policyFailures = policyFailures;
    // Both series exist from the start, so rate() and ratios work before the first deny.
    this.#allowed.inc(0);
    this.#denied.inc(0);
    this.#decisionSeconds = new Histogram({
      name: "jitgate_decision_duration_seconds",
      help: "Time to answer one access decision, in seconds.",
      buckets: DECISION_BUCKETS,
      registers,
    });

    const requests = new Counter({
      name: "jitgate_access_requests_total",
      help: "Access requests by outcome: pending when created, then approved, denied, cancelled or expired.",
      labelNames: ["outcome"] as const,
      registers,
    });
    this.#requestOutcomes = new Map(REQUEST_OUTCOMES.map((outcome) => [outcome, requests.labels(outcome)]));
    for (const child of this.#requestOutcomes.values()) child.inc(0);
    this.#timeToApproval = new Histogram({
      name: "jitgate_time_to_approval_seconds",
      help: "Time from an access request to its approval, in seconds.",
      buckets: APPROVAL_BUCKETS,
      registers,
    });

    new Gauge({
      name: "jitgate_active_grants",
      help: "Grants live right now.",
      registers,
      aggregator: "max",
      async collect() {
        this.set(await sources.activeGrants());
      },
    });
    this.#tokensIssued = new Counter({ name: "jitgate_tokens_issued_total", help: "Access tokens signed and issued.", registers });
    this.#revocations = new Counter({ name: "jitgate_revocations_total", help: "Grants revoked.", registers });

    new Gauge({
      name: "jitgate_policy_bundle_info",
      help: "The policy bundle being served: 1 for its revision; no series before a bundle is active.",
      labelNames: ["revision"] as const,
      registers,
      aggregator: "max",
      collect() {
        // Reset first, so a replaced revision disappears instead of lingering at 1.
        this.reset();
        const { revision } = sources.bundle();
        if (revision !== undefined) this.set({ revision }, 1);
      },
    });
    const reloads = new Counter({
      name: "jitgate_policy_reloads_total",
      help: "Policy bundle loads, by result: activated, or rejected while the previous bundle kept serving.",
      labelNames: ["result"] as const,
      registers,
    });
    this.#reloadsActivated = reloads.labels("activated");
    this.#reloadsRejected = reloads.labels("rejected");
    this.#reloadsActivated.inc(0);
    this.#reloadsRejected.inc(0);
    this.#lastReloadSuccess = new Gauge({
      name: "jitgate_policy_last_reload_success",
      help: "1 if the last policy bundle load was activated, 0 if it was rejected.",
      registers,
      aggregator: "min",
    });
    this.#lastReloadTimestamp = new Gauge({
      name: "jitgate_policy_last_reload_timestamp_seconds",
      help: "When the last policy bundle load (activated or rejected) happened, in Unix seconds.",
      registers,
      aggregator: "max",
    });

    new Gauge({
      name: "jitgate_decision_log_queue_depth",
      help: "Decision log entries waiting to be written.",
      registers,
      collect() {
        this.set(sources.decisionLog().queueDepth);
      },
    });
    // The decision log keeps its own running count; a Counter cannot be set, so each scrape resets it and adds
    // the current total. It stays a counter in the exposition, which is what rate() and `_total` promise.
    new Counter({
      name: "jitgate_decision_log_dropped_total",
      help: "Decision log entries dropped because the queue was full.",
      registers,
      collect() {
        this.reset();
        this.inc(sources.decisionLog().dropped);
      },
    });

    const refused = new Counter({
      name: "jitgate_refused_total",
      help: "Calls refused with RESOURCE_EXHAUSTED before any work, by the limit that refused them.",
      labelNames: ["reason"] as const,
      registers,
    });
    this.#refusals = new Map(REFUSAL_REASONS.map((reason) => [reason, refused.labels(reason)]));
    for (const child of this.#refusals.values()) child.inc(0);

    new Gauge({
      name: "jitgate_serving",
      help: "1 while jitgate answers (policy loaded and store writable), else 0.",
      registers,
      aggregator: "max",
      collect() {
        this.set(sources.serving() ? 1 : 0);
      },
    });

    // Each call adds its own collectors to this registry only (process CPU, memory, event loop lag, GC).
    collectDefaultMetrics({ register: this.#registry, prefix: "jitgate_" });
  }

  /** One answered decision. On the hot path: no allocation here beyond prom-client's own. */
  decision(result: "allow" | "deny" | "error", latencySeconds: number): void {
    (result === "allow" ? this.#allowed : result === "deny" ? this.#denied : this.#failed).inc();
    // prom-client throws on a non-finite value; a bad clock reading must never fail a decision.
    if (Number.isFinite(latencySeconds) && latencySeconds >= 0) this.#decisionSeconds.observe(latencySeconds);
  }

  /** A policy evaluation failed or was stopped at its budget. */
  policyFailed(entrypoint: string, kind: "error" | "timeout"): void {
    this.#policyFailures.labels(entrypoint, kind).inc();
  }

  requestOutcome(outcome: RequestOutcome): void {
    this.#requestOutcomes.get(outcome)?.inc();
  }

  /** A request was approved `afterSeconds` after it was made. Counting the outcome is `requestOutcome`'s job. */
  approved(afterSeconds: number): void {
    if (Number.isFinite(afterSeconds) && afterSeconds >= 0) this.#timeToApproval.observe(afterSeconds);
  }

  /** A call refused at one of jitgate's limits (in flight, rate, decision log). */
  refused(limit: ResourceLimit): void {
    this.#refusals.get(limit)?.inc();
  }

  tokenIssued(): void {
    this.#tokensIssued.inc();
  }

  revoked(count: number): void {
    if (count > 0) this.#revocations.inc(count);
  }

  /** A policy bundle became the serving one at `atMs` (epoch milliseconds, from the clock). */
  bundleActivated(atMs: number): void {
    this.#reloadsActivated.inc();
    this.#lastReloadSuccess.set(1);
    this.#lastReloadTimestamp.set(atMs / 1000);
  }

  /** A policy bundle was rejected at `atMs`; the previous one, if any, keeps serving. */
  bundleRejected(atMs: number): void {
    this.#reloadsRejected.inc();
    this.#lastReloadSuccess.set(0);
    this.#lastReloadTimestamp.set(atMs / 1000);
  }

  /** Decisions answered since start, all results (for a cluster worker's health report; not the hot path). */
  async decisionsAnswered(): Promise<number> {
    return (await this.#decisions.get()).values.reduce((sum, v) => sum + v.value, 0);
  }

  /** This registry as `AggregatorRegistry.aggregate` takes it, for a cluster's primary to aggregate. */
  metricsJson(): Promise<MetricObjectWithValues<MetricValue<string>>[]> {
    return this.#registry.getMetricsAsJSON();
  }

  /** The Prometheus text exposition; rejects if a source callback throws. */
  metricsText(): Promise<string> {
    return this.#registry.metrics();
  }

  get contentType(): string {
    return this.#registry.contentType;
  }
}
