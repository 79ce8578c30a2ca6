// The live-grant index against the store it mirrors: exact after every commit, by this connection or another one
// on the same file (as another jitgate process or worker), with no notification; expiry by time alone; a failed
// catch-up fails the read and is retried, never skipped.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import fc from "fast-check";
import { LiveGrantIndex, type LiveGrantSource, RECENT_MS } from "../../src/access/live-grants.ts";
import { Unavailable } from "../../src/errors.ts";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite.ts";
import { MINUTE, storeGrant, T0 } from "../store/fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "jitgate-live-grants-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshFile = () => join(dir, `store-${++files}.db`);
const ids = (grants: readonly { id: string }[]) => grants.map((g) => g.id).sort();
/** Lets RECENT_MS pass (synchronously: these tests drive the store from one thread). */
const pastRecent = () => {
  const until = performance.now() + RECENT_MS + 0.5;
  while (performance.now() < until);
};

describe("live-grant index", () => {
  test("starts from the live grants in the store, leaving out revoked and expired ones", () => {
    const store = openSqliteStore(freshFile());
    storeGrant(store, { id: "live" });
    storeGrant(store, { id: "revoked" });
    storeGrant(store, { id: "expired", expiresAt: T0 + MINUTE });
    storeGrant(store, { id: "elsewhere", resource: "payments-db" });
    store.revokeGrant("revoked", T0 + 1, "sec", "incident");
    const index = new LiveGrantIndex(store, T0 + 2 * MINUTE);
    assert.deepEqual(ids(index.on("alice", "orders-db", T0 + 2 * MINUTE)), ["live"]);
    assert.deepEqual(ids(index.on("alice", "payments-db", T0 + 2 * MINUTE)), ["elsewhere"]);
    assert.deepEqual(index.on("bob", "orders-db", T0 + 2 * MINUTE), []);
    assert.equal(index.confirm("revoked", T0 + 2 * MINUTE), undefined);
    assert.equal(index.confirm("live", T0 + 2 * MINUTE)?.audience, "orders-db");
    store.close();
  });

  test("lists this connection's grant and revoke on the next read", () => {
    const store = openSqliteStore(freshFile());
    const index = new LiveGrantIndex(store, T0);
    assert.deepEqual(index.on("alice", "orders-db", T0), []);
    storeGrant(store, { id: "g1" });
    assert.deepEqual(ids(index.on("alice", "orders-db", T0)), ["g1"]);
    store.revokeGrant("g1", T0 + 1, "sec", "incident");
    assert.deepEqual(index.on("alice", "orders-db", T0 + 2), []);
    assert.equal(index.confirm("g1", T0 + 2), undefined);
    store.close();
  });

  test("confirms against another connection's commits at once, without being told; lists them within RECENT_MS", () => {
    const file = freshFile();
    const mine = openSqliteStore(file);
    const theirs = openSqliteStore(file);
    const index = new LiveGrantIndex(mine, T0);
    storeGrant(theirs, { id: "g1" });
    assert.equal(index.confirm("g1", T0)?.id, "g1");
    assert.deepEqual(ids(index.on("alice", "orders-db", T0)), ["g1"]);
    theirs.revokeGrant("g1", T0 + 1, "sec", "incident");
    assert.equal(index.confirm("g1", T0 + 2), undefined, "a revoke committed elsewhere is honoured at once");
    assert.deepEqual(index.on("alice", "orders-db", T0 + 2), []);
    storeGrant(theirs, { id: "g2" });
    pastRecent();
    assert.deepEqual(ids(index.on("alice", "orders-db", T0 + 2)), ["g2"], "a grant created elsewhere is listed within RECENT_MS");
    assert.equal(index.find("g2", T0 + 2)?.id, "g2");
    theirs.revokeGrantsOf("alice", T0 + 4, "sec", "offboarding");
    assert.equal(index.confirm("g2", T0 + 5), undefined);
    pastRecent();
    assert.equal(index.find("g2", T0 + 5), undefined);
    mine.close();
    theirs.close();
  });

  test("a grant stops counting at its expires_at with no event recorded", () => {
    const store = openSqliteStore(freshFile());
    storeGrant(store, { id: "short", expiresAt: T0 + MINUTE });
    storeGrant(store, { id: "long", expiresAt: T0 + 10 * MINUTE });
    const index = new LiveGrantIndex(store, T0);
    assert.deepEqual(ids(index.on("alice", "orders-db", T0 + MINUTE - 1)), ["long", "short"]);
    assert.deepEqual(ids(index.on("alice", "orders-db", T0 + MINUTE)), ["long"], "never at or after expires_at");
    assert.equal(index.confirm("short", T0 + MINUTE), undefined);
    // Once the expiry is recorded the grant leaves the index for good.
    store.recordExpiries(T0 + MINUTE);
    assert.equal(index.size, 2);
    index.on("alice", "orders-db", T0 + MINUTE);
    assert.equal(index.size, 1);
    store.close();
  });

  test("catches up on more events than one read returns", () => {
    const file = freshFile();
    const mine = openSqliteStore(file);
    const theirs = openSqliteStore(file);
    const index = new LiveGrantIndex(mine, T0);
    theirs.transaction(() => {
      for (let i = 0; i < 2_500; i++) storeGrant(theirs, { id: `g${i}`, subject: `user-${i % 50}` });
    });
    theirs.revokeGrantsOf("user-7", T0 + 1, "sec", "incident");
    pastRecent();
    assert.equal(index.on("user-3", "orders-db", T0 + 2).length, 50);
    assert.deepEqual(index.on("user-7", "orders-db", T0 + 2), []);
    assert.equal(index.size, 2_450);
    assert.equal(index.cursor, mine.latestGrantEventSeq());
    mine.close();
    theirs.close();
  });

  test("a catch-up that cannot read the store fails the read, and the next read catches up", () => {
    const file = freshFile();
    const mine = openSqliteStore(file);
    const theirs = openSqliteStore(file);
    storeGrant(mine, { id: "g1" });
    let failing = false;
    const source: LiveGrantSource = {
      liveGrantSnapshot: (now) => mine.liveGrantSnapshot(now),
      changeMark: () => mine.changeMark(),
      localChangeMark: () => mine.localChangeMark(),
      grantEventsAfter: (afterSeq, limit) => {
        if (failing) throw new Unavailable("store: a disk I/O error occurred");
        return mine.grantEventsAfter(afterSeq, limit);
      },
    };
    const index = new LiveGrantIndex(source, T0);
    theirs.revokeGrant("g1", T0 + 1, "sec", "incident");
    failing = true;
    assert.throws(() => index.confirm("g1", T0 + 2), Unavailable);
    assert.throws(() => index.confirm("g1", T0 + 2), Unavailable, "still failing: never the stale answer");
    failing = false;
    assert.equal(index.confirm("g1", T0 + 2), undefined);
    assert.deepEqual(index.on("alice", "orders-db", T0 + 2), []);
    mine.close();
    theirs.close();
  });

  test("matches the store after any sequence of grants, revokes and expiries from two connections (property)", () => {
    type Op =
      | { kind: "grant"; by: 0 | 1; subject: number; resource: number; minutes: number }
      | { kind: "revoke"; by: 0 | 1; which: number }
      | { kind: "revokeAll"; by: 0 | 1; subject: number }
      | { kind: "expire"; by: 0 | 1 }
      | { kind: "tick"; minutes: number };
    const by = fc.constantFrom<0 | 1>(0, 1);
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        kind: fc.constant("grant" as const),
        by,
        subject: fc.nat(2),
        resource: fc.nat(1),
        minutes: fc.integer({ min: 1, max: 20 }),
      }),
      fc.record({ kind: fc.constant("revoke" as const), by, which: fc.nat(30) }),
      fc.record({ kind: fc.constant("revokeAll" as const), by, subject: fc.nat(2) }),
      fc.record({ kind: fc.constant("expire" as const), by }),
      fc.record({ kind: fc.constant("tick" as const), minutes: fc.integer({ min: 1, max: 5 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => {
        const file = freshFile();
        const stores: [SqliteStore, SqliteStore] = [openSqliteStore(file), openSqliteStore(file)];
        try {
          let now = T0;
          let n = 0;
          const index = new LiveGrantIndex(stores[0], now);
          for (const o of ops) {
            if (o.kind === "grant") {
              const store = stores[o.by];
              storeGrant(store, {
                id: `g${++n}`,
                subject: `s${o.subject}`,
                resource: `r${o.resource}`,
                createdAt: now,
                expiresAt: now + o.minutes * MINUTE,
              });
            } else if (o.kind === "revoke") stores[o.by].revokeGrant(`g${o.which}`, now, "sec", "test");
            else if (o.kind === "revokeAll") stores[o.by].revokeGrantsOf(`s${o.subject}`, now, "sec", "test");
            else if (o.kind === "expire") stores[o.by].recordExpiries(now);
            else now += o.minutes * MINUTE;
            // This connection's own commits are listed at once; another's are confirmed at once, listed within RECENT_MS.
            const own = o.kind === "tick" || o.by === 0;
            for (let g = 1; g <= n; g++) {
              const stored = stores[1].grant(`g${g}`);
              const live = stored !== undefined && stored.revokedAt === undefined && stored.expiresAt > now;
              if (own) assert.equal(index.find(`g${g}`, now) !== undefined, live, `find g${g} after ${JSON.stringify(o)}`);
              assert.equal(index.confirm(`g${g}`, now) !== undefined, live, `confirm g${g} after ${JSON.stringify(o)}`);
            }
            for (let s = 0; s < 3; s++)
              for (let r = 0; r < 2; r++)
                assert.deepEqual(
                  ids(index.on(`s${s}`, `r${r}`, now)),
                  ids(stores[1].liveGrantsOn(`s${s}`, `r${r}`, now)),
                  `s${s} on r${r} after ${JSON.stringify(o)}`,
                );
          }
        } finally {
          for (const s of stores) s.close();
        }
      }),
      { numRuns: 60 },
    );
  });
});
