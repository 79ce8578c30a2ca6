// The access lifecycle as one object for the edges (gRPC server, tests): each method is a domain function
// bound to the dependencies it runs on.
import { NotFound, PermissionDenied } from "../errors.ts";
import { audit } from "./audit.ts";
import { type CheckInput, type CheckResult, check, checkAs } from "./check.ts";
import { type AccessDeps, mayReadAudit } from "./deps.ts";
import { ExpiryScheduler } from "./expiry.ts";
import { revokeGrant, revokeSubject } from "./grants.ts";
import type { AccessRequest, Caller, Grant, GrantEvent, StoredAuditEntry } from "./model.ts";
import type { AuditFilter, GrantFilter, Page, PageOf, RequestFilter } from "./ports.ts";
import { mayFollowRevocations, mayReadRequest, readableGrantFilter, readableRequests, requestReadRefusal } from "./read-scope.ts";
import { type RequestAccessInput, requestAccess } from "./request.ts";
import { cancelRequest, type ReviewInput, reviewRequest } from "./review.ts";
import { checkToken, type IssuedAccessToken, issueToken, type TokenCheckInput } from "./tokens.ts";

export interface GrantWatch {
  readonly subject?: string;
  readonly resource?: string;
  /** Deliver the events after this seq; undefined: only events stored from now on. */
  readonly afterSeq?: number;
}

/**
 * A Check as any front end asks it (gRPC Check, and the proxy and HTTP front ends to come): about a subject,
 * with the groups the caller knows it by, or about whoever holds an access token.
 */
export type Question = {
  readonly resource: string;
  readonly action: string;
  readonly context: Readonly<Record<string, string>>;
} & ({ readonly subject: Caller; readonly token?: undefined } | { readonly token: string; readonly subject?: undefined });

/** Where a watch's events go: each event, the end of the feed (shutdown), and a store that failed the backlog. */
export interface WatchStream {
  readonly deliver: (event: GrantEvent) => void;
  readonly ended?: () => void;
  readonly failed?: (err: unknown) => void;
}

export class Access {
  readonly deps: AccessDeps;
  /** Records expiries and timeouts as they fall due (`runDue()` runs one pass now). */
  readonly expiry: ExpiryScheduler;

  constructor(deps: AccessDeps, onBackgroundError: (err: unknown) => void) {
    this.deps = deps;
    this.expiry = new ExpiryScheduler(deps, onBackgroundError);
    deps.feed.onLocalChange(() => this.expiry.wake());
  }

  /** Starts recording expiries and timeouts as they fall due. */
  start(): void {
    this.expiry.start();
  }

  stop(): void {
    this.expiry.stop();
    this.deps.feed.close();
  }

  requestAccess(caller: Caller, input: RequestAccessInput): Promise<AccessRequest> {
    return requestAccess(this.deps, caller, input);
  }

  /** A request `caller` may read (see read-scope.ts); to anyone else an unknown and a hidden request look alike. */
  async getRequest(caller: Caller, id: string): Promise<AccessRequest> {
    const request = await this.deps.store.request(id);
    if (!request) {
      if (mayReadAudit(this.deps, caller)) throw new NotFound(`access request ${id} does not exist`);
      throw requestReadRefusal(id);
    }
    if (!(await mayReadRequest(this.deps, caller, request, this.deps.clock.now()))) throw requestReadRefusal(id);
    return request;
  }

  /** The requests `caller` may read, newest first; a page may be short (see readableRequests). */
  listRequests(caller: Caller, filter: RequestFilter, page: Page): Promise<PageOf<AccessRequest>> {
    return readableRequests(this.deps, caller, filter, page);
  }

  review(caller: Caller, input: ReviewInput): Promise<AccessRequest> {
    return reviewRequest(this.deps, caller, input);
  }

  cancel(caller: Caller, requestId: string, reason: string): Promise<AccessRequest> {
    return cancelRequest(this.deps, caller, requestId, reason);
  }

  check(input: CheckInput): Promise<CheckResult> {
    return check(this.deps, input);
  }

  /**
   * The one Check entry of every front end: a question about a subject (asked by `caller`, who may ask only
   * about themselves unless a checker, admin or auditor) or about an access token's holder.
   */
  ask(caller: Caller, q: Question): Promise<CheckResult> {
    const { resource, action, context } = q;
    if (q.token !== undefined) return checkToken(this.deps, { token: q.token, resource, action, context, caller: caller.id });
    return checkAs(this.deps, caller, { subject: q.subject, resource, action, context });
  }

