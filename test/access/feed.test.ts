// The change feed over a store that answers later (as a networked one does): watchers that resume from any
// seq while events keep committing see every matching event exactly once, in seq order; a backlog read that
// fails drops that watcher with the error, never a silent gap.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test } from "node:test";
import fc from "fast-check";
import { ChangeFeed } from "../../src/access/feed.ts";
import type { GrantEvent } from "../../src/access/model.ts";
import type { AccessReads } from "../../src/access/ports.ts";
import { Unavailable } from "../../src/errors.ts";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite.ts";
import { storeGrant } from "../store/fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "jitgate-feed-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

/** The store's feed reads, each answered after `delay()` ms; `fail` makes the next backlog read throw. */
function laterStore(store: SqliteStore, delay: () => number) {
  const state = { failNext: false };
  const later = async <T>(read: () => T): Promise<T> => {
    await sleep(delay());
    if (state.failNext) {
      state.failNext = false;
      throw new Unavailable("store: unreachable");
    }
    return read();
  };
  const reads = {
    latestGrantEventSeq: () => later(() => store.latestGrantEventSeq()),
    grantEventsAfter: (after: number, limit: number) => later(() => store.grantEventsAfter(after, limit)),
    request: (id: string) => later(() => store.request(id)),
  } as unknown as AccessReads;
  return { reads, state };
}

const until = async (cond: () => boolean, ms = 5_000) => {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error("timed out waiting");
    await sleep(2);
  }
};

describe("change feed over an asynchronous store", () => {
  test("watchers resuming from any seq while grants commit see each later event once, in order", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 8 }),
        fc.array(fc.record({ after: fc.integer({ min: 0, max: 30 }), at: fc.integer({ min: 0, max: 19 }) }), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.integer({ min: 1, max: 5 }),
        async (before, watchers, maxDelay) => {
          const store = openSqliteStore(join(dir, `feed-${++files}.db`));
          const { reads } = laterStore(store, () => Math.floor(Math.random() * maxDelay));
          const feed = new ChangeFeed(reads, { pollMs: 5 });
          let n = 0;
          for (; n < before; n++) storeGrant(store, { id: `g${n}` });
          const seen = watchers.map(() => [] as GrantEvent[]);
          const stops: (() => void)[] = [];
          for (let step = 0; step < 20; step++) {
            watchers.forEach((w, i) => {
              if (w.at === step) stops.push(feed.subscribe(w.after, { matches: () => true, deliver: (e) => seen[i]?.push(e) }));
            });
            storeGrant(store, { id: `g${n++}` });
            feed.changed();
            await sleep(Math.floor(Math.random() * 3));
          }
          const last = store.latestGrantEventSeq();
          await until(() => seen.every((s, i) => (s.at(-1)?.seq ?? 0) === (last > (watchers[i]?.after ?? 0) ? last : 0)));
          watchers.forEach((w, i) => {
            const got = (seen[i] ?? []).map((e) => e.seq);
            const want = store
              .grantEventsAfter(w.after, 10_000)
              .map((e) => e.seq)
              .filter((s) => s > w.after);
            assert.deepEqual(got, want, `watcher ${i} resuming after ${w.after}`);
          });
          for (const stop of stops) stop();
          feed.close();
          store.close();
        },
      ),
      { numRuns: 25 },
    );
  });

  test("a watcher whose backlog cannot be read is dropped with the error; the others go on", async () => {
    const store = openSqliteStore(join(dir, `feed-${++files}.db`));
    const { reads, state } = laterStore(store, () => 1);
    const feed = new ChangeFeed(reads, { pollMs: 5 });
    for (let i = 0; i < 3; i++) storeGrant(store, { id: `old${i}` });
    await feed.tick();
    const healthy: number[] = [];
    feed.subscribe(store.latestGrantEventSeq(), { matches: () => true, deliver: (e) => healthy.push(e.seq) });
    await until(() => healthy.length === 0 && feed.cursor === store.latestGrantEventSeq());
    let failure: unknown;
    const dropped: number[] = [];
    state.failNext = true;
    feed.subscribe(0, { matches: () => true, deliver: (e) => dropped.push(e.seq), failed: (err) => (failure = err) });
    await until(() => failure !== undefined);
    assert.ok(failure instanceof Unavailable);
    storeGrant(store, { id: "new" });
    feed.changed();
    await until(() => healthy.length === 1);
    assert.deepEqual(dropped, [], "the failed watcher is shown nothing, so it resumes by seq without a gap");
    feed.close();
    store.close();
  });

  test("a waiter hears of a decision made by another process, through the poll", async () => {
    const store = openSqliteStore(join(dir, `feed-${++files}.db`));
    const { reads } = laterStore(store, () => 1);
    const feed = new ChangeFeed(reads, { pollMs: 5 });
    const { aRequest } = await import("../store/fixtures.ts");
    store.insertRequest(aRequest({ id: "r1" }));
    let decided: string | undefined;
    feed.waitForDecision("r1", (r) => (decided = r.state));
    await sleep(20);
    assert.equal(decided, undefined);
    store.decideRequest("r1", "PENDING", { state: "DENIED", decidedAt: 1, stateReason: "no" });
    await until(() => decided !== undefined);
    assert.equal(decided, "DENIED");
    feed.close();
    store.close();
  });
});
