// Two jitgate replicas on one PostgreSQL (a real server on loopback): a grant made on one is honoured by the
// other, a revocation acknowledged by one is refused by the other within the feed's bound (and watched there by
// the same seqs), and a replica cut off from the database (its connections frozen by a proxy) refuses
// grant-based allows with UNAVAILABLE instead of serving stale ones, then recovers by itself.
import assert from "node:assert/strict";
import { createServer, type Server, type Socket, connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { type Caller, type E2eServer, failsWith, startE2eServer } from "../support/api.ts";
import { rotateSigningKey } from "../../src/tokens/keys.ts";
import { removeDir, tempDir } from "../support/bundles.ts";
import { healthStatus } from "../support/jitgate.ts";
import { startPostgres, type PostgresServer, withClient } from "../support/postgres.ts";

const ORDERS = "db/orders";
const FEED_BOUND_MS = 1_000;

/** A loopback TCP proxy to PostgreSQL whose connections can be frozen (no byte passes either way) and thawed. */
async function freezableProxy(port: number): Promise<{ port: number; freeze(): void; thaw(): void; close(): void }> {
  const pairs = new Set<[Socket, Socket]>();
  let frozen = false;
  const server: Server = createServer((client) => {
    const upstream = connect(port, "127.0.0.1");
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    if (frozen) for (const s of pair) s.pause();
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const address = server.address();
  if (typeof address !== "object" || address === null) throw new Error("no proxy port");
  return {
    port: address.port,
    freeze() {
      frozen = true;
      for (const pair of pairs) for (const s of pair) s.pause();
    },
    thaw() {
      frozen = false;
      for (const pair of pairs) for (const s of pair) s.resume();
    },
    close() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      server.close();
    },
  };
}

async function readGrant(caller: Caller): Promise<string> {
  const request = await caller.call("RequestAccess", {
    resource: ORDERS,
    actions: ["read"],
    duration: { seconds: 600 },
    justification: "reading stuck orders for INC-77",
    ticket: "INC-77",
  });
  assert.equal(request.state, "APPROVED", request.state_reason);
  return request.grant?.id as string;
}

const checkOf = (checker: Caller, subject: string) =>
  checker.call("Check", { subject, subject_groups: ["engineering"], resource: ORDERS, action: "read", context: { source_ip: "10.1.2.3" } });

/** How many decision records the shared database holds with this id. */
let decisionsWithId: (id: string) => Promise<number>;

/** Polls `fn` until it returns true; the elapsed ms, or a failure after `limitMs`. */
async function within(limitMs: number, fn: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  while (!(await fn())) {
    if (performance.now() - started > limitMs) throw new Error(`not within ${limitMs} ms`);
    await sleep(5);
  }
  return performance.now() - started;
}

describe("replicas on one PostgreSQL", () => {
  let pg: PostgresServer;
  let proxy: Awaited<ReturnType<typeof freezableProxy>>;
  let a: E2eServer;
  let b: E2eServer;
  let keysDir: string;
  before(async () => {
    pg = await startPostgres();
    const url = await pg.createDatabase();
    proxy = await freezableProxy(pg.port);
    decisionsWithId = (id) =>
      withClient(
        url,
        async (client) => (await client.query("SELECT decision_id FROM decisions WHERE decision_id = $1", [id])).rowCount ?? 0,
      );
    const throughProxy = url.replace(`:${pg.port}/`, `:${proxy.port}/`);
    keysDir = await tempDir("jitgate-shared-keys-");
    a = await startE2eServer({ store: url, feedBound: `${FEED_BOUND_MS}ms`, signingKeys: keysDir });
    b = await startE2eServer({ store: throughProxy, feedBound: `${FEED_BOUND_MS}ms`, signingKeys: keysDir });
  });
  after(async () => {
    await a?.close();
    proxy?.thaw();
    await b?.close();
    proxy?.close();
    pg?.stop();
    await removeDir(keysDir);
  });

  test("with one signing-keys directory, a token issued by A is honoured by B, and a rotation is seen by both", async () => {
    const dave = await a.as("dave", ["engineering"]);
    const checkerB = await b.as("orders-service", ["jitgate-checkers"]);
    const grantId = await readGrant(dave);
    const byToken = async (token: string) =>
      (await checkerB.call("Check", { token, resource: ORDERS, action: "read", context: { source_ip: "10.1.2.3" } })).allow;
    const first = await dave.call("IssueToken", { grant_id: grantId });
    await within(FEED_BOUND_MS, () => byToken(first.token));
    const rotated = await rotateSigningKey(keysDir, { algorithm: "EdDSA", now: () => Date.now() });
    // A signs with the new key within its refresh interval (1 s); B, which has not listed the directory since,
    // looks once for the key it does not know instead of refusing the token, and still takes the old one.
    const kidOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[0] as string, "base64url").toString()).kid as string;
    let next = "";
    await within(3_000, async () => {
      next = (await dave.call("IssueToken", { grant_id: grantId })).token;
      return kidOf(next) === rotated.kid;
    });
    assert.equal(await byToken(next), true);
    assert.equal(await byToken(first.token), true);
  });

  test("a grant made on A is honoured by B; A's revocation is refused by B within the bound and watched there", async () => {
    const alice = await a.as("alice", ["engineering"]);
    const checkerB = await b.as("orders-service", ["jitgate-checkers"]);
    const auditorB = await b.as("auditor", ["jitgate-auditors"]);
    const grantId = await readGrant(alice);
    await within(FEED_BOUND_MS, async () => (await checkOf(checkerB, "alice")).allow);
    const watch = auditorB.watch({ subject: "alice" });
    await sleep(50);
    const admin = await a.as("root", ["jitgate-admins"]);
    await admin.call("RevokeGrant", { grant_id: grantId, reason: "incident" });
    const delay = await within(FEED_BOUND_MS, async () => !(await checkOf(checkerB, "alice")).allow);
    assert.ok(delay <= FEED_BOUND_MS);
    const denied = await checkOf(checkerB, "alice");
    assert.equal(denied.allow, false);
    // B's decision record lands in the shared database, beside A's.
    await within(5_000, async () => (await decisionsWithId(denied.decision_id)) === 1);
    const revoked = await watch.next(2_000);
    assert.equal(revoked.kind, "GRANT_EVENT_KIND_REVOKED");
    assert.equal(revoked.grant.id, grantId);
    // The same seq on A: any replica resumes a watch by the same numbers.
    const auditorA = await a.as("auditor", ["jitgate-auditors"]);
    const replay = auditorA.watch({ subject: "alice", after_seq: String(BigInt(revoked.seq) - 1n) });
    const same = await replay.next(2_000);
    assert.deepEqual([same.seq, same.kind, same.grant.id], [revoked.seq, revoked.kind, grantId]);
    watch.close();
    replay.close();
  });

  test("a grant made through A is listed by B at once (reads go to the shared store)", async () => {
    const bob = await a.as("bob", ["engineering"]);
    const grantId = await readGrant(bob);
    const onB = await (await b.as("bob", ["engineering"])).call("ListGrants", {});
    assert.deepEqual(
      onB.grants.map((g) => g.id),
      [grantId],
    );
  });

  test("two approvers racing on A and B over a request that needs one approval: one decision, one grant", async () => {
    for (let round = 0; round < 5; round++) {
      const requester = await a.as(`exporter-${round}`, ["engineering"]);
      const pending = await requester.call("RequestAccess", {
        resource: "s3/analytics-exports",
        actions: ["write"],
        duration: { seconds: 600 },
        justification: "fixing a broken nightly export",
        ticket: "INC-9",
      });
      assert.equal(pending.state, "PENDING", pending.state_reason);
      const [onA, onB] = await Promise.allSettled([
        (await a.as("dp-one", ["data-platform"])).call("ReviewAccessRequest", { id: pending.id, decision: "REVIEW_DECISION_APPROVE" }),
        (await b.as("dp-two", ["data-platform"])).call("ReviewAccessRequest", { id: pending.id, decision: "REVIEW_DECISION_APPROVE" }),
      ]);
      const approved = [onA, onB].filter((r) => r.status === "fulfilled" && r.value.state === "APPROVED");
      assert.ok(approved.length >= 1, "the request was approved");
      // The loser is refused: the request is no longer pending, or (need-to-know) it left the loser's review
      // queue before the loser read it, so it is no longer one the loser may read.
      for (const r of [onA, onB]) {
        if (r.status !== "rejected") continue;
        const err = r.reason as grpc.ServiceError;
        if (err.code === grpc.status.FAILED_PRECONDITION) assert.match(err.details, /is APPROVED, not PENDING/);
        else assert.deepEqual([err.code, /is not one you may read/.test(err.details)], [grpc.status.PERMISSION_DENIED, true]);
      }
      const grants = await (
        await a.as("auditor", ["jitgate-auditors"])
      ).call("ListGrants", { subject: `exporter-${round}`, include_inactive: true });
      assert.equal(grants.grants.length, 1, "exactly one grant");
      const request = await (await b.as("auditor", ["jitgate-auditors"])).call("GetAccessRequest", { id: pending.id });
      assert.equal(request.state, "APPROVED");
      assert.equal(request.reviews.length, 1, "one review counted: the other was refused, not recorded twice");
    }
  });

  test("a replica cut off from PostgreSQL refuses grant-based allows (UNAVAILABLE) past the bound, then recovers", async () => {
    const carol = await a.as("carol", ["engineering"]);
    const checkerB = await b.as("orders-service", ["jitgate-checkers"]);
    await readGrant(carol);
    await within(FEED_BOUND_MS, async () => (await checkOf(checkerB, "carol")).allow);
    proxy.freeze();
    try {
      // Within the bound B may still answer from a feed read moments ago; past it, never an allow.
      await sleep(FEED_BOUND_MS + 200);
      const refused = await failsWith(grpc.status.UNAVAILABLE, checkOf(checkerB, "carol"));
      assert.match(refused.message, /grant feed/);
      // Health says so at its next look.
      await within(6_000, async () => b.jitgate.health().grantFeed?.fresh === false);
      assert.match(b.jitgate.health().decisions.reason ?? "", /grant feed/);
      const healthz = await fetch(`${b.jitgate.metricsUrl?.replace(/\/metrics$/, "")}/healthz`);
      assert.equal(healthz.status, 503);
      const body = (await healthz.json()) as { grant_feed: { fresh: boolean; stale_for_ms: number; bound_ms: number } };
      assert.equal(body.grant_feed.fresh, false);
      assert.equal(body.grant_feed.bound_ms, FEED_BOUND_MS);
      assert.ok(body.grant_feed.stale_for_ms > FEED_BOUND_MS);
      assert.equal(await healthStatus(b.jitgate.address, "jit.v1.AccessService"), "NOT_SERVING");
      // A denial needs no grant: B still answers it (fail closed is a deny, not an outage).
      assert.equal((await checkOf(checkerB, "nobody")).allow, false);
      // A on the same database is unaffected.
      const checkerA = await a.as("orders-service", ["jitgate-checkers"]);
      assert.equal((await checkOf(checkerA, "carol")).allow, true);
    } finally {
      proxy.thaw();
    }
    await within(10_000, async () => (await checkOf(checkerB, "carol").catch(() => ({ allow: false }))).allow);
    await within(10_000, async () => b.jitgate.health().decisions.serving);
  });
});
