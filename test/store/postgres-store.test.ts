// What the PostgreSQL store promises beyond the shared contract: migrations that replicas may race, one write lock
// for every replica (one audit chain, grant events committed in seq order, one decision, each expiry once), a
// held lock or a stopped server as Unavailable, never a crash or a hang, and grant events announced on commit.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import type { Notification } from "pg";
import type { GrantEvent } from "../../src/access/model.ts";
import type { WriteTx } from "../../src/access/ports.ts";
import { FailedPrecondition, Unavailable } from "../../src/errors.ts";
import { GRANT_EVENTS_CHANNEL, openPgStore, PG_SCHEMA_VERSION, type PgStore, type PgStoreOptions } from "../../src/store/postgres/store.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { startPostgres, type PostgresServer, withClient } from "../support/postgres.ts";
import { aGrant, aRequest, anAuditEntry, MINUTE, T0 } from "./fixtures.ts";

let server: PostgresServer;
const opened: PgStore[] = [];

before(async () => {
  server = await startPostgres();
  // Commit timestamps let a test ask PostgreSQL in which order transactions committed (needs a restart).
  await withClient(server.url(), (c) => c.query("ALTER SYSTEM SET track_commit_timestamp = on"));
  server.stopServer();
  server.start();
});

after(async () => {
  await Promise.allSettled(opened.map((s) => s.close()));
  server.stop();
});

async function open(url: string, opts: PgStoreOptions = {}): Promise<PgStore> {
  const store = await openPgStore(url, opts);
  opened.push(store);
  return store;
}

/** `count` stores (separate pools, as separate replicas) on one fresh database. */
async function replicas(count: number, opts: PgStoreOptions = {}): Promise<{ url: string; stores: PgStore[] }> {
  const url = await server.createDatabase();
  const first = await open(url, opts);
  const rest = await Promise.all(Array.from({ length: count - 1 }, () => open(url, opts)));
  return { url, stores: [first, ...rest] };
}

/** The same URL with a password in it: no message may show it. */
const withPassword = (url: string) => url.replace("://jitgate@", "://jitgate:hunter2@");

/** A request and its grant, as an approval writes them. */
async function storeGrant(tx: WriteTx, id: string, over: Partial<Parameters<typeof aGrant>[0]> = {}): Promise<GrantEvent> {
  const grant = aGrant({ id, requestId: `req-${id}`, ...over });
  await tx.insertRequest(aRequest({ id: grant.requestId, requester: { id: grant.subject, groups: [] }, state: "APPROVED" }));
  return tx.insertGrant(grant);
}

/** Notifications on the grant event channel, one at a time, to a client of its own. */
async function listen(url: string): Promise<{ next: () => Promise<Notification>; end: () => Promise<void> }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(`LISTEN ${GRANT_EVENTS_CHANNEL}`);
  const queue: Notification[] = [];
  const waiting: ((n: Notification) => void)[] = [];
  client.on("notification", (n) => {
    const waiter = waiting.shift();
    if (waiter === undefined) queue.push(n);
    else waiter(n);
  });
  const next = () => {
    const queued = queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise<Notification>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no notification within 10 s")), 10_000);
      waiting.push((n) => {
        clearTimeout(timer);
        resolve(n);
      });
    });
  };
  return { next, end: () => client.end() };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("PostgreSQL store: migrations", () => {
  test("a database whose schema is newer than this jitgate is refused, naming its version and saying to upgrade", async () => {
    const url = await server.createDatabase();
    await (await open(url)).close();
    const newer = PG_SCHEMA_VERSION + 1;
    await withClient(url, (c) => c.query("INSERT INTO jitgate_schema (version, description) VALUES ($1, 'from a newer jitgate')", [newer]));
    await assert.rejects(openPgStore(withPassword(url)), (err: unknown) => {
      assert.ok(err instanceof FailedPrecondition);
      assert.match(
        err.message,
        new RegExp(`schema version ${newer}, newer than this jitgate knows \\(${PG_SCHEMA_VERSION}\\); upgrade jitgate`),
      );
      assert.ok(err.message.includes(`127.0.0.1:${server.port}/`), "names the database");
      assert.ok(!err.message.includes("hunter2"), "never the password");
      return true;
    });
  });

  test("replicas opening one empty database at once migrate it once, and every one of them works", async () => {
    const url = await server.createDatabase();
    const stores = await Promise.all(range(1, 4).map(() => open(url)));
    const applied = await withClient(
      url,
      async (c) => (await c.query<{ version: number }>("SELECT version FROM jitgate_schema ORDER BY version")).rows,
    );
    assert.deepEqual(
      applied.map((r) => r.version),
      range(1, PG_SCHEMA_VERSION),
    );
    await Promise.all(stores.map((s, i) => s.write(async (tx) => void (await storeGrant(tx, `g${i}`)))));
    assert.equal(await stores[0]?.latestGrantEventSeq(), 4);
  });
});

