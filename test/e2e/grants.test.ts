// Grants after they are made: expiry in real time as a watcher sees it, revocation by the subject and by
// admins, and resuming a watch without a gap. Watches start from a known event seq (see resumePoint).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Caller, type E2eServer, failsWith, ms, reasonCodes, resumePoint, startE2eServer, status } from "../support/api.ts";

const ORDERS = "db/orders";
const EXPORTS = "s3/analytics-exports";
const WHY = "investigating stuck orders in production";
const TICKET = "INC-1234";
const FROM_OFFICE = { source_ip: "10.1.2.3" };

/** An auto-approved read (engineers get reads on both resources at once); returns the grant. */
async function grantRead(caller: Caller, resource: string, seconds = 600) {
  const request = await caller.call("RequestAccess", {
    resource,
    actions: ["read"],
    duration: { seconds },
    justification: WHY,
    ticket: resource === ORDERS ? TICKET : "",
  });
  assert.equal(request.state, "APPROVED", request.state_reason);
  assert.ok(request.grant);
  return request.grant;
}

function checkRead(caller: Caller, subject: string) {
  return caller.call("Check", { subject, subject_groups: ["engineering"], resource: ORDERS, action: "read", context: FROM_OFFICE });
}

describe("grants", () => {
  let server: E2eServer;
  let point: string;
  let auditor: Caller;
  before(async () => {
    server = await startE2eServer();
    point = await resumePoint(server.jitgate.address, server.dataDir);
    auditor = await server.as("auditor", ["jitgate-auditors"]);
  });
  after(() => server.close());

  test("a 2-second grant expires on time: a watcher hears CREATED then EXPIRED at its expire_time, and Check denies", async () => {
    const watch = auditor.watch({ subject: "xena", after_seq: point });
    try {
      const xena = await server.as("xena", ["engineering"]);
      const grant = await grantRead(xena, ORDERS, 2);
      assert.equal(ms(grant.expire_time) - ms(grant.create_time), 2_000);

      const created = await watch.next();
      assert.equal(created.kind, "GRANT_EVENT_KIND_CREATED");
      assert.equal(created.grant.id, grant.id);
      assert.equal(ms(created.time), ms(grant.create_time));

      const expired = await watch.next(5_000);
      const arrived = Date.now();
      assert.equal(expired.kind, "GRANT_EVENT_KIND_EXPIRED");
      assert.equal(expired.grant.id, grant.id);
      assert.equal(expired.grant.status, "GRANT_STATUS_EXPIRED");
      assert.deepEqual(expired.time, grant.expire_time);
      assert.ok(BigInt(expired.seq) > BigInt(created.seq));
      const late = arrived - ms(grant.expire_time);
      assert.ok(late >= 0, `EXPIRED arrived ${-late} ms before the grant expired`);
      assert.ok(late < 1_500, `EXPIRED arrived ${late} ms after the grant expired`);

      const check = await checkRead(xena, "xena");
      assert.equal(check.allow, false);
      assert.deepEqual(reasonCodes(check.reasons), ["no_grant"]);
      assert.equal(check.grant_id, "");
    } finally {
      watch.close();
    }
  });

  test("a subject can give up their own grant: it is REVOKED, Check denies, and a watcher hears of it", async () => {
    const watch = auditor.watch({ subject: "rita", after_seq: point });
    try {
      const rita = await server.as("rita", ["engineering"]);
      const grant = await grantRead(rita, ORDERS);
      assert.equal((await checkRead(rita, "rita")).allow, true);

      const revoked = await rita.call("RevokeGrant", { grant_id: grant.id, reason: "done early" });
      assert.equal(revoked.status, "GRANT_STATUS_REVOKED");
      assert.equal(revoked.revoked_by, "rita");
      assert.equal(revoked.revoke_reason, "done early");
      assert.ok(ms(revoked.revoke_time) < ms(revoked.expire_time));

      const check = await checkRead(rita, "rita");
      assert.equal(check.allow, false);
      assert.deepEqual(reasonCodes(check.reasons), ["no_grant"]);

      const events = await watch.take(2);
      assert.deepEqual(
        events.map((e) => [e.kind, e.grant.id]),
        [
          ["GRANT_EVENT_KIND_CREATED", grant.id],
          ["GRANT_EVENT_KIND_REVOKED", grant.id],
        ],
      );
      assert.deepEqual(events[1]?.time, revoked.revoke_time);
    } finally {
      watch.close();
    }
  });

  test("only an admin may revoke all of a subject's grants, which ends every active one at once", async () => {
    const sam = await server.as("sam", ["engineering"]);
    const nina = await server.as("nina", ["engineering"]);
    const adam = await server.as("adam", ["jitgate-admins"]);
    const grants = [await grantRead(sam, ORDERS), await grantRead(sam, EXPORTS)];
    const ids = grants.map((g) => g.id).sort();

    const refused = await failsWith(status.PERMISSION_DENIED, nina.call("RevokeSubject", { subject: "sam", reason: "incident" }));
    assert.match(refused.message, /admin/);
    assert.equal((await sam.call("ListGrants", { subject: "sam" })).grants.length, 2, "a refused revocation changes nothing");

    const { revoked } = await adam.call("RevokeSubject", { subject: "sam", reason: "incident 42" });
    assert.deepEqual(revoked.map((g) => g.id).sort(), ids);
    for (const g of revoked) {
      assert.equal(g.status, "GRANT_STATUS_REVOKED");
      assert.equal(g.revoked_by, "adam");
      assert.equal(g.revoke_reason, "incident 42");
    }
    assert.deepEqual((await sam.call("ListGrants", { subject: "sam" })).grants, []);
    const history = await sam.call("ListGrants", { subject: "sam", include_inactive: true });
    assert.deepEqual(
      history.grants.map((g) => g.status),
      ["GRANT_STATUS_REVOKED", "GRANT_STATUS_REVOKED"],
    );

    const again = await failsWith(status.FAILED_PRECONDITION, adam.call("RevokeGrant", { grant_id: ids[0] as string }));
    assert.match(again.message, /REVOKED/);
    await failsWith(status.FAILED_PRECONDITION, sam.call("RevokeGrant", { grant_id: ids[1] as string }));
  });

  test("someone else's grant can only be revoked by an admin", async () => {
    const tom = await server.as("tom", ["engineering"]);
    const uma = await server.as("uma", ["engineering"]);
    const adam = await server.as("adam", ["jitgate-admins"]);
    const grant = await grantRead(tom, ORDERS);

    const refused = await failsWith(status.PERMISSION_DENIED, uma.call("RevokeGrant", { grant_id: grant.id }));
    assert.match(refused.message, /is not one you may revoke: only its holder or an admin/);
    assert.doesNotMatch(refused.message, /tom/, "the refusal does not name the holder");
    const unknown = await failsWith(status.PERMISSION_DENIED, uma.call("RevokeGrant", { grant_id: "no-such-grant" }));
    assert.equal(unknown.message.replace("no-such-grant", "<id>"), refused.message.replace(grant.id, "<id>"));
    assert.equal((await checkRead(tom, "tom")).allow, true, "a refused revocation changes nothing");

    const revoked = await adam.call("RevokeGrant", { grant_id: grant.id, reason: "left the team" });
    assert.equal(revoked.status, "GRANT_STATUS_REVOKED");
    assert.equal(revoked.revoked_by, "adam");
  });

  test("a watch opened with after_seq 0 delivers a change made right after it was opened", async () => {
    // "0 starts with the next event": a client that opens the watch and then changes something on the
    // same channel must hear of that change. A hundred tries, since the gap is a race.
    const tries = 100;
    const callers = await Promise.all(Array.from({ length: tries }, (_, i) => server.as(`early-${i}`, ["engineering"])));
    const watches = [];
    try {
      for (const [i, caller] of callers.entries()) {
        watches.push(auditor.watch({ subject: `early-${i}` }));
        await grantRead(caller, EXPORTS);
      }
      const heard = await Promise.all(
        watches.map((w) =>
          w.next(2_000).then(
            () => true,
            () => false,
          ),
        ),
      );
      const missed = heard.filter((h) => !h).length;
      assert.equal(missed, 0, `${missed} of ${tries} watches missed the grant created right after they were opened`);
    } finally {
      for (const w of watches) w.close();
    }
  });

  test("a watcher that resumes with after_seq gets exactly the events it missed, in order, without duplicates", async () => {
    const vic = await server.as("vic", ["engineering"]);
    const first = auditor.watch({ subject: "vic", after_seq: point });
    const g1 = await grantRead(vic, ORDERS);
    const g2 = await grantRead(vic, EXPORTS);
    const seen = await first.take(2);
    first.close();
    assert.deepEqual(
      seen.map((e) => [e.kind, e.grant.id]),
      [
        ["GRANT_EVENT_KIND_CREATED", g1.id],
        ["GRANT_EVENT_KIND_CREATED", g2.id],
      ],
    );
    const last = (seen[1] as { seq: string }).seq;

    // While nobody watches: both grants end and a new one starts.
    await vic.call("RevokeGrant", { grant_id: g1.id });
    await vic.call("RevokeGrant", { grant_id: g2.id });
    const g3 = await grantRead(vic, ORDERS);

    const resumed = auditor.watch({ subject: "vic", after_seq: last });
    try {
      const missed = await resumed.take(3);
      assert.deepEqual(
        missed.map((e) => [e.kind, e.grant.id]),
        [
          ["GRANT_EVENT_KIND_REVOKED", g1.id],
          ["GRANT_EVENT_KIND_REVOKED", g2.id],
          ["GRANT_EVENT_KIND_CREATED", g3.id],
        ],
      );
      const seqs = [last, ...missed.map((e) => e.seq)].map(BigInt);
      for (let i = 1; i < seqs.length; i++) assert.ok((seqs[i] as bigint) > (seqs[i - 1] as bigint), `seqs ${seqs.join(", ")}`);

      // The resumed watch goes on live: the next change is the next event, with nothing repeated before it.
      await vic.call("RevokeGrant", { grant_id: g3.id });
      const live = await resumed.next();
      assert.deepEqual([live.kind, live.grant.id], ["GRANT_EVENT_KIND_REVOKED", g3.id]);
      assert.ok(BigInt(live.seq) > (seqs.at(-1) as bigint));
      assert.deepEqual(resumed.unread, []);
    } finally {
      resumed.close();
    }
  });
});
