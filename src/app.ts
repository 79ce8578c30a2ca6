// The composition root: builds jitgate's parts from a config once and wires them together. `jitgate serve`
// and the end-to-end tests both start jitgate through here, so tests run the same graph users do.
import { randomUUID } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { hostname } from "node:os";
import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { Access } from "./access/access.ts";
import { tapCommittedAudit } from "./access/audit-tap.ts";
import { ChangeFeed } from "./access/feed.ts";
import type { DecisionRecord } from "./access/model.ts";
import type { Clock, DecisionSink } from "./access/ports.ts";
import { RequestRateLimit } from "./access/rate-limit.ts";
import { AuditCheckpointer } from "./checkpoints/checkpointer.ts";
import type { ServeConfig } from "./config.ts";
import { DecisionLog } from "./decisions/decision-log.ts";
import { openJsonLinesSink } from "./decisions/json-lines.ts";
import { openDecisionWriter } from "./decisions/open-writer.ts";
import { createAuthenticator } from "./identity/authenticator.ts";
import { serverCredentials } from "./identity/mtls.ts";
import { type Logger, throttledWarnings } from "./log.ts";
import { countAuditEntries } from "./observe/audit-metrics.ts";
import { JitgateMetrics } from "./observe/metrics.ts";
import { type HealthReport, type RunningMetricsServer, startMetricsServer } from "./observe/metrics-server.ts";
import { PolicyPool } from "./policy/pool.ts";
import { PolicySourceWatcher } from "./policy/source-watcher.ts";
import { BundleWatcher } from "./policy/watcher.ts";
import { accessServiceHandlers } from "./server/grpc/access-service.ts";
import { Admission } from "./server/grpc/admission.ts";
import { accessServiceDefinition, loadAccessPackage } from "./proto/loader.ts";
import { startServer } from "./server/grpc/server.ts";
import { openStoreForServer } from "./store/server-store.ts";
import { WriteTracker } from "./store/sqlite-errors.ts";
import { TokenService } from "./tokens/index.ts";
import { JITGATE_VERSION } from "./version.ts";

export interface Jitgate {
  readonly address: string;
  /** The Prometheus scrape URL; undefined when metrics are off. */
  readonly metricsUrl: string | undefined;
  readonly engine: PolicyPool;
  readonly access: Access;
  readonly decisionLog: DecisionLog;
  readonly metrics: JitgateMetrics;
  /** What /healthz reports, as of the last health check. */
  health(): HealthReport;
  close(): Promise<void>;
}

const HEALTH_INTERVAL_MS = 2_000;
/** The decision log keeps up while its queue holds less than this share of its capacity. */
const DECISION_QUEUE_HIGH_WATER = 0.9;

/** Decision reasons that mean the policy could not decide (a denial, but not the policy's). */
const POLICY_FAILURES = new Set(["policy_timeout", "policy_error"]);

