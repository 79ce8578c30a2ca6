// The AccessStore contract for requests, reviews, listings and transactions; run by contract.ts.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";
import type { AccessRequest } from "../../src/access/model.ts";
import type { Awaitable, WriteTx } from "../../src/access/ports.ts";
import { AlreadyExists, InvalidArgument } from "../../src/errors.ts";
import type { ContractStore } from "./contract.ts";
import { aRequest, aReview, anAuditEntry, insertGrantWithRequest, MINUTE, T0, writeGrant, writeRequest, writeReview } from "./fixtures.ts";

/** Walks every page of a listing and returns the ids in the order served. */
export async function walkIds(list: (token: string) => Awaitable<{ items: readonly { id: string }[]; next: string }>): Promise<string[]> {
  const ids: string[] = [];
  let token = "";
  do {
    const page = await list(token);
    ids.push(...page.items.map((i) => i.id));
    token = page.next;
  } while (token !== "");
  return ids;
}

export function requestContract(open: () => Promise<ContractStore>): void {
  let store: ContractStore;
  beforeEach(async () => {
    store = await open();
  });
  afterEach(async () => {
    await store.close();
  });

  describe("requests and reviews", () => {
    test("a stored request reads back as written, with its reviews in the order they were made", async () => {
      const request = aRequest({ id: "r1", clientKey: "k1", emergency: true });
      await store.write(async (tx) => tx.insertRequest(request));
      await writeReview(store, { requestId: "r1", reviewer: { id: "carol", groups: ["dba"] }, createdAt: T0 + 2 * MINUTE });
      await writeReview(store, { requestId: "r1", reviewer: { id: "bob", groups: ["db-admins"] }, createdAt: T0 + MINUTE });
      const read = await store.request("r1");
      assert.deepEqual({ ...read, reviews: [] }, request);
      assert.deepEqual(
        read?.reviews.map((r) => [r.reviewer.id, r.createdAt]),
        [
          ["bob", T0 + MINUTE],
          ["carol", T0 + 2 * MINUTE],
        ],
      );
      assert.deepEqual(
        read?.reviews[0],
        aReview({ requestId: "r1", reviewer: { id: "bob", groups: ["db-admins"] }, createdAt: T0 + MINUTE }),
      );
    });

    test("an unknown request id reads as undefined", async () => {
      assert.equal(await store.request("nope"), undefined);
    });

    test("a request is found by its requester's client key, and an empty key matches nothing", async () => {
      await writeRequest(store, { id: "r1", clientKey: "k1" });
      await writeRequest(store, { id: "r2", clientKey: "" });
      assert.equal((await store.requestByClientKey("alice", "k1"))?.id, "r1");
      assert.equal(await store.requestByClientKey("bob", "k1"), undefined);
      assert.equal(await store.requestByClientKey("alice", ""), undefined);
    });

    test("a second request with the same requester and client key is refused as AlreadyExists", async () => {
      await writeRequest(store, { id: "r1", clientKey: "k1" });
      await assert.rejects(writeRequest(store, { id: "r2", clientKey: "k1", resource: "other" }), AlreadyExists);
      assert.equal(await store.request("r2"), undefined);
      await writeRequest(store, { id: "r3", clientKey: "k1", requester: { id: "bob", groups: [] } });
      await writeRequest(store, { id: "r4", clientKey: "" });
      await writeRequest(store, { id: "r5", clientKey: "" });
    });

    test("deciding a request is a compare-and-set on its state", async () => {
      await writeRequest(store, { id: "r1" });
      const approve = { state: "APPROVED" as const, decidedAt: T0 + MINUTE, stateReason: "approved by bob", grantId: "g1" };
      const decide = (id: string, change: Parameters<WriteTx["decideRequest"]>[2]) =>
        store.write(async (tx) => tx.decideRequest(id, "PENDING", change));
      assert.equal(await decide("r1", approve), true);
      assert.equal(await decide("r1", { state: "DENIED", decidedAt: T0 + 2 * MINUTE, stateReason: "late" }), false);
      assert.equal(await decide("nope", approve), false);
      const read = await store.request("r1");
      assert.deepEqual(
        [read?.state, read?.decidedAt, read?.stateReason, read?.grantId],
        ["APPROVED", T0 + MINUTE, "approved by bob", "g1"],
      );
    });

    test("pending requests of a requester are summarised, others are not", async () => {
      await writeRequest(store, { id: "r1", resource: "a", actions: ["read"] });
      await writeRequest(store, { id: "r2", state: "APPROVED" });
      await writeRequest(store, { id: "r3", requester: { id: "bob", groups: [] } });
      assert.deepEqual(await store.pendingRequestsOf("alice", T0), [{ id: "r1", resource: "a", actions: ["read"] }]);
      assert.deepEqual(await store.pendingRequestsOf("nobody", T0), []);
    });

    test("a pending request past its deadline no longer counts, even before it is swept", async () => {
      await writeRequest(store, { id: "r1" });
      assert.equal((await store.pendingRequestsOf("alice", T0 + 15 * MINUTE - 1)).length, 1);
      assert.deepEqual(await store.pendingRequestsOf("alice", T0 + 15 * MINUTE), []);
    });
  });

  describe("request listings", () => {
    function insertMany(n: number, over: (i: number) => Partial<AccessRequest> = () => ({})): Promise<void> {
      // Three requests share each creation time, so the id breaks ties.
      return store.write(async (tx) => {
        for (let i = 0; i < n; i++)
          await tx.insertRequest(aRequest({ id: `r${String(i).padStart(3, "0")}`, createdAt: T0 + Math.floor(i / 3), ...over(i) }));
      });
    }

    test("walking every page of 5 serves all 23 requests once, newest first", async () => {
      await insertMany(23);
      const ids = await walkIds(async (token) => {
        const page = await store.requests({}, { size: 5, token });
        assert.ok(page.items.length === 5 || page.next === "", "only the last page is short");
        return page;
      });
      const expected = Array.from({ length: 23 }, (_, i) => `r${String(i).padStart(3, "0")}`).reverse();
      assert.deepEqual(ids, expected);
    });

    test("listings filter by state, requester and resource together", async () => {
      await insertMany(12, (i) => ({
        state: i % 2 === 0 ? "PENDING" : "DENIED",
        requester: { id: i % 3 === 0 ? "bob" : "alice", groups: [] },
        resource: i < 6 ? "a" : "b",
      }));
      const list = (f: Parameters<ContractStore["requests"]>[0]) => walkIds((token) => store.requests(f, { size: 2, token }));
      assert.deepEqual(await list({ state: "PENDING" }), ["r010", "r008", "r006", "r004", "r002", "r000"]);
      assert.deepEqual(await list({ requester: "bob", resource: "b" }), ["r009", "r006"]);
      assert.deepEqual(await list({ state: "DENIED", requester: "alice", resource: "a" }), ["r005", "r001"]);
      assert.deepEqual(await list({ resource: "none" }), []);
    });

    test("listed requests carry their reviews", async () => {
      await insertMany(2);
      await writeReview(store, { requestId: "r000" });
      const { items } = await store.requests({}, { size: 10, token: "" });
      assert.deepEqual(
        items.map((r) => [r.id, r.reviews.length]),
        [
          ["r001", 0],
          ["r000", 1],
        ],
      );
    });

    test("page sizes are held to 1..500", async () => {
      await insertMany(501);
      assert.equal((await store.requests({}, { size: 0, token: "" })).items.length, 1);
      assert.equal((await store.requests({}, { size: -3, token: "" })).items.length, 1);
      assert.equal((await store.requests({}, { size: 10_000, token: "" })).items.length, 500);
    });

    test("a malformed page token is refused as an invalid page_token", async () => {
      await insertMany(3);
      const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
      for (const token of ["not a token!", b64({ at: 1 }), b64([1]), b64(["1", "r1"]), b64([1.5, "r1"]), "%%%"]) {
        // An embedded store may refuse at once (a throw) and a networked one later (a rejection): both count.
        await assert.rejects(
          async () => store.requests({}, { size: 5, token }),
          (err: unknown) => err instanceof InvalidArgument && err.field === "page_token",
          `token ${token}`,
        );
        await assert.rejects(async () => store.grants({}, { size: 5, token }), InvalidArgument);
      }
    });
  });

  describe("request expiry and transactions", () => {
    test("pending requests past their deadline expire at that deadline, once", async () => {
      await writeRequest(store, { id: "due", pendingUntil: T0 + MINUTE });
      await writeRequest(store, { id: "exactly", pendingUntil: T0 + 2 * MINUTE });
      await writeRequest(store, { id: "later", pendingUntil: T0 + 3 * MINUTE });
      await writeRequest(store, { id: "never-pending", pendingUntil: 0 });
      await writeRequest(store, { id: "decided", state: "APPROVED", pendingUntil: T0 });
      await writeReview(store, { requestId: "due" });
      const expirePending = () => store.write(async (tx) => tx.expirePending(T0 + 2 * MINUTE, "timed out"));
      const expired = await expirePending();
      assert.deepEqual(
        expired.map((r) => [r.id, r.state, r.decidedAt, r.stateReason, r.reviews.length]),
        [
          ["due", "EXPIRED", T0 + MINUTE, "timed out", 1],
          ["exactly", "EXPIRED", T0 + 2 * MINUTE, "timed out", 0],
        ],
      );
      assert.deepEqual(await expirePending(), []);
      assert.equal((await store.request("later"))?.state, "PENDING");
      assert.equal((await store.request("never-pending"))?.state, "PENDING");
    });

    test("the next due time is the earliest unrecorded grant expiry or pending deadline", async () => {
      assert.equal(await store.nextDue(), undefined);
      await writeRequest(store, { id: "r1", pendingUntil: T0 + 20 * MINUTE });
      await writeRequest(store, { id: "r0", pendingUntil: 0 });
      assert.equal(await store.nextDue(), T0 + 20 * MINUTE);
      await writeGrant(store, { id: "g1", expiresAt: T0 + 10 * MINUTE });
      await writeGrant(store, { id: "g2", expiresAt: T0 + 5 * MINUTE });
      assert.equal(await store.nextDue(), T0 + 5 * MINUTE);
      await store.write(async (tx) => tx.revokeGrant("g2", T0 + MINUTE, "sec", "incident"));
      assert.equal(await store.nextDue(), T0 + 10 * MINUTE);
      await store.write(async (tx) => tx.recordExpiries(T0 + 10 * MINUTE));
      assert.equal(await store.nextDue(), T0 + 20 * MINUTE);
      await store.write(async (tx) => tx.expirePending(T0 + 20 * MINUTE, "timed out"));
      assert.equal(await store.nextDue(), undefined);
    });

    test("a transaction that throws leaves nothing behind", async () => {
      await assert.rejects(
        store.write(async (tx) => {
          await tx.insertRequest(aRequest({ id: "r1" }));
          await insertGrantWithRequest(tx, { id: "g1" });
          await tx.appendAudit(anAuditEntry());
          throw new Error("changed my mind");
        }),
        /changed my mind/,
      );
      assert.equal(await store.request("r1"), undefined);
      assert.equal(await store.grant("g1"), undefined);
      assert.equal(await store.latestGrantEventSeq(), 0);
    });

    test("a failed write inside a transaction can be caught without losing the others", async () => {
      await writeRequest(store, { id: "r1", clientKey: "k" });
      await store.write(async (tx) => {
        await tx.insertRequest(aRequest({ id: "r2" }));
        await assert.rejects(async () => tx.insertRequest(aRequest({ id: "r3", clientKey: "k" })), AlreadyExists);
        await tx.insertReview(aReview({ requestId: "r2" }));
      });
      assert.equal((await store.request("r2"))?.reviews.length, 1);
    });
  });
}
