// Everything the access lifecycle runs on, passed in by the composition root (src/app.ts) or a test.
import type { ChangeFeed } from "./feed.ts";
import type { Caller } from "./model.ts";
import type { AccessStore, Clock, DecisionSink, PolicyDecider, TokenPort } from "./ports.ts";

export interface AccessDeps {
  readonly store: AccessStore;
  readonly policy: PolicyDecider;
  readonly clock: Clock;
  readonly newId: () => string;
  /** Told after every committed change, so watchers and waiters hear of it at once. */
  readonly feed: ChangeFeed;
  /** Groups whose members may revoke other people's grants and revoke a subject's access. */
  readonly adminGroups: readonly string[];
  /** Groups whose members may read the audit trail (admins may too). */
  readonly auditorGroups: readonly string[];
  readonly tokens: TokenPort;
  /** Every access check's record goes here; it must return at once (see DecisionSink). */
  readonly decisions: DecisionSink;
}

export function isAdmin(deps: AccessDeps, caller: Caller): boolean {
  return caller.groups.some((g) => deps.adminGroups.includes(g));
}

export function mayReadAudit(deps: AccessDeps, caller: Caller): boolean {
  return isAdmin(deps, caller) || caller.groups.some((g) => deps.auditorGroups.includes(g));
}
