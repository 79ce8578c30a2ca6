// ReviewAccessRequest and CancelAccessRequest. A review is judged by the policy against the request's
// stored plan and the reviews so far, all read and written in one transaction, so two reviewers acting at
// once (even from two jitgate processes) are counted one after the other.
import { FailedPrecondition, NotFound, PermissionDenied } from "../errors.ts";
import { formatReason, type PolicyReason } from "../policy/entrypoints.ts";
import { audit } from "./audit.ts";
import { type AccessDeps, mayReadAudit } from "./deps.ts";
import { newGrant } from "./grants.ts";
import { displayId, samePerson } from "./identities.ts";
import type { AccessRequest, Caller, ReviewDecision } from "./model.ts";
import { reviewInput } from "./policy-input.ts";
import { mayReadRequest, requestReadRefusal } from "./read-scope.ts";

export interface ReviewInput {
  readonly requestId: string;
  readonly decision: ReviewDecision;
  readonly comment: string;
}

export function reviewRequest(deps: AccessDeps, caller: Caller, input: ReviewInput): AccessRequest {
  const now = deps.clock.now();
  const result = deps.store.transaction(() => {
    const request = pendingRequest(deps, caller, input.requestId, now, (stored) => {
      // Separation of duties first, so a look-alike of the requester learns why; then need-to-know.
      const refused = separationOfDuties(stored, caller);
      if (refused) {
        throw new PermissionDenied(`${displayId(caller.id)} may not review request ${input.requestId}`, [formatReason(refused)], {
          reasons: [refused],
          requestId: input.requestId,
        });
      }
      if (!mayReadRequest(deps, caller, stored, now)) throw requestReadRefusal(input.requestId);
    });
    if (!request.ok) return request;
    const { result: verdict, revision } = deps.policy.reviewVerdict(reviewInput(request.value, caller, input.decision, now));
    if (!verdict.allowed) {
      throw new PermissionDenied(`${displayId(caller.id)} may not review request ${input.requestId}`, verdict.reasons.map(formatReason), {
        reasons: verdict.reasons,
        revision,
        requestId: input.requestId,
      });
    }
    const review = {
      requestId: input.requestId,
      reviewer: { id: caller.id, groups: [...caller.groups] },
      decision: input.decision,
      comment: input.comment,
      countsToward: verdict.counts_toward,
      createdAt: now,
      policyRevision: revision,
    };
    deps.store.insertReview(review);
    const r = request.value;
    deps.store.appendAudit(
      audit.request("REVIEW_RECORDED", {
        at: now,
        actor: caller.id,
        request: r,
        reason: input.comment,
        details: { decision: input.decision, counts_toward: verdict.counts_toward },
      }),
    );
    if (verdict.outcome === "approved")
      approve(
        deps,
        r,
        [...r.reviews, review].filter((x) => x.decision === "approve").map((x) => x.reviewer.id),
        now,
      );
    if (verdict.outcome === "denied")
      decide(deps, r, "DENIED", `denied by ${displayId(caller.id)}${input.comment ? `: ${input.comment}` : ""}`, now, caller.id);
    return { ok: true as const, value: r };
  });
  if (!result.ok) throw result.error;
  deps.feed.changed();
  return deps.store.request(input.requestId) as AccessRequest;
}

export function cancelRequest(deps: AccessDeps, caller: Caller, requestId: string, reason: string): AccessRequest {
  const now = deps.clock.now();
  const result = deps.store.transaction(() => {
    const request = pendingRequest(deps, caller, requestId, now, (stored) => {
      if (stored.requester.id === caller.id) return;
      if (!mayReadRequest(deps, caller, stored, now)) throw requestReadRefusal(requestId);
      throw new PermissionDenied(`only the requester (${displayId(stored.requester.id)}) may cancel request ${requestId}`);
    });
    if (!request.ok) return request;
    decide(deps, request.value, "CANCELLED", `cancelled by ${displayId(caller.id)}${reason ? `: ${reason}` : ""}`, now, caller.id);
    return { ok: true as const, value: request.value };
  });
  if (!result.ok) throw result.error;
  deps.feed.changed();
  return deps.store.request(requestId) as AccessRequest;
}

