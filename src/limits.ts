// The server's transport and admission limits: read from flags, then the environment, then these defaults,
// and checked against each other (a per-connection cap at or above the stream limit would let clients queue
// calls into a timeout instead of having them refused at once).
import { InvalidArgument } from "./errors.ts";
import { parseDuration, wholeNumber } from "./config-values.ts";

export interface ServerLimits {
  /** Calls being served at once by this process (unary calls, waits and watch streams alike). */
  readonly maxInFlight: number;
  /** Calls being served at once on one connection; below maxConcurrentStreams, so excess is refused, not queued. */
  readonly maxInFlightPerConnection: number;
  /** HTTP/2 streams one connection may open (grpc.max_concurrent_streams). */
  readonly maxConcurrentStreams: number;
  readonly maxReceiveMessageBytes: number;
  readonly maxSendMessageBytes: number;
  readonly keepaliveIntervalMs: number;
  readonly keepaliveTimeoutMs: number;
  /** A connection without calls for this long is closed; 0: never. */
  readonly maxConnectionIdleMs: number;
  /** A connection this old (±10%) is asked to go away; 0: never. */
  readonly maxConnectionAgeMs: number;
  /** How long calls on a connection asked to go away may still run; 0: to their end. */
  readonly maxConnectionAgeGraceMs: number;
}

/** The limit flags as given on the command line (undefined when absent). */
export interface LimitFlags {
  maxInFlight?: string;
  maxInFlightPerConnection?: string;
  maxConcurrentStreams?: string;
  maxMessageBytes?: string;
  maxResponseBytes?: string;
  keepaliveInterval?: string;
  keepaliveTimeout?: string;
  maxConnectionIdle?: string;
  maxConnectionAge?: string;
  maxConnectionAgeGrace?: string;
}

export const LIMIT_DEFAULTS = {
  // Admission. Little's law on one event loop: ~8k Checks/s (measured) means 1,024 calls in flight are ~125 ms
  // of work queued, inside the deadlines services give a Check; more would be answered after the caller gave
  // up. Memory: a unary call holds a few KB of grpc-js and HTTP/2 state plus its request (at most
  // maxMessageBytes), so 1,024 stay under ~300 MB even if every one is as large as allowed; a watch may also
  // buffer up to 1 MiB of unsent events before it is cut off.
  maxInFlight: "1024",
  // maxInFlightPerConnection defaults to half of maxConcurrentStreams (128), at most maxInFlight: a busy
  // connection always has free streams, so its excess calls reach jitgate and are refused at once instead of
  // waiting in the client for a stream until their deadline passes.
  maxConcurrentStreams: "256",
  // The largest request validate.ts accepts is ~180 KB (256 subject_groups, 64 context entries of UTF-8 text, a
  // 16 KiB token); 256 KiB covers it and caps what one call can make jitgate hold (grpc-js's default is 4 MiB).
  maxMessageBytes: "262144",
  // jitgate's answers are pages of at most 500 items; 4 MiB is also what a default gRPC client accepts.
  maxResponseBytes: "4194304",
  // A vanished peer's calls hold in-flight slots until its connection is declared dead: ping after 60 s of
  // silence, give up 20 s later.
  keepaliveInterval: "60s",
  keepaliveTimeout: "20s",
  maxConnectionIdle: "30m",
  // Clients move their new calls to a new connection about hourly (re-balancing across processes and
  // replicas); with no grace limit, calls already running on the old one (watches, `request --wait`) are never
  // cut: grpc-js ends a call cut at the grace as INTERNAL "RST_STREAM", which `jitgate watch` does not resume.
  maxConnectionAge: "1h",
  maxConnectionAgeGrace: "0",
} as const;

