// The live-grant index: every grant that is neither revoked nor recorded as expired, in memory, by subject and
// resource and by id, so a Check reads memory instead of the store. This one is pulled from an embedded store
// (fed-live-grants.ts is fed by a networked store's notifications instead). It catches up from the store's grant
// events whenever the store's change mark moves (SQLite: data_version, which any other connection's commit moves, plus
// this connection's own commits):
// - `confirm` (the check of an allowing grant, after the policy) always looks at the mark first: a revoke that
//   has committed, in this process or any other sharing the store, is never honoured by a later confirm.
// - `on` and `find` (what the policy is shown) look at this connection's commits on every call and at other
//   connections' at most every RECENT_MS: a grant created elsewhere may be missing for that long (a denial,
//   never an allow), which keeps the one store call per Check to the allows.
// Expiry needs no event: every read leaves out a grant whose expires_at has passed.
import type { Grant, GrantEvent } from "./model.ts";
import type { LiveGrant } from "./ports.ts";

/** What a Check reads: the live grants, by subject and resource or by id, kept current against the store. */
export interface LiveGrants {
  /** The subject's live grants on the resource at `now` (a shared array: do not change it). */
  on(subject: string, resource: string, now: number): readonly IndexedGrant[];
  /** The grant with this id if it is live at `now`. */
  find(id: string, now: number): IndexedGrant | undefined;
  /** Like find, as of every commit the index is bound to see before an allow (throws when it cannot be sure). */
  confirm(id: string, now: number): IndexedGrant | undefined;
  /** Told of this process's own committed grant events, so its next Check sees them whatever the feed's delay. */
  committed(events: readonly GrantEvent[]): void;
}

/** What the index reads from the store. */
export interface LiveGrantSource {
  /** Every grant not revoked and not expired at `now`, and the latest grant event seq, from one snapshot. */
  liveGrantSnapshot(now: number): { readonly seq: number; readonly grants: readonly Grant[] };
  /** Grant events with seq > `after`, oldest first, at most `limit`; each with its grant as it is now. */
  grantEventsAfter(after: number, limit: number): readonly GrantEvent[];
  /** A number that differs from every earlier answer once any transaction has committed to the store since. */
  changeMark(): number;
  /** Like changeMark, for this connection's own commits only; free (no store call). */
  localChangeMark(): number;
}

/** A live grant as the index keeps it: what a Check and a Check by token need. */
export interface IndexedGrant extends LiveGrant {
  readonly subject: string;
  readonly resource: string;
  readonly audience: string;
}

const NONE: readonly IndexedGrant[] = Object.freeze([]);
const BATCH = 1000;
/** How stale `on` and `find` may be about grants created by other processes (ms). */
export const RECENT_MS = 1;

export class LiveGrantIndex implements LiveGrants {
  readonly #source: LiveGrantSource;
  readonly #table = new GrantTable();
  #mark: number;
  #localMark: number;
  /** performance.now() of the last look at the change mark. */
  #lookedAt = -Infinity;

  constructor(source: LiveGrantSource, now: number) {
    this.#source = source;
    // The mark first: a commit that lands while the snapshot is read changes it, so the next read catches up.
    this.#mark = source.changeMark();
    this.#localMark = source.localChangeMark();
    this.#lookedAt = performance.now();
    this.#table.load(source.liveGrantSnapshot(now));
  }

  /** The subject's live grants on the resource at `now`, as of RECENT_MS ago at most (a shared array: do not change it). */
  on(subject: string, resource: string, now: number): readonly IndexedGrant[] {
    this.#recent();
    return this.#table.on(subject, resource, now);
  }

  /** The grant with this id if it is live at `now`, as of RECENT_MS ago at most. */
  find(id: string, now: number): IndexedGrant | undefined {
    this.#recent();
    return this.#table.find(id, now);
  }

  /** The grant with this id if it is live at `now`, as of now: every commit so far, by anyone, is seen. */
  confirm(id: string, now: number): IndexedGrant | undefined {
    this.#catchUp();
    return this.#table.find(id, now);
  }

  /** Nothing to do: this connection's own commits move its local mark, which the next read looks at. */
  committed(): void {}

  /** How many grants the index holds (some may have expired without their event yet). */
  get size(): number {
    return this.#table.size;
  }

  /** The grant event seq the index has applied up to. */
  get cursor(): number {
    return this.#table.cursor;
  }

  #recent(): void {
    if (this.#source.localChangeMark() !== this.#localMark || performance.now() - this.#lookedAt >= RECENT_MS) this.#catchUp();
  }

