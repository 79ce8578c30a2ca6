// The JIT access domain's records: who asked for what, how policy and reviewers decided, and the grants
// that resulted. Times are milliseconds since the Unix epoch (the policy sees seconds; see policy-input.ts).
import type { RequestPlan } from "../policy/entrypoints.ts";
import type { ReasonDetail } from "../errors.ts";

/** A verified caller: the identity comes from mTLS or a verified token, never from a request body. */
export interface Caller {
  readonly id: string;
  readonly groups: readonly string[];
}

export type RequestState = "PENDING" | "APPROVED" | "DENIED" | "CANCELLED" | "EXPIRED";
export const REQUEST_STATES: readonly RequestState[] = ["PENDING", "APPROVED", "DENIED", "CANCELLED", "EXPIRED"];

export type ReviewDecision = "approve" | "deny";

export interface Review {
  readonly requestId: string;
  readonly reviewer: Caller;
  readonly decision: ReviewDecision;
  readonly comment: string;
  /** The approval groups this review counted toward, as the policy said. */
  readonly countsToward: readonly string[];
  readonly createdAt: number;
  readonly policyRevision: string;
}

/** What someone asks for. */
export interface AccessAsk {
  readonly resource: string;
  readonly actions: readonly string[];
  readonly durationS: number;
  readonly justification: string;
  readonly ticket: string;
  readonly emergency: boolean;
}

export interface AccessRequest extends AccessAsk {
  readonly id: string;
  readonly requester: Caller;
  readonly state: RequestState;
  /** The policy's plan when the request was made; reviews are judged against it. */
  readonly plan: RequestPlan;
  /** The revision of the policy bundle that made the plan. */
  readonly policyRevision: string;
  readonly createdAt: number;
  /** A pending request that is not decided by then times out (EXPIRED). 0 when it was never pending. */
  readonly pendingUntil: number;
  readonly decidedAt: number | undefined;
  /** Why the request reached its state, for people ("approved by bob, carol", "timed out", ...). */
  readonly stateReason: string;
  readonly grantId: string | undefined;
  readonly reviews: readonly Review[];
  /** The client's idempotency key, so a retried RequestAccess returns the first request. */
  readonly clientKey: string;
}

export interface Grant {
  readonly id: string;
  readonly requestId: string;
  readonly subject: string;
  readonly resource: string;
  readonly actions: readonly string[];
  /** Who tokens for this grant are for (the resource's service), from the plan. */
  readonly audience: string;
  readonly breakGlass: boolean;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly revokedAt: number | undefined;
  readonly revokedBy: string | undefined;
  readonly revokeReason: string | undefined;
  readonly policyRevision: string;
}

export type GrantStatus = "ACTIVE" | "EXPIRED" | "REVOKED";

/** A grant's status at `at`: revocation wins over expiry when both happened before `at`. */
export function grantStatus(grant: Grant, at: number): GrantStatus {
  if (grant.revokedAt !== undefined && grant.revokedAt <= at) return "REVOKED";
  if (grant.expiresAt <= at) return "EXPIRED";
  return "ACTIVE";
}

export type GrantEventKind = "CREATED" | "REVOKED" | "EXPIRED";

/** One change to a grant, in the order the store committed it; `seq` is the resume point for watchers. */
export interface GrantEvent {
  readonly seq: number;
  readonly kind: GrantEventKind;
  readonly at: number;
  readonly grant: Grant;
}

export type AuditKind =
  | "REQUEST_CREATED"
  | "REQUEST_APPROVED"
  | "REQUEST_DENIED"
  | "REQUEST_CANCELLED"
  | "REQUEST_EXPIRED"
  | "REVIEW_RECORDED"
  | "GRANT_CREATED"
  | "GRANT_REVOKED"
  | "GRANT_EXPIRED"
  | "TOKEN_ISSUED"
  | "POLICY_BUNDLE_ACTIVATED"
  | "POLICY_BUNDLE_REJECTED"
  | "SIGNING_KEY_ROTATED";

/** One line of the audit trail; written in the same transaction as the change it records. */
export interface AuditEntry {
  readonly kind: AuditKind;
  readonly at: number;
  readonly actor: string;
  readonly subject: string;
  readonly resource: string;
  readonly requestId: string | undefined;
  readonly grantId: string | undefined;
  readonly reason: string;
  readonly policyRevision: string;
  readonly details: Readonly<Record<string, unknown>>;
}

/** An audit entry as the trail holds it: its place in the hash chain and its details exactly as stored. */
export interface StoredAuditEntry extends Omit<AuditEntry, "details" | "kind"> {
  readonly seq: number;
  /** An AuditKind; a string because an older or newer jitgate may have written kinds this one does not know. */
  readonly kind: string;
  /** The details as stored (a JSON object's text): the text the hash covers. */
  readonly detailsJson: string;
  readonly prevHash: string;
  readonly hash: string;
}

/** One access check as it was decided: what the decision log keeps for every Check. */
export interface DecisionRecord {
  readonly decisionId: string;
  /** When it was decided (ms since the Unix epoch). */
  readonly at: number;
  /** The authenticated caller that asked (usually a service), not necessarily the subject. */
  readonly caller: string;
  readonly subject: string;
  readonly resource: string;
  readonly action: string;
  readonly allow: boolean;
  readonly reasons: readonly ReasonDetail[];
  readonly policyRevision: string;
  /** The grant that allowed it; "" for a denial or standing access. */
  readonly grantId: string;
  /** The access token's id when the check presented one; "" otherwise. */
  readonly tokenId: string;
  /** Time spent deciding (store read + policy), in microseconds. */
  readonly latencyUs: number;
}
