// Turns PostgreSQL and connection failures into jitgate's errors at the store's edge: availability problems become
// Unavailable with a fixed message naming the store (never its credentials; the driver's error stays in `cause`);
// anything else (a programming error, a constraint the domain should have kept) propagates as it is.
import { DatabaseError } from "pg";
import { JitgateError, Unavailable } from "../../errors.ts";

/** What a client or operator may be told when the store cannot be used right now. */
export const LOCKED = "the store is locked by another writer; try again";

// SQLSTATEs (exact, or by their two-character class) that mean "the database cannot be used right now".
const BY_STATE: ReadonlyMap<string, string> = new Map([
  ["55P03", LOCKED],
  ["57014", "a store query was cancelled or ran past its time limit; try again"],
  ["57P01", "PostgreSQL is shutting down (the connection was closed by an administrator)"],
  ["57P02", "PostgreSQL crashed and is restarting"],
  ["57P03", "PostgreSQL is not accepting connections yet"],
  ["25006", "PostgreSQL is read-only (a standby, or default_transaction_read_only)"],
  ["25P03", "the store's connection was closed after idling inside a transaction"],
]);
const BY_CLASS: ReadonlyMap<string, string> = new Map([
  ["08", "the connection to PostgreSQL failed"],
  ["53", "PostgreSQL is out of resources (connections, memory or disk)"],
]);

// Socket-level failures, as Node reports them.
const NETWORK_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ENOENT", // a Unix socket path that is not there
]);

// node-postgres reports a lost or unusable connection as a plain Error with one of these messages (no code).
const LOST_CONNECTION = [
  "Connection terminated",
  "timeout exceeded when trying to connect",
  "Client has encountered a connection error and is not queryable",
  "Client was closed and is not queryable",
  "Query read timeout",
];

/**
 * The store as messages may name it: scheme, host, port and database of its URL, with no user, password or
 * query parameters (which may carry a password or key file). Unparseable text is never echoed.
 */
export function storeLocation(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "PostgreSQL (unparseable URL)";
  }
  const socketHost = parsed.searchParams.get("host");
  const host = parsed.host !== "" ? parsed.host : socketHost !== null && socketHost.startsWith("/") ? socketHost : "localhost";
  return `${parsed.protocol}//${host}${parsed.pathname}`;
}

/** The SQLSTATE (PostgreSQL) or errno name (Node) of `err`, if it has one. */
export function failureCode(err: unknown): string | undefined {
  if (err instanceof DatabaseError) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Why `err` means the store cannot be used right now, or undefined for any other failure. */
export function unavailableReason(err: unknown): string | undefined {
  if (err instanceof JitgateError || !(err instanceof Error)) return undefined;
  // Connection failures may come wrapped (pg-pool's connection timeout keeps the socket error in `cause`).
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = failureCode(e);
    if (e instanceof DatabaseError && code !== undefined) {
      const why = BY_STATE.get(code) ?? BY_CLASS.get(code.slice(0, 2));
      if (why !== undefined) return why;
    } else if (code !== undefined && NETWORK_CODES.has(code)) {
      return `cannot reach PostgreSQL (${code})`;
    }
    if (LOST_CONNECTION.some((m) => e instanceof Error && e.message.startsWith(m))) return "the connection to PostgreSQL was lost";
    if (e instanceof AggregateError) return e.errors.map(unavailableReason).find((why) => why !== undefined);
  }
  return undefined;
}

/** Whether `err` (or the Unavailable that wraps it) is another writer holding the write lock past the budget. */
export function isLockTimeout(err: unknown): boolean {
  const e = err instanceof Unavailable ? err.cause : err;
  return e instanceof DatabaseError && e.code === "55P03";
}

/** Maps the failures of one store; `location` comes from storeLocation. */
export class PgErrors {
  readonly location: string;

  constructor(location: string) {
    this.location = location;
  }

  /** The jitgate error to throw in place of `err`, or `err` itself when it is not an availability problem. */
  of(err: unknown): unknown {
    const why = unavailableReason(err);
    return why === undefined ? err : new Unavailable(`store ${this.location}: ${why}`, { cause: err });
  }

  /** As `of`, for a failure of COMMIT itself: a lost connection leaves the outcome unknown, and the message says so. */
  ofCommit(err: unknown): unknown {
    const why = unavailableReason(err);
    if (why === undefined) return err;
    return new Unavailable(`store ${this.location}: ${why} while committing; the write may or may not have been recorded`, {
      cause: err,
    });
  }

  /** Runs `fn`, mapping what it throws. */
  async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.of(err);
    }
  }
}