/**
 * jitgate's own separation of duties, before the policy is asked: nobody whom a reader would take for the
 * requester reviews, and nobody whom a reader would take for an earlier reviewer votes again (so one person
 * cannot fill two "distinct approver" slots under look-alike ids). See identities.ts for "would take for".
 */
function separationOfDuties(request: AccessRequest, reviewer: Caller): PolicyReason | undefined {
  if (samePerson(reviewer.id, request.requester.id)) {
    return { code: "self_review", message: "requesters may not review their own request", requester: displayId(request.requester.id) };
  }
  const earlier = request.reviews.find((r) => samePerson(r.reviewer.id, reviewer.id));
  if (earlier) {
    return {
      code: "already_reviewed",
      message: "this reviewer has already reviewed the request",
      reviewer: displayId(earlier.reviewer.id),
    };
  }
  return undefined;
}

type Pending = { ok: true; value: AccessRequest } | { ok: false; error: Error };

/**
 * The request, if it is still pending. `guard` refuses callers who may not act on it before its state is told
 * (to them an unknown request and a hidden one look alike). One whose deadline has passed is recorded as EXPIRED
 * here (the transaction commits that) and reported as no longer pending: no sweeper lag is visible to reviewers.
 */
function pendingRequest(deps: AccessDeps, caller: Caller, id: string, now: number, guard: (request: AccessRequest) => void): Pending {
  const request = deps.store.request(id);
  if (!request) {
    if (mayReadAudit(deps, caller)) throw new NotFound(`access request ${id} does not exist`);
    throw requestReadRefusal(id);
  }
  guard(request);
  if (request.state === "PENDING" && request.pendingUntil <= now) {
    for (const r of deps.store.expirePending(now, "timed out waiting for approvals")) {
      deps.store.appendAudit(audit.request("REQUEST_EXPIRED", { at: now, actor: "jitgate", request: r, reason: r.stateReason }));
    }
    return { ok: false, error: new FailedPrecondition(`access request ${id} is EXPIRED (timed out waiting for approvals), not PENDING`) };
  }
  if (request.state !== "PENDING")
    return { ok: false, error: new FailedPrecondition(`access request ${id} is ${request.state}, not PENDING`) };
  return { ok: true, value: request };
}

function approve(deps: AccessDeps, request: AccessRequest, approvers: readonly string[], now: number): void {
  const grant = newGrant(deps, request, now);
  const reason = `approved by ${approvers.map(displayId).join(", ")}`;
  if (!deps.store.decideRequest(request.id, "PENDING", { state: "APPROVED", decidedAt: now, stateReason: reason, grantId: grant.id })) {
    throw new FailedPrecondition(`access request ${request.id} is no longer PENDING`);
  }
  const approved = { ...request, state: "APPROVED" as const, grantId: grant.id };
  deps.store.appendAudit(audit.request("REQUEST_APPROVED", { at: now, actor: approvers.at(-1) ?? "", request: approved, reason }));
  deps.store.insertGrant(grant);
  deps.store.appendAudit(audit.grant("GRANT_CREATED", { at: now, actor: approvers.at(-1) ?? "", grant, reason }));
}

function decide(deps: AccessDeps, request: AccessRequest, state: "DENIED" | "CANCELLED", reason: string, now: number, actor: string): void {
  if (!deps.store.decideRequest(request.id, "PENDING", { state, decidedAt: now, stateReason: reason })) {
    throw new FailedPrecondition(`access request ${request.id} is no longer PENDING`);
  }
  const kind = state === "DENIED" ? "REQUEST_DENIED" : "REQUEST_CANCELLED";
  deps.store.appendAudit(audit.request(kind, { at: now, actor, request: { ...request, state }, reason }));
}
