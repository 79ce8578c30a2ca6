// How the CLI ends: one line naming what went wrong (never a bare stack trace) and an exit code by kind.
import { describeThrown, JitgateError } from "../errors.ts";

export const EXIT = { ok: 0, denied: 1, failure: 1, usage: 2, unavailable: 3 } as const;

export function exitCodeFor(err: unknown): number {
  if (!(err instanceof JitgateError)) return EXIT.failure;
  switch (err.code) {
    case "INVALID_ARGUMENT":
      return EXIT.usage;
    case "UNAVAILABLE":
      return EXIT.unavailable;
    default:
      return EXIT.failure;
  }
}

export function fail(err: unknown): never {
  const kind = err instanceof JitgateError ? err.code : "INTERNAL";
  process.stderr.write(`jitgate: ${kind}: ${describeThrown(err)}\n`);
  process.exit(exitCodeFor(err));
}
