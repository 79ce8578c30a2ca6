// Write health from real writes: a full disk (a small tmpfs filled for real), a file system the kernel turns
// read-only under an open store (ext4 errors=remount-ro on a loop device), SQLite's own page limit where nothing
// can be mounted, and the cases that must not count (lock contention, a caller's own mistake).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import Database from "better-sqlite3";
import { AlreadyExists, Unavailable } from "../../src/errors.ts";
import { BUSY_PROBES_UNTIL_UNWRITABLE, openSqliteStore, SqliteStore, STORE_FILE } from "../../src/store/sqlite.ts";
import { mountExt4, mountTmpfs } from "../support/scratch-fs.ts";
import { aRequest, storeGrant, T0 } from "./fixtures.ts";

/** Writes that may land in space the WAL already holds before one needs a new block. */
const MAX_WRITES_UNTIL_FULL = 200;

/** A clock that moves only when told. */
function fakeClock(start = T0) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return assert.fail("expected an error");
}

/** Grants for new subjects until a write fails; returns the failure. */
function writeUntilRefused(store: SqliteStore, prefix: string): unknown {
  for (let i = 0; i < MAX_WRITES_UNTIL_FULL; i++) {
    try {
      storeGrant(store, { id: `${prefix}-${i}`, subject: `${prefix}-${i}` });
    } catch (err) {
      return err;
    }
  }
  return assert.fail(`${MAX_WRITES_UNTIL_FULL} writes committed on a full disk`);
}

describe("write health: a full disk", () => {
  test("a write refused by a full disk makes writes not possible, saying why and since when, until a write commits", (t) => {
    const fs = mountTmpfs(8 << 20);
    if (typeof fs === "string") return t.skip(fs);
    const clock = fakeClock();
    const store = openSqliteStore(join(fs.dir, STORE_FILE), { now: clock.now });
    try {
      storeGrant(store, { id: "before" });
      assert.deepEqual(store.writes, { possible: true });
      fs.fill();
      clock.advance(1_000);
      const err = writeUntilRefused(store, "full");
      assert.ok(err instanceof Unavailable, String(err));
      assert.equal(err.message, "store: the disk is full");
      assert.equal(store.writes.possible, false);
      assert.equal(store.writes.reason, "the disk is full");
      assert.equal(store.writes.since, T0 + 1_000);
      // Reads go on, and a later failure keeps the time the outage began.
      assert.equal(store.liveGrantsOn("alice", "orders-db", T0).length, 1);
      clock.advance(1_000);
      assert.ok(thrown(() => storeGrant(store, { id: "still-full", subject: "still-full" })) instanceof Unavailable);
      assert.equal(store.writes.since, T0 + 1_000);

      fs.free();
      storeGrant(store, { id: "after", subject: "after" });
      assert.deepEqual(store.writes, { possible: true });
    } finally {
      store.close();
      fs.unmount();
    }
  });

  test("the probe finds a full disk with no user write, and sees the space come back", (t) => {
    const fs = mountTmpfs(8 << 20);
    if (typeof fs === "string") return t.skip(fs);
    const store = openSqliteStore(join(fs.dir, STORE_FILE));
    try {
      storeGrant(store, { id: "before" });
      assert.deepEqual(store.probeWrites(), { possible: true });
      fs.fill();
      // The probe's own write is a WAL frame: the first probe whose frame needs a new block finds the disk full.
      let probed = store.probeWrites();
      for (let i = 0; probed.possible && i < MAX_WRITES_UNTIL_FULL; i++) probed = store.probeWrites();
      assert.equal(probed.possible, false);
      assert.equal(probed.reason, "the disk is full");

      fs.free();
      assert.deepEqual(store.probeWrites(), { possible: true });
      storeGrant(store, { id: "after", subject: "after" });
    } finally {
      store.close();
      fs.unmount();
    }
  });

  test("after a write fails on a full disk, the probe's own write fitting in what is left does not count as recovery", (t) => {
    const fs = mountTmpfs(8 << 20);
    if (typeof fs === "string") return t.skip(fs);
    const store = openSqliteStore(join(fs.dir, STORE_FILE));
    try {
      storeGrant(store, { id: "before" });
      fs.fill(16 << 10);
      // A request far larger than the space left: its WAL frames fill what is left, then SQLite gets ENOSPC.
      const big = aRequest({ id: "big", justification: "x".repeat(512 << 10) });
      assert.ok(thrown(() => store.insertRequest(big)) instanceof Unavailable);
      assert.equal(store.writes.reason, "the disk is full");
      // The failed write left a few WAL frames' worth of blocks: enough for the probe's one-frame write (which
      // would commit), too little for any lifecycle write. The probe waits for free space instead.
      for (let i = 0; i < 5; i++) assert.equal(store.probeWrites().possible, false, `probe ${i} on a full disk`);
      assert.ok(thrown(() => storeGrant(store, { id: "small", subject: "small" })) instanceof Unavailable);

      fs.free();
      assert.deepEqual(store.probeWrites(), { possible: true });
      store.insertRequest(big);
    } finally {
      store.close();
      fs.unmount();
    }
  });
});

