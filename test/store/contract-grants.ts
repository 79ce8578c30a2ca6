// The AccessStore contract for grants, their revocation and expiry, and the grant event feed; run by contract.ts.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";
import type { GrantEvent } from "../../src/access/model.ts";
import type { ContractStore } from "./contract.ts";
import { walkIds } from "./contract-requests.ts";
import { aGrant, MINUTE, storeGrant, T0 } from "./fixtures.ts";

const summary = (events: readonly GrantEvent[]) => events.map((e) => [e.kind, e.grant.id, e.at]);

export function grantContract(open: () => ContractStore): void {
  let store: ContractStore;
  beforeEach(() => {
    store = open();
  });
  afterEach(() => store.close());

  describe("grants", () => {
    test("a stored grant reads back as written, and its CREATED event carries it", () => {
      const event = storeGrant(store, { id: "g1", breakGlass: true });
      const grant = aGrant({ id: "g1", requestId: "req-g1", breakGlass: true });
      assert.deepEqual(event, { seq: event.seq, kind: "CREATED", at: T0, grant });
      assert.ok(event.seq > 0);
      assert.deepEqual(store.grant("g1"), grant);
      assert.equal(store.grant("nope"), undefined);
    });

    test("live grants on a resource are the subject's unrevoked, unexpired ones there", () => {
      storeGrant(store, { id: "ok", actions: ["read"], expiresAt: T0 + 10 * MINUTE });
      storeGrant(store, { id: "other-subject", subject: "bob" });
      storeGrant(store, { id: "other-resource", resource: "payments-db" });
      storeGrant(store, { id: "expired-now", expiresAt: T0 + 5 * MINUTE });
      storeGrant(store, { id: "revoked" });
      store.revokeGrant("revoked", T0 + MINUTE, "sec", "incident");
      const now = T0 + 5 * MINUTE;
      assert.deepEqual(store.liveGrantsOn("alice", "orders-db", now), [{ id: "ok", actions: ["read"], expiresAt: T0 + 10 * MINUTE }]);
      assert.deepEqual(store.liveGrantsOn("carol", "orders-db", now), []);
      assert.deepEqual(
        store.liveGrantsOf("alice", now).map((g) => g.id),
        ["ok", "other-resource"],
      );
    });

    test("grants active at a time: created by then, not yet expired, not yet revoked", () => {
      storeGrant(store, { id: "g", createdAt: T0, expiresAt: T0 + 10 * MINUTE });
      storeGrant(store, { id: "r", createdAt: T0, expiresAt: T0 + 10 * MINUTE });
      store.revokeGrant("r", T0 + 4 * MINUTE, "sec", "incident");
      const activeAt = (t: number) => walkIds((token) => store.grants({ activeAt: t }, { size: 1, token })).sort();
      assert.deepEqual(activeAt(T0 - 1), []);
      assert.deepEqual(activeAt(T0), ["g", "r"]);
      assert.deepEqual(activeAt(T0 + 4 * MINUTE - 1), ["g", "r"]);
      assert.deepEqual(activeAt(T0 + 4 * MINUTE), ["g"]);
      assert.deepEqual(activeAt(T0 + 10 * MINUTE - 1), ["g"]);
      assert.deepEqual(activeAt(T0 + 10 * MINUTE), []);
    });

    test("grant listings filter by subject and resource, newest first across pages", () => {
      for (let i = 0; i < 9; i++) {
        storeGrant(store, { id: `g${i}`, subject: i % 2 ? "bob" : "alice", resource: i < 4 ? "a" : "b", createdAt: T0 + i });
      }
      const list = (f: Parameters<ContractStore["grants"]>[0]) => walkIds((token) => store.grants(f, { size: 2, token }));
      assert.deepEqual(list({}), ["g8", "g7", "g6", "g5", "g4", "g3", "g2", "g1", "g0"]);
      assert.deepEqual(list({ subject: "alice" }), ["g8", "g6", "g4", "g2", "g0"]);
      assert.deepEqual(list({ subject: "bob", resource: "a" }), ["g3", "g1"]);
      assert.deepEqual(list({ resource: "b", activeAt: T0 + 6 }), ["g6", "g5", "g4"]);
    });
  });

  describe("revocation and expiry", () => {
    test("revoking a live grant records who, when and why, once", () => {
      storeGrant(store, { id: "g1" });
      const at = T0 + MINUTE;
      const event = store.revokeGrant("g1", at, "sec-oncall", "incident 42");
      const revoked = aGrant({ id: "g1", requestId: "req-g1", revokedAt: at, revokedBy: "sec-oncall", revokeReason: "incident 42" });
      assert.deepEqual(event && { ...event, seq: 0 }, { seq: 0, kind: "REVOKED", at, grant: revoked });
      assert.deepEqual(store.grant("g1"), revoked);
      assert.equal(store.revokeGrant("g1", at + 1, "someone", "again"), undefined);
      assert.equal(store.grant("g1")?.revokedBy, "sec-oncall");
    });

    test("an expired or unknown grant cannot be revoked", () => {
      storeGrant(store, { id: "g1", expiresAt: T0 + MINUTE });
      assert.equal(store.revokeGrant("g1", T0 + MINUTE, "sec", "late"), undefined);
      assert.equal(store.grant("g1")?.revokedAt, undefined);
      assert.equal(store.revokeGrant("nope", T0, "sec", "x"), undefined);
    });

    test("revoking a subject's grants revokes every live one and nothing else", () => {
      storeGrant(store, { id: "a1", expiresAt: T0 + 10 * MINUTE });
      storeGrant(store, { id: "a2", resource: "payments-db", expiresAt: T0 + 20 * MINUTE });
      storeGrant(store, { id: "a-expired", expiresAt: T0 + MINUTE });
      storeGrant(store, { id: "b1", subject: "bob" });
      const at = T0 + 2 * MINUTE;
      const events = store.revokeGrantsOf("alice", at, "sec", "offboarding");
      assert.deepEqual(summary(events), [
        ["REVOKED", "a1", at],
        ["REVOKED", "a2", at],
      ]);
      assert.ok(events.every((e) => e.grant.revokedBy === "sec" && e.grant.revokeReason === "offboarding"));
      assert.equal(store.grant("a-expired")?.revokedAt, undefined);
      assert.equal(store.grant("b1")?.revokedAt, undefined);
      assert.deepEqual(store.revokeGrantsOf("alice", at, "sec", "again"), []);
    });

    test("each expiry is recorded once, at the moment the grant expired", () => {
      storeGrant(store, { id: "g1", expiresAt: T0 + MINUTE });
      storeGrant(store, { id: "g2", expiresAt: T0 + 2 * MINUTE });
      storeGrant(store, { id: "g3", expiresAt: T0 + 5 * MINUTE });
      storeGrant(store, { id: "revoked", expiresAt: T0 + MINUTE });
      store.revokeGrant("revoked", T0, "sec", "x");
      assert.deepEqual(summary(store.recordExpiries(T0 + 3 * MINUTE)), [
        ["EXPIRED", "g1", T0 + MINUTE],
        ["EXPIRED", "g2", T0 + 2 * MINUTE],
      ]);
      assert.deepEqual(store.recordExpiries(T0 + 3 * MINUTE), []);
      assert.deepEqual(summary(store.recordExpiries(T0 + 5 * MINUTE)), [["EXPIRED", "g3", T0 + 5 * MINUTE]]);
    });

    test("a backlog of expiries is recorded earliest first, at most `limit` per call", () => {
      storeGrant(store, { id: "late", expiresAt: T0 + 3 * MINUTE });
      storeGrant(store, { id: "early", expiresAt: T0 + MINUTE });
      storeGrant(store, { id: "middle", expiresAt: T0 + 2 * MINUTE });
      assert.deepEqual(
        summary(store.recordExpiries(T0 + 10 * MINUTE, 2)).map(([, id]) => id),
        ["early", "middle"],
      );
      assert.deepEqual(
        summary(store.recordExpiries(T0 + 10 * MINUTE, 2)).map(([, id]) => id),
        ["late"],
      );
    });
  });

  describe("grant event feed", () => {
    test("events come in commit order and a watcher resumes after the last seq it saw", () => {
      assert.equal(store.latestGrantEventSeq(), 0);
      assert.deepEqual(store.grantEventsAfter(0, 10), []);
      storeGrant(store, { id: "g1", expiresAt: T0 + MINUTE });
      storeGrant(store, { id: "g2" });
      store.revokeGrant("g2", T0 + 2 * MINUTE, "sec", "x");
      store.recordExpiries(T0 + 2 * MINUTE);
      const all = store.grantEventsAfter(0, 100);
      assert.deepEqual(summary(all), [
        ["CREATED", "g1", T0],
        ["CREATED", "g2", T0],
        ["REVOKED", "g2", T0 + 2 * MINUTE],
        ["EXPIRED", "g1", T0 + MINUTE],
      ]);
      const seqs = all.map((e) => e.seq);
      assert.deepEqual(
        seqs,
        [...seqs].sort((a, b) => a - b),
      );
      assert.equal(store.latestGrantEventSeq(), seqs[3]);
      assert.deepEqual(store.grantEventsAfter(seqs[1] as number, 1), [all[2]]);
      assert.deepEqual(store.grantEventsAfter(seqs[3] as number, 10), []);
      assert.equal(all[0]?.grant.id, "g1");
      assert.equal(all[1]?.grant.revokedBy, "sec", "events carry the grant as it is now");
    });
  });
}
