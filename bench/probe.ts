// A light grpc-js load beside h2load: it sees what h2load cannot (grpc-status and the answer itself), gives
// the latency of allowed calls apart from refusals, and tells when latency is back after an overload.
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { type Caller, reasonCodes } from "../test/support/api.ts";
import type { CheckRequest } from "./servers.ts";
import { pct } from "./stats.ts";

export interface ProbeSample {
  /** performance.now() when sent. */
  readonly at: number;
  readonly ms: number;
  /** "allow", "deny:<reason codes>", or the gRPC status name of a failed call. */
  readonly answer: string;
}

export interface Probe {
  readonly samples: ProbeSample[];
  stop(): Promise<void>;
}

export interface ProbeSummary {
  /** How many calls got each answer. */
  readonly answers: Readonly<Record<string, number>>;
  /** Latency of the allowed ones (ms). */
  readonly allowed: { p50: number; p99: number };
}

/** One Check and what came of it. */
export async function timedCheck(caller: Caller, request: CheckRequest): Promise<ProbeSample> {
  const at = performance.now();
  const answer = await caller.call("Check", request, { deadlineMs: 60_000 }).then(
    (r) => (r.allow ? "allow" : `deny:${reasonCodes(r.reasons).join(",")}`),
    (err: grpc.ServiceError) => grpc.status[err.code] ?? String(err),
  );
  return { at, ms: performance.now() - at, answer };
}

/** Sends `request` every `everyMs` without waiting for earlier answers (open loop), until stopped. */
export function startProbe(caller: Caller, request: CheckRequest, everyMs: number): Probe {
  const samples: ProbeSample[] = [];
  const pending = new Set<Promise<void>>();
  const send = () => {
    const done: Promise<void> = timedCheck(caller, request)
      .then((s) => void samples.push(s))
      .finally(() => pending.delete(done));
    pending.add(done);
  };
  const timer = setInterval(send, everyMs);
  return {
    samples,
    async stop() {
      clearInterval(timer);
      await Promise.all(pending);
    },
  };
}

export function summarize(samples: readonly ProbeSample[]): ProbeSummary {
  const answers: Record<string, number> = {};
  for (const s of samples) answers[s.answer] = (answers[s.answer] ?? 0) + 1;
  const allowed = samples.filter((s) => s.answer === "allow").map((s) => s.ms);
  return { answers, allowed: allowed.length ? pct(allowed) : { p50: NaN, p99: NaN } };
}

/** The probe alone for `ms`: the idle latency that recovery is measured against. */
export async function idleProbe(caller: Caller, request: CheckRequest, everyMs: number, ms: number): Promise<ProbeSummary> {
  const probe = startProbe(caller, request, everyMs);
  await sleep(ms);
  await probe.stop();
  return summarize(probe.samples);
}

export interface RecoveryBound {
  /** The p99 (ms) a window must stay within. */
  readonly p99Ms: number;
  readonly windowMs: number;
  /** The probe's interval: a window must hold at least 80% of the calls it sent, all allowed. */
  readonly everyMs: number;
  /** Give up after this long (ms). */
  readonly limitMs: number;
}

/**
 * Waits for the first window of probe calls sent after `loadEnded` that were all allowed with a p99 within the
 * bound; resolves with that window's start relative to `loadEnded` (ms), or NaN past the limit.
 */
export async function recovery(probe: Probe, loadEnded: number, bound: RecoveryBound): Promise<number> {
  const { p99Ms, windowMs, everyMs, limitMs } = bound;
  // A window is judged once its calls have had 1 s to answer; a call still unanswered then is missing from it.
  const judged = (first: ProbeSample) => first.at + windowMs + 1_000 <= performance.now();
  while (performance.now() - loadEnded < limitMs + windowMs + 1_000) {
    await sleep(200);
    const after = probe.samples.filter((s) => s.at >= loadEnded).sort((a, b) => a.at - b.at);
    for (const first of after) {
      if (!judged(first)) break;
      const window = after.filter((s) => s.at >= first.at && s.at < first.at + windowMs);
      const full = window.length >= (0.8 * windowMs) / everyMs;
      if (full && window.every((s) => s.answer === "allow") && pct(window.map((s) => s.ms)).p99 <= p99Ms) return first.at - loadEnded;
    }
  }
  return NaN;
}