describe("write health: a file system turned read-only", () => {
  test("an ext4 file system remounted read-only under an open store: the probe says so with no user write", (t) => {
    const fs = mountExt4(16 << 20);
    if (typeof fs === "string") return t.skip(fs);
    const store = openSqliteStore(join(fs.dir, STORE_FILE));
    try {
      storeGrant(store, { id: "g1" });
      assert.deepEqual(store.probeWrites(), { possible: true });
      fs.turnReadOnly();

      const probed = store.probeWrites();
      assert.equal(probed.possible, false);
      assert.equal(probed.reason, "the file system is read-only");
      const err = thrown(() => store.revokeGrant("g1", T0, "sec", "incident"));
      assert.ok(err instanceof Unavailable, String(err));
      assert.equal(store.writes.reason, "the file system is read-only");
      assert.equal(store.liveGrantsOn("alice", "orders-db", T0).length, 1);
      // ext4 keeps an aborted journal read-only until it is checked and mounted again: no recovery to wait for.
      assert.equal(store.probeWrites().possible, false);
    } finally {
      store.close();
      fs.unmount();
    }
  });
});

describe("write health: SQLite's page limit (runs where nothing can be mounted)", () => {
  const dir = mkdtempSync(join(tmpdir(), "jitgate-write-health-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let files = 0;
  const freshFile = () => join(dir, `store-${++files}.db`);

  test("a write refused by max_page_count makes writes not possible; once the limit is raised a write restores them", () => {
    const file = freshFile();
    openSqliteStore(file).close();
    const db = new Database(file);
    const clock = fakeClock();
    const store = new SqliteStore(db, { now: clock.now });
    try {
      storeGrant(store, { id: "before" });
      // SQLite refuses to grow the file past this many pages with SQLITE_FULL, as it does on a full disk; unlike a
      // full disk, free space and the probe's one-page write say nothing about it, so this test asks only writes.
      db.pragma(`max_page_count = ${db.pragma("page_count", { simple: true }) as number}`);
      const err = writeUntilRefused(store, "capped");
      assert.ok(err instanceof Unavailable, String(err));
      assert.equal((err.cause as { code?: string }).code, "SQLITE_FULL");
      assert.equal(store.writes.possible, false);
      assert.equal(store.writes.reason, "the disk is full");
      assert.equal(store.writes.since, T0);

      db.pragma("max_page_count = 1073741823");
      storeGrant(store, { id: "after", subject: "after" });
      assert.deepEqual(store.writes, { possible: true });
    } finally {
      store.close();
    }
  });

  test("a write kept out by another process's lock is contention, not a disk failure; the probe never waits for it", () => {
    const file = freshFile();
    const store = openSqliteStore(file, { busyTimeoutMs: 50 });
    storeGrant(store, { id: "g1" });
    const other = new Database(file);
    other.exec("BEGIN IMMEDIATE");
    try {
      const err = thrown(() => store.revokeGrant("g1", T0, "sec", "x"));
      assert.ok(err instanceof Unavailable, String(err));
      assert.deepEqual(store.writes, { possible: true });
      const started = performance.now();
      const probes = Array.from({ length: BUSY_PROBES_UNTIL_UNWRITABLE }, () => store.probeWrites());
      // Each probe gives up on the lock at once, not after the 50 ms busy timeout.
      assert.ok(performance.now() - started < 50 * BUSY_PROBES_UNTIL_UNWRITABLE, "the probes waited for the lock");
      assert.deepEqual(
        probes.map((p) => p.possible),
        [...Array<boolean>(BUSY_PROBES_UNTIL_UNWRITABLE - 1).fill(true), false],
      );
      assert.equal(probes.at(-1)?.reason, `another process has held the write lock through ${BUSY_PROBES_UNTIL_UNWRITABLE} health probes`);
    } finally {
      other.exec("ROLLBACK");
      other.close();
    }
    assert.deepEqual(store.probeWrites(), { possible: true });
    store.close();
  });

  test("a write the store refuses for the caller's own reason (a duplicate client key) leaves writes possible", () => {
    const store = openSqliteStore(freshFile());
    try {
      store.insertRequest(aRequest({ id: "r1", clientKey: "k1" }));
      const err = thrown(() => store.insertRequest(aRequest({ id: "r2", clientKey: "k1" })));
      assert.ok(err instanceof AlreadyExists, String(err));
      assert.deepEqual(store.writes, { possible: true });
    } finally {
      store.close();
    }
  });

  test("a closed store is not writable, and says so", () => {
    const store = openSqliteStore(freshFile());
    store.close();
    assert.deepEqual(store.probeWrites(), { possible: false, reason: "the store is closed" });
  });
});
