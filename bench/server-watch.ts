// What a benchmark reads about the server process from outside: its CPU time and resident memory from /proc,
// the machine's busy share (other sessions may share these cores), and jitgate's own counters from /metrics.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

const TICKS_PER_SECOND = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/** User + system CPU time of process `pid`, all its threads, in µs (resolution 1/CLK_TCK s). */
export function cpuMicros(pid: number): number {
  // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are 14 and 15.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / TICKS_PER_SECOND;
}

/** The processes `pid` started, theirs, and so on (from /proc/<pid>/task/<tid>/children), not `pid` itself. */
export function descendants(pid: number): number[] {
  const found: number[] = [];
  const visit = (parent: number) => {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${parent}/task`);
    } catch {
      return; // exited meanwhile
    }
    for (const tid of tasks) {
      let text: string;
      try {
        text = readFileSync(`/proc/${parent}/task/${tid}/children`, "utf8");
      } catch {
        continue;
      }
      for (const child of text.split(" ").filter(Boolean).map(Number)) {
        found.push(child);
        visit(child);
      }
    }
  };
  visit(pid);
  return found;
}

/**
 * CPU time (µs) of `pid` and every process under it that is running now: a node:cluster primary and its workers.
 * A child that exits between two readings takes its time with it, so compare readings of a stable tree.
 */
export function treeCpuMicros(pid: number): number {
  let us = cpuMicros(pid);
  for (const child of descendants(pid)) {
    try {
      us += cpuMicros(child);
    } catch {
      // exited meanwhile
    }
  }
  return us;
}

/** Resident set size of process `pid` in MB (VmRSS). */
export function rssMb(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Number(kb) / 1024;
}

/** Samples RSS every `everyMs` until stopped; `stop` returns the peak seen. */
export function sampleRss(pid: number, everyMs = 100): { stop(): number } {
  let peak = rssMb(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssMb(pid));
    } catch {
      // the process has exited
    }
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

/** A reading of all cores' time and of this process's own CPU (its reaped children, h2load among them, included). */
export interface MachineReading {
  readonly idle: number;
  readonly total: number;
  readonly ownUs: number;
}

export function machineTime(): MachineReading {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  const total = cpu.reduce((a, b) => a + b, 0);
  return { idle: (cpu[3] ?? 0) + (cpu[4] ?? 0), total, ownUs: ownCpuMicros() };
}

/** This process's utime + stime + cutime + cstime, in µs. */
function ownCpuMicros(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const f = stat
    .slice(stat.lastIndexOf(")") + 2)
    .split(" ")
    .map(Number);
  return (((f[11] ?? 0) + (f[12] ?? 0) + (f[13] ?? 0) + (f[14] ?? 0)) * 1e6) / TICKS_PER_SECOND;
}

/**
 * The share of all cores (%) busy between two readings, and the share taken by processes other than the server
 * (`serverUs` of CPU meanwhile), this bench and the children it reaped: other sessions' work on a shared machine.
 */
export function busyBetween(
  earlier: MachineReading,
  later: MachineReading,
  serverUs: number,
): { busyPercent: number; othersPercent: number } {
  const us = (ticks: number) => (ticks * 1e6) / TICKS_PER_SECOND;
  const totalUs = us(later.total - earlier.total);
  const busyUs = totalUs - us(later.idle - earlier.idle);
  const othersUs = busyUs - serverUs - (later.ownUs - earlier.ownUs);
  if (!(totalUs > 0)) return { busyPercent: NaN, othersPercent: NaN };
  return { busyPercent: (100 * busyUs) / totalUs, othersPercent: Math.max(0, (100 * othersUs) / totalUs) };
}

export function loadAverage(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

/** jitgate's counters that say what happened to Checks. */
export interface JitgateCounters {
  /** jitgate_decisions_total by result (allow, deny, error). */
  readonly decisions: Readonly<Record<string, number>>;
  /** jitgate_refused_total by reason (in_flight, connection_in_flight, request_rate, decision_log). */
  readonly refused: Readonly<Record<string, number>>;
  readonly dropped: number;
  /** jitgate_policy_failures_total{kind="timeout"}, all entrypoints. */
  readonly policyTimeouts: number;
  /** Garbage collection time so far (ms), all kinds. */
  readonly gcMs: number;
  /** The event loop's longest delay since the previous scrape (prom-client resets it on every scrape), ms. */
  readonly loopLagMaxMs: number;
}

export const sum = (r: Readonly<Record<string, number>>): number => Object.values(r).reduce((a, b) => a + b, 0);

export async function scrape(metricsUrl: string): Promise<JitgateCounters> {
  const text = await (await fetch(metricsUrl, { signal: AbortSignal.timeout(30_000) })).text();
  const byLabel = (name: string, label: string) => {
    const found: Record<string, number> = {};
    const line = new RegExp(`^${name}\\{${label}="([^"]+)"\\} (\\S+)$`, "gm");
    for (const m of text.matchAll(line)) found[m[1] as string] = Number(m[2]);
    return found;
  };
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
  const timeouts = [...text.matchAll(/^jitgate_policy_failures_total\{[^}]*kind="timeout"[^}]*\} (\S+)$/gm)];
  return {
    decisions: byLabel("jitgate_decisions_total", "result"),
    refused: byLabel("jitgate_refused_total", "reason"),
    dropped: value("jitgate_decision_log_dropped_total"),
    policyTimeouts: timeouts.reduce((n, m) => n + Number(m[1]), 0),
    gcMs: 1000 * sum(byLabel("jitgate_nodejs_gc_duration_seconds_sum", "kind")),
    loopLagMaxMs: 1000 * value("jitgate_nodejs_eventloop_lag_max_seconds"),
  };
}

/** jitgate_decision_log_queue_depth: records waiting to be written (a cluster primary sums its workers'). */
export async function decisionQueueDepth(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl, { signal: AbortSignal.timeout(30_000) })).text();
  return Number(/^jitgate_decision_log_queue_depth (\S+)$/m.exec(text)?.[1] ?? NaN);
}

/** Checks answered between two scrapes with anything but an allow: decisions by result, refusals by reason. */
export function besidesAllow(before: JitgateCounters, after: JitgateCounters): Record<string, number> {
  const { allow: _allow, ...decided } = delta(after.decisions, before.decisions);
  const refused = Object.entries(delta(after.refused, before.refused)).map(([reason, n]) => [`refused ${reason}`, n]);
  return { ...decided, ...Object.fromEntries(refused) };
}

/** `after` minus `before`, label by label (labels with no change left out). */
export function delta(after: Readonly<Record<string, number>>, before: Readonly<Record<string, number>>): Record<string, number> {
  const d: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) !== 0) d[k] = v - (before[k] ?? 0);
  return d;
}
