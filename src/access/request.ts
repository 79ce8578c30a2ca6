// RequestAccess: the policy plans the request; a denial for bad input is INVALID_ARGUMENT (naming the
// field), a duplicate is ALREADY_EXISTS, any other denial is recorded and refused; an auto-approval becomes
// a grant at once; otherwise the request waits for reviews until the policy's pending deadline.
import { AlreadyExists, InvalidArgument, PermissionDenied } from "../errors.ts";
import { formatReason, type PolicyReason, type RequestPlan } from "../policy/entrypoints.ts";
import { audit } from "./audit.ts";
import { type AccessDeps, commitChange } from "./deps.ts";
import { newGrant } from "./grants.ts";
import type { AccessAsk, AccessRequest, Caller } from "./model.ts";
import type { WriteTx } from "./ports.ts";
import { planInput } from "./policy-input.ts";

export interface RequestAccessInput extends AccessAsk {
  /** The client's idempotency key ("" for none). */
  readonly clientKey: string;
}

/** Reason codes that mean the request itself is malformed, and the request field each one is about. */
const FIELD_OF_REASON: Readonly<Record<string, string>> = {
  unknown_resource: "resource",
  action_not_allowed: "actions",
  no_actions: "actions",
  invalid_duration: "duration",
  justification_too_short: "justification",
  ticket_required: "ticket",
  ticket_invalid: "ticket",
};
const DUPLICATE_REASONS = new Set(["duplicate_pending", "already_granted"]);

export async function requestAccess(deps: AccessDeps, caller: Caller, input: RequestAccessInput): Promise<AccessRequest> {
  deps.requestRate?.take(caller.id, deps.clock.now());
  if (input.clientKey !== "") {
    const earlier = await deps.store.requestByClientKey(caller.id, input.clientKey);
    if (earlier) return sameRequestOrThrow(earlier, input);
  }
  const now = deps.clock.now();
  const [live, pending] = await Promise.all([deps.store.liveGrantsOf(caller.id, now), deps.store.pendingRequestsOf(caller.id, now)]);
  const { result: plan, revision } = await deps.policy.requestPlan(planInput(caller, input, now, live, pending));
  if (plan.decision === "deny") refuseUnlessPolicyDenial(plan);

  const request: AccessRequest = {
    id: deps.newId(),
    requester: { id: caller.id, groups: [...caller.groups] },
    resource: input.resource,
    actions: [...input.actions],
    durationS: input.durationS,
    justification: input.justification,
    ticket: input.ticket,
    emergency: input.emergency,
    state: plan.decision === "deny" ? "DENIED" : plan.decision === "auto_approve" ? "APPROVED" : "PENDING",
    plan,
    policyRevision: revision,
    createdAt: now,
    pendingUntil: plan.decision === "needs_approval" ? now + plan.pending_ttl_s * 1000 : 0,
    decidedAt: plan.decision === "needs_approval" ? undefined : now,
    stateReason: stateReasonOf(plan),
    grantId: undefined,
    reviews: [],
    clientKey: input.clientKey,
  };
  const stored = await commitChange(deps, (tx) => record(deps, tx, request));
  if (stored.state === "DENIED") {
    throw new PermissionDenied("policy denied the request", plan.reasons.map(formatReason), {
      reasons: plan.reasons,
      revision,
      requestId: stored.id,
    });
  }
  return stored;
}

async function record(deps: AccessDeps, tx: WriteTx, request: AccessRequest): Promise<AccessRequest> {
  const grant = request.state === "APPROVED" ? newGrant(deps, request, request.createdAt) : undefined;
  const stored = grant ? { ...request, grantId: grant.id } : request;
  await tx.insertRequest(stored);
  const base = { at: request.createdAt, actor: request.requester.id, request: stored };
  await tx.appendAudit(audit.request("REQUEST_CREATED", { ...base, reason: request.justification }));
  if (request.state === "DENIED") await tx.appendAudit(audit.request("REQUEST_DENIED", { ...base, reason: stored.stateReason }));
  if (grant) {
    await tx.appendAudit(audit.request("REQUEST_APPROVED", { ...base, reason: stored.stateReason }));
    await tx.insertGrant(grant);
    await tx.appendAudit(audit.grant("GRANT_CREATED", { at: grant.createdAt, actor: "policy", grant, reason: stored.stateReason }));
  }
  return stored;
}

function refuseUnlessPolicyDenial(plan: RequestPlan): void {
  const fields = plan.reasons.map((r) => FIELD_OF_REASON[r.code]).filter((f): f is string => f !== undefined);
  const all = plan.reasons.map(formatReason).join("; ");
  if (fields.length > 0 && fields.length === plan.reasons.length) throw new InvalidArgument(fields[0] as string, all);
  if (plan.reasons.length > 0 && plan.reasons.every((r) => DUPLICATE_REASONS.has(r.code))) throw new AlreadyExists(all);
}

function stateReasonOf(plan: RequestPlan): string {
  const sentence = (codes: readonly PolicyReason[]) => codes.map(formatReason).join("; ");
  if (plan.decision === "auto_approve") return plan.break_glass ? `break-glass: ${sentence(plan.reasons)}` : "auto-approved by policy";
  if (plan.decision === "deny") return `denied by policy: ${sentence(plan.reasons)}`;
  return "waiting for approvals";
}

/**
 * A retry with the same key gets the first answer again: the request, or the same denial. The same key for a
 * different request is an error.
 */
function sameRequestOrThrow(earlier: AccessRequest, input: RequestAccessInput): AccessRequest {
  const same =
    earlier.resource === input.resource &&
    earlier.actions.length === input.actions.length &&
    earlier.actions.every((a, i) => a === input.actions[i]) &&
    earlier.durationS === input.durationS &&
    earlier.justification === input.justification &&
    earlier.ticket === input.ticket &&
    earlier.emergency === input.emergency;
  if (!same)
    throw new AlreadyExists(`client_request_id ${input.clientKey} was already used for request ${earlier.id} with other parameters`);
  if (earlier.state === "DENIED" && earlier.plan.decision === "deny") {
    throw new PermissionDenied("policy denied the request", earlier.plan.reasons.map(formatReason), {
      reasons: earlier.plan.reasons,
      revision: earlier.policyRevision,
      requestId: earlier.id,
    });
  }
  return earlier;
}