describe("PostgreSQL store: one write lock for every replica", () => {
  test("replicas writing at once keep one audit hash chain, each write's entries side by side", async () => {
    const { stores } = await replicas(3);
    const writes = range(1, 200).map((i) =>
      (stores[i % 3] as PgStore).write(async (tx) => {
        await tx.insertRequest(aRequest({ id: `req-g${i}` }));
        await tx.appendAudit(anAuditEntry({ kind: "REQUEST_APPROVED", requestId: `req-g${i}`, grantId: `g${i}` }));
        await tx.appendAudit(anAuditEntry({ kind: "GRANT_CREATED", requestId: `req-g${i}`, grantId: `g${i}` }));
      }),
    );
    await Promise.all(writes);
    const store = stores[0] as PgStore;
    const report = await store.verifyAuditChain();
    assert.deepEqual(report, { ok: true, rows: 400, head: await store.auditHead() });
    const entries = [];
    for (let token = "", first = true; first || token !== ""; first = false) {
      const page = await store.auditEntries({}, { size: 500, token });
      entries.push(...page.items);
      token = page.next;
    }
    assert.deepEqual(
      entries.map((e) => e.seq),
      range(1, 400),
    );
    for (let i = 0; i < entries.length; i += 2) {
      assert.deepEqual([entries[i]?.kind, entries[i + 1]?.kind], ["REQUEST_APPROVED", "GRANT_CREATED"]);
      assert.equal(entries[i]?.requestId, entries[i + 1]?.requestId, `entries ${i + 1} and ${i + 2} come from one write`);
    }
  });

  test("grant events commit in seq order, so a reader tailing by seq sees every one", async () => {
    const { url, stores } = await replicas(4);
    const [reader, ...writers] = stores as [PgStore, ...PgStore[]];
    let writing = true;
    const seen: number[] = [];
    const tail = (async () => {
      for (;;) {
        const done = !writing;
        const events = await reader.grantEventsAfter(seen.at(-1) ?? 0, 1_000);
        seen.push(...events.map((e) => e.seq));
        if (done) return;
      }
    })();
    await Promise.all(
      range(1, 200).map((i) => (writers[i % writers.length] as PgStore).write(async (tx) => void (await storeGrant(tx, `g${i}`)))),
    );
    writing = false;
    await tail;
    assert.deepEqual(seen, range(1, 200), "the tail saw every seq once, in order (a late commit below its position would be missed)");
    const commits = await withClient(url, async (c) => {
      const sql = "SELECT seq, pg_xact_commit_timestamp(xmin) AS at FROM grant_events ORDER BY seq";
      return (await c.query<{ seq: number; at: Date }>(sql)).rows;
    });
    assert.equal(commits.length, 200);
    for (let i = 1; i < commits.length; i++) {
      const [earlier, later] = [commits[i - 1], commits[i]] as [{ at: Date }, { at: Date; seq: number }];
      assert.ok(earlier.at.getTime() <= later.at.getTime(), `seq ${later.seq} committed before seq ${later.seq - 1}`);
    }
  });

  test("replicas racing to decide one pending request: exactly one decision is made, and one grant", async () => {
    const { stores } = await replicas(2);
    const ids = range(1, 20).map((i) => `r${i}`);
    await (stores[0] as PgStore).write(async (tx) => {
      for (const id of ids) await tx.insertRequest(aRequest({ id }));
    });
    const approve = (store: PgStore, replica: number, id: string) =>
      store.write(async (tx) => {
        if ((await tx.request(id))?.state !== "PENDING") return false;
        const grantId = `${id}-by-${replica}`;
        const change = { state: "APPROVED" as const, decidedAt: T0 + MINUTE, stateReason: `approved on ${replica}`, grantId };
        if (!(await tx.decideRequest(id, "PENDING", change))) return false;
        await tx.insertGrant(aGrant({ id: grantId, requestId: id }));
        return true;
      });
    const outcomes = await Promise.all(ids.map((id) => Promise.all(stores.map((s, replica) => approve(s, replica, id)))));
    for (const [i, won] of outcomes.entries()) assert.equal(won.filter(Boolean).length, 1, `request ${ids[i]}: ${won}`);
    for (const id of ids) {
      const request = await (stores[1] as PgStore).request(id);
      const grants = await (stores[1] as PgStore).grants({ subject: "alice" }, { size: 500, token: "" });
      const ofRequest = grants.items.filter((g) => g.requestId === id);
      assert.deepEqual(
        ofRequest.map((g) => g.id),
        [request?.grantId],
      );
    }
  });

  test("replicas racing to record the same expiries record each exactly once", async () => {
    const { stores } = await replicas(2);
    await (stores[0] as PgStore).write(async (tx) => {
      for (const i of range(1, 50)) await storeGrant(tx, `g${i}`, { expiresAt: T0 + MINUTE + i });
    });
    const sweep = async (store: PgStore) => {
      const recorded: GrantEvent[] = [];
      for (;;) {
        const events = await store.write(async (tx) => tx.recordExpiries(T0 + 10 * MINUTE, 7));
        if (events.length === 0) return recorded;
        recorded.push(...events);
      }
    };
    const [a, b] = await Promise.all(stores.map(sweep));
    const ids = [...(a ?? []), ...(b ?? [])].map((e) => e.grant.id).sort();
    assert.deepEqual(
      ids,
      range(1, 50)
        .map((i) => `g${i}`)
        .sort(),
    );
    const events = await (stores[1] as PgStore).grantEventsAfter(0, 1_000);
    assert.equal(events.filter((e) => e.kind === "EXPIRED").length, 50);
  });

  test("a write behind another replica holding the lock past the budget is Unavailable after about the budget, and works once it is let go", async () => {
    const { stores } = await replicas(2, { writeBudgetMs: 400 });
    const [waiting, holding] = stores as [PgStore, PgStore];
    let held!: () => void;
    let letGo!: () => void;
    const isHeld = new Promise<void>((resolve) => (held = resolve));
    const release = new Promise<void>((resolve) => (letGo = resolve));
    const holder = holding.write(async (tx) => {
      await tx.appendAudit(anAuditEntry({ reason: "holding" }));
      held();
      await release;
    }, 30_000);
    await isHeld;
    const started = performance.now();
    await assert.rejects(
      waiting.write(async (tx) => tx.appendAudit(anAuditEntry({ reason: "waited" }))),
      (err: unknown) => err instanceof Unavailable && /the store is locked by another writer; try again/.test(err.message),
    );
    const waited = performance.now() - started;
    assert.ok(waited >= 350, `it waited for the lock (${Math.round(waited)} ms), not failing at once`);
    assert.ok(waited < 400 + 3_000, `it gave up around its budget (${Math.round(waited)} ms)`);
    assert.equal((await waiting.auditEntries({}, { size: 10, token: "" })).items.length, 0, "reads answer while the lock is held");
    assert.equal(waiting.writes.possible, true, "contention is not an outage");
    letGo();
    await holder;
    await waiting.write(async (tx) => tx.appendAudit(anAuditEntry({ reason: "after" })));
    const report = await waiting.verifyAuditChain();
    assert.equal(report.ok && report.rows, 2);
  });
});

