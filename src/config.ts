// Server configuration: read once from flags, then the environment, then the embedded defaults; validated
// here into a frozen object that everything else receives. A bad value is an InvalidArgument naming the
// flag and its environment variable.
import { isIP } from "node:net";
import { availableParallelism } from "node:os";
import { isAbsolute, resolve } from "node:path";
import type { RequestRate } from "./access/rate-limit.ts";
import { parseDuration, parseMilliseconds, wholeNumber } from "./config-values.ts";
import { InvalidArgument } from "./errors.ts";
import { LIMIT_DEFAULTS, type LimitFlags, parseServerLimits, type ServerLimits } from "./limits.ts";
import { type IdentityConfig, parseIdentityConfig } from "./identity/config.ts";
import { TLS_FIELDS } from "./identity/mtls.ts";
import { parseTokenConfig, type TokenConfig } from "./tokens/config.ts";

export interface ServeConfig {
  readonly listen: { readonly host: string; readonly port: number };
  readonly dataDir: string;
  /** Where grants, requests and the audit trail live: the SQLite file in the data directory, or a PostgreSQL database shared by replicas. */
  readonly store: StoreConfig;
  readonly bundle: string;
  readonly watchPolicies: boolean;
  readonly policiesDir: string;
  readonly opa: string;
  readonly capabilities: string;
  readonly logLevel: LogLevel;
  readonly identity: IdentityConfig;
  /** The server's own certificate; required for mTLS and for listening beyond loopback. */
  readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined;
  readonly adminGroups: readonly string[];
  readonly auditorGroups: readonly string[];
  readonly checkerGroups: readonly string[];
  readonly tokens: TokenConfig;
  /** Where Prometheus metrics and the health endpoint are served over HTTP; undefined: not served. */
  readonly metricsListen: { readonly host: string; readonly port: number } | undefined;
  readonly decisionLog: {
    /** Also write each decision as a JSON line here ("-": standard output); undefined: only the database. */
    readonly jsonLines: string | undefined;
    /** Decision records older than this are deleted (ms); 0 keeps them forever. */
    readonly retentionMs: number;
    /** Records waiting to be written, at most. */
    readonly queueCapacity: number;
    /** At the cap: "refuse" Checks (RESOURCE_EXHAUSTED) so no answered Check loses its record, or "drop" records (counted). */
    readonly overflow: DecisionLogOverflow;
  };
  /** What the gRPC server takes on at once; past the in-flight limits calls are refused at once (RESOURCE_EXHAUSTED). */
  readonly limits: ServerLimits;
  /** RequestAccess calls per requester; undefined: not limited. */
  readonly requestRate: RequestRate | undefined;
  readonly policy: {
    /** The budget of one policy evaluation (ms): past it a Check is denied (policy_timeout), a lifecycle call UNAVAILABLE. */
    readonly timeoutMs: number;
    /** Worker threads evaluating policy, off the threads that answer calls. */
    readonly workers: number;
  };
  /** Processes serving `listen` together (node:cluster); 1 serves in this process alone. */
  readonly workers: number;
  /** Undefined: this process signs no checkpoints (another worker of its cluster does). */
  readonly auditCheckpoints:
    | {
        readonly file: string;
        /** How often the server signs the audit trail's head, if it moved (ms). */
        readonly intervalMs: number;
      }
    | undefined;
}

export type DecisionLogOverflow = "refuse" | "drop";

export type LogLevel = "debug" | "info" | "warn" | "error";
const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

/** Values as given on the command line (undefined when absent). */
export interface ServeFlags extends LimitFlags {
  listen?: string;
  dataDir?: string;
  store?: string;
  feedBound?: string;
  bundle?: string;
  watchPolicies?: boolean;
  policiesDir?: string;
  opa?: string;
  logLevel?: string;
  dev?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  mtlsCa?: string;
  mtlsGroups?: string;
  oidcIssuer?: string;
  oidcAudience?: string;
  oidcJwksFile?: string;
  oidcJwksUrl?: string;
  oidcGroupsClaim?: string;
  oidcSubjectClaim?: string;
  oidcAlgorithms?: string;
  oidcClockTolerance?: string;
  adminGroups?: string;
  auditorGroups?: string;
  checkerGroups?: string;
  tokenTtl?: string;
  signingKeys?: string;
  tokenAlg?: string;
  tokenIssuer?: string;
  metricsListen?: string;
  decisionLog?: string;
  decisionRetention?: string;
  decisionQueue?: string;
  auditCheckpoints?: string;
  auditCheckpointInterval?: string;
  decisionLogOverflow?: string;
  requestRate?: string;
  requestBurst?: string;
  policyTimeout?: string;
  policyWorkers?: string;
  workers?: string;
}

