// What the access domain needs from the world, declared here where it is used: the store (reads apart from
// writes), the policy, the clock and id source. src/store, src/policy and the composition root implement them.
import type { CheckDecision, Evaluated, RequestPlan, ReviewVerdict } from "../policy/index.ts";
import type { AccessRequest, AuditEntry, DecisionRecord, Grant, GrantEvent, RequestState, Review, StoredAuditEntry } from "./model.ts";

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

/**
 * The policy's three entrypoints. The server's pool answers asynchronously, off the serving thread and within
 * a time budget (a PolicyTimeout past it); an in-process engine (CLI, tests) may answer at once.
 */
export interface PolicyDecider {
  requestPlan(input: object): Promise<Evaluated<RequestPlan>> | Evaluated<RequestPlan>;
  reviewVerdict(input: object): Promise<Evaluated<ReviewVerdict>> | Evaluated<ReviewVerdict>;
  checkDecision(input: object): Promise<Evaluated<CheckDecision>> | Evaluated<CheckDecision>;
}

/** A grant as the access check needs it: only what the policy reads. */
export interface LiveGrant {
  readonly id: string;
  readonly actions: readonly string[];
  readonly expiresAt: number;
}

/** What the request plan needs to know about the requester's other pending requests. */
export interface PendingSummary {
  readonly id: string;
  readonly resource: string;
  readonly actions: readonly string[];
}

export interface Page {
  /** 1..500; the store caps it. */
  readonly size: number;
  /** Opaque, from a previous page's `next`; "" for the first page. */
  readonly token: string;
}

export interface PageOf<T> {
  readonly items: readonly T[];
  /** "" when there is no further page. */
  readonly next: string;
}

export interface RequestFilter {
  readonly state?: RequestState;
  readonly requester?: string;
  readonly resource?: string;
}

export interface GrantFilter {
  readonly subject?: string;
  readonly resource?: string;
  /** Only grants active at this time (ms): created at or before it, not yet expired or revoked then. */
  readonly activeAt?: number;
}

export interface AuditFilter {
  /** Entries about this subject or by them as actor. */
  readonly subject?: string;
  readonly resource?: string;
  /** At or after (ms). */
  readonly since?: number;
  /** Before (ms). */
  readonly until?: number;
}

/** A value now (an embedded store) or later (a networked one): the domain awaits either. */
export type Awaitable<T> = T | Promise<T>;

/** Reads, each from one consistent snapshot; an embedded store may answer at once, a networked one later. */
export interface AccessReads {
  request(id: string): Awaitable<AccessRequest | undefined>;
  requestByClientKey(requester: string, clientKey: string): Awaitable<AccessRequest | undefined>;
  /** Newest first. */
  requests(filter: RequestFilter, page: Page): Awaitable<PageOf<AccessRequest>>;
  /** The requester's requests still pending at `now` (one past its deadline no longer counts, swept or not). */
  pendingRequestsOf(requester: string, now: number): Awaitable<readonly PendingSummary[]>;
  grant(id: string): Awaitable<Grant | undefined>;
  /** Newest first. */
  grants(filter: GrantFilter, page: Page): Awaitable<PageOf<Grant>>;
  /** Every grant of the subject that is neither revoked nor expired at `now`. */
  liveGrantsOf(subject: string, now: number): Awaitable<readonly Grant[]>;
  /** Grant events with seq > `after`, oldest first, at most `limit`; each with its grant as stored now. */
  grantEventsAfter(after: number, limit: number): Awaitable<readonly GrantEvent[]>;
  /** Every grant not revoked and not expired at `now`, and the latest grant event seq, from one snapshot. */
  liveGrantSnapshot(now: number): Awaitable<{ readonly seq: number; readonly grants: readonly Grant[] }>;
  latestGrantEventSeq(): Awaitable<number>;
  /** A seq after which every REVOKED event of a grant not expired at `now` lies (the latest seq when there is none). */
  revocationsInForceAfter(now: number): Awaitable<number>;
  /** Audit entries, oldest first (by seq). */
  auditEntries(filter: AuditFilter, page: Page): Awaitable<PageOf<StoredAuditEntry>>;
  /** The earliest time (ms) at which a grant expiry or a pending request's timeout is still to be recorded. */
  nextDue(): Awaitable<number | undefined>;
}

