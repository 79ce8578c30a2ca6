// ReviewAccessRequest and CancelAccessRequest. A review is judged by the policy (off the serving thread)
// against the request's stored plan and the reviews so far, then committed only if the request is still as it
// was judged; otherwise it is judged again. Two reviewers acting at once (even from two jitgate processes) are
// so counted one after the other.
import { FailedPrecondition, NotFound, PermissionDenied, Unavailable } from "../errors.ts";
import { formatReason, type PolicyReason } from "../policy/entrypoints.ts";
import { audit } from "./audit.ts";
import { type AccessDeps, commitChange, mayReadAudit } from "./deps.ts";
import { newGrant } from "./grants.ts";
import { displayId, samePerson } from "./identities.ts";
import type { AccessRequest, Caller, ReviewDecision } from "./model.ts";
import type { WriteTx } from "./ports.ts";
import { reviewInput } from "./policy-input.ts";
import { mayReadRequest, requestReadRefusal } from "./read-scope.ts";

export interface ReviewInput {
  readonly requestId: string;
  readonly decision: ReviewDecision;
  readonly comment: string;
}

/** A review whose request changed under it (another review landed) is judged again, at most this often. */
const REVIEW_ATTEMPTS = 5;

export async function reviewRequest(deps: AccessDeps, caller: Caller, input: ReviewInput): Promise<AccessRequest> {
  for (let attempt = 1; ; attempt++) {
    const now = deps.clock.now();
    const seen = await reviewable(deps, caller, input.requestId, now);
    const { result: verdict, revision } = await deps.policy.reviewVerdict(reviewInput(seen, caller, input.decision, now));
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
    // The verdict holds for the request as it was judged: committed only if no other review or decision landed since.
    const committed = await commitChange(deps, async (tx) => {
      const r = await tx.request(input.requestId);
      if (!r || !unchanged(r, seen)) return false;
      await tx.insertReview(review);
      await tx.appendAudit(
        audit.request("REVIEW_RECORDED", {
          at: now,
          actor: caller.id,
          request: r,
          reason: input.comment,
          details: { decision: input.decision, counts_toward: verdict.counts_toward },
        }),
      );
      if (verdict.outcome === "approved")
        await approve(
          deps,
          tx,
          r,
          [...r.reviews, review].filter((x) => x.decision === "approve").map((x) => x.reviewer.id),
          now,
        );
      if (verdict.outcome === "denied")
        await decide(
          deps,
          tx,
          r,
          "DENIED",
          `denied by ${displayId(caller.id)}${input.comment ? `: ${input.comment}` : ""}`,
          now,
          caller.id,
        );
      return true;
    });
    if (committed) break;
    if (attempt >= REVIEW_ATTEMPTS)
      throw new Unavailable(`access request ${input.requestId} kept changing while it was reviewed; try again`);
  }
  return (await deps.store.request(input.requestId)) as AccessRequest;
}

export async function cancelRequest(deps: AccessDeps, caller: Caller, requestId: string, reason: string): Promise<AccessRequest> {
  const now = deps.clock.now();
  const stored = await existing(deps, caller, requestId);
  if (stored.requester.id !== caller.id) {
    if (!(await mayReadRequest(deps, caller, stored, now))) throw requestReadRefusal(requestId);
    throw new PermissionDenied(`only the requester (${displayId(stored.requester.id)}) may cancel request ${requestId}`);
  }
  await pendingNow(deps, requestId, now);
  const cancelled = await commitChange(deps, async (tx) => {
    const request = await stillPending(tx, requestId, now);
    if (request instanceof Error) return request;
    await decide(deps, tx, request, "CANCELLED", `cancelled by ${displayId(caller.id)}${reason ? `: ${reason}` : ""}`, now, caller.id);
    return undefined;
  });
  if (cancelled) throw cancelled;
  return (await deps.store.request(requestId)) as AccessRequest;
}

/**
 * The request `caller` is about to review: it exists and they may read it (to anyone else an unknown request
 * and a hidden one look alike), separation of duties allows them, and it is still pending.
 */