export type StoreConfig =
  | { readonly kind: "sqlite" }
  | {
      readonly kind: "postgres";
      /** postgres://... (may carry a password: never logged; see storeLocation). */
      readonly url: string;
      /** How long the replica's grant feed may go unread before grant-based allows are refused (ms). */
      readonly feedBoundMs: number;
    };

export const DEFAULTS = {
  listen: "127.0.0.1:7443",
  dataDir: "data",
  store: "sqlite",
  // A replica that has not read the grant feed for this long refuses grant-based allows: long enough to ride out a
  // PostgreSQL failover's first seconds without refusing, short enough that a revocation elsewhere holds soon.
  feedBound: "2s",
  bundle: "bundles/jitgate.tar.gz",
  policiesDir: "policies",
  opa: "tools/bin/opa",
  capabilities: "build/wasm-capabilities.json",
  logLevel: "info",
  adminGroups: "jitgate-admins",
  auditorGroups: "jitgate-auditors",
  checkerGroups: "jitgate-checkers",
  metricsListen: "127.0.0.1:9464",
  decisionRetention: "30d",
  decisionQueue: "100000",
  auditCheckpoints: "audit-checkpoints.jsonl",
  auditCheckpointInterval: "60s",
  decisionLogOverflow: "refuse",
  ...LIMIT_DEFAULTS,
  // People file a few requests a minute at most; a script looping on RequestAccess is stopped at 10.
  requestRate: "10/m",
  // jitgate's own rules evaluate in ~10 µs; 100 ms is 10,000 times that, far below the deadlines services give
  // a Check, and far above what scheduling noise on a loaded machine adds to a quick evaluation.
  policyTimeout: "100ms",
  policyWorkers: "2",
  workers: "auto",
} as const;

