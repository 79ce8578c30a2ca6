// Builds the policy's inputs from the domain's records. The policy reads time in seconds (`now`,
// `expires_at`); the domain keeps milliseconds. Only the fields a rule reads go in: input size is what
// a Wasm evaluation costs.
import type { AccessAsk, AccessRequest, Caller, Grant, ReviewDecision } from "./model.ts";
import type { LiveGrant, PendingSummary } from "./ports.ts";

export const seconds = (ms: number): number => ms / 1000;
export const millis = (s: number): number => Math.round(s * 1000);

const principal = (c: Caller) => ({ id: c.id, groups: c.groups });

export function planInput(
  requester: Caller,
  req: AccessAsk,
  now: number,
  liveGrants: readonly Grant[],
  pending: readonly PendingSummary[],
): object {
  return {
    requester: principal(requester),
    resource: req.resource,
    actions: req.actions,
    duration_s: req.durationS,
    justification: req.justification,
    ticket: req.ticket,
    emergency: req.emergency,
    now: seconds(now),
    live_grants: liveGrants.map((g) => ({ id: g.id, resource: g.resource, actions: g.actions, expires_at: seconds(g.expiresAt) })),
    pending_requests: pending.map((p) => ({ id: p.id, resource: p.resource, actions: p.actions })),
  };
}

export function reviewInput(request: AccessRequest, reviewer: Caller, decision: ReviewDecision, now: number): object {
  return {
    request: {
      id: request.id,
      requester: principal(request.requester),
      resource: request.resource,
      actions: request.actions,
      approvals: request.plan.approvals,
      distinct_approvers: request.plan.distinct_approvers,
      reviews: request.reviews.map((r) => ({ reviewer: r.reviewer.id, decision: r.decision, counts_toward: r.countsToward })),
    },
    reviewer: principal(reviewer),
    decision,
    now: seconds(now),
  };
}

export function checkInput(
  subject: Caller,
  resource: string,
  action: string,
  context: Readonly<Record<string, string>>,
  now: number,
  grants: readonly LiveGrant[],
): object {
  return {
    subject: principal(subject),
    resource,
    action,
    context,
    now: seconds(now),
    grants: grants.map((g) => ({ id: g.id, actions: g.actions, expires_at: seconds(g.expiresAt) })),
  };
}
