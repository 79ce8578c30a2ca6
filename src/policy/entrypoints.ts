// The policy contract: the entrypoints every bundle must export, and the shapes they answer with.
// Each decoder narrows the Wasm result (plain JSON) to its type, or returns undefined so the engine
// fails closed on a policy that answers nonsense. policies/README.md documents the same contract.

export const ENTRYPOINTS = {
  requestPlan: "jit/request/plan",
  reviewVerdict: "jit/review/verdict",
  checkDecision: "jit/check/decision",
  /** Everything wrong in the policy data (the resource catalogue); a bundle is only activated when empty. */
  catalogErrors: "jit/catalog/errors",
} as const;

export type EntrypointName = (typeof ENTRYPOINTS)[keyof typeof ENTRYPOINTS];
export const REQUIRED_ENTRYPOINTS: readonly EntrypointName[] = Object.values(ENTRYPOINTS);

/** A reason as the policy states it: a stable code, a fixed sentence, and the specifics as fields. */
export interface PolicyReason {
  readonly code: string;
  readonly message: string;
  readonly [detail: string]: unknown;
}

export interface ApprovalRequirement {
  readonly group: string;
  readonly count: number;
}

export interface RequestPlan {
  readonly decision: "deny" | "auto_approve" | "needs_approval";
  readonly reasons: readonly PolicyReason[];
  readonly approvals: readonly ApprovalRequirement[];
  readonly distinct_approvers: boolean;
  readonly max_duration_s: number;
  readonly granted_duration_s: number;
  readonly pending_ttl_s: number;
  readonly break_glass: boolean;
  readonly notify: readonly string[];
  readonly audience: string;
}

export interface ReviewVerdict {
  readonly allowed: boolean;
  readonly reasons: readonly PolicyReason[];
  readonly counts_toward: readonly string[];
  readonly outcome: "approved" | "denied" | "pending";
}

export interface CheckDecision {
  readonly allow: boolean;
  readonly reasons: readonly PolicyReason[];
  readonly grant_id: string;
  readonly expires_at: number;
  readonly standing: boolean;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === "string");
const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isReasons = (v: unknown): v is PolicyReason[] =>
  Array.isArray(v) && v.every((r) => isObject(r) && typeof r.code === "string" && typeof r.message === "string");
const isApprovals = (v: unknown): v is ApprovalRequirement[] =>
  Array.isArray(v) && v.every((a) => isObject(a) && typeof a.group === "string" && isNumber(a.count));

export function decodeRequestPlan(v: unknown): RequestPlan | undefined {
  if (!isObject(v)) return undefined;
  const ok =
    (v.decision === "deny" || v.decision === "auto_approve" || v.decision === "needs_approval") &&
    isReasons(v.reasons) &&
    isApprovals(v.approvals) &&
    typeof v.distinct_approvers === "boolean" &&
    isNumber(v.max_duration_s) &&
    isNumber(v.granted_duration_s) &&
    isNumber(v.pending_ttl_s) &&
    typeof v.break_glass === "boolean" &&
    isStringArray(v.notify) &&
    typeof v.audience === "string";
  return ok ? (v as unknown as RequestPlan) : undefined;
}

export function decodeReviewVerdict(v: unknown): ReviewVerdict | undefined {
  if (!isObject(v)) return undefined;
  const ok =
    typeof v.allowed === "boolean" &&
    isReasons(v.reasons) &&
    isStringArray(v.counts_toward) &&
    (v.outcome === "approved" || v.outcome === "denied" || v.outcome === "pending");
  return ok ? (v as unknown as ReviewVerdict) : undefined;
}

export function decodeCheckDecision(v: unknown): CheckDecision | undefined {
  if (!isObject(v)) return undefined;
  const ok =
    typeof v.allow === "boolean" &&
    isReasons(v.reasons) &&
    typeof v.grant_id === "string" &&
    isNumber(v.expires_at) &&
    typeof v.standing === "boolean";
  return ok ? (v as unknown as CheckDecision) : undefined;
}

/** One line per reason for people: the sentence, then the specifics (`message (action=drop)`). */
export function formatReason(reason: PolicyReason): string {
  const details = Object.entries(reason)
    .filter(([k]) => k !== "code" && k !== "message")
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
  return details.length > 0 ? `${reason.message} (${details.join(", ")})` : reason.message;
}
