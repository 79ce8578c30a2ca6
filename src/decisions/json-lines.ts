// Decision records as JSON lines in the shape of OPA's decision log events, so pipelines built for OPA (labels,
// decision_id, path, input, result, bundles, timestamp, metrics) take jitgate's decisions as they are.
import { openSync } from "node:fs";
import { pino } from "pino";
import type { DecisionRecord } from "../access/model.ts";
import { FailedPrecondition } from "../errors.ts";
import type { DecisionLines } from "./decision-log.ts";

/** The policy entrypoint every Check evaluates: OPA's `path`. */
export const DECISION_PATH = "jit/check/decision";

/** OPA's `labels`: which jitgate instance decided (`app` is always "jitgate"). */
export interface DecisionLabels {
  /** This server instance, stable for its lifetime (OPA uses a UUID). */
  readonly id: string;
  readonly version: string;
  readonly [label: string]: string;
}

export interface JsonLinesOptions {
  /** Told when the destination fails (disk full, closed pipe). */
  readonly onError?: (err: unknown) => void;
  /** Bytes buffered at most while the destination is slow; further lines are dropped and counted. Default 64 MiB. */
  readonly maxBufferBytes?: number;
}

/** One OPA decision-log event. */
export function opaDecisionEvent(d: DecisionRecord, labels: Readonly<Record<string, string>>): object {
  return {
    labels,
    decision_id: d.decisionId,
    path: DECISION_PATH,
    input: { subject: d.subject, resource: d.resource, action: d.action, caller: d.caller, token_id: d.tokenId },
    result: { allow: d.allow, reasons: d.reasons, grant_id: d.grantId },
    // OPA names the client that asked here; for jitgate that is the authenticated caller.
    requested_by: d.caller,
    bundles: { jitgate: { revision: d.policyRevision } },
    timestamp: new Date(d.at).toISOString(),
    metrics: { timer_server_handler_ns: Math.round(d.latencyUs * 1000) },
  };
}

export class JsonLinesSink implements DecisionLines {
  readonly #out: ReturnType<typeof pino.destination>;
  readonly #labels: Readonly<Record<string, string>>;
  #dropped = 0;
  #closed: Promise<void> | undefined;

  constructor(out: ReturnType<typeof pino.destination>, labels: DecisionLabels, onError: (err: unknown) => void) {
    this.#out = out;
    this.#labels = Object.freeze({ app: "jitgate", ...labels });
    out.on("error", onError);
    // sonic-boom drops a write that would take its buffer past maxLength, rather than grow without bound.
    out.on("drop", () => this.#dropped++);
  }

  /** Writes (batches of lines) the destination could not take in time. */
  get dropped(): number {
    return this.#dropped;
  }

  write(decision: DecisionRecord): void {
    if (this.#closed !== undefined) return;
    this.#out.write(`${JSON.stringify(opaDecisionEvent(decision, this.#labels))}\n`);
  }

  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.#out.once("close", () => resolve());
      // end() writes out what is buffered, then closes (stdout's descriptor is left open).
      this.#out.end();
    });
    return this.#closed;
  }
}

/**
 * A line sink writing to `dest`: "-" for standard output, or a file path (appended to; created 0600, since
 * who asked for what is nobody else's business). Writes are buffered and asynchronous (pino's sonic-boom).
 */
export function openJsonLinesSink(dest: string, labels: DecisionLabels, opts: JsonLinesOptions = {}): JsonLinesSink {
  // minLength 0: the first line of a batch starts a write and the rest gather behind it, so a batch costs a
  // couple of writes and a quiet server's last lines are not held back waiting for more.
  const out = pino.destination({
    fd: dest === "-" ? 1 : openAppending(dest),
    sync: false,
    minLength: 0,
    maxLength: opts.maxBufferBytes ?? 64 * 1024 * 1024,
  });
  return new JsonLinesSink(out, labels, opts.onError ?? (() => undefined));
}

/** Opened here, synchronously, so a wrong path fails at startup with its name, not later on a timer. */
function openAppending(file: string): number {
  try {
    return openSync(file, "a", 0o600);
  } catch (err) {
    throw new FailedPrecondition(`decision log: cannot open ${file}: ${(err as Error).message}`, { cause: err });
  }
}
