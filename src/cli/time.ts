// Time options of the offline commands (--at, --since, --until): one parser, so every command takes the same forms.
import { InvalidArgument } from "../errors.ts";

/** The forms a time option takes, for help texts and messages. */
export const TIME_FORMS = "an RFC 3339 time (2026-11-23T10:00:00Z), now, or a time ago (45s, 90m, 2h, 3d)";
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const AGO = /^(\d{1,9})([smhd])$/;
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A time option as ms since the epoch; `now` is read once per command, so every option means the same now. */
export function parseTime(option: string, text: string, now: number): number {
  if (text === "now") return now;
  const ago = AGO.exec(text);
  if (ago !== null) return now - Number(ago[1]) * (UNIT_MS[ago[2] as string] as number);
  const m = RFC3339.exec(text);
  // Date.parse alone would roll 2026-02-30 over to March: check each field's range first.
  if (m !== null) {
    const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
    const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
    const parsed = Date.parse(text.toUpperCase());
    if (month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth && hour < 24 && minute < 60 && second < 60 && !Number.isNaN(parsed))
      return parsed;
  }
  throw new InvalidArgument(option, `${JSON.stringify(text)} is not a time; give ${TIME_FORMS}`);
}
