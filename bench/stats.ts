// Percentiles for the benchmarks' latency samples.

/** p50 and p99 of `samples` (nearest rank). */
export function pct(samples: readonly number[]): { p50: number; p99: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
  return { p50: at(0.5), p99: at(0.99) };
}
