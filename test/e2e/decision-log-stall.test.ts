// A lock held on decisions.db by another process (a backup, `sqlite3 data/decisions.db` with BEGIN IMMEDIATE
// at its prompt) stalls only the decision log's writer thread: every Check during the hold is answered at
// once, other calls too, and once the lock is released every answered Check's record is written.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { describe, test } from "node:test";
import Database from "better-sqlite3";
import { DECISIONS_FILE } from "../../src/store/decision-store.ts";
import { api, orderReadGrant, tokenFor } from "../support/api.ts";
import { removeDir, ROOT, tempDir } from "../support/bundles.ts";
import { startTestJitgate } from "../support/jitgate.ts";

const FROM_OFFICE = { source_ip: "10.1.2.3" };
/** How long the other process holds the lock: well under the writer's 5 s busy timeout, so the batch waits it out. */
const HOLD_MS = 3_000;
/** Checks are made during the first part of the hold, leaving the rest of it as margin. */
const CHECKING_MS = 2_000;
/** Checks in flight at once. */
const CALLERS = 4;
/** A Check that takes longer than this fails (DEADLINE_EXCEEDED). */
const CHECK_DEADLINE_MS = 1_000;

/**
 * Another process that takes decisions.db's write lock (BEGIN IMMEDIATE), says "locked", releases it after
 * `holdMs` on its own clock and says "released <epoch ms>" once it has.
 */
function lockHolder(file: string, holdMs: number): { child: ChildProcess; lines: AsyncIterator<string> } {
  const script = `
    import Database from "better-sqlite3";
    const db = new Database(${JSON.stringify(file)}, { timeout: 5000 });
    db.exec("BEGIN IMMEDIATE");
    console.log("locked");
    setTimeout(() => {
      db.exec("ROLLBACK");
      console.log("released " + Date.now());
      db.close();
    }, ${holdMs});`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })[Symbol.asyncIterator]();
  return { child, lines };
}

async function nextLine(lines: AsyncIterator<string>): Promise<string> {
  const line = await lines.next();
  if (line.done === true) throw new Error("the lock holder ended without a word");
  return line.value;
}

describe("decision log under a lock held by another process", () => {
  test("Checks are answered while decisions.db is locked, and every record is written once it is released", async (t) => {
    const dataDir = await tempDir("jitgate-decision-stall-");
    const file = join(dataDir, DECISIONS_FILE);
    const jitgate = await startTestJitgate(dataDir);
    const client = api(jitgate.address);
    let holder: ChildProcess | undefined;
    try {
      const checker = client.as(await tokenFor(dataDir, "svc-orders", ["jitgate-checkers"]));
      await orderReadGrant(client.as(await tokenFor(dataDir, "tess", ["engineering"])));
      const check = () =>
        checker.call(
          "Check",
          { subject: "tess", subject_groups: ["engineering"], resource: "db/orders", action: "read", context: FROM_OFFICE },
          { deadlineMs: CHECK_DEADLINE_MS },
        );
      const answered: string[] = [];
      answered.push((await check()).decision_id);
      await jitgate.decisionLog.flush();
      const writtenBefore = jitgate.decisionLog.written;

      const lock = lockHolder(file, HOLD_MS);
      holder = lock.child;
      assert.equal(await nextLine(lock.lines), "locked");
      const lockedAt = Date.now();
      const released = nextLine(lock.lines);

      // Callers back to back through the first part of the hold, so some call is always in flight: had the
      // serving thread stopped for the lock, the calls in flight then would finish only after its release.
      const finishedAt: number[] = [];
      let jwksAnswers = 0;
      const checking = async () => {
        while (Date.now() - lockedAt < CHECKING_MS) {
          const r = await check();
          finishedAt.push(Date.now());
          assert.equal(r.allow, true, JSON.stringify(r.reasons));
          answered.push(r.decision_id);
        }
      };
      const askingForKeys = async () => {
        while (Date.now() - lockedAt < CHECKING_MS) {
          const jwks = await checker.call("GetJwks", {}, { deadlineMs: CHECK_DEADLINE_MS });
          finishedAt.push(Date.now());
          assert.ok((JSON.parse(jwks.jwks_json) as { keys: unknown[] }).keys.length > 0);
          jwksAnswers++;
        }
      };
      await Promise.all([...Array.from({ length: CALLERS }, checking), askingForKeys()]);
      const sampled = { at: Date.now(), written: jitgate.decisionLog.written, queued: jitgate.decisionLog.queueDepth };

      const releasedLine = await released;
      const releasedAt = Number(/^released (\d+)$/.exec(releasedLine)?.[1]);
      assert.ok(releasedAt > 0, releasedLine);
      const late = finishedAt.filter((t) => t >= releasedAt);
      assert.deepEqual(late, [], "every call during the hold was answered before the lock was released");
      t.diagnostic(`${answered.length - 1} Checks and ${jwksAnswers} GetJwks answered during the hold`);
      assert.ok(answered.length > 100 && jwksAnswers > 10, `${answered.length} checks, ${jwksAnswers} GetJwks during the hold`);
      // The writer really was held up: nothing committed during the hold, the records waited in the queue.
      assert.ok(sampled.at < releasedAt);
      assert.deepEqual([sampled.written, sampled.queued], [writtenBefore, answered.length - 1], "written and queued during the hold");

      await jitgate.decisionLog.flush();
      assert.equal(jitgate.decisionLog.dropped, 0);
      const db = new Database(file, { readonly: true });
      try {
        const stored = db.prepare<[], string>("SELECT decision_id FROM decisions").pluck().all();
        assert.equal(stored.length, answered.length, "one record per answered Check");
        assert.deepEqual(new Set(stored), new Set(answered));
      } finally {
        db.close();
      }
    } finally {
      holder?.kill();
      if (holder && holder.exitCode === null && holder.signalCode === null) await once(holder, "exit");
      client.close();
      await jitgate.close();
      await removeDir(dataDir);
    }
  });
});
