// A Check reads the live-grant index, not the store, yet never honours a grant past its revocation or expiry:
// a grant revoked while the policy is deciding (by this process or by another one sharing the store) turns the
// allow into a denial (grant_ended), by subject and by token, and a grant's expires_at is exact.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Caller } from "../../src/access/model.ts";
import type { PolicyDecider } from "../../src/access/ports.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { type AccessDomain, type AccessDomains, openAccessDomains } from "../support/access-domain.ts";

const T0 = Date.UTC(2026, 10, 23, 10, 0, 0);
const alice: Caller = { id: "alice", groups: ["engineering"] };
const security: Caller = { id: "seth", groups: ["jitgate-admins"] };
const readOrders = {
  resource: "db/orders",
  actions: ["read"],
  durationS: 600,
  justification: "reading stuck orders for INC-77",
  ticket: "INC-77",
  emergency: false,
  clientKey: "",
};
const ask = { resource: "db/orders", action: "read", context: { source_ip: "10.1.2.3" }, caller: "svc-orders" };

describe("Check on the live-grant index", () => {
  let domains: AccessDomains;
  let now = T0;
  let files = 0;
  const freshFile = () => join(domains.dir, `check-live-${++files}.db`);
  before(async () => {
    domains = await openAccessDomains(() => now);
  });
  after(() => domains.remove());

  /** A domain whose policy runs `during` after deciding a Check and before answering, as a worker thread would. */
  function pausingDomain(file: string, during: { run?: () => Promise<void> | void }): AccessDomain {
    return domains.open({
      file,
      policyView: (policy): PolicyDecider => ({
        requestPlan: (input) => policy.requestPlan(input),
        reviewVerdict: (input) => policy.reviewVerdict(input),
        async checkDecision(input) {
          const answer = policy.checkDecision(input);
          await during.run?.();
          return answer;
        },
      }),
    });
  }

  async function aliceGrant(domain: AccessDomain): Promise<string> {
    const request = await domain.access.requestAccess(alice, readOrders);
    assert.equal(request.state, "APPROVED");
    return request.grantId as string;
  }

  for (const by of ["this process", "another process"] as const) {
    test(`a grant revoked by ${by} while the policy decides is a denial (grant_ended), by subject and by token`, async () => {
      now = T0;
      const during: { run?: () => Promise<void> | void } = {};
      const file = freshFile();
      const domain = pausingDomain(file, during);
      const other = openSqliteStore(file);
      try {
        const subject = await aliceGrant(domain);
        const { token } = await domain.access.issueToken(alice, subject);
        assert.equal((await domain.access.check({ subject: alice, ...ask })).allow, true, "allowed before the revoke");
        assert.equal((await domain.access.checkToken({ token, ...ask })).allow, true, "allowed by token before the revoke");

        during.run = async () => {
          during.run = undefined;
          if (by === "this process") await domain.access.revokeGrant(security, subject, "incident");
          else assert.ok(other.revokeGrant(subject, now, "seth", "incident"));
        };
        const bySubject = await domain.access.check({ subject: alice, ...ask });
        assert.equal(bySubject.allow, false);
        assert.deepEqual(
          bySubject.reasons.map((r) => r.code),
          ["grant_ended"],
        );

        const second = await aliceGrant(domain);
        const { token: secondToken } = await domain.access.issueToken(alice, second);
        during.run = async () => {
          during.run = undefined;
          if (by === "this process") await domain.access.revokeGrant(security, second, "incident");
          else assert.ok(other.revokeGrant(second, now, "seth", "incident"));
        };
        const byToken = await domain.access.checkToken({ token: secondToken, ...ask });
        assert.equal(byToken.allow, false);
        assert.deepEqual(
          byToken.reasons.map((r) => r.code),
          ["grant_ended"],
        );
        // And from then on the revoked grants are refused before the policy is asked.
        assert.deepEqual(
          (await domain.access.checkToken({ token, ...ask })).reasons.map((r) => r.code),
          ["grant_revoked"],
        );
        assert.equal((await domain.access.check({ subject: alice, ...ask })).allow, false);
      } finally {
        other.close();
        domain.close();
      }
    });
  }

  test("a grant revoked by another process before the Check is refused by it, with no notification", async () => {
    now = T0;
    const file = freshFile();
    const domain = domains.open({ file });
    const other = openSqliteStore(file);
    try {
      const grant = await aliceGrant(domain);
      assert.equal((await domain.access.check({ subject: alice, ...ask })).allow, true);
      assert.ok(other.revokeGrant(grant, now, "seth", "incident"));
      assert.equal((await domain.access.check({ subject: alice, ...ask })).allow, false);
    } finally {
      other.close();
      domain.close();
    }
  });

  test("a grant is honoured until the millisecond before its expires_at and never from it, with no expiry recorded", async () => {
    now = T0;
    const domain = domains.open();
    try {
      const grant = await aliceGrant(domain);
      const expiresAt = (domain.store.grant(grant)?.expiresAt ?? 0) as number;
      now = expiresAt - 1;
      assert.equal((await domain.access.check({ subject: alice, ...ask })).allow, true);
      now = expiresAt;
      assert.equal((await domain.access.check({ subject: alice, ...ask })).allow, false);
      assert.equal(domain.store.grantEventsAfter(0, 10).filter((e) => e.kind === "EXPIRED").length, 0, "no expiry was recorded");
    } finally {
      domain.close();
    }
  });
});