describe("PostgreSQL store: failures", () => {
  test("a stopped PostgreSQL makes reads and writes Unavailable, never the password, and the store recovers when it is back", async () => {
    const url = withPassword(await server.createDatabase());
    const connectTimeoutMs = 2_000;
    const idleErrors: Error[] = [];
    const store = await open(url, { connectTimeoutMs, onIdleError: (err) => idleErrors.push(err) });
    await store.write(async (tx) => void (await storeGrant(tx, "g1")));
    await Promise.all([store.grant("g1"), store.request("req-g1"), store.liveGrantSnapshot(T0)]); // idle connections to lose
    const unavailable = (err: unknown) => {
      assert.ok(err instanceof Unavailable, `Unavailable, not ${String(err)}`);
      assert.match(err.message, new RegExp(`^store postgres://127\\.0\\.0\\.1:${server.port}/\\w+: `));
      assert.ok(!err.message.includes("hunter2"));
      return true;
    };
    server.stopServer("fast");
    try {
      const started = performance.now();
      await assert.rejects(store.grant("g1"), unavailable);
      await assert.rejects(store.liveGrantSnapshot(T0), unavailable);
      await assert.rejects(store.verifyAuditChain(), unavailable);
      await assert.rejects(
        store.write(async (tx) => void (await storeGrant(tx, "g2"))),
        unavailable,
      );
      const health = await store.checkWrites();
      assert.equal(health.possible, false);
      assert.ok(health.reason !== undefined && !health.reason.includes("hunter2"));
      assert.ok(performance.now() - started < 4 * connectTimeoutMs, "no call waited past its connection timeout");
    } finally {
      server.start();
    }
    assert.equal((await store.grant("g1"))?.id, "g1");
    await store.write(async (tx) => void (await storeGrant(tx, "g2")));
    assert.deepEqual(await store.checkWrites(), { possible: true });
    assert.equal(await store.latestGrantEventSeq(), 2);
  });

  test("a statement that fails inside a write leaves nothing committed, even when the write goes on", async () => {
    const { stores } = await replicas(1);
    const store = stores[0] as PgStore;
    await assert.rejects(
      store.write(async (tx) => {
        await storeGrant(tx, "g1");
        // A grant for a request that does not exist: the foreign key refuses it, and PostgreSQL aborts the transaction.
        await Promise.resolve(tx.insertGrant(aGrant({ id: "g2", requestId: "nope" }))).catch(() => undefined);
        await tx.appendAudit(anAuditEntry());
      }),
      /a statement of this transaction failed/,
    );
    assert.equal(await store.grant("g1"), undefined);
    assert.equal(await store.latestGrantEventSeq(), 0);
    assert.deepEqual(await store.verifyAuditChain(), { ok: true, rows: 0 });
    await store.write(async (tx) => void (await storeGrant(tx, "g1")));
    assert.equal((await store.grantEventsAfter(0, 10))[0]?.seq, 1, "the failed write used up no seq");
  });
});

