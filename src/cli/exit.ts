// How the CLI ends: one line naming what went wrong, with its gRPC code (never a bare stack trace), and an
// exit code by kind, so scripts can tell a denial from bad usage from an unreachable server.
import { status } from "@grpc/grpc-js";
import { describeThrown, type ErrorCode, JitgateError } from "../errors.ts";

/**
 * `unauthenticated` covers every authentication problem: an UNAUTHENTICATED answer (a token or a client
 * certificate refused) and a TLS handshake that failed over certificates, which the client reports as one.
 */
export const EXIT = { ok: 0, denied: 1, usage: 2, unavailable: 3, timeout: 4, unauthenticated: 5, failure: 6 } as const;

const EXIT_OF_CODE: Partial<Record<string, number>> = {
  PERMISSION_DENIED: EXIT.denied,
  INVALID_ARGUMENT: EXIT.usage,
  UNAVAILABLE: EXIT.unavailable,
  // Overload and rate limits mean "not now" as an outage does: scripts that wait and retry on 3 handle both.
  RESOURCE_EXHAUSTED: EXIT.unavailable,
  DEADLINE_EXCEEDED: EXIT.timeout,
  UNAUTHENTICATED: EXIT.unauthenticated,
};

/** The gRPC code name of an error from a call (ServiceError) or from jitgate itself. */
export function codeName(err: unknown): string {
  if (err instanceof JitgateError) return err.code satisfies ErrorCode;
  const code = (err as { code?: unknown })?.code;
  if (typeof code === "number" && status[code]) return status[code] as string;
  return "INTERNAL";
}

export function exitCodeFor(err: unknown): number {
  return EXIT_OF_CODE[codeName(err)] ?? EXIT.failure;
}

export function fail(err: unknown): never {
  const details = (err as { details?: unknown })?.details;
  const message = typeof details === "string" && details !== "" ? details : describeThrown(err);
  process.stderr.write(`jitgate: ${codeName(err)}: ${message}\n`);
  process.exit(exitCodeFor(err));
}
