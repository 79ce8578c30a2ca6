// The `jitgate` command: parses arguments (commander) and hands each subcommand its options.
import { Command } from "commander";
import { DEFAULTS } from "../config.ts";
import { registerAccessCommands } from "./access-commands.ts";
import { registerAuditCommands } from "./audit-commands.ts";
import { registerDecisionCommands } from "./decision-commands.ts";
import { evalCommand } from "./eval.ts";
import { EXIT, fail } from "./exit.ts";
import { loginCommand } from "./login.ts";
import { registerTokenCommands } from "./token-commands.ts";

const program = new Command()
  .name("jitgate")
  .description("Just-in-time access policy decision point")
  .showHelpAfterError()
  .exitOverride((err) => process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.usage));

program
  .command("serve")
  .description("start the jitgate server")
  .option("--listen <host:port>", `address to listen on (env JITGATE_LISTEN, default ${DEFAULTS.listen})`)
  .option("--data-dir <dir>", `data directory (env JITGATE_DATA_DIR, default ${DEFAULTS.dataDir})`)
  .option("--bundle <file>", `policy bundle to load and watch (env JITGATE_BUNDLE, default ${DEFAULTS.bundle})`)
  .option("--watch-policies", "rebuild the bundle when a file under the policies directory changes")
  .option("--policies-dir <dir>", `policy sources for --watch-policies (default ${DEFAULTS.policiesDir})`)
  .option("--opa <file>", `OPA CLI for --watch-policies (env OPA, default ${DEFAULTS.opa})`)
  .option("--log-level <level>", "debug, info, warn or error (env JITGATE_LOG_LEVEL, default info)")
  .option("--dev", "DEV MODE: accept tokens from a local dev issuer (see `jitgate login`); never in production (env JITGATE_DEV=1)")
  .option("--oidc-issuer <url>", "accept bearer tokens from this OIDC issuer (env JITGATE_OIDC_ISSUER)")
  .option("--oidc-audience <aud>", "the audience those tokens must name (env JITGATE_OIDC_AUDIENCE)")
  .option("--oidc-jwks-file <file>", "the issuer's keys, as a JWKS file (env JITGATE_OIDC_JWKS_FILE)")
  .option("--oidc-jwks-url <url>", "the issuer's keys, fetched from this URL (env JITGATE_OIDC_JWKS_URL)")
  .option("--oidc-groups-claim <claim>", "claim holding the caller's groups, e.g. realm_access.roles (default groups)")
  .option("--oidc-subject-claim <claim>", "claim holding the caller's id (default sub)")
  .option("--oidc-algorithms <list>", "allowed signature algorithms (default RS256,ES256,EdDSA,PS256)")
  .option("--oidc-clock-tolerance <seconds>", "clock skew allowed on nbf/iat (never on exp), at most 60 (default 30)")
  .option("--mtls-ca <file>", "accept client certificates from this CA (env JITGATE_MTLS_CA)")
  .option("--mtls-groups <file>", "JSON map from certificate identity to groups (env JITGATE_MTLS_GROUPS)")
  .option("--tls-cert <file>", "the server's certificate (env JITGATE_TLS_CERT)")
  .option("--tls-key <file>", "the server's private key (env JITGATE_TLS_KEY)")
  .option(
    "--signing-keys <dir>",
    "the access-token signing keys (env JITGATE_SIGNING_KEYS, default <data-dir>/signing-keys); replicas share one directory",
  )
  .option("--token-ttl <seconds>", "lifetime of access tokens, at most 3600 (env JITGATE_TOKEN_TTL, default 300)")
  .option("--token-alg <alg>", "EdDSA or ES256 (env JITGATE_TOKEN_ALG, default EdDSA)")
  .option("--token-issuer <iss>", "the iss claim of access tokens (env JITGATE_TOKEN_ISSUER, default jitgate)")
  .option("--admin-groups <list>", `groups that may revoke others' grants (env JITGATE_ADMIN_GROUPS, default ${DEFAULTS.adminGroups})`)
  .option(
    "--auditor-groups <list>",
    `groups that may read the audit trail over gRPC (env JITGATE_AUDITOR_GROUPS, default ${DEFAULTS.auditorGroups})`,
  )
  .option(
    "--checker-groups <list>",
    `groups (the services enforcing access) that may check any subject; others only themselves (env JITGATE_CHECKER_GROUPS, default ${DEFAULTS.checkerGroups})`,
  )
  .option(
    "--metrics-listen <host:port>",
    `Prometheus /metrics and /healthz over HTTP, or off (env JITGATE_METRICS_LISTEN, default ${DEFAULTS.metricsListen})`,
  )
  .option(
    "--store <store>",
    `where grants, requests and the audit trail live: sqlite (the file in the data directory) or a postgres:// URL shared by replicas (env JITGATE_STORE, default ${DEFAULTS.store})`,
  )
  .option(
    "--feed-bound <time>",
    `with --store postgres://: how long the grant feed may go unread before grant-based allows are refused (env JITGATE_FEED_BOUND, default ${DEFAULTS.feedBound})`,
  )
  .option(
    "--policy-timeout <time>",
    `budget of one policy evaluation, e.g. 100ms or 2s: past it a Check is denied (policy_timeout) (env JITGATE_POLICY_TIMEOUT, default ${DEFAULTS.policyTimeout})`,
  )
  .option(
    "--policy-workers <n>",
    `threads evaluating policy off the serving thread (env JITGATE_POLICY_WORKERS, default ${DEFAULTS.policyWorkers})`,
  )
  .option(
    "--workers <n>",
    `processes serving --listen together, sharing the data directory, or auto (one per CPU) (env JITGATE_WORKERS, default ${DEFAULTS.workers})`,
  )
  .option(
    "--decision-log <file>",
    "also write every decision as a JSON line (OPA's decision log shape) to this file, or - for standard output (env JITGATE_DECISION_LOG)",
  )
  .option(
    "--decision-retention <duration>",
    `delete decision records older than this, or 0 to keep them (env JITGATE_DECISION_RETENTION, default ${DEFAULTS.decisionRetention})`,
  )
  .option(
    "--decision-queue <n>",
    `decision records waiting to be written, at most (env JITGATE_DECISION_QUEUE, default ${DEFAULTS.decisionQueue})`,
  )
  .option(
    "--decision-log-overflow <mode>",
    `with the decision queue full: refuse Checks (RESOURCE_EXHAUSTED), so every answered Check is logged, or drop records and count them (env JITGATE_DECISION_LOG_OVERFLOW, default ${DEFAULTS.decisionLogOverflow})`,
  )
  .option(
    "--max-in-flight <n>",
    `calls served at once by this process; more are refused at once with RESOURCE_EXHAUSTED (env JITGATE_MAX_IN_FLIGHT, default ${DEFAULTS.maxInFlight})`,
  )
  .option(
    "--max-in-flight-per-connection <n>",
    "calls served at once on one connection, below --max-concurrent-streams (env JITGATE_MAX_IN_FLIGHT_PER_CONNECTION, default: half of --max-concurrent-streams, at most --max-in-flight)",
  )
  .option(
    "--max-concurrent-streams <n>",
    `HTTP/2 streams one connection may open (env JITGATE_MAX_CONCURRENT_STREAMS, default ${DEFAULTS.maxConcurrentStreams})`,
  )
  .option(
    "--max-message-bytes <n>",
    `largest request message accepted (env JITGATE_MAX_MESSAGE_BYTES, default ${DEFAULTS.maxMessageBytes})`,
  )
  .option(
    "--max-response-bytes <n>",
    `largest response message sent (env JITGATE_MAX_RESPONSE_BYTES, default ${DEFAULTS.maxResponseBytes})`,
  )
  .option(
    "--keepalive-interval <duration>",
    `ping a connection silent this long (env JITGATE_KEEPALIVE_INTERVAL, default ${DEFAULTS.keepaliveInterval})`,
  )
  .option(
    "--keepalive-timeout <duration>",
    `close a connection whose ping is unanswered this long (env JITGATE_KEEPALIVE_TIMEOUT, default ${DEFAULTS.keepaliveTimeout})`,
  )
  .option(
    "--max-connection-idle <duration>",
    `close a connection without calls this long, or 0 for never (env JITGATE_MAX_CONNECTION_IDLE, default ${DEFAULTS.maxConnectionIdle})`,
  )
  .option(
    "--max-connection-age <duration>",
    `ask clients to reconnect after this long (±10%), or 0 for never (env JITGATE_MAX_CONNECTION_AGE, default ${DEFAULTS.maxConnectionAge})`,
  )
  .option(
    "--max-connection-age-grace <duration>",
    "calls on a connection asked to reconnect may run this much longer, or 0 to let them finish (env JITGATE_MAX_CONNECTION_AGE_GRACE, default 0)",
  )
  .option(
    "--request-rate <rate>",
    `RequestAccess calls per requester, like 10/m (per s, m or h), or off (env JITGATE_REQUEST_RATE, default ${DEFAULTS.requestRate})`,
  )
  .option(
    "--request-burst <n>",
    "RequestAccess calls a requester may make at once before --request-rate applies (env JITGATE_REQUEST_BURST, default: the rate's count)",
  )
  .option(
    "--audit-checkpoints <file>",
    `where signed checkpoints of the audit trail are appended (env JITGATE_AUDIT_CHECKPOINTS, default <data-dir>/${DEFAULTS.auditCheckpoints})`,
  )
  .option(
    "--audit-checkpoint-interval <duration>",
    `how often to sign the trail's head if it moved (env JITGATE_AUDIT_CHECKPOINT_INTERVAL, default ${DEFAULTS.auditCheckpointInterval})`,
  )
  // Loaded only for `serve`: the server graph (gRPC server, policy engine, metrics) is most of the start-up time.
  .action(async (opts) => (await import("./serve.ts")).serveCommand(opts));

program
  .command("login")
  .description("DEV MODE: print a token from the local dev issuer and save it for the CLI")
  .requiredOption("--as <id>", "the caller id the token names")
  .option("--groups <list>", "comma-separated groups", "")
  .option("--ttl <seconds>", "how long the token lasts, at most 86400", "28800")
  .option("--data-dir <dir>", `the dev server's data directory (env JITGATE_DATA_DIR, default ${DEFAULTS.dataDir})`)
  .option("--print", "print the token instead of saving it (for JITGATE_TOKEN=$(...))")
  .action((opts) => loginCommand(opts));

program
  .command("eval")
  .description("evaluate one entrypoint of a policy bundle and print the JSON result")
  .argument("<entrypoint>", "for example jit/check/decision")
  .requiredOption("--input <file>", "JSON input file, or - for standard input")
  .option("--bundle <file>", "policy bundle", DEFAULTS.bundle)
  .action((entrypoint: string, opts: { input: string; bundle: string }) => evalCommand(entrypoint, opts));

registerAccessCommands(program);
registerTokenCommands(program);
registerAuditCommands(program);
registerDecisionCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  fail(err);
}
