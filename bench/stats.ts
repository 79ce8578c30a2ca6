// Percentiles for the benchmarks' latency samples, and the figures file they write (bench/results.json).
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** p50 and p99 of `samples` (nearest rank). */
export function pct(samples: readonly number[]): { p50: number; p99: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
  return { p50: at(0.5), p99: at(0.99) };
}

/**
 * Merges `figures` into bench/results.json under `section` (each bench writes its own section and keeps the
 * others'), stamped with the time of writing. Returns the file's path.
 */
export async function writeResults(section: string, figures: object): Promise<string> {
  const file = join(import.meta.dirname, "results.json");
  const all = JSON.parse(await readFile(file, "utf8").catch(() => "{}")) as Record<string, unknown>;
  all[section] = { writtenAt: new Date().toISOString(), ...figures };
  // Formatted as `make lint` (prettier --check .) wants it.
  const prettier = await import("prettier");
  const options = (await prettier.resolveConfig(file)) ?? {};
  await writeFile(file, await prettier.format(JSON.stringify(all, null, 2), { ...options, parser: "json" }));
  return file;
}

/** The middle value (the upper one of an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[Math.floor(s.length / 2)] as number);
}