async function reviewable(deps: AccessDeps, caller: Caller, id: string, now: number): Promise<AccessRequest> {
  const stored = await existing(deps, caller, id);
  // Separation of duties first, so a look-alike of the requester learns why; then need-to-know.
  const refused = separationOfDuties(stored, caller);
  if (refused) {
    throw new PermissionDenied(`${displayId(caller.id)} may not review request ${id}`, [formatReason(refused)], {
      reasons: [refused],
      requestId: id,
    });
  }
  if (!(await mayReadRequest(deps, caller, stored, now))) throw requestReadRefusal(id);
  return await pendingNow(deps, id, now);
}

async function existing(deps: AccessDeps, caller: Caller, id: string): Promise<AccessRequest> {
  const request = await deps.store.request(id);
  if (request) return request;
  if (mayReadAudit(deps, caller)) throw new NotFound(`access request ${id} does not exist`);
  throw requestReadRefusal(id);
}

/** Nothing a verdict depends on has changed: still pending, the same reviews. */
function unchanged(current: AccessRequest, judged: AccessRequest): boolean {
  return current.state === "PENDING" && current.pendingUntil === judged.pendingUntil && current.reviews.length === judged.reviews.length;
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

/**
 * The request as it is now, if still pending; call inside a transaction. One whose deadline has passed is
 * recorded as EXPIRED here (the transaction commits that, and the caller then hears FAILED_PRECONDITION): no
 * sweeper lag is visible to reviewers.
 */
async function stillPending(tx: WriteTx, id: string, now: number): Promise<AccessRequest | FailedPrecondition> {
  const request = await tx.request(id);
  if (!request) throw new NotFound(`access request ${id} does not exist`);
  if (request.state === "PENDING" && request.pendingUntil <= now) {
    for (const r of await tx.expirePending(now, "timed out waiting for approvals")) {
      await tx.appendAudit(audit.request("REQUEST_EXPIRED", { at: now, actor: "jitgate", request: r, reason: r.stateReason }));
    }
    return new FailedPrecondition(`access request ${id} is EXPIRED (timed out waiting for approvals), not PENDING`);
  }
  if (request.state !== "PENDING") return new FailedPrecondition(`access request ${id} is ${request.state}, not PENDING`);
  return request;
}

/** stillPending in its own transaction, which commits a timeout it finds before the refusal is thrown. */
async function pendingNow(deps: AccessDeps, id: string, now: number): Promise<AccessRequest> {
  const request = await deps.store.write((tx) => stillPending(tx, id, now));
  if (request instanceof Error) throw request;
  return request;
}

async function approve(deps: AccessDeps, tx: WriteTx, request: AccessRequest, approvers: readonly string[], now: number): Promise<void> {
  const grant = newGrant(deps, request, now);
  const reason = `approved by ${approvers.map(displayId).join(", ")}`;
  if (!(await tx.decideRequest(request.id, "PENDING", { state: "APPROVED", decidedAt: now, stateReason: reason, grantId: grant.id }))) {
    throw new FailedPrecondition(`access request ${request.id} is no longer PENDING`);
  }
  const approved = { ...request, state: "APPROVED" as const, grantId: grant.id };
  await tx.appendAudit(audit.request("REQUEST_APPROVED", { at: now, actor: approvers.at(-1) ?? "", request: approved, reason }));
  await tx.insertGrant(grant);
  await tx.appendAudit(audit.grant("GRANT_CREATED", { at: now, actor: approvers.at(-1) ?? "", grant, reason }));
}

async function decide(
  deps: AccessDeps,
  tx: WriteTx,
  request: AccessRequest,
  state: "DENIED" | "CANCELLED",
  reason: string,
  now: number,
  actor: string,
): Promise<void> {
  if (!(await tx.decideRequest(request.id, "PENDING", { state, decidedAt: now, stateReason: reason }))) {
    throw new FailedPrecondition(`access request ${request.id} is no longer PENDING`);
  }
  const kind = state === "DENIED" ? "REQUEST_DENIED" : "REQUEST_CANCELLED";
  await tx.appendAudit(audit.request(kind, { at: now, actor, request: { ...request, state }, reason }));
}
