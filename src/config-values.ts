// Parsers for the values configuration takes (durations, times, counts): one message per bad value, naming
// the flag and its environment variable. Shared by the server's configuration and its limits.
import { InvalidArgument } from "./errors.ts";

export function wholeNumber(value: string, field: string, min: number, max: number): number {
  const n = /^\d{1,10}$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgument(field, `must be a whole number from ${min} to ${max}`);
  return n;
}

const DURATION_UNITS_MS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `250ms`, `2s` (or a bare number of milliseconds) as milliseconds. */
export function parseMilliseconds(value: string, field: string): number {
  const m = /^(\d{1,9})(ms|s)?$/.exec(value.trim());
  if (!m) throw new InvalidArgument(field, `'${value}' is not a time like 50ms or 2s`);
  return Number(m[1]) * (m[2] === "s" ? 1000 : 1);
}

/** `90s`, `15m`, `12h`, `30d` as milliseconds. */
export function parseDuration(value: string, field: string): number {
  const m = /^(\d{1,9})([smhd])$/.exec(value.trim());
  const n = Number(m?.[1]);
  if (!m || n <= 0) throw new InvalidArgument(field, `'${value}' is not a duration like 90s, 15m, 12h or 30d`);
  return n * (DURATION_UNITS_MS[m[2] as string] as number);
}