/** The writes of one transaction, and the reads it makes under its lock (they see its own writes). */
export interface WriteTx {
  request(id: string): Awaitable<AccessRequest | undefined>;
  insertRequest(request: AccessRequest): Awaitable<void>;
  insertReview(review: Review): Awaitable<void>;
  /** Moves a request out of `from` (compare-and-set); false when it was no longer in `from`. */
  decideRequest(
    id: string,
    from: RequestState,
    change: { state: RequestState; decidedAt: number; stateReason: string; grantId?: string },
  ): Awaitable<boolean>;
  /** Stores the grant and its CREATED event. */
  insertGrant(grant: Grant): Awaitable<GrantEvent>;
  /** Revokes a grant that is live at `at`, with its REVOKED event; undefined when it was not live. */
  revokeGrant(id: string, at: number, by: string, reason: string): Awaitable<GrantEvent | undefined>;
  /** Revokes every grant of the subject that is live at `at`. */
  revokeGrantsOf(subject: string, at: number, by: string, reason: string): Awaitable<readonly GrantEvent[]>;
  /** Records an EXPIRED event for each grant whose expiry is at or before `now` and not yet recorded, earliest first, at most `limit`. */
  recordExpiries(now: number, limit?: number): Awaitable<readonly GrantEvent[]>;
  /** Moves PENDING requests whose pendingUntil is at or before `now` to EXPIRED; returns them as they now are. */
  expirePending(now: number, stateReason: string, limit?: number): Awaitable<readonly AccessRequest[]>;
  appendAudit(entry: AuditEntry): Awaitable<void>;
}

/**
 * Writes, always asynchronous at the port: a change and its audit entries commit together or not at all, and
 * a held lock or a slow disk delays only the writes themselves, never a Check.
 */
export interface AccessWrites {
  /**
   * Runs `fn` in one transaction once the store's write lock is held (Unavailable when it cannot be had within
   * the store's write budget), and commits what it wrote when it returns; rolls it all back when it throws.
   * `fn` runs once; it must do its reads of what it changes through `tx`, under the lock.
   */
  write<T>(fn: (tx: WriteTx) => Promise<T>): Promise<T>;
}

export interface AccessStore extends AccessReads, AccessWrites {}

/** What a token carries once verified (signature, issuer, type, times); its audience is its own, as signed. */
export interface VerifiedToken {
  readonly subject: string;
  readonly audience: string;
  readonly grantId: string;
  readonly actions: readonly string[];
  readonly jti: string;
  readonly expiresAt: number;
}

/** Signed access tokens: issued for a grant, verified against jitgate's own keys. */
export interface TokenPort {
  issue(grant: Grant): Promise<{ token: string; expiresAt: number; jti: string; kid: string }>;
  /**
   * Verifies a token against jitgate's own keys, for any audience jitgate issues to; rejects with Unauthenticated.
   * Nothing in an unverified token is trusted or looked up: the caller compares the audience with the grant's.
   */
  verifyIssued(token: string): Promise<VerifiedToken>;
  jwks(): Promise<object>;
}

/**
 * Where decision records go. `record` must return at once and never throw: the decision log is written
 * asynchronously in batches, so logging never slows or fails a decision.
 */
export interface DecisionSink {
  /**
   * Whether one more record will be kept: true holds a place for it, which the next `record` takes, so a
   * check asks first, before deciding, and refuses to answer (rather than answer unlogged) on false. Every
   * true must be followed by exactly one `record`.
   */
  admit(): boolean;
  record(decision: DecisionRecord): void;
}
