// Another process holding jitgate.db's write lock (a backup tool, a second jitgate, `sqlite3` at a prompt), or a
// writer thread held still as by a hanging fsync, delays only the writes themselves: Checks and reads are
// answered meanwhile, a write waits without blocking the event loop, and one that cannot get the lock within
// the write budget is UNAVAILABLE.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import Database from "better-sqlite3";
import type { Jitgate } from "../../src/app.ts";
import { DEFAULT_WRITE_BUDGET_MS, type SqliteStore, STORE_FILE } from "../../src/store/sqlite.ts";
import { api, type Api, type Caller, failsWith, tokenFor } from "../support/api.ts";
import { removeDir, tempDir } from "../support/bundles.ts";
import { startTestJitgate } from "../support/jitgate.ts";

const FROM_OFFICE = { source_ip: "10.1.2.3" };
const READ = { resource: "db/orders", actions: ["read"], duration: { seconds: 600 }, justification: "investigate stuck orders" };

/** Holds the write lock from another connection (as another process would) until `release` is called. */
function holdWriteLock(file: string): { release: () => void } {
  const other = new Database(file);
  other.exec("BEGIN IMMEDIATE");
  return {
    release: () => {
      other.exec("ROLLBACK");
      other.close();
    },
  };
}

describe("a write lock held by another process", () => {
  let dir: string;
  let jitgate: Jitgate;
  let client: Api;
  let alice: Caller;
  before(async () => {
    dir = await tempDir();
    jitgate = await startTestJitgate(join(dir, "data"));
    client = api(jitgate.address);
    alice = client.as(await tokenFor(join(dir, "data"), "alice", ["engineering"]));
    assert.equal((await alice.call("RequestAccess", { ...READ, ticket: "INC-1" })).state, "APPROVED");
  });
  after(async () => {
    client.close();
    await jitgate.close();
    await removeDir(dir);
  });

  test("Checks and reads are answered while it is held; a write started meanwhile commits once it is released", async () => {
    const lock = holdWriteLock(join(dir, "data", STORE_FILE));
    const events: string[] = [];
    let released = false;
    try {
      const bob = client.as(await tokenFor(join(dir, "data"), "bob", ["engineering"]));
      const write = bob.call("RequestAccess", { ...READ, ticket: "INC-2" }).then((r) => {
        events.push(released ? "write committed after release" : "write committed while held");
        return r;
      });
      for (let i = 0; i < 20; i++) {
        const check = await alice.call("Check", { subject: "alice", resource: "db/orders", action: "read", context: FROM_OFFICE });
        assert.equal(check.allow, true);
      }
      await alice.call("ListGrants", {});
      await alice.call("GetJwks", {});
      events.push("20 checks and 2 reads answered while held");
      released = true;
      lock.release();
      const request = await write;
      assert.equal(request.state, "APPROVED");
      assert.deepEqual(events, ["20 checks and 2 reads answered while held", "write committed after release"]);
    } finally {
      if (!released) lock.release();
    }
  });

  test("a writer held still for 1.5 s (as by a disk whose fsync hangs) delays only the writes: Checks and reads go on", async () => {
    const store = jitgate.access.deps.store as unknown as SqliteStore;
    const events: string[] = [];
    const paused = store.pauseWriter(1_500).then(() => events.push("writer free"));
    await new Promise((r) => setTimeout(r, 50));
    const dana = client.as(await tokenFor(join(dir, "data"), "dana", ["engineering"]));
    const write = dana.call("RequestAccess", { ...READ, ticket: "INC-4" }).then((r) => {
      events.push("write committed");
      return r;
    });
    for (let i = 0; i < 20; i++) {
      const check = await alice.call("Check", { subject: "alice", resource: "db/orders", action: "read", context: FROM_OFFICE });
      assert.equal(check.allow, true);
    }
    await alice.call("ListGrants", {});
    events.push("20 checks and a read answered");
    assert.equal((await write).state, "APPROVED");
    await paused;
    assert.deepEqual(events, ["20 checks and a read answered", "writer free", "write committed"]);
  });

  test("a write that cannot get the lock within its budget is UNAVAILABLE, and nothing of it is stored", async () => {
    const lock = holdWriteLock(join(dir, "data", STORE_FILE));
    try {
      const carol = client.as(await tokenFor(join(dir, "data"), "carol", ["engineering"]));
      const started = Date.now();
      const failure = await failsWith(grpc.status.UNAVAILABLE, carol.call("RequestAccess", { ...READ, ticket: "INC-3" }));
      assert.match(failure.message, /locked by another process/);
      assert.ok(Date.now() - started >= DEFAULT_WRITE_BUDGET_MS - 50, "it kept trying for its budget");
      // Checks went on meanwhile and still do.
      const check = await alice.call("Check", { subject: "alice", resource: "db/orders", action: "read", context: FROM_OFFICE });
      assert.equal(check.allow, true);
    } finally {
      lock.release();
    }
    const carol = client.as(await tokenFor(join(dir, "data"), "carol", ["engineering"]));
    assert.equal((await carol.call("ListAccessRequests", {})).requests.length, 0);
  });
});
