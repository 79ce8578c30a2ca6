// The AccessStore contract for grants, their revocation and expiry, and the grant event feed; run by contract.ts.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";
import type { GrantEvent } from "../../src/access/model.ts";
import type { ContractStore } from "./contract.ts";
import { walkIds } from "./contract-requests.ts";
import { aGrant, MINUTE, T0, writeGrant } from "./fixtures.ts";

const summary = (events: readonly GrantEvent[]) => events.map((e) => [e.kind, e.grant.id, e.at]);

export function grantContract(open: () => Promise<ContractStore>): void {
  let store: ContractStore;
  beforeEach(async () => {
    store = await open();
  });
  afterEach(async () => {
    await store.close();
  });
  const revoke = (id: string, at: number, by: string, reason: string) => store.write(async (tx) => tx.revokeGrant(id, at, by, reason));
  const revokeAllOf = (subject: string, at: number, by: string, reason: string) =>
    store.write(async (tx) => tx.revokeGrantsOf(subject, at, by, reason));
  const recordExpiries = (now: number, limit?: number) => store.write(async (tx) => tx.recordExpiries(now, limit));

  describe("grants", () => {
    test("a stored grant reads back as written, and its CREATED event carries it", async () => {
      const event = await writeGrant(store, { id: "g1", breakGlass: true });
      const grant = aGrant({ id: "g1", requestId: "req-g1", breakGlass: true });
      assert.deepEqual(event, { seq: event.seq, kind: "CREATED", at: T0, grant });
      assert.ok(event.seq > 0);
      assert.deepEqual(await store.grant("g1"), grant);
      assert.equal(await store.grant("nope"), undefined);
    });

    test("live grants on a resource are the subject's unrevoked, unexpired ones there", async () => {
      await writeGrant(store, { id: "ok", actions: ["read"], expiresAt: T0 + 10 * MINUTE });
      await writeGrant(store, { id: "other-subject", subject: "bob" });
      await writeGrant(store, { id: "other-resource", resource: "payments-db" });
      await writeGrant(store, { id: "expired-now", expiresAt: T0 + 5 * MINUTE });
      await writeGrant(store, { id: "revoked" });
      await revoke("revoked", T0 + MINUTE, "sec", "incident");
      const now = T0 + 5 * MINUTE;
      // What the access check sees on one resource: the subject's live grants there, as LiveGrants.
      const liveOn = async (subject: string, resource: string) =>
        (await store.liveGrantsOf(subject, now))
          .filter((g) => g.resource === resource)
          .map(({ id, actions, expiresAt }) => ({ id, actions, expiresAt }));
      assert.deepEqual(await liveOn("alice", "orders-db"), [{ id: "ok", actions: ["read"], expiresAt: T0 + 10 * MINUTE }]);
      assert.deepEqual(await liveOn("carol", "orders-db"), []);
      assert.deepEqual(
        (await store.liveGrantsOf("alice", now)).map((g) => g.id),
        ["ok", "other-resource"],
      );
    });

    test("grants active at a time: created by then, not yet expired, not yet revoked", async () => {
      await writeGrant(store, { id: "g", createdAt: T0, expiresAt: T0 + 10 * MINUTE });
      await writeGrant(store, { id: "r", createdAt: T0, expiresAt: T0 + 10 * MINUTE });
      await revoke("r", T0 + 4 * MINUTE, "sec", "incident");
      const activeAt = async (t: number) => (await walkIds((token) => store.grants({ activeAt: t }, { size: 1, token }))).sort();
      assert.deepEqual(await activeAt(T0 - 1), []);
      assert.deepEqual(await activeAt(T0), ["g", "r"]);
      assert.deepEqual(await activeAt(T0 + 4 * MINUTE - 1), ["g", "r"]);
      assert.deepEqual(await activeAt(T0 + 4 * MINUTE), ["g"]);
      assert.deepEqual(await activeAt(T0 + 10 * MINUTE - 1), ["g"]);
      assert.deepEqual(await activeAt(T0 + 10 * MINUTE), []);
    });

    test("grant listings filter by subject and resource, newest first across pages", async () => {
      for (let i = 0; i < 9; i++) {
        await writeGrant(store, { id: `g${i}`, subject: i % 2 ? "bob" : "alice", resource: i < 4 ? "a" : "b", createdAt: T0 + i });
      }
      const list = (f: Parameters<ContractStore["grants"]>[0]) => walkIds((token) => store.grants(f, { size: 2, token }));
      assert.deepEqual(await list({}), ["g8", "g7", "g6", "g5", "g4", "g3", "g2", "g1", "g0"]);
      assert.deepEqual(await list({ subject: "alice" }), ["g8", "g6", "g4", "g2", "g0"]);
      assert.deepEqual(await list({ subject: "bob", resource: "a" }), ["g3", "g1"]);
      assert.deepEqual(await list({ resource: "b", activeAt: T0 + 6 }), ["g6", "g5", "g4"]);
    });
  });

  describe("revocation and expiry", () => {
    test("revoking a live grant records who, when and why, once", async () => {
      await writeGrant(store, { id: "g1" });
      const at = T0 + MINUTE;
      const event = await revoke("g1", at, "sec-oncall", "incident 42");
      const revoked = aGrant({ id: "g1", requestId: "req-g1", revokedAt: at, revokedBy: "sec-oncall", revokeReason: "incident 42" });
      assert.deepEqual(event && { ...event, seq: 0 }, { seq: 0, kind: "REVOKED", at, grant: revoked });
      assert.deepEqual(await store.grant("g1"), revoked);
      assert.equal(await revoke("g1", at + 1, "someone", "again"), undefined);
      assert.equal((await store.grant("g1"))?.revokedBy, "sec-oncall");
    });

    test("an expired or unknown grant cannot be revoked", async () => {
      await writeGrant(store, { id: "g1", expiresAt: T0 + MINUTE });
      assert.equal(await revoke("g1", T0 + MINUTE, "sec", "late"), undefined);
      assert.equal((await store.grant("g1"))?.revokedAt, undefined);
      assert.equal(await revoke("nope", T0, "sec", "x"), undefined);
    });

    test("revoking a subject's grants revokes every live one and nothing else", async () => {
      await writeGrant(store, { id: "a1", expiresAt: T0 + 10 * MINUTE });
      await writeGrant(store, { id: "a2", resource: "payments-db", expiresAt: T0 + 20 * MINUTE });
      await writeGrant(store, { id: "a-expired", expiresAt: T0 + MINUTE });
      await writeGrant(store, { id: "b1", subject: "bob" });
      const at = T0 + 2 * MINUTE;
      const events = await revokeAllOf("alice", at, "sec", "offboarding");
      assert.deepEqual(summary(events), [
        ["REVOKED", "a1", at],
        ["REVOKED", "a2", at],
      ]);
      assert.ok(events.every((e) => e.grant.revokedBy === "sec" && e.grant.revokeReason === "offboarding"));
      assert.equal((await store.grant("a-expired"))?.revokedAt, undefined);
      assert.equal((await store.grant("b1"))?.revokedAt, undefined);
      assert.deepEqual(await revokeAllOf("alice", at, "sec", "again"), []);
    });

    test("each expiry is recorded once, at the moment the grant expired", async () => {
      await writeGrant(store, { id: "g1", expiresAt: T0 + MINUTE });
      await writeGrant(store, { id: "g2", expiresAt: T0 + 2 * MINUTE });
      await writeGrant(store, { id: "g3", expiresAt: T0 + 5 * MINUTE });
      await writeGrant(store, { id: "revoked", expiresAt: T0 + MINUTE });
      await revoke("revoked", T0, "sec", "x");
      assert.deepEqual(summary(await recordExpiries(T0 + 3 * MINUTE)), [
        ["EXPIRED", "g1", T0 + MINUTE],
        ["EXPIRED", "g2", T0 + 2 * MINUTE],
      ]);
      assert.deepEqual(await recordExpiries(T0 + 3 * MINUTE), []);
      assert.deepEqual(summary(await recordExpiries(T0 + 5 * MINUTE)), [["EXPIRED", "g3", T0 + 5 * MINUTE]]);
    });

    test("a backlog of expiries is recorded earliest first, at most `limit` per call", async () => {
      await writeGrant(store, { id: "late", expiresAt: T0 + 3 * MINUTE });
      await writeGrant(store, { id: "early", expiresAt: T0 + MINUTE });
      await writeGrant(store, { id: "middle", expiresAt: T0 + 2 * MINUTE });
      assert.deepEqual(
        summary(await recordExpiries(T0 + 10 * MINUTE, 2)).map(([, id]) => id),
        ["early", "middle"],
      );
      assert.deepEqual(
        summary(await recordExpiries(T0 + 10 * MINUTE, 2)).map(([, id]) => id),
        ["late"],
      );
    });
  });

  describe("grant event feed", () => {
    test("events come in commit order and a watcher resumes after the last seq it saw", async () => {
      assert.equal(await store.latestGrantEventSeq(), 0);
      assert.deepEqual(await store.grantEventsAfter(0, 10), []);
      await writeGrant(store, { id: "g1", expiresAt: T0 + MINUTE });
      await writeGrant(store, { id: "g2" });
      await revoke("g2", T0 + 2 * MINUTE, "sec", "x");
      await recordExpiries(T0 + 2 * MINUTE);
      const all = await store.grantEventsAfter(0, 100);
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
      assert.equal(await store.latestGrantEventSeq(), seqs[3]);
      assert.deepEqual(await store.grantEventsAfter(seqs[1] as number, 1), [all[2]]);
      assert.deepEqual(await store.grantEventsAfter(seqs[3] as number, 10), []);
      assert.equal(all[0]?.grant.id, "g1");
      assert.equal(all[1]?.grant.revokedBy, "sec", "events carry the grant as it is now");
    });
  });
}
