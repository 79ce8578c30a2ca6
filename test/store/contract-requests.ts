// The AccessStore contract for requests, reviews, listings and transactions; run by contract.ts.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";
import type { AccessRequest } from "../../src/access/model.ts";
import { AlreadyExists, InvalidArgument } from "../../src/errors.ts";
import type { ContractStore } from "./contract.ts";
import { aRequest, aReview, anAuditEntry, MINUTE, storeGrant, T0 } from "./fixtures.ts";

/** Walks every page of a listing and returns the ids in the order served. */
export function walkIds(list: (token: string) => { items: readonly { id: string }[]; next: string }): string[] {
  const ids: string[] = [];
  let token = "";
  do {
    const page = list(token);
    ids.push(...page.items.map((i) => i.id));
    token = page.next;
  } while (token !== "");
  return ids;
}

export function requestContract(open: () => ContractStore): void {
  let store: ContractStore;
  beforeEach(() => {
    store = open();
  });
  afterEach(() => store.close());

  describe("requests and reviews", () => {
    test("a stored request reads back as written, with its reviews in the order they were made", () => {
      const request = aRequest({ id: "r1", clientKey: "k1", emergency: true });
      store.insertRequest(request);
      store.insertReview(aReview({ requestId: "r1", reviewer: { id: "carol", groups: ["dba"] }, createdAt: T0 + 2 * MINUTE }));
      store.insertReview(aReview({ requestId: "r1", reviewer: { id: "bob", groups: ["db-admins"] }, createdAt: T0 + MINUTE }));
      const read = store.request("r1");
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

    test("an unknown request id reads as undefined", () => {
      assert.equal(store.request("nope"), undefined);
    });

    test("a request is found by its requester's client key, and an empty key matches nothing", () => {
      store.insertRequest(aRequest({ id: "r1", clientKey: "k1" }));
      store.insertRequest(aRequest({ id: "r2", clientKey: "" }));
      assert.equal(store.requestByClientKey("alice", "k1")?.id, "r1");
      assert.equal(store.requestByClientKey("bob", "k1"), undefined);
      assert.equal(store.requestByClientKey("alice", ""), undefined);
    });

    test("a second request with the same requester and client key is refused as AlreadyExists", () => {
      store.insertRequest(aRequest({ id: "r1", clientKey: "k1" }));
      assert.throws(() => store.insertRequest(aRequest({ id: "r2", clientKey: "k1", resource: "other" })), AlreadyExists);
      assert.equal(store.request("r2"), undefined);
      store.insertRequest(aRequest({ id: "r3", clientKey: "k1", requester: { id: "bob", groups: [] } }));
      store.insertRequest(aRequest({ id: "r4", clientKey: "" }));
      store.insertRequest(aRequest({ id: "r5", clientKey: "" }));
    });

    test("deciding a request is a compare-and-set on its state", () => {
      store.insertRequest(aRequest({ id: "r1" }));
      const approve = { state: "APPROVED" as const, decidedAt: T0 + MINUTE, stateReason: "approved by bob", grantId: "g1" };
      assert.equal(store.decideRequest("r1", "PENDING", approve), true);
      assert.equal(store.decideRequest("r1", "PENDING", { state: "DENIED", decidedAt: T0 + 2 * MINUTE, stateReason: "late" }), false);
      assert.equal(store.decideRequest("nope", "PENDING", approve), false);
      const read = store.request("r1");
      assert.deepEqual(
        [read?.state, read?.decidedAt, read?.stateReason, read?.grantId],
        ["APPROVED", T0 + MINUTE, "approved by bob", "g1"],
      );
    });

    test("pending requests of a requester are summarised, others are not", () => {
      store.insertRequest(aRequest({ id: "r1", resource: "a", actions: ["read"] }));
      store.insertRequest(aRequest({ id: "r2", state: "APPROVED" }));
      store.insertRequest(aRequest({ id: "r3", requester: { id: "bob", groups: [] } }));
      assert.deepEqual(store.pendingRequestsOf("alice", T0), [{ id: "r1", resource: "a", actions: ["read"] }]);
      assert.deepEqual(store.pendingRequestsOf("nobody", T0), []);
    });

    test("a pending request past its deadline no longer counts, even before it is swept", () => {
      store.insertRequest(aRequest({ id: "r1" }));
      assert.equal(store.pendingRequestsOf("alice", T0 + 15 * MINUTE - 1).length, 1);
      assert.deepEqual(store.pendingRequestsOf("alice", T0 + 15 * MINUTE), []);
    });
  });

  describe("request listings", () => {
    function insertMany(n: number, over: (i: number) => Partial<AccessRequest> = () => ({})): void {
      // Three requests share each creation time, so the id breaks ties.
      store.transaction(() => {
        for (let i = 0; i < n; i++)
          store.insertRequest(aRequest({ id: `r${String(i).padStart(3, "0")}`, createdAt: T0 + Math.floor(i / 3), ...over(i) }));
      });
    }

    test("walking every page of 5 serves all 23 requests once, newest first", () => {
      insertMany(23);
      const ids = walkIds((token) => {
        const page = store.requests({}, { size: 5, token });
        assert.ok(page.items.length === 5 || page.next === "", "only the last page is short");
        return page;
      });
      const expected = Array.from({ length: 23 }, (_, i) => `r${String(i).padStart(3, "0")}`).reverse();
      assert.deepEqual(ids, expected);
    });

    test("listings filter by state, requester and resource together", () => {
      insertMany(12, (i) => ({
        state: i % 2 === 0 ? "PENDING" : "DENIED",
        requester: { id: i % 3 === 0 ? "bob" : "alice", groups: [] },
        resource: i < 6 ? "a" : "b",
      }));
      const list = (f: Parameters<ContractStore["requests"]>[0]) => walkIds((token) => store.requests(f, { size: 2, token }));
      assert.deepEqual(list({ state: "PENDING" }), ["r010", "r008", "r006", "r004", "r002", "r000"]);
      assert.deepEqual(list({ requester: "bob", resource: "b" }), ["r009", "r006"]);
      assert.deepEqual(list({ state: "DENIED", requester: "alice", resource: "a" }), ["r005", "r001"]);
      assert.deepEqual(list({ resource: "none" }), []);
    });

    test("listed requests carry their reviews", () => {
      insertMany(2);
      store.insertReview(aReview({ requestId: "r000" }));
      const { items } = store.requests({}, { size: 10, token: "" });
      assert.deepEqual(
        items.map((r) => [r.id, r.reviews.length]),
        [
          ["r001", 0],
          ["r000", 1],
        ],
      );
    });

    test("page sizes are held to 1..500", () => {
      insertMany(501);
      assert.equal(store.requests({}, { size: 0, token: "" }).items.length, 1);
      assert.equal(store.requests({}, { size: -3, token: "" }).items.length, 1);
      assert.equal(store.requests({}, { size: 10_000, token: "" }).items.length, 500);
    });

    test("a malformed page token is refused as an invalid page_token", () => {
      insertMany(3);
      const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
      for (const token of ["not a token!", b64({ at: 1 }), b64([1]), b64(["1", "r1"]), b64([1.5, "r1"]), "%%%"]) {
        assert.throws(
          () => store.requests({}, { size: 5, token }),
          (err: unknown) => err instanceof InvalidArgument && err.field === "page_token",
          `token ${token}`,
        );
        assert.throws(() => store.grants({}, { size: 5, token }), InvalidArgument);
      }
    });
  });

  describe("request expiry and transactions", () => {
    test("pending requests past their deadline expire at that deadline, once", () => {
      store.insertRequest(aRequest({ id: "due", pendingUntil: T0 + MINUTE }));
      store.insertRequest(aRequest({ id: "exactly", pendingUntil: T0 + 2 * MINUTE }));
      store.insertRequest(aRequest({ id: "later", pendingUntil: T0 + 3 * MINUTE }));
      store.insertRequest(aRequest({ id: "never-pending", pendingUntil: 0 }));
      store.insertRequest(aRequest({ id: "decided", state: "APPROVED", pendingUntil: T0 }));
      store.insertReview(aReview({ requestId: "due" }));
      const expired = store.expirePending(T0 + 2 * MINUTE, "timed out");
      assert.deepEqual(
        expired.map((r) => [r.id, r.state, r.decidedAt, r.stateReason, r.reviews.length]),
        [
          ["due", "EXPIRED", T0 + MINUTE, "timed out", 1],
          ["exactly", "EXPIRED", T0 + 2 * MINUTE, "timed out", 0],
        ],
      );
      assert.deepEqual(store.expirePending(T0 + 2 * MINUTE, "timed out"), []);
      assert.equal(store.request("later")?.state, "PENDING");
      assert.equal(store.request("never-pending")?.state, "PENDING");
    });

    test("the next due time is the earliest unrecorded grant expiry or pending deadline", () => {
      assert.equal(store.nextDue(), undefined);
      store.insertRequest(aRequest({ id: "r1", pendingUntil: T0 + 20 * MINUTE }));
      store.insertRequest(aRequest({ id: "r0", pendingUntil: 0 }));
      assert.equal(store.nextDue(), T0 + 20 * MINUTE);
      storeGrant(store, { id: "g1", expiresAt: T0 + 10 * MINUTE });
      storeGrant(store, { id: "g2", expiresAt: T0 + 5 * MINUTE });
      assert.equal(store.nextDue(), T0 + 5 * MINUTE);
      store.revokeGrant("g2", T0 + MINUTE, "sec", "incident");
      assert.equal(store.nextDue(), T0 + 10 * MINUTE);
      store.recordExpiries(T0 + 10 * MINUTE);
      assert.equal(store.nextDue(), T0 + 20 * MINUTE);
      store.expirePending(T0 + 20 * MINUTE, "timed out");
      assert.equal(store.nextDue(), undefined);
    });

    test("a transaction that throws leaves nothing behind", () => {
      assert.throws(
        () =>
          store.transaction(() => {
            store.insertRequest(aRequest({ id: "r1" }));
            storeGrant(store, { id: "g1" });
            store.appendAudit(anAuditEntry());
            throw new Error("changed my mind");
          }),
        /changed my mind/,
      );
      assert.equal(store.request("r1"), undefined);
      assert.equal(store.grant("g1"), undefined);
      assert.equal(store.latestGrantEventSeq(), 0);
    });

    test("a failed write inside a transaction can be caught without losing the others", () => {
      store.insertRequest(aRequest({ id: "r1", clientKey: "k" }));
      store.transaction(() => {
        store.insertRequest(aRequest({ id: "r2" }));
        assert.throws(() => store.insertRequest(aRequest({ id: "r3", clientKey: "k" })), AlreadyExists);
        store.insertReview(aReview({ requestId: "r2" }));
      });
      assert.equal(store.request("r2")?.reviews.length, 1);
    });
  });
}
