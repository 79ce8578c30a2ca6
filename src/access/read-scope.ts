// Need-to-know: who may read which requests, grants, grant events and revocations. The rules live here, in
// the domain, so every front end shows the same things to the same caller:
// - admins and auditors read everything;
// - a requester reads their own requests and grants (exact id);
// - an approver reads the requests they reviewed and the pending ones the policy's review entrypoint says
//   they may review (their inbox), and nothing else of other people's;
// - checker services read grants and grant events (what a Check would tell them anyway) and follow
//   revocations, but read no request (justifications, tickets, comments) that is not theirs.
import { PermissionDenied } from "../errors.ts";
import { type AccessDeps, isChecker, mayReadAudit } from "./deps.ts";
import { displayId, samePerson } from "./identities.ts";
import type { AccessRequest, Caller } from "./model.ts";
import { reviewInput } from "./policy-input.ts";
import type { GrantFilter, Page, PageOf, RequestFilter } from "./ports.ts";

/** A listing examines at most this many rows per call for a caller who sees only some; a page may come back short. */
export const MAX_SCANNED_PER_PAGE = 5_000;

/** Whether `caller` may read `request`: theirs, reviewed by them, or pending their review. */
export async function mayReadRequest(deps: AccessDeps, caller: Caller, request: AccessRequest, now: number): Promise<boolean> {
  if (mayReadAudit(deps, caller)) return true;
  if (request.requester.id === caller.id) return true;
  if (request.reviews.some((r) => r.reviewer.id === caller.id)) return true;
  return request.state === "PENDING" && mayReview(deps, caller, request, now);
}

/** The policy's review entrypoint decides who may review; jitgate's separation of duties comes first. */
async function mayReview(deps: AccessDeps, caller: Caller, request: AccessRequest, now: number): Promise<boolean> {
  if (samePerson(caller.id, request.requester.id) || request.reviews.some((r) => samePerson(r.reviewer.id, caller.id))) return false;
  for (const decision of ["approve", "deny"] as const) {
    if ((await deps.policy.reviewVerdict(reviewInput(request, caller, decision, now))).result.allowed) return true;
  }
  return false;
}

/** The refusal for a request the caller may not read, and for an unknown one (to anyone but admins and auditors). */
export function requestReadRefusal(id: string): PermissionDenied {
  return new PermissionDenied(
    `access request ${id} is not one you may read: you may read the requests you made, reviewed or may review (or it does not exist)`,
  );
}

/**
 * One page of the requests `caller` may read, newest first. For a caller who reads only some, store pages are
 * walked and filtered until the page is full, the store is exhausted, or MAX_SCANNED_PER_PAGE rows were seen;
 * `next` then resumes after the last row examined, so a short page with a `next` means "keep going".
 */
export async function readableRequests(
  deps: AccessDeps,
  caller: Caller,
  filter: RequestFilter,
  page: Page,
): Promise<PageOf<AccessRequest>> {
  if (mayReadAudit(deps, caller) || filter.requester === caller.id) return deps.store.requests(filter, page);
  const now = deps.clock.now();
  const items: AccessRequest[] = [];
  let token = page.token;
  let scanned = 0;
  for (;;) {
    const batch = await deps.store.requests(filter, { size: page.size - items.length, token });
    scanned += batch.items.length;
    // Asked together, so the policy pool judges a page's pending requests in a few batches.
    const readable = await Promise.all(batch.items.map((r) => mayReadRequest(deps, caller, r, now)));
    batch.items.forEach((r, i) => {
      if (readable[i]) items.push(r);
    });
    token = batch.next;
    if (token === "" || items.length >= page.size || scanned >= MAX_SCANNED_PER_PAGE) return { items, next: token };
  }
}

/** Whether `caller` may read every grant (and every grant event): admins, auditors and checker services. */
export function mayReadAllGrants(deps: AccessDeps, caller: Caller): boolean {
  return mayReadAudit(deps, caller) || isChecker(deps, caller);
}

/**
 * The grant filter narrowed to what `caller` may read: everything for admins, auditors and checkers; their own
 * grants for anyone else (asking for another subject's is refused, naming the rule).
 */
export function readableGrantFilter<F extends GrantFilter>(deps: AccessDeps, caller: Caller, filter: F): F {
  if (mayReadAllGrants(deps, caller)) return filter;
  if (filter.subject !== undefined && filter.subject !== caller.id) {
    throw new PermissionDenied(
      `${displayId(caller.id)} may read only their own grants; the grants of ${displayId(filter.subject)} are for members of ${trustedGroups(deps)}`,
    );
  }
  return { ...filter, subject: caller.id };
}

/** Revocations are for the services that enforce access (and admins, auditors); anyone else is refused. */
export function mayFollowRevocations(deps: AccessDeps, caller: Caller): void {
  if (mayReadAllGrants(deps, caller)) return;
  throw new PermissionDenied(`following revocations is for checker services, admins and auditors (members of ${trustedGroups(deps)})`);
}

/**
 * The refusal for acting on a grant that is not the caller's, and for an unknown one: neither names the
 * holder nor tells whether the grant exists.
 */
export function grantRefusal(id: string, act: string, who: string): PermissionDenied {
  return new PermissionDenied(`grant ${id} is not one you may ${act}: ${who} (or it does not exist)`);
}

function trustedGroups(deps: AccessDeps): string {
  return [...deps.checkerGroups, ...deps.adminGroups, ...deps.auditorGroups].join(", ");
}
