// Everything the access lifecycle runs on, passed in by the composition root (src/app.ts) or a test.
import { ResourceExhausted } from "../errors.ts";
import type { ChangeFeed } from "./feed.ts";
import type { LiveGrants } from "./live-grants.ts";
import type { Caller, GrantEvent } from "./model.ts";
import type { AccessStore, Clock, DecisionSink, PolicyDecider, TokenPort, WriteTx } from "./ports.ts";
import type { RequestRateLimit } from "./rate-limit.ts";
import { txView } from "./tx-view.ts";

export interface AccessDeps {
  readonly store: AccessStore;
  /** The live grants a Check reads, kept exact against the store (see live-grants.ts). */
  readonly liveGrants: LiveGrants;
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

/**
 * A lifecycle write: `fn` in one store transaction; once it has committed, this process's live-grant index is
 * told of the grant events it wrote (so a revoke returns only when this process no longer allows the grant, and a
 * new grant is honoured at once, whatever the store's feed delay) and the change feed tails the store.
 */
export async function commitChange<T>(
  deps: AccessDeps,
  fn: (tx: WriteTx) => Promise<T>,
  /** Whether the write changed anything the feed's watchers and waiters must hear of. */
  changed: (result: T) => boolean = () => true,
): Promise<T> {
  const events: GrantEvent[] = [];
  const result = await deps.store.write((tx) => fn(recordingEvents(tx, events)));
  if (events.length > 0) deps.liveGrants.committed(events);
  if (events.length > 0 || changed(result)) deps.feed.changed();
  return result;
}

/** `tx`, keeping every grant event its writes return in `events`. */
function recordingEvents(tx: WriteTx, events: GrantEvent[]): WriteTx {
  const keep = <E extends GrantEvent | undefined>(e: E): E => {
    if (e !== undefined) events.push(e);
    return e;
  };
  return txView(tx, {
    insertGrant: async (g) => keep(await tx.insertGrant(g)),
    revokeGrant: async (id, at, by, reason) => keep(await tx.revokeGrant(id, at, by, reason)),
    revokeGrantsOf: async (subject, at, by, reason) => {
      const revoked = await tx.revokeGrantsOf(subject, at, by, reason);
      events.push(...revoked);
      return revoked;
    },
    recordExpiries: async (now, limit) => {
      const expired = await tx.recordExpiries(now, limit);
      events.push(...expired);
      return expired;
    },
  });
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