export async function startJitgate(config: ServeConfig, log: Logger, clock: Clock = { now: () => Date.now() }): Promise<Jitgate> {
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const instance = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  // Everything opened so far, closed in reverse if a later step fails: a refused start leaves nothing running.
  const opened: (() => unknown)[] = [];
  const undo = async () => {
    for (const close of opened.reverse()) await Promise.resolve(close()).catch(() => undefined);
  };
  try {
    const policyFailureLog = throttledWarnings(log);
    // Policy runs on worker threads, each evaluation within its budget: a slow rule costs its own caller, no one else.
    const engine = new PolicyPool({
      workers: config.policy.workers,
      timeoutMs: config.policy.timeoutMs,
      onTimeout: ({ entrypoint, revision, timeoutMs }) => {
        metrics.policyFailed(entrypoint, "timeout");
        policyFailureLog.warn(
          { entrypoint, revision, timeout_ms: timeoutMs },
          "policy evaluation stopped at its time budget (policy_timeout)",
        );
      },
      onEvaluationError: ({ entrypoint, revision, message }) => {
        metrics.policyFailed(entrypoint, "error");
        policyFailureLog.warn({ entrypoint, revision, error: message }, "policy failed to evaluate a real input (policy_error)");
      },
    });
    opened.push(() => engine.close());
    const storeLog = throttledWarnings(log);
    const opening = await openStoreForServer(config.store, {
      dataDir: config.dataDir,
      clock,
      onFeedError: (err) => storeLog.warn({ err }, "grant feed: reading the store failed; reconnecting"),
      onFeedFreshness: (fresh) =>
        fresh
          ? log.info("grant feed: read again; grant-based allows are answered")
          : log.error("grant feed: not read within its bound; checks that need a grant are refused (UNAVAILABLE)"),
    });
    const store = opening.store;
    opened.push(() => opening.close());
    log.info({ store: opening.location }, "store opened");
    const tokens = await TokenService.open(config.tokens, clock);
    const auth = await createAuthenticator(config.identity, { clock });
    log.info(auth.describe());

    // Decision records go to decisions.db on a thread of its own (a lock held on it, a backup, a `sqlite3` shell,
    // or a slow disk delays the log, never a Check), or with --store postgres:// to the replicas' database on a
    // pool of its own. The log closes it; the shutdown step "decision store" is a backstop.
    const decisionStore = await openDecisionWriter(config.store, config.dataDir);
    opened.push(() => decisionStore.close());
    const jsonLines = config.decisionLog.jsonLines;
    // Whether the decision log's batches commit, for health (the log retries a failed batch on its own).
    const decisionWrites = new WriteTracker({ now: () => clock.now(), dir: config.dataDir });
    const decisionLog = new DecisionLog({
      writer: {
        insertBatch: (records) => decisionWrites.trackAsync(() => decisionStore.insertBatch(records)),
        pruneBefore: (at, limit) => decisionStore.pruneBefore(at, limit),
        close: () => decisionStore.close(),
      },
      lines: jsonLines
        ? [
            openJsonLinesSink(
              jsonLines,
              { id: instance, version: JITGATE_VERSION },
              {
                onError: (err) => log.error({ err }, "decision log: writing JSON lines failed"),
              },
            ),
          ]
        : [],
      capacity: config.decisionLog.queueCapacity,
      overflow: config.decisionLog.overflow,
      retentionMs: config.decisionLog.retentionMs,
      now: () => clock.now(),
      onError: (err) => log.error({ err }, "decision log: writing or pruning failed; will retry"),
    });
    opened.push(() => decisionLog.close());

    const health: HealthReport = {
      decisions: { serving: false, reason: "starting" },
      writes: { possible: false, reason: "starting" },
      policy: { ready: false },
      decisionLog: {
        keepingUp: true,
        queueDepth: 0,
        queueCapacity: config.decisionLog.queueCapacity,
        dropped: 0,
        writes: { possible: true },
      },
    };
    const metrics = new JitgateMetrics({
      activeGrants: () => store.activeGrantCount(clock.now()),
      decisionLog: () => ({ queueDepth: decisionLog.queueDepth, dropped: decisionLog.dropped }),
      bundle: () => ({ revision: engine.active?.revision }),
      serving: () => health.decisions.serving,
    });
    const decisions: DecisionSink = {
      admit: () => decisionLog.admit(),
      record(d: DecisionRecord) {
        metrics.decision(d.allow ? "allow" : d.reasons.some((r) => POLICY_FAILURES.has(r.code)) ? "error" : "deny", d.latencyUs / 1e6);
        decisionLog.record(d);
      },
    };
    const feed = new ChangeFeed(store, {
      onError: (err) => storeLog.warn({ err }, "the change feed could not read the store; will retry"),
    });
    // Other replicas' commits reach watchers as soon as the store announces them (the feed also polls).
    opening.onAnnounce(() => feed.changed());
    const access = new Access(
      {
        store: tapCommittedAudit(store, (entries) => countAuditEntries(metrics, entries)),
        policy: engine,
        clock,
        newId: randomUUID,
        feed,
        liveGrants: opening.liveGrants,
        adminGroups: config.adminGroups,
        auditorGroups: config.auditorGroups,
        checkerGroups: config.checkerGroups,
        tokens,
        decisions,
        requestRate: config.requestRate && new RequestRateLimit(config.requestRate),
      },
      (err) => log.error({ err }, "recording expiries failed; will retry"),
    );
    opened.push(() => access.stop());

    const bundles = new BundleWatcher(config.bundle, engine, {
      // No unaudited policy change: if the entry cannot be written the bundle is refused.
      activating: ({ revision, previous, file }) =>
        access.auditPolicyBundle("POLICY_BUNDLE_ACTIVATED", {
          revision,
          reason: "policy bundle activated",
          details: { file, previous: previous ?? null, instance },
        }),
      activated: ({ revision, previous, file }) => {
        metrics.bundleActivated(clock.now());
        log.info({ revision, previous, file }, "policy bundle activated");
      },
      rejected: ({ file, reason, serving }) => {
        metrics.bundleRejected(clock.now());
        log.error({ file, reason, serving }, "policy bundle rejected; still serving the previous revision");
        access
          .auditPolicyBundle("POLICY_BUNDLE_REJECTED", {
            revision: serving ?? "",
            reason,
            details: { file, serving: serving ?? null, instance },
          })
          .catch((err: unknown) => log.error({ err }, "audit: could not record the rejected policy bundle"));
      },
    });
    // No valid bundle, no server: jitgate never answers without a policy (fail closed).
    await bundles.start();
    opened.push(() => bundles.close());
    access.start();

    // One signer per data directory: in a cluster, only one worker is given the checkpoints (src/cli/serve-cluster.ts).
    const checkpoints = config.auditCheckpoints;
    const checkpointer =
      checkpoints &&
      new AuditCheckpointer({
        file: checkpoints.file,
        intervalMs: checkpoints.intervalMs,
        issuer: tokens.issuer,
        head: () => store.auditHead(),
        signer: tokens.signer,
        now: () => clock.now(),
        onWritten: (line) => log.info({ seq: line.seq, hash: line.hash, kid: line.kid, file: checkpoints.file }, "audit checkpoint signed"),
        onError: (err) => log.error({ err, file: checkpoints.file }, "audit checkpoint failed; will retry"),
      });
    if (checkpointer) {
      // The first checkpoint at start: a checkpoints file that cannot be written stops the start, not a later timer.
      await checkpointer.checkpoint();
      checkpointer.start();
      opened.push(() => checkpointer.close());
    }

    const pkg = loadAccessPackage();
    const server = await startServer(
      config.listen.host,
      config.listen.port,
      await credentialsFor(config),
      (s) => {
        s.addService(
          accessServiceDefinition(pkg),
          accessServiceHandlers(access, auth, clock, log, new Admission(config.limits, (limit) => metrics.refused(limit))),
        );
        new ReflectionService(pkg).addToServer(s);
      },
      config.limits,
    );
    opened.push(() => server.close());
    // Decisions are served while a policy is loaded and the decision log keeps up (its queue rides out a failing
    // decisions.db); writes apart, from real writes and the store's probe. /healthz reports the same last check.
    const updateHealth = async () => {
      // Decisions first, from what is known now; then the write probe, which a store that stopped answering
      // holds up until its own timeout (meanwhile the decisions part is current).
      health.policy = engine.active ? { ready: engine.ready, revision: engine.active.revision } : { ready: engine.ready };
      const grantFeed = opening.feed();
      if (grantFeed) health.grantFeed = grantFeed;
      const queueCapacity = config.decisionLog.queueCapacity;
      const queueDepth = decisionLog.queueDepth;
      const keepingUp = queueDepth < queueCapacity * DECISION_QUEUE_HIGH_WATER;
      health.decisionLog = { keepingUp, queueDepth, queueCapacity, dropped: decisionLog.dropped, writes: decisionWrites.current };
      health.decisions = !engine.ready
        ? { serving: false, reason: "no policy bundle is loaded" }
        : grantFeed && !grantFeed.fresh
          ? {
              serving: false,
              reason: `the grant feed has not been read for ${grantFeed.staleForMs} ms (bound ${grantFeed.boundMs} ms): grant-based allows are refused`,
            }
          : keepingUp
            ? { serving: true }
            : { serving: false, reason: `the decision log's queue is nearly full (${queueDepth} of ${queueCapacity} records)` };
      server.setServing({ decisions: health.decisions.serving, writes: health.writes.possible });
      health.writes = await store.checkWrites();
      server.setServing({ decisions: health.decisions.serving, writes: health.writes.possible });
    };
    await updateHealth();
    const healthTimer = setInterval(
      () => void updateHealth().catch((err: unknown) => log.error({ err }, "health check failed")),
      HEALTH_INTERVAL_MS,
    );
    opened.push(() => clearInterval(healthTimer));

    let metricsServer: RunningMetricsServer | undefined;
    if (config.metricsListen) {
      metricsServer = await startMetricsServer({
        ...config.metricsListen,
        metrics,
        health: () => health,
        onError: (err) => log.error({ err }, "metrics: a scrape failed"),
      }).catch((err: unknown) => {
        throw new Error(
          `metrics: cannot listen on ${config.metricsListen?.host}:${config.metricsListen?.port} (${(err as Error).message}); give --metrics-listen another address or off`,
          { cause: err },
        );
      });
      opened.push(() => metricsServer?.close());
    }

    let sources: PolicySourceWatcher | undefined;
    if (config.watchPolicies) {
      sources = new PolicySourceWatcher(
        { opa: config.opa, policiesDir: config.policiesDir, capabilities: config.capabilities, out: config.bundle },
        (result) =>
          result.ok
            ? log.info({ revision: result.revision }, "policies rebuilt")
            : log.error({ stage: result.stage, error: result.message }, "policies do not build; still serving the last good bundle"),
        bundles,
      );
      await sources.start();
      opened.push(() => sources?.close());
    }
    log.info({ address: server.address, metrics: metricsServer?.url, revision: engine.active?.revision }, "jitgate serving");

    return {
      address: server.address,
      metricsUrl: metricsServer?.url,
      engine,
      access,
      decisionLog,
      metrics,
      health: () => health,
      async close() {
        // In order, and every step even when one fails (a read-only disk fails the last checkpoint): nothing is left open.
        const steps: [string, () => unknown][] = [
          ["health", () => clearInterval(healthTimer)],
          ["policy sources", () => sources?.close()],
          ["bundle watcher", () => bundles.close()],
          // Ends open WatchGrants/WatchRevocations streams, so shutdown does not wait for watchers to leave.
          ["access", () => access.stop()],
          // In-flight calls finish (and record their decisions) before the decision log is flushed.
          ["server", () => server.close()],
          ["policy workers", () => engine.close()],
          ["decision log", () => decisionLog.close()],
          ["decision store", () => decisionStore.close()],
          ["audit checkpoints", () => checkpointer?.close()],
          ["metrics", () => metricsServer?.close()],
          ["store", () => opening.close()],
        ];
        for (const [part, close] of steps) {
          try {
            await close();
          } catch (err) {
            log.error({ err, part }, "shutdown: closing failed; closing the rest");
          }
        }
      },
    };
  } catch (err) {
    await undo();
    throw err;
  }
}

async function credentialsFor(config: ServeConfig): Promise<grpc.ServerCredentials> {
  if (!config.tls) return grpc.ServerCredentials.createInsecure();
  const { certFile, keyFile } = config.tls;
  const identity = config.identity;
  if (identity.mtls) {
    // Token callers may connect without a certificate when tokens are accepted too.
    return serverCredentials({ caFile: identity.mtls.caFile, certFile, keyFile, requireClientCert: !identity.oidc && !identity.dev });
  }
  return grpc.ServerCredentials.createSsl(null, [{ cert_chain: await readFile(certFile), private_key: await readFile(keyFile) }], false);
}
