// The live-grant index of a replica on a networked store, against an in-memory feed whose reads answer with the log
// as it was when they were sent: it follows the feed on every announcement and heartbeat, refuses grant-based allows
// once its last sync point (a read's send time) is older than the bound and recovers by itself, applies its own
// commits ahead of the feed, and never honours an end it has been told of or read.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, test, type TestContext } from "node:test";
import fc from "fast-check";
import { FedLiveGrantIndex, type FedLiveGrantOptions, type GrantFeedSource } from "../../src/access/fed-live-grants.ts";
import type { Grant, GrantEvent, GrantEventKind } from "../../src/access/model.ts";
import { Unavailable } from "../../src/errors.ts";
import { aGrant, MINUTE, T0 } from "../store/fixtures.ts";

/** Small real bounds: the behaviour is about real time; these are correctness bounds, never speed assertions. */
const BOUND = 200;
const HEARTBEAT = 20;
/** A heartbeat that never comes within a test, so only announcements, commits and explicit syncs read. */
const QUIET = 60_000;

type ReadMode = "answer" | "hang" | "fail";

interface ReadRecord {
  readonly after: number;
  /** The highest seq the feed had handed out (or the snapshot's) when this read was sent: where it must resume. */
  readonly resumeFrom: number;
  /** The log's last seq when the read was sent: its answer is the log as of then. */
  readonly lastSeqAtSend: number;
}

interface Parked {
  readonly answer: readonly GrantEvent[];
  readonly settle: (outcome: "answer" | "fail") => void;
}

/**
 * The store's side of the feed, in memory: events by seq, each read answering with the log and the grants as they
 * were when the read was sent (the earliest a real store's snapshot can be); `mode` decides whether reads answer
 * (after `delayMs`), hang until released, or fail.
 */
class FakeGrantFeed implements GrantFeedSource {
  mode: ReadMode = "answer";
  /** Modes for the next reads, in order, before `mode` applies again. */
  readonly nextModes: ReadMode[] = [];
  delayMs = 0;
  closed = false;
  readonly reads: ReadRecord[] = [];
  readonly #log: { readonly seq: number; readonly kind: GrantEventKind; readonly at: number; readonly id: string }[] = [];
  readonly #grants = new Map<string, Grant>();
  readonly #endSeq = new Map<string, number>();
  readonly #listeners: (() => void)[] = [];
  readonly #parked: Parked[] = [];
  #handedOut = 0;

  get lastSeq(): number {
    return this.#log.at(-1)?.seq ?? 0;
  }

