// Everything the access lifecycle runs on, passed in by the composition root (src/app.ts) or a test.
import { ResourceExhausted } from "../errors.ts";
import type { ChangeFeed } from "./feed.ts";
import type { LiveGrantIndex } from "./live-grants.ts";
import type { Caller } from "./model.ts";
import type { AccessStore, Clock, DecisionSink, PolicyDecider, TokenPort } from "./ports.ts";
import type { RequestRateLimit } from "./rate-limit.ts";

export interface AccessDeps {
  readonly store: AccessStore;
  /** The live grants a Check reads, kept exact against the store (see live-grants.ts). */
  readonly liveGrants: LiveGrantIndex;
  readonly policy: PolicyDecider;
  readonly clock: Clock;
  readonly newId: () => string;
  /** Told after every committed change, so watchers and waiters hear of it at once. */
  readonly feed: ChangeFeed;
  /** Groups whose members may revoke other people's grants and revoke a subject's access. */
  readonly adminGroups: readonly string[];
  /** Groups whose members may read the audit trail (admins may too). */
  readonly auditorGroups: readonly string[];
  /** Groups whose members (the services that enforce access) may check any subject; others only themselves. */
  readonly checkerGroups: readonly string[];
  readonly tokens: TokenPort;
  /** Every access check's record goes here; it must return at once (see DecisionSink). */
  readonly decisions: DecisionSink;
  /** RequestAccess calls per requester; undefined: not limited. */
  readonly requestRate?: RequestRateLimit;
}

/** Refuses a check before it is decided when the decision log could not keep its record (DecisionSink.admit). */
export function admitDecision(deps: AccessDeps): void {
  if (!deps.decisions.admit()) throw new ResourceExhausted("decision_log", "the decision log cannot keep up; retry with backoff");
}

export function isAdmin(deps: AccessDeps, caller: Caller): boolean {
  return caller.groups.some((g) => deps.adminGroups.includes(g));
}

export function mayReadAudit(deps: AccessDeps, caller: Caller): boolean {
  return isAdmin(deps, caller) || caller.groups.some((g) => deps.auditorGroups.includes(g));
}

export function isChecker(deps: AccessDeps, caller: Caller): boolean {
  return caller.groups.some((g) => deps.checkerGroups.includes(g));
}

/**
 * Whether `caller` speaks for others' access: checker services, admins and auditors may ask about any
 * subject, with the groups they know it by. Anyone else asks only about themselves, with their verified groups.
 */
export function mayCheckOthers(deps: AccessDeps, caller: Caller): boolean {
  return isChecker(deps, caller) || mayReadAudit(deps, caller);
}
