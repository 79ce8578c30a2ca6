// The structured logger (pino, JSON lines). Built once by the entry point and passed down.
import { type Logger, pino } from "pino";
import type { LogLevel } from "./config.ts";

export type { Logger };

export function createLogger(level: LogLevel, destination: NodeJS.WritableStream = process.stdout): Logger {
  return pino({ level, base: { service: "jitgate" }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}
