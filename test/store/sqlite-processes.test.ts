import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import type { GrantEvent } from "../../src/access/model.ts";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite.ts";
import { MINUTE, storeGrant, T0 } from "./fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "jitgate-store-procs-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshFile = () => join(dir, `store-${++files}.db`);
const WRITER = join(import.meta.dirname, "grant-writer.ts");

/** Starts grant-writer.ts; `lines` fills with each complete line it prints (a grant id, after its commit). */
function startWriter(file: string, subject: string, count: number, ...flags: string[]) {
  const child = spawn(process.execPath, [WRITER, file, subject, String(count), ...flags], { stdio: ["ignore", "pipe", "inherit"] });
  const lines: string[] = [];
  let partial = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop() ?? "";
    lines.push(...parts);
  });
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  return { child, lines, exited };
}

/** Every grant event in the file, oldest first. */
function allEvents(store: SqliteStore): GrantEvent[] {
  const events: GrantEvent[] = [];
  for (let batch = store.grantEventsAfter(0, 1000); batch.length > 0; batch = store.grantEventsAfter(batch.at(-1)?.seq ?? 0, 1000)) {
    events.push(...batch);
  }
  return events;
}

describe("SQLite store shared by several processes", () => {
  test("two stores on one file see each other's writes at once", () => {
    const file = freshFile();
    const a = openSqliteStore(file);
    const b = openSqliteStore(file);
    storeGrant(a, { id: "g1" });
    assert.equal(b.liveGrantsOn("alice", "orders-db", T0 + MINUTE).length, 1);
    assert.ok(b.revokeGrant("g1", T0 + MINUTE, "sec", "incident"));
    assert.deepEqual(a.liveGrantsOn("alice", "orders-db", T0 + MINUTE), []);
    assert.equal(a.latestGrantEventSeq(), b.latestGrantEventSeq());
    a.close();
    b.close();
  });

  test("two stores recording expiries on one file emit each expiry once in total", () => {
    const file = freshFile();
    const a = openSqliteStore(file);
    const b = openSqliteStore(file);
    for (let i = 0; i < 10; i++) storeGrant(i % 2 ? a : b, { id: `g${i}`, expiresAt: T0 + i * MINUTE });
    const recorded: GrantEvent[] = [];
    for (let t = T0; t <= T0 + 10 * MINUTE; t += MINUTE / 2) {
      recorded.push(...a.recordExpiries(t), ...b.recordExpiries(t), ...a.recordExpiries(t));
    }
    const expiries = allEvents(a).filter((e) => e.kind === "EXPIRED");
    assert.deepEqual(
      expiries.map((e) => [e.grant.id, e.at]),
      Array.from({ length: 10 }, (_, i) => [`g${i}`, T0 + i * MINUTE]),
    );
    assert.deepEqual(
      recorded.map((e) => e.seq),
      expiries.map((e) => e.seq),
    );
    a.close();
    b.close();
  });

  test("writer processes creating and racing on one new file lose no grant and record each expiry once", async () => {
    // No process opens the file first: they also race to create it and apply the migrations.
    const file = freshFile();
    const writers = ["alice", "bob", "carol"].map((subject) => startWriter(file, subject, 150, "--record-expiries"));
    const exits = await Promise.all(writers.map((w) => w.exited));
    assert.deepEqual(exits, [
      [0, null],
      [0, null],
      [0, null],
    ]);
    const store = openSqliteStore(file);
    store.recordExpiries(T0 + 60 * MINUTE);
    const events = allEvents(store);
    const ids = writers.flatMap((w) => w.lines).sort();
    assert.equal(ids.length, 450);
    assert.deepEqual(
      events
        .filter((e) => e.kind === "CREATED")
        .map((e) => e.grant.id)
        .sort(),
      ids,
    );
    assert.deepEqual(
      events
        .filter((e) => e.kind === "EXPIRED")
        .map((e) => e.grant.id)
        .sort(),
      ids,
    );
    store.close();
  });

  test("every grant a process reported as stored survives that process being killed mid-write", async () => {
    const file = freshFile();
    const writer = startWriter(file, "alice", 0);
    let ended = false;
    void writer.exited.then(() => (ended = true));
    while (writer.lines.length < 200 && !ended) await Promise.race([once(writer.child.stdout, "data"), writer.exited]);
    assert.equal(ended, false, "the writer was still writing when killed");
    writer.child.kill("SIGKILL");
    const [code, signal] = await writer.exited;
    assert.deepEqual([code, signal], [null, "SIGKILL"]);
    const store = openSqliteStore(file);
    const missing = writer.lines.filter((id) => store.grant(id) === undefined);
    assert.deepEqual(missing, []);
    store.close();
  });
});