export function loadServeConfig(flags: ServeFlags, env: NodeJS.ProcessEnv, cwd: string): ServeConfig {
  const pick = (flag: string | undefined, name: string, fallback: string) => flag ?? env[name] ?? fallback;
  const path = (p: string) => (isAbsolute(p) ? p : resolve(cwd, p));
  const logLevel = pick(flags.logLevel, "JITGATE_LOG_LEVEL", DEFAULTS.logLevel);
  if (!LOG_LEVELS.includes(logLevel as LogLevel)) {
    throw new InvalidArgument("--log-level (JITGATE_LOG_LEVEL)", `'${logLevel}' is not one of ${LOG_LEVELS.join(", ")}`);
  }
  const listen = parseListen(pick(flags.listen, "JITGATE_LISTEN", DEFAULTS.listen));
  const dataDir = path(pick(flags.dataDir, "JITGATE_DATA_DIR", DEFAULTS.dataDir));
  const opt = (flag: string | undefined, name: string) => flag ?? env[name];
  const identity = parseIdentityConfig(
    {
      dev: flags.dev ?? env.JITGATE_DEV,
      dataDir,
      mtls: { caFile: opt(flags.mtlsCa, "JITGATE_MTLS_CA"), groupsFile: opt(flags.mtlsGroups, "JITGATE_MTLS_GROUPS") },
      oidc: {
        issuer: opt(flags.oidcIssuer, "JITGATE_OIDC_ISSUER"),
        audience: opt(flags.oidcAudience, "JITGATE_OIDC_AUDIENCE"),
        jwksFile: opt(flags.oidcJwksFile, "JITGATE_OIDC_JWKS_FILE"),
        jwksUrl: opt(flags.oidcJwksUrl, "JITGATE_OIDC_JWKS_URL"),
        groupsClaim: opt(flags.oidcGroupsClaim, "JITGATE_OIDC_GROUPS_CLAIM"),
        subjectClaim: opt(flags.oidcSubjectClaim, "JITGATE_OIDC_SUBJECT_CLAIM"),
        algorithms: opt(flags.oidcAlgorithms, "JITGATE_OIDC_ALGORITHMS"),
        clockToleranceS: opt(flags.oidcClockTolerance, "JITGATE_OIDC_CLOCK_TOLERANCE"),
      },
    },
    cwd,
  );
  const certFile = opt(flags.tlsCert, "JITGATE_TLS_CERT");
  const keyFile = opt(flags.tlsKey, "JITGATE_TLS_KEY");
  if ((certFile === undefined) !== (keyFile === undefined))
    throw new InvalidArgument(`${TLS_FIELDS.certFile} / ${TLS_FIELDS.keyFile}`, "give both or neither");
  const tls = certFile && keyFile ? Object.freeze({ certFile: path(certFile), keyFile: path(keyFile) }) : undefined;
  if (identity.mtls && !tls)
    throw new InvalidArgument(TLS_FIELDS.certFile, "client certificates (--mtls-ca) need the server's own certificate and key");
  if (!tls && !isLoopback(listen.host)) {
    throw new InvalidArgument(
      "--listen (JITGATE_LISTEN)",
      `${listen.host} is not a loopback address: serving beyond this machine needs TLS (${TLS_FIELDS.certFile})`,
    );
  }
  const groupList = (value: string) =>
    value
      .split(",")
      .map((g) => g.trim())
      .filter(Boolean);
  const adminGroups = groupList(pick(flags.adminGroups, "JITGATE_ADMIN_GROUPS", DEFAULTS.adminGroups));
  const auditorGroups = groupList(pick(flags.auditorGroups, "JITGATE_AUDITOR_GROUPS", DEFAULTS.auditorGroups));
  const checkerGroups = groupList(pick(flags.checkerGroups, "JITGATE_CHECKER_GROUPS", DEFAULTS.checkerGroups));
  const metricsListen = pick(flags.metricsListen, "JITGATE_METRICS_LISTEN", DEFAULTS.metricsListen);
  const metrics = metricsListen === "off" ? undefined : parseListen(metricsListen, "--metrics-listen (JITGATE_METRICS_LISTEN)");
  if (metrics && !tls && !isLoopback(metrics.host))
    throw new InvalidArgument(
      "--metrics-listen (JITGATE_METRICS_LISTEN)",
      `${metrics.host} is not a loopback address: metrics are served without TLS, so keep them on loopback (or "off")`,
    );
  const queueCapacity = Number(pick(flags.decisionQueue, "JITGATE_DECISION_QUEUE", DEFAULTS.decisionQueue));
  if (!Number.isSafeInteger(queueCapacity) || queueCapacity < 1000 || queueCapacity > 10_000_000)
    throw new InvalidArgument("--decision-queue (JITGATE_DECISION_QUEUE)", "must be a whole number from 1000 to 10000000");
  const retention = pick(flags.decisionRetention, "JITGATE_DECISION_RETENTION", DEFAULTS.decisionRetention);
  const jsonLines = opt(flags.decisionLog, "JITGATE_DECISION_LOG");
  const checkpointIntervalMs = parseDuration(
    pick(flags.auditCheckpointInterval, "JITGATE_AUDIT_CHECKPOINT_INTERVAL", DEFAULTS.auditCheckpointInterval),
    "--audit-checkpoint-interval (JITGATE_AUDIT_CHECKPOINT_INTERVAL)",
  );
  if (checkpointIntervalMs < 1000 || checkpointIntervalMs > 86_400_000)
    throw new InvalidArgument("--audit-checkpoint-interval (JITGATE_AUDIT_CHECKPOINT_INTERVAL)", "must be from 1s to 24h");
  const policyTimeoutMs = parseMilliseconds(
    pick(flags.policyTimeout, "JITGATE_POLICY_TIMEOUT", DEFAULTS.policyTimeout),
    "--policy-timeout (JITGATE_POLICY_TIMEOUT)",
  );
  if (policyTimeoutMs < 1 || policyTimeoutMs > 60_000)
    throw new InvalidArgument("--policy-timeout (JITGATE_POLICY_TIMEOUT)", "must be from 1ms to 60s");
  const policyWorkers = Number(pick(flags.policyWorkers, "JITGATE_POLICY_WORKERS", DEFAULTS.policyWorkers));
  if (!Number.isSafeInteger(policyWorkers) || policyWorkers < 1 || policyWorkers > 64)
    throw new InvalidArgument("--policy-workers (JITGATE_POLICY_WORKERS)", "must be a whole number from 1 to 64");
  const workersValue = pick(flags.workers, "JITGATE_WORKERS", DEFAULTS.workers).trim();
  const workers = workersValue === "auto" ? Math.min(64, availableParallelism()) : Number(workersValue);
  if (!Number.isSafeInteger(workers) || workers < 1 || workers > 64)
    throw new InvalidArgument("--workers (JITGATE_WORKERS)", "must be a whole number from 1 to 64, or auto");
  const overflow = pick(flags.decisionLogOverflow, "JITGATE_DECISION_LOG_OVERFLOW", DEFAULTS.decisionLogOverflow);
  if (overflow !== "refuse" && overflow !== "drop")
    throw new InvalidArgument("--decision-log-overflow (JITGATE_DECISION_LOG_OVERFLOW)", `'${overflow}' is not one of refuse, drop`);
  return Object.freeze({
    listen: Object.freeze(listen),
    dataDir,
    store: parseStore(flags, env),
    bundle: path(pick(flags.bundle, "JITGATE_BUNDLE", DEFAULTS.bundle)),
    watchPolicies: flags.watchPolicies ?? env.JITGATE_WATCH_POLICIES === "1",
    policiesDir: path(pick(flags.policiesDir, "JITGATE_POLICIES_DIR", DEFAULTS.policiesDir)),
    opa: path(pick(flags.opa, "OPA", DEFAULTS.opa)),
    capabilities: path(DEFAULTS.capabilities),
    logLevel: logLevel as LogLevel,
    identity,
    tls,
    adminGroups: Object.freeze(adminGroups),
    auditorGroups: Object.freeze(auditorGroups),
    checkerGroups: Object.freeze(checkerGroups),
    tokens: parseTokenConfig(
      {
        dataDir,
        ttlS: opt(flags.tokenTtl, "JITGATE_TOKEN_TTL"),
        keysDir: opt(flags.signingKeys, "JITGATE_SIGNING_KEYS"),
        algorithm: opt(flags.tokenAlg, "JITGATE_TOKEN_ALG"),
        issuer: opt(flags.tokenIssuer, "JITGATE_TOKEN_ISSUER"),
      },
      cwd,
    ),
    metricsListen: metrics && Object.freeze(metrics),
    decisionLog: Object.freeze({
      jsonLines: jsonLines === undefined || jsonLines === "-" ? jsonLines : path(jsonLines),
      retentionMs: retention === "0" ? 0 : parseDuration(retention, "--decision-retention (JITGATE_DECISION_RETENTION)"),
      queueCapacity,
      overflow,
    }),
    limits: parseServerLimits(flags, env),
    requestRate: parseRequestRate(flags, env),
    policy: Object.freeze({ timeoutMs: policyTimeoutMs, workers: policyWorkers }),
    workers,
    auditCheckpoints: Object.freeze({
      file: path(opt(flags.auditCheckpoints, "JITGATE_AUDIT_CHECKPOINTS") ?? resolve(dataDir, DEFAULTS.auditCheckpoints)),
      intervalMs: checkpointIntervalMs,
    }),
  });
}