  #catchUp(): void {
    const local = this.#source.localChangeMark();
    const mark = this.#source.changeMark();
    const lookedAt = performance.now();
    if (mark !== this.#mark) {
      // A read that fails (the store is unavailable) throws to the Check, which fails closed; the marks are kept
      // only once every event is applied, so the next read tries again.
      for (;;) {
        const events = this.#source.grantEventsAfter(this.#table.cursor, BATCH);
        for (const e of events) this.#table.apply(e);
        if (events.length < BATCH) break;
      }
      this.#mark = mark;
    }
    this.#localMark = local;
    this.#lookedAt = lookedAt;
  }
}

/** The grants themselves, by subject and resource and by id, and the seq of the last event applied. */
export class GrantTable {
  /** subject -> resource -> grants (a small array: a subject rarely holds more than a few on one resource). */
  readonly #bySubject = new Map<string, Map<string, IndexedGrant[]>>();
  readonly #byId = new Map<string, IndexedGrant>();
  #cursor = 0;
  /**
   * Grants this process ended ahead of the feed (applyAhead), with the seq of the ending event: a read already
   * in flight may still bring an older CREATED of theirs, which must not put them back. Forgotten once the
   * cursor reaches that seq (the feed has applied the end itself).
   */
  readonly #endedAhead = new Map<string, number>();

  /** Starts from a snapshot: its live grants, as of its seq. */
  load(snapshot: { readonly seq: number; readonly grants: readonly Grant[] }): void {
    this.#cursor = snapshot.seq;
    for (const g of snapshot.grants) this.#put(g);
  }

  on(subject: string, resource: string, now: number): readonly IndexedGrant[] {
    const grants = this.#bySubject.get(subject)?.get(resource);
    if (grants === undefined) return NONE;
    for (const g of grants) if (g.expiresAt <= now) return grants.filter((x) => x.expiresAt > now);
    return grants;
  }

  find(id: string, now: number): IndexedGrant | undefined {
    const g = this.#byId.get(id);
    return g !== undefined && g.expiresAt > now ? g : undefined;
  }

  get size(): number {
    return this.#byId.size;
  }

  get cursor(): number {
    return this.#cursor;
  }

  /** Applies the next event in seq order (an event at or before the cursor changes nothing). */
  apply(event: GrantEvent): void {
    if (event.seq <= this.#cursor) return;
    this.#cursor = event.seq;
    const endedAt = this.#endedAhead.get(event.grant.id);
    if (endedAt !== undefined) {
      if (endedAt <= event.seq) this.#endedAhead.delete(event.grant.id);
      if (event.kind === "CREATED" && endedAt > event.seq) return;
    }
    this.#applyGrant(event);
  }

  /**
   * Applies this process's own committed event ahead of the feed, leaving the cursor: the feed applies it again
   * in order later, with the grant as stored then. Safe ahead of order: a grant it adds was created by this very
   * event (so any later revocation has a later seq, which the feed applies after); a grant it ends is remembered
   * until the feed reaches that seq, so a read in flight that still shows the grant's older CREATED never puts it
   * back. An event the cursor has passed is already reflected, and a later one may have ended its grant: skipped.
   * This process's commits must be told in commit order (its writes take turns, and each is told as it commits).
   */
  applyAhead(event: GrantEvent): void {
    if (event.seq <= this.#cursor) return;
    if (event.kind !== "CREATED") this.#endedAhead.set(event.grant.id, Math.max(event.seq, this.#endedAhead.get(event.grant.id) ?? 0));
    this.#applyGrant(event);
  }

  #applyGrant(event: GrantEvent): void {
    // Each event carries its grant as stored now, so replaying an old event never revives a revoked grant.
    const g = event.grant;
    if (event.kind === "CREATED" && g.revokedAt === undefined) this.#put(g);
    else this.#drop(g.id);
  }

  #put(g: Grant): void {
    if (this.#byId.has(g.id)) return;
    const entry: IndexedGrant = Object.freeze({
      id: g.id,
      subject: g.subject,
      resource: g.resource,
      audience: g.audience,
      actions: Object.freeze([...g.actions]),
      expiresAt: g.expiresAt,
    });
    this.#byId.set(g.id, entry);
    let resources = this.#bySubject.get(g.subject);
    if (resources === undefined) this.#bySubject.set(g.subject, (resources = new Map()));
    // A new array each time: an array handed out by `on` is never changed under its reader.
    resources.set(g.resource, [...(resources.get(g.resource) ?? []), entry]);
  }

  #drop(id: string): void {
    const g = this.#byId.get(id);
    if (g === undefined) return;
    this.#byId.delete(id);
    const resources = this.#bySubject.get(g.subject);
    const rest = resources?.get(g.resource)?.filter((x) => x.id !== id) ?? [];
    if (rest.length > 0) resources?.set(g.resource, rest);
    else {
      resources?.delete(g.resource);
      if (resources?.size === 0) this.#bySubject.delete(g.subject);
    }
  }
}