export function parseServerLimits(flags: LimitFlags, env: NodeJS.ProcessEnv): ServerLimits {
  const value = (flag: string | undefined, name: string, fallback: string) => flag ?? env[name] ?? fallback;
  const count = (flag: string | undefined, name: string, field: string, fallback: string, min: number, max: number) =>
    wholeNumber(value(flag, name, fallback), `${field} (${name})`, min, max);
  const duration = (flag: string | undefined, name: string, field: string, fallback: string, never: boolean) => {
    const v = value(flag, name, fallback);
    return never && v.trim() === "0" ? 0 : parseDuration(v, `${field} (${name})`);
  };
  const maxInFlight = count(flags.maxInFlight, "JITGATE_MAX_IN_FLIGHT", "--max-in-flight", LIMIT_DEFAULTS.maxInFlight, 1, 1_000_000);
  const maxConcurrentStreams = count(
    flags.maxConcurrentStreams,
    "JITGATE_MAX_CONCURRENT_STREAMS",
    "--max-concurrent-streams",
    LIMIT_DEFAULTS.maxConcurrentStreams,
    2,
    1_000_000,
  );
  const limits: ServerLimits = {
    maxInFlight,
    maxInFlightPerConnection: count(
      flags.maxInFlightPerConnection,
      "JITGATE_MAX_IN_FLIGHT_PER_CONNECTION",
      "--max-in-flight-per-connection",
      String(Math.min(maxInFlight, Math.floor(maxConcurrentStreams / 2))),
      1,
      1_000_000,
    ),
    maxConcurrentStreams,
    maxReceiveMessageBytes: count(
      flags.maxMessageBytes,
      "JITGATE_MAX_MESSAGE_BYTES",
      "--max-message-bytes",
      LIMIT_DEFAULTS.maxMessageBytes,
      16_384,
      64 << 20,
    ),
    maxSendMessageBytes: count(
      flags.maxResponseBytes,
      "JITGATE_MAX_RESPONSE_BYTES",
      "--max-response-bytes",
      LIMIT_DEFAULTS.maxResponseBytes,
      65_536,
      64 << 20,
    ),
    keepaliveIntervalMs: duration(
      flags.keepaliveInterval,
      "JITGATE_KEEPALIVE_INTERVAL",
      "--keepalive-interval",
      LIMIT_DEFAULTS.keepaliveInterval,
      false,
    ),
    keepaliveTimeoutMs: duration(
      flags.keepaliveTimeout,
      "JITGATE_KEEPALIVE_TIMEOUT",
      "--keepalive-timeout",
      LIMIT_DEFAULTS.keepaliveTimeout,
      false,
    ),
    maxConnectionIdleMs: duration(
      flags.maxConnectionIdle,
      "JITGATE_MAX_CONNECTION_IDLE",
      "--max-connection-idle",
      LIMIT_DEFAULTS.maxConnectionIdle,
      true,
    ),
    maxConnectionAgeMs: duration(
      flags.maxConnectionAge,
      "JITGATE_MAX_CONNECTION_AGE",
      "--max-connection-age",
      LIMIT_DEFAULTS.maxConnectionAge,
      true,
    ),
    maxConnectionAgeGraceMs: duration(
      flags.maxConnectionAgeGrace,
      "JITGATE_MAX_CONNECTION_AGE_GRACE",
      "--max-connection-age-grace",
      LIMIT_DEFAULTS.maxConnectionAgeGrace,
      true,
    ),
  };
  if (limits.maxInFlightPerConnection > limits.maxInFlight)
    throw new InvalidArgument(
      "--max-in-flight-per-connection (JITGATE_MAX_IN_FLIGHT_PER_CONNECTION)",
      `${limits.maxInFlightPerConnection} is more than --max-in-flight (${limits.maxInFlight})`,
    );
  // At or above the stream limit, a connection's excess calls would wait in the client for a free stream
  // (until their deadline) instead of reaching jitgate and being refused at once.
  if (limits.maxInFlightPerConnection >= limits.maxConcurrentStreams)
    throw new InvalidArgument(
      "--max-in-flight-per-connection (JITGATE_MAX_IN_FLIGHT_PER_CONNECTION)",
      `must be below --max-concurrent-streams (${limits.maxConcurrentStreams}), so calls past it are refused, not queued by the client`,
    );
  return Object.freeze(limits);
}

/** The limits with every default, for servers started without a ServeConfig (tests, tools). */
export const DEFAULT_SERVER_LIMITS: ServerLimits = parseServerLimits({}, {});
