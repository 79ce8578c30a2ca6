// The structured logger (pino, JSON lines). Built once by the entry point and passed down.
import { type Logger, pino } from "pino";
import type { LogLevel } from "./config.ts";

export type { Logger };

export function createLogger(level: LogLevel, destination: NodeJS.WritableStream = process.stdout): Logger {
  return pino({ level, base: { service: "jitgate" }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

/**
 * Warnings that real traffic can repeat on every call (a policy failing on a common input): at most one line
 * per message every `intervalMs`, carrying how many were left out since the last one.
 */
export function throttledWarnings(log: Logger, intervalMs = 1000, now: () => number = Date.now) {
  const last = new Map<string, { at: number; suppressed: number }>();
  return {
    warn(fields: Record<string, unknown>, message: string): void {
      const seen = last.get(message);
      const t = now();
      if (seen && t - seen.at < intervalMs) {
        seen.suppressed++;
        return;
      }
      log.warn(seen && seen.suppressed > 0 ? { ...fields, suppressed: seen.suppressed } : fields, message);
      last.set(message, { at: t, suppressed: 0 });
    },
  };
}