  /** A check asked by `caller`, who may ask only about themselves unless a checker, admin or auditor. */
  checkAs(caller: Caller, input: CheckInput): Promise<CheckResult> {
    return checkAs(this.deps, caller, input);
  }

  /** A check that presents an access token instead of naming a subject. */
  checkToken(input: TokenCheckInput): Promise<CheckResult> {
    return checkToken(this.deps, input);
  }

  issueToken(caller: Caller, grantId: string): Promise<IssuedAccessToken> {
    return issueToken(this.deps, caller, grantId);
  }

  /** The audit trail, oldest first; for admins and auditors only. */
  async listAuditEntries(caller: Caller, filter: AuditFilter, page: Page): Promise<PageOf<StoredAuditEntry>> {
    if (!mayReadAudit(this.deps, caller)) {
      const groups = [...this.deps.adminGroups, ...this.deps.auditorGroups].join(", ");
      throw new PermissionDenied(`the audit trail is for members of ${groups}`);
    }
    return this.deps.store.auditEntries(filter, page);
  }

  /**
   * Audits a policy bundle this process is about to serve (throwing refuses the switch: no unaudited policy
   * change) or has refused.
   */
  auditPolicyBundle(
    kind: "POLICY_BUNDLE_ACTIVATED" | "POLICY_BUNDLE_REJECTED",
    e: { revision: string; reason: string; details: Readonly<Record<string, unknown>> },
  ): Promise<void> {
    const { store, clock } = this.deps;
    return store.write(async (tx) => tx.appendAudit(audit.policy(kind, { at: clock.now(), ...e })));
  }

  jwks(): Promise<object> {
    return this.deps.tokens.jwks();
  }

  /** Revocations after `afterSeq` (undefined: from now), for verifiers of tokens (checkers, admins, auditors). */
  watchRevocations(caller: Caller, afterSeq: number | undefined, stream: WatchStream): () => void {
    mayFollowRevocations(this.deps, caller);
    return this.deps.feed.subscribe(afterSeq ?? this.latestGrantEventSeq(), { matches: (e) => e.kind === "REVOKED", ...stream });
  }

  /** The resume point that replays every revocation still in force (its grant not yet expired), then new ones. */
  async revocationsInForceSeq(): Promise<number> {
    return this.deps.store.revocationsInForceAfter(this.deps.clock.now());
  }

  async getGrant(id: string): Promise<Grant> {
    const grant = await this.deps.store.grant(id);
    if (!grant) throw new NotFound(`grant ${id} does not exist`);
    return grant;
  }

  /**
   * Active grants by default; all of them with `includeInactive`; those active at `activeAt` if given. Only
   * those `caller` may read: their own, or all for checkers, admins and auditors.
   */
  async listGrants(caller: Caller, filter: GrantFilter & { includeInactive?: boolean }, page: Page): Promise<PageOf<Grant>> {
    const { includeInactive, ...rest } = readableGrantFilter(this.deps, caller, filter);
    const activeAt = rest.activeAt ?? (includeInactive ? undefined : this.deps.clock.now());
    return this.deps.store.grants({ ...rest, ...(activeAt === undefined ? {} : { activeAt }) }, page);
  }

  revokeGrant(caller: Caller, grantId: string, reason: string): Promise<Grant> {
    return revokeGrant(this.deps, caller, grantId, reason);
  }

  revokeSubject(caller: Caller, subject: string, reason: string): Promise<readonly Grant[]> {
    return revokeSubject(this.deps, caller, subject, reason);
  }

  /** The resume point meaning "from now": the newest event stored, not the last one this process delivered. */
  async latestGrantEventSeq(): Promise<number> {
    return this.deps.store.latestGrantEventSeq();
  }

  /**
   * Grant events after `afterSeq` (the replay of history included), filtered, and only of the grants `caller`
   * may read; returns the unsubscribe function.
   */
  watchGrants(caller: Caller, requested: GrantWatch, stream: WatchStream): () => void {
    const watch = readableGrantFilter(this.deps, caller, requested);
    const from = watch.afterSeq ?? this.latestGrantEventSeq();
    return this.deps.feed.subscribe(from, {
      matches: (e) => (!watch.subject || e.grant.subject === watch.subject) && (!watch.resource || e.grant.resource === watch.resource),
      ...stream,
    });
  }

  /** Calls `done` once the request is decided; returns a function that stops waiting. */
  waitForDecision(requestId: string, done: (request: AccessRequest) => void): () => void {
    return this.deps.feed.waitForDecision(requestId, done);
  }
}
