// jitgate's typed errors. Every module throws these (or wraps foreign errors in them, keeping `cause`);
// src/server/error-table.ts maps them to gRPC and HTTP statuses and src/cli/ to exit codes. Nothing else maps errors.

export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "PERMISSION_DENIED"
  | "UNAUTHENTICATED"
  | "FAILED_PRECONDITION"
  | "UNAVAILABLE"
  | "RESOURCE_EXHAUSTED"
  | "DEADLINE_EXCEEDED"
  | "INTERNAL";

export class JitgateError extends Error {
  readonly code: ErrorCode = "INTERNAL";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A field of a request or a configuration value is wrong; `field` names it as the user wrote it. */
export class InvalidArgument extends JitgateError {
  override readonly code = "INVALID_ARGUMENT";
  readonly field: string;
  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super(`${field}: ${message}`, options);
    this.field = field;
  }
}

export class NotFound extends JitgateError {
  override readonly code = "NOT_FOUND";
}

export class AlreadyExists extends JitgateError {
  override readonly code = "ALREADY_EXISTS";
}

/** A reason as the policy states it: stable code, fixed sentence, specifics as further fields. */
export interface ReasonDetail {
  readonly code: string;
  readonly message: string;
  readonly [detail: string]: unknown;
}

/** What a denial tells the caller beyond its message. */
export interface DenialFacts {
  readonly reasons?: readonly ReasonDetail[];
  readonly revision?: string;
  readonly requestId?: string;
}

/** Policy (or a rule of the lifecycle) said no; `reasons` are the policy's, formatted for people. */
export class PermissionDenied extends JitgateError {
  override readonly code = "PERMISSION_DENIED";
  readonly reasons: readonly string[];
  readonly facts: DenialFacts;
  constructor(message: string, reasons: readonly string[] = [], facts: DenialFacts = {}) {
    super(reasons.length > 0 ? `${message}: ${reasons.join("; ")}` : message);
    this.reasons = reasons;
    this.facts = facts;
  }
}

export class Unauthenticated extends JitgateError {
  override readonly code = "UNAUTHENTICATED";
}

export class FailedPrecondition extends JitgateError {
  override readonly code = "FAILED_PRECONDITION";
}

/** jitgate cannot answer right now (no valid policy bundle, store not writable); callers deny and may retry. */
export class Unavailable extends JitgateError {
  override readonly code = "UNAVAILABLE";
}

/** The caller's deadline passed before jitgate started the call: nothing of it was done. */
export class DeadlineExceeded extends JitgateError {
  override readonly code = "DEADLINE_EXCEEDED";
}

/** Which of jitgate's limits refused a call (the `reason` label of jitgate_refused_total). */
export type ResourceLimit = "in_flight" | "connection_in_flight" | "request_rate" | "decision_log";

/**
 * jitgate is at one of its limits and refused the call before doing any of it, so a retry (with backoff and
 * jitter) is always safe; `limit` names the limit, `retryAfterMs` when retrying can help, if known.
 */
export class ResourceExhausted extends JitgateError {
  override readonly code = "RESOURCE_EXHAUSTED";
  readonly limit: ResourceLimit;
  readonly retryAfterMs: number | undefined;
  constructor(limit: ResourceLimit, message: string, options?: { retryAfterMs?: number; cause?: unknown }) {
    super(message, options);
    this.limit = limit;
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/** A policy bundle file that cannot be used; `file` names it. */
export class BundleError extends JitgateError {
  override readonly code = "FAILED_PRECONDITION";
  readonly file: string;
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super(`policy bundle ${file}: ${message}`, options);
    this.file = file;
  }
}

/** The policy could not be evaluated, or answered something that is not a valid decision. Fail closed. */
export class PolicyEvaluationError extends JitgateError {
  override readonly code = "UNAVAILABLE";
}

/** The policy did not answer within its time budget (`--policy-timeout`); the evaluation was stopped. */
export class PolicyTimeout extends JitgateError {
  override readonly code = "UNAVAILABLE";
  readonly reason = "policy_timeout";
}

/** A foreign value thrown (opa-wasm throws plain strings and objects) as an Error with a readable message. */
export function describeThrown(thrown: unknown): string {
  if (thrown instanceof Error) return thrown.message;
  if (typeof thrown === "string") return thrown;
  if (thrown && typeof thrown === "object" && "message" in thrown) return String(thrown.message);
  return String(thrown);
}