  get ids(): readonly string[] {
    return [...this.#grants.keys()];
  }

  grant(id: string): Grant {
    const g = this.#grants.get(id);
    assert.ok(g, `no grant ${id} in the log`);
    return g;
  }

  create(over: Partial<Grant> & { id: string }): GrantEvent {
    const g = aGrant({ requestId: `req-${over.id}`, ...over });
    this.#grants.set(g.id, g);
    return this.#append("CREATED", g.createdAt, g);
  }

  revoke(id: string, at: number): GrantEvent {
    const g: Grant = { ...this.grant(id), revokedAt: at, revokedBy: "sec", revokeReason: "incident" };
    this.#grants.set(id, g);
    return this.#append("REVOKED", at, g);
  }

  expire(id: string, at: number): GrantEvent {
    return this.#append("EXPIRED", at, this.grant(id));
  }

  /** The seq of the grant's REVOKED or EXPIRED event, if it has one. */
  endSeq(id: string): number | undefined {
    return this.#endSeq.get(id);
  }

  /** Ids of the grants the log holds live at `now` (no end event, not past expires_at). */
  liveIds(now: number): string[] {
    return this.ids.filter((id) => this.#endSeq.get(id) === undefined && this.grant(id).expiresAt > now).sort();
  }

  announce(): void {
    for (const listener of this.#listeners) listener();
  }

  get parked(): number {
    return this.#parked.length;
  }

  /** Settles the oldest parked read (answering with the log as of its send time, or failing); false if none. */
  releaseOne(outcome: "answer" | "fail" = "answer"): boolean {
    const read = this.#parked.shift();
    read?.settle(outcome);
    return read !== undefined;
  }

  /** Settles every parked read. */
  release(outcome: "answer" | "fail" = "answer"): void {
    while (this.releaseOne(outcome));
  }

  async liveGrantSnapshot(now: number): Promise<{ seq: number; grants: readonly Grant[] }> {
    this.#handedOut = this.lastSeq;
    return { seq: this.lastSeq, grants: this.liveIds(now).map((id) => this.grant(id)) };
  }

  eventsAfter(after: number, limit: number): Promise<readonly GrantEvent[]> {
    this.reads.push({ after, resumeFrom: this.#handedOut, lastSeqAtSend: this.lastSeq });
    // The answer is fixed now: each event with its grant as stored at this moment.
    const answer = this.#log
      .filter((e) => e.seq > after)
      .slice(0, limit)
      .map((e) => ({ seq: e.seq, kind: e.kind, at: e.at, grant: this.grant(e.id) }));
    const mode = this.nextModes.shift() ?? this.mode;
    return new Promise((resolve, reject) => {
      const settle = (outcome: "answer" | "fail") => {
        if (outcome === "fail") return reject(new Unavailable("store test-db: the grant feed connection is down"));
        this.#handedOut = Math.max(this.#handedOut, answer.at(-1)?.seq ?? after);
        resolve(answer);
      };
      if (mode === "hang") this.#parked.push({ answer, settle });
      else setTimeout(() => settle(mode), this.delayMs);
    });
  }

  onAnnounce(listener: () => void): void {
    this.#listeners.push(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  #append(kind: GrantEventKind, at: number, grant: Grant): GrantEvent {
    const seq = this.lastSeq + 1;
    this.#log.push({ seq, kind, at, id: grant.id });
    if (kind !== "CREATED") this.#endSeq.set(grant.id, seq);
    return { seq, kind, at, grant };
  }
}

const clockAt = (at: number) => ({
  at,
  now() {
    return this.at;
  },
});

/** Opens an index over `feed`, closed (its reads released) when the test ends. */
async function openIndex(t: TestContext, feed: FakeGrantFeed, over: Partial<FedLiveGrantOptions> = {}): Promise<FedLiveGrantIndex> {
  const index = await FedLiveGrantIndex.open(feed, { boundMs: BOUND, heartbeatMs: QUIET, now: () => T0, ...over });
  t.after(async () => {
    feed.mode = "answer";
    feed.release();
    await index.close();
  });
  return index;
}

const ids = (grants: readonly { id: string }[]) => grants.map((g) => g.id).sort();

/** Lets the index apply a settled read and send the next one (it does so in promise continuations). */
const settled = () => new Promise<void>((resolve) => setImmediate(resolve));

const until = async (cond: () => boolean, what: string, ms = 5_000) => {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting until ${what}`);
    await sleep(2);
  }
};

interface Probe {
  readonly start: number;
  readonly end: number;
  readonly answered: string | undefined;
  readonly refused: unknown;
}

/** Calls confirm every few ms until `endAt` (performance.now()), noting when each call started and ended. */
async function probeConfirm(index: FedLiveGrantIndex, id: string, now: number, endAt: number): Promise<Probe[]> {
  const probes: Probe[] = [];
  while (performance.now() < endAt) {
    const start = performance.now();
    let answered: string | undefined;
    let refused: unknown;
    try {
      answered = index.confirm(id, now)?.id;
    } catch (err) {
      refused = err;
    }
    probes.push({ start, end: performance.now(), answered, refused });
    await sleep(5);
  }
  return probes;
}

function assertRefusedForTheFeed(probe: Probe): void {
  assert.ok(probe.refused instanceof Unavailable, `confirm answered ${String(probe.answered)} instead of refusing`);
  assert.equal(probe.refused.code, "UNAVAILABLE");
  assert.match(probe.refused.message, /grant feed/);
}

describe("live-grant index fed by a networked store", () => {
  test("starts from the snapshot's live grants; a grant stops counting at its expires_at with no event", async (t) => {
    const feed = new FakeGrantFeed();
    feed.create({ id: "orders", expiresAt: T0 + 30 * MINUTE });
    feed.create({ id: "short", expiresAt: T0 + MINUTE });
    feed.create({ id: "payments", resource: "payments-db", audience: "payments-db" });
    feed.create({ id: "revoked" });
    feed.revoke("revoked", T0 + 1);
    feed.create({ id: "expired-before", expiresAt: T0 + 2 });
    const clock = clockAt(T0 + 10);
    const index = await openIndex(t, feed, { now: () => clock.now() });

    assert.equal(index.cursor, feed.lastSeq);
    assert.deepEqual(ids(index.on("alice", "orders-db", T0 + 10)), ["orders", "short"]);
    assert.deepEqual(ids(index.on("alice", "payments-db", T0 + 10)), ["payments"]);
    assert.deepEqual(index.on("bob", "orders-db", T0 + 10), []);
    assert.equal(index.find("payments", T0 + 10)?.audience, "payments-db");
    assert.deepEqual(index.confirm("orders", T0 + 10)?.actions, ["read", "write"]);
    assert.equal(index.find("revoked", T0 + 10), undefined);
    assert.equal(index.confirm("revoked", T0 + 10), undefined);
    assert.equal(index.confirm("expired-before", T0 + 10), undefined);

    const reads = feed.reads.length;
    assert.equal(index.find("short", T0 + MINUTE - 1)?.id, "short");
    assert.equal(index.find("short", T0 + MINUTE), undefined);
    assert.equal(index.confirm("short", T0 + MINUTE), undefined);
    assert.deepEqual(ids(index.on("alice", "orders-db", T0 + MINUTE)), ["orders"]);
    assert.equal(feed.reads.length, reads, "expiry needs no read of the feed");
  });

  test("a revocation committed elsewhere and announced is honoured once the read it causes completes", async (t) => {
    const feed = new FakeGrantFeed();
    feed.create({ id: "g1" });
    const index = await openIndex(t, feed);

    feed.revoke("g1", T0 + 1);
    feed.create({ id: "g2" });
    assert.equal(index.confirm("g1", T0 + 2)?.id, "g1", "nothing announced and no heartbeat yet: not read");
    assert.equal(feed.reads.length, 0);
    feed.delayMs = 10;
    feed.announce();
    assert.equal(index.confirm("g1", T0 + 2)?.id, "g1", "the read it causes is still in flight");
    await until(() => index.confirm("g1", T0 + 2) === undefined, "the announced revocation is applied");
    assert.equal(feed.reads.length, 1);
    assert.equal(index.find("g1", T0 + 2), undefined);
    assert.deepEqual(ids(index.on("alice", "orders-db", T0 + 2)), ["g2"]);
    assert.equal(index.cursor, feed.lastSeq);
  });

  test("without an announcement, the heartbeat picks a revocation up", async (t) => {
    const feed = new FakeGrantFeed();
    feed.create({ id: "g1" });
    const index = await openIndex(t, feed, { heartbeatMs: HEARTBEAT });

    feed.revoke("g1", T0 + 1);
    await until(() => index.confirm("g1", T0 + 2) === undefined, "the heartbeat applies the revocation");
    assert.deepEqual(index.on("alice", "orders-db", T0 + 2), []);
    assert.equal(index.cursor, feed.lastSeq);
  });

  test("one sync applies every event committed before it was sent, however many reads that takes", async (t) => {
    const feed = new FakeGrantFeed();
    feed.create({ id: "early" });
    const index = await openIndex(t, feed, { boundMs: QUIET });
    for (let i = 2; i < 1_001; i++) feed.create({ id: `f${i}` });
    feed.create({ id: "g" }); // seq 1001: the last event of the first read after the snapshot
    for (let i = 1_002; i < 2_100; i++) feed.create({ id: `f${i}` });
    feed.revoke("early", T0 + 1);
    feed.revoke("g", T0 + 1);

    feed.nextModes.push("answer", "hang");
    const syncing = index.sync();
    const firstSentBy = performance.now();
    await until(() => feed.parked === 1, "the second read is in flight");
    assert.equal(index.cursor, 1_001);
    assert.equal(index.confirm("g", T0 + 2), undefined, "an event's grant as stored now (revoked) is not put in");
    await sleep(20);
    feed.release();
    await syncing;
    const askedAt = performance.now();
    assert.ok(index.staleForMs >= askedAt - firstSentBy, "the sync point is the first read's send time");
    assert.equal(index.confirm("early", T0 + 2), undefined);
    assert.equal(index.cursor, feed.lastSeq);
    assert.equal(index.size, feed.liveIds(T0 + 2).length);
    assert.deepEqual(
      feed.reads.map((r) => r.after),
      [1, 1_001, 2_001],
    );
  });

  for (const cutOff of ["hang", "fail"] as const) {
    test(`when reads ${cutOff}, confirm answers until the sync point is older than the bound, then refuses with Unavailable until the feed is back and caught up`, async (t) => {
      const feed = new FakeGrantFeed();
      feed.create({ id: "g" });
      const freshness: boolean[] = [];
      const errors: unknown[] = [];
      const index = await openIndex(t, feed, {
        heartbeatMs: HEARTBEAT,
        onFreshness: (fresh) => freshness.push(fresh),
        onError: (err) => errors.push(err),
      });
      const sentFrom = performance.now();
      await index.sync();
      const syncedBy = performance.now();
      feed.mode = cutOff;

      const probes = await probeConfirm(index, "g", T0 + 1, syncedBy + BOUND + 100);
      for (const p of probes) {
        if (p.end < sentFrom + BOUND) assert.equal(p.answered, "g", `refused ${p.end - sentFrom} ms after the sync point`);
        if (p.start > syncedBy + BOUND) assertRefusedForTheFeed(p);
      }
      assert.ok(probes.some((p) => p.answered === "g") && probes.some((p) => p.refused !== undefined));
      assert.equal(index.fresh, false);
      assert.ok(index.staleForMs > BOUND);
      assert.deepEqual(freshness, [false], "told once that the feed is stale");
      if (cutOff === "fail") {
        assert.ok(errors.length > 0 && errors.every((e) => e instanceof Unavailable));
      }

      // Committed while cut off: a revocation and more grants than one read returns.
      feed.revoke("g", T0 + 1);
      for (let i = 0; i < 2_500; i++) feed.create({ id: `n${i}`, subject: `user${i % 7}` });
      feed.mode = "answer";
      feed.release();
      await until(() => index.fresh && index.cursor === feed.lastSeq, "the index is fresh and caught up");

      assert.deepEqual(freshness, [false, true], "told once that it is fresh again");
      assert.equal(index.confirm("g", T0 + 2), undefined);
      assert.equal(index.size, 2_500);
      for (let i = 0; i < 2_500; i++) assert.equal(index.confirm(`n${i}`, T0 + 2)?.id, `n${i}`);
      assert.deepEqual(
        feed.reads.filter((r) => r.after !== r.resumeFrom),
        [],
        "every read resumes after the last seq the feed handed out",
      );
    });
  }

  test("a read that was sent before a revocation committed counts from its send time, not from when it completed", async (t) => {
    const feed = new FakeGrantFeed();
    feed.create({ id: "g" });
    const index = await openIndex(t, feed, { heartbeatMs: HEARTBEAT });
    await index.sync();

    feed.mode = "hang";
    const inFlight = index.sync();
    const readSentBy = performance.now();
    assert.equal(feed.parked, 1);
    await sleep(BOUND / 4);
    feed.revoke("g", T0 + 1);
    const revokedAt = performance.now();
    feed.announce();
    await sleep(BOUND / 2);
    // The read answers (without the revocation, as of its send time); every read after it fails.
    feed.mode = "fail";
    feed.release();
    await inFlight;
    const completedAt = performance.now();
    assert.equal(index.cursor, 1, "the read applied nothing of the revocation");
    const askedAt = performance.now();
    assert.ok(index.staleForMs >= askedAt - readSentBy, "the sync point is the read's send time");

    const probes = await probeConfirm(index, "g", T0 + 2, completedAt + BOUND + 50);
    for (const p of probes) if (p.start > readSentBy + BOUND) assertRefusedForTheFeed(p);
    assert.ok(probes.every((p) => p.answered === undefined || p.end <= revokedAt + BOUND));
    assert.ok(
      probes.some((p) => p.start > readSentBy + BOUND && p.start < completedAt + BOUND),
      "probed while a completion-time sync point would still trust the grant",
    );
  });

  test("sync calls while a read is in flight cause exactly one more read after it", async (t) => {
    const feed = new FakeGrantFeed();
    const index = await openIndex(t, feed);
    feed.mode = "hang";

    const calls = [index.sync(), index.sync(), index.sync()];
    feed.announce();
    feed.announce();
    index.committed([feed.create({ id: "mine" })]);
    calls.push(index.sync());
    assert.equal(feed.reads.length, 1);
    assert.equal(index.find("mine", T0)?.id, "mine", "its own commit is applied at once");

    feed.releaseOne();
    await settled();
    assert.equal(feed.reads.length, 2, "one more read after the one in flight");
    assert.equal(feed.reads[1]?.lastSeqAtSend, 1, "sent after the first one completed");
    feed.mode = "answer";
    feed.release();
    await Promise.all(calls);
    await settled();
    assert.equal(feed.reads.length, 2);
    assert.equal(index.cursor, 1);
  });

  test("close stops the heartbeat: no read of the feed after it", async (t) => {
    const feed = new FakeGrantFeed();
    const index = await openIndex(t, feed, { heartbeatMs: HEARTBEAT });
    await until(() => feed.reads.length >= 3, "the heartbeat reads");

    await index.close();
    assert.ok(feed.closed);
    const reads = feed.reads.length;
    await sleep(HEARTBEAT * 5);
    feed.announce();
    await index.sync();
    index.committed([feed.create({ id: "late" })]);
    await sleep(HEARTBEAT * 2);
    assert.equal(feed.reads.length, reads);
  });

  test("applying its own commits ahead of the feed never honours an end it has read, and ends matching the log (property)", async () => {
    await fc.assert(
      fc.asyncProperty(initialGrants, fc.array(step, { maxLength: 40, size: "max" }), (initial, steps) =>
        interleave(initial, steps, false),
      ),
      {
        numRuns: 500,
      },
    );
  });

  test("a revocation this process committed is never undone by a read sent before it (property)", async () => {
    await fc.assert(
      fc.asyncProperty(initialGrants, fc.array(step, { maxLength: 40, size: "max" }), (initial, steps) => interleave(initial, steps, true)),
      {
        numRuns: 500,
      },
    );
  });

  test("a revocation this process committed is not undone by a read that was sent before it", async (t) => {
    const feed = new FakeGrantFeed();
    const index = await openIndex(t, feed);
    feed.mode = "hang";
    index.committed([feed.create({ id: "g" })]); // seq 1, applied ahead; its sync sends a read now
    assert.equal(feed.parked, 1);
    index.committed([feed.revoke("g", T0 + 1)]); // seq 2: this process's revoke has returned
    assert.equal(index.confirm("g", T0 + 2), undefined);

    feed.releaseOne(); // the read sent before the revoke answers [CREATED g, as stored then]
    await settled();
    assert.equal(index.cursor, 1);
    assert.equal(index.confirm("g", T0 + 2), undefined, "a grant this process revoked is confirmed again");
  });

  test("onFreshness(true) is told only once the sync point is within the bound again", async (t) => {
    const feed = new FakeGrantFeed();
    feed.create({ id: "g" });
    const freshness: boolean[] = [];
    const index = await openIndex(t, feed, { onFreshness: (fresh) => freshness.push(fresh) });
    feed.mode = "hang";
    void index.sync();
    await sleep(BOUND + 50);
    assert.throws(() => index.confirm("g", T0 + 1), Unavailable);
    feed.releaseOne(); // answers late; the read it causes hangs again
    await settled();
    assert.equal(index.fresh, false);
    assert.deepEqual(freshness, [false], "told fresh while confirm still refuses");
  });
});

// The property: random interleavings of this process's commits (told to `committed` at once or later), other
// processes' commits, announcements, and reads answering (with the log as of their send time) or failing.
const SUBJECTS = ["alice", "bob"];
const RESOURCES = ["orders-db", "payments-db"];
const where = { subject: fc.constantFrom(...SUBJECTS), resource: fc.constantFrom(...RESOURCES), ttlMin: fc.integer({ min: 1, max: 30 }) };
const step = fc.oneof(
  fc.record({ kind: fc.constant("create" as const), own: fc.boolean(), late: fc.boolean(), ...where }),
  fc.record({ kind: fc.constant("revoke" as const), own: fc.boolean(), late: fc.boolean(), pick: fc.nat({ max: 3 }) }),
  fc.record({ kind: fc.constant("expire" as const), own: fc.boolean(), late: fc.boolean(), advanceMin: fc.integer({ min: 0, max: 10 }) }),
  fc.record({ kind: fc.constant("tell" as const) }),
  fc.record({ kind: fc.constant("announce" as const) }),
  fc.record({ kind: fc.constant("answer" as const) }),
  fc.record({ kind: fc.constant("fail" as const) }),
);
type Step = typeof step extends fc.Arbitrary<infer S> ? S : never;
const initialGrants = fc.array(fc.record(where), { maxLength: 4 });
type Initial = typeof initialGrants extends fc.Arbitrary<infer I> ? I : never;

async function interleave(initial: Initial, steps: readonly Step[], ownEndsAtOnce: boolean): Promise<void> {
  const feed = new FakeGrantFeed();
  const clock = clockAt(T0);
  let made = 0;
  const create = (w: { subject: string; resource: string; ttlMin: number }, who: string) =>
    feed.create({ id: `${who}${made++}`, subject: w.subject, resource: w.resource, expiresAt: clock.at + w.ttlMin * MINUTE });
  for (const w of initial) create(w, "old");
  const index = await FedLiveGrantIndex.open(feed, { boundMs: QUIET, heartbeatMs: QUIET, now: () => clock.now() });
  feed.mode = "hang";
  const untold: GrantEvent[] = [];
  const toldEnded = new Set<string>();
  const toldCreated = new Set<string>();
  let readThrough = feed.lastSeq;
  /** Tells the index of this process's committed events, as commitChange does once its transaction is durable. */
  const tell = (events: readonly GrantEvent[]) => {
    index.committed(events);
    for (const e of events) (e.kind === "CREATED" ? toldCreated : toldEnded).add(e.grant.id);
  };
  // A late commit is told in a later step (its request is slow to come back), but in commit order: this process's
  // writes run one at a time, so none is told before an earlier one.
  const commit = (events: readonly GrantEvent[], s: { own: boolean; late: boolean }) => {
    if (!s.own) return;
    untold.push(...events);
    if (!s.late) tell(untold.splice(0));
  };
  const notEnded = () => feed.ids.filter((id) => feed.endSeq(id) === undefined);

  const check = (when: string) => {
    for (const id of feed.ids) {
      const g = feed.grant(id);
      const end = feed.endSeq(id);
      const known = (end !== undefined && end <= readThrough) || (ownEndsAtOnce && toldEnded.has(id));
      if (known) {
        assert.equal(index.find(id, clock.at), undefined, `${when}: ${id} ended at seq ${end} is found`);
        assert.equal(index.confirm(id, clock.at), undefined, `${when}: ${id} ended at seq ${end} is confirmed`);
        assert.ok(!ids(index.on(g.subject, g.resource, clock.at)).includes(id), `${when}: ${id} ended is listed`);
      } else if (end === undefined && toldCreated.has(id) && g.expiresAt > clock.at) {
        assert.equal(index.confirm(id, clock.at)?.id, id, `${when}: ${id}, created here and live, is not confirmed`);
      }
    }
  };

  for (const [i, s] of steps.entries()) {
    if (s.kind === "create") commit([create(s, s.own ? "mine" : "theirs")], s);
    else if (s.kind === "revoke") {
      const live = notEnded();
      const id = live[live.length - 1 - (s.pick % Math.max(1, live.length))]; // mostly the newest
      if (id !== undefined) commit([feed.revoke(id, clock.at)], s);
    } else if (s.kind === "expire") {
      clock.at += s.advanceMin * MINUTE;
      commit(
        notEnded()
          .filter((id) => feed.grant(id).expiresAt <= clock.at)
          .map((id) => feed.expire(id, clock.at)),
        s,
      );
    } else if (s.kind === "tell") tell(untold.splice(0));
    else if (s.kind === "announce") feed.announce();
    else if (s.kind === "answer") {
      const sentThrough = feed.reads.at(-1)?.lastSeqAtSend ?? 0;
      if (feed.releaseOne("answer")) readThrough = Math.max(readThrough, sentThrough);
    } else feed.releaseOne("fail");
    await settled();
    check(`after step ${i} (${s.kind})`);
  }

  tell(untold.splice(0));
  feed.mode = "answer";
  feed.release();
  await settled();
  await index.sync();
  readThrough = feed.lastSeq;
  check("after a full sync");
  const live = feed.liveIds(clock.at);
  assert.deepEqual(feed.ids.filter((id) => index.find(id, clock.at) !== undefined).sort(), live);
  for (const subject of SUBJECTS)
    for (const resource of RESOURCES)
      assert.deepEqual(
        ids(index.on(subject, resource, clock.at)),
        live.filter((id) => feed.grant(id).subject === subject && feed.grant(id).resource === resource),
      );
  assert.equal(index.size, notEnded().length);
  assert.equal(index.cursor, feed.lastSeq);
  assert.deepEqual(
    feed.reads.filter((r) => r.after !== r.resumeFrom),
    [],
  );
  await index.close();
}