describe("PostgreSQL store: grant event notifications and the audit chain's hashes", () => {
  test("a committed grant event is announced with its seq once it commits; a rolled-back one never is", async () => {
    const { url, stores } = await replicas(1);
    const store = stores[0] as PgStore;
    const channel = await listen(url);
    try {
      const first = await store.write(async (tx) => storeGrant(tx, "g1"));
      const n = await channel.next();
      assert.deepEqual([n.channel, n.payload], [GRANT_EVENTS_CHANNEL, String(first.seq)]);

      await assert.rejects(
        store.write(async (tx) => {
          await storeGrant(tx, "g2");
          throw new Error("changed my mind");
        }),
        /changed my mind/,
      );
      const revoked = await store.write(async (tx) => {
        await storeGrant(tx, "g3", { subject: "bob" });
        await storeGrant(tx, "g4", { subject: "bob" });
        return tx.revokeGrantsOf("bob", T0 + MINUTE, "sec", "incident");
      });
      const payloads = [];
      for (let i = 0; i < 4; i++) payloads.push((await channel.next()).payload);
      // Notifications come in commit order: had the rolled-back event been announced, it would come first.
      assert.deepEqual(payloads, range(2, 5).map(String));
      assert.deepEqual(
        revoked.map((e) => e.seq),
        [4, 5],
      );
    } finally {
      await channel.end();
    }
  });

  test("an audit entry hashes exactly as the SQLite store hashes it", async () => {
    const { stores } = await replicas(1);
    const store = stores[0] as PgStore;
    const entries = [
      anAuditEntry(),
      anAuditEntry({ kind: "GRANT_REVOKED", requestId: undefined, details: { nested: { ключ: "värde ✓", n: 1.5 }, list: [1, null] } }),
    ];
    await store.write(async (tx) => {
      for (const e of entries) await tx.appendAudit(e);
    });
    const sqlite = openSqliteStore(":memory:");
    try {
      await sqlite.write(async (tx) => {
        for (const e of entries) await tx.appendAudit(e);
      });
      assert.deepEqual(await store.auditHead(), sqlite.auditHead());
      const page = await store.auditEntries({}, { size: 10, token: "" });
      assert.deepEqual(page, sqlite.auditEntries({}, { size: 10, token: "" }));
    } finally {
      await sqlite.close();
    }
  });
});
