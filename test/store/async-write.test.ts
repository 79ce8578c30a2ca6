// The store's asynchronous write: one transaction on the write connection held across the awaits of its
// function, committed when it returns and rolled back when it throws. Reads meanwhile (Checks, the live-grant
// index) never see it half-done, and this process's writes take turns.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { LiveGrantIndex } from "../../src/access/live-grants.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { aGrant, aRequest, T0 } from "./fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "jitgate-async-write-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshFile = () => join(dir, `store-${++files}.db`);
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("SqliteStore.write", () => {
  test("a transaction open across awaits is invisible to reads until it commits", async () => {
    const store = openSqliteStore(freshFile());
    const index = new LiveGrantIndex(store, T0);
    const grant = aGrant({ id: "g1", requestId: "r1" });
    const seen: string[] = [];
    await store.write(async (tx) => {
      await tx.insertRequest(aRequest({ id: "r1", state: "APPROVED" }));
      await tx.insertGrant(grant);
      await tick();
      // Another call's reads, on the read connection, while this transaction is open:
      seen.push(`store: ${store.liveGrantsOn("alice", "orders-db", T0).length}`);
      seen.push(`index: ${index.confirm("g1", T0) === undefined ? "none" : "g1"}`);
      seen.push(`inside: ${(await tx.request("r1"))?.state ?? "none"}`);
    });
    assert.deepEqual(seen, ["store: 0", "index: none", "inside: APPROVED"]);
    assert.equal(store.liveGrantsOn("alice", "orders-db", T0).length, 1, "visible once committed");
    assert.equal(index.confirm("g1", T0)?.id, "g1");
    store.close();
  });

  test("a transaction whose function throws leaves nothing behind, and the next write goes on", async () => {
    const store = openSqliteStore(freshFile());
    await assert.rejects(
      store.write(async (tx) => {
        await tx.insertRequest(aRequest({ id: "r1", state: "APPROVED" }));
        await tx.insertGrant(aGrant({ id: "g1", requestId: "r1" }));
        await tick();
        throw new Error("changed its mind");
      }),
      /changed its mind/,
    );
    assert.equal(store.request("r1"), undefined);
    assert.equal(store.grant("g1"), undefined);
    assert.equal(store.latestGrantEventSeq(), 0);
    await store.write(async (tx) => tx.insertRequest(aRequest({ id: "r2" })));
    assert.equal(store.request("r2")?.id, "r2");
    store.close();
  });

  test("this process's writes take turns: the second starts once the first has committed", async () => {
    const store = openSqliteStore(freshFile());
    const order: string[] = [];
    const first = store.write(async (tx) => {
      order.push("first begins");
      await tx.insertRequest(aRequest({ id: "r1" }));
      await tick();
      await tick();
      order.push("first ends");
    });
    const second = store.write(async (tx) => {
      order.push(`second begins, sees r1: ${(await tx.request("r1")) !== undefined}`);
      await tx.insertRequest(aRequest({ id: "r2", clientKey: "other" }));
    });
    await Promise.all([first, second]);
    assert.deepEqual(order, ["first begins", "first ends", "second begins, sees r1: true"]);
    store.close();
  });

  test("a synchronous transaction while an asynchronous write is open is refused, not merged into it", async () => {
    const store = openSqliteStore(freshFile());
    let refused: unknown;
    await store.write(async (tx) => {
      await tx.insertRequest(aRequest({ id: "r1" }));
      try {
        store.transaction(() => store.insertRequest(aRequest({ id: "r2", clientKey: "other" })));
      } catch (err) {
        refused = err;
      }
    });
    assert.match(String(refused), /synchronous transaction while an asynchronous write is open/);
    assert.equal(store.request("r2"), undefined);
    assert.equal(store.request("r1")?.id, "r1");
    store.close();
  });
});