/** `--store sqlite` (the file in the data directory) or `--store postgres://user@host:port/db`; `--feed-bound 2s`. */
export function parseStore(flags: ServeFlags, env: NodeJS.ProcessEnv): StoreConfig {
  const field = "--store (JITGATE_STORE)";
  const value = (flags.store ?? env.JITGATE_STORE ?? DEFAULTS.store).trim();
  if (value === "sqlite") return Object.freeze({ kind: "sqlite" });
  if (!/^postgres(ql)?:\/\//.test(value))
    throw new InvalidArgument(field, "is neither sqlite nor a postgres:// URL (e.g. postgres://jitgate@127.0.0.1:5432/jitgate)");
  try {
    new URL(value);
  } catch {
    throw new InvalidArgument(field, "is not a valid postgres:// URL");
  }
  const boundField = "--feed-bound (JITGATE_FEED_BOUND)";
  const feedBoundMs = parseMilliseconds(flags.feedBound ?? env.JITGATE_FEED_BOUND ?? DEFAULTS.feedBound, boundField);
  if (feedBoundMs < 200 || feedBoundMs > 60_000) throw new InvalidArgument(boundField, "must be from 200ms to 60s");
  return Object.freeze({ kind: "postgres", url: value, feedBoundMs });
}

const RATE_PERIODS_MS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000 };

/** `--request-rate 10/m` (per second, minute or hour) or `off`; `--request-burst` defaults to the rate's count. */
function parseRequestRate(flags: ServeFlags, env: NodeJS.ProcessEnv): RequestRate | undefined {
  const field = "--request-rate (JITGATE_REQUEST_RATE)";
  const value = (flags.requestRate ?? env.JITGATE_REQUEST_RATE ?? DEFAULTS.requestRate).trim();
  if (value === "off") return undefined;
  const m = /^(\d{1,7})\/([smh])$/.exec(value);
  const count = Number(m?.[1]);
  if (!m || count < 1) throw new InvalidArgument(field, `'${value}' is not a rate like 10/m (per s, m or h) or off`);
  const burst = flags.requestBurst ?? env.JITGATE_REQUEST_BURST;
  return Object.freeze({
    count,
    periodMs: RATE_PERIODS_MS[m[2] as string] as number,
    burst: burst === undefined ? count : wholeNumber(burst, "--request-burst (JITGATE_REQUEST_BURST)", 1, 1_000_000),
  });
}

function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1";
}

/** `host:port`, `[v6]:port`; the port may be 0 (any free port, for tests). */
export function parseListen(value: string, field = "--listen (JITGATE_LISTEN)"): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new InvalidArgument(field, `'${value}' is not host:port (for example 127.0.0.1:7443 or [::1]:7443)`);
  return { host: (m[1] ?? m[2]) as string, port };
}

export function formatListen(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

export { DEFAULT_SERVER_LIMITS, type ServerLimits } from "./limits.ts";
export { parseDuration, parseMilliseconds } from "./config-values.ts";
