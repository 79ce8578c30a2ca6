// The revocation feed against a fake source: it remembers revocations until their expiry, and a dropped
// stream is reopened after a backoff, resuming after the last seq seen.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { RevocationHandlers } from "../../src/enforce/jitgate-client.ts";
import { RevocationFeed, type RevocationSource } from "../../src/enforce/revocations.ts";

class FakeSource implements RevocationSource {
  readonly opened: { afterSeq: string; on: RevocationHandlers; cancelled: boolean }[] = [];
  #waiters: (() => void)[] = [];

  watchRevocations(afterSeq: string, on: RevocationHandlers) {
    const stream = { afterSeq, on, cancelled: false };
    this.opened.push(stream);
    for (const w of this.#waiters.splice(0)) w();
    return { cancel: () => (stream.cancelled = true) };
  }

  get latest() {
    const s = this.opened.at(-1);
    if (!s) throw new Error("no stream opened");
    return s;
  }

  /** Resolves once `n` streams have been opened, or rejects after `timeoutMs`. */
  async opens(n: number, timeoutMs = 2000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.opened.length < n) {
      if (Date.now() > deadline) throw new Error(`only ${this.opened.length} of ${n} streams opened in ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }
}

test("a revoked grant is remembered until its tokens expire, then forgotten", async () => {
  let now = 1_000_000;
  const told: string[] = [];
  const source = new FakeSource();
  const feed = new RevocationFeed(source, { now: () => now, onRevoked: (id) => told.push(id) });
  const started = feed.start();
  source.latest.on.subscribed();
  await started;
  source.latest.on.revoked({ seq: "7", grantId: "g1", expiresAt: now + 60_000 });
  assert.deepEqual(told, ["g1"]);
  assert.equal(feed.isRevoked("g1"), true);
  assert.equal(feed.isRevoked("g2"), false);
  now += 60_000;
  assert.equal(feed.isRevoked("g1"), false);
  feed.close();
});

test("a dropped stream is reopened after a backoff, resuming after the last seq", async () => {
  const source = new FakeSource();
  const feed = new RevocationFeed(source, { now: Date.now, onRevoked: () => undefined, afterSeq: "3", minBackoffMs: 10, maxBackoffMs: 40 });
  void feed.start();
  assert.equal(source.latest.afterSeq, "3");
  source.latest.on.subscribed();
  source.latest.on.revoked({ seq: "12", grantId: "g1", expiresAt: Date.now() + 60_000 });
  source.latest.on.ended(new Error("jitgate went away"));
  await source.opens(2);
  assert.equal(source.latest.afterSeq, "12");
  // Failing again and again still resumes from the same place.
  source.latest.on.ended(new Error("still away"));
  await source.opens(3);
  assert.equal(source.latest.afterSeq, "12");
  assert.equal(feed.lastSeq, "12");
  feed.close();
  assert.equal(source.latest.cancelled, true);
});

test("after close, an ended stream is not reopened", async () => {
  const source = new FakeSource();
  const feed = new RevocationFeed(source, { now: Date.now, onRevoked: () => undefined, minBackoffMs: 5, maxBackoffMs: 5 });
  void feed.start();
  feed.close();
  source.latest.on.ended(new Error("cancelled"));
  await assert.rejects(source.opens(2, 200));
});

test("how long revocations may have been missed: forever before the first subscription, then since the stream went down", async () => {
  let now = 5_000_000;
  const source = new FakeSource();
  const feed = new RevocationFeed(source, { now: () => now, onRevoked: () => undefined, minBackoffMs: 10, maxBackoffMs: 10 });
  void feed.start();
  assert.equal(feed.unknownForMs(), Infinity);
  source.latest.on.subscribed();
  assert.equal(feed.unknownForMs(), 0);
  source.latest.on.ended(new Error("jitgate went away"));
  now += 1_500;
  assert.equal(feed.unknownForMs(), 1_500);
  await source.opens(2);
  source.latest.on.ended(new Error("still away"));
  now += 1_000;
  assert.equal(feed.unknownForMs(), 2_500, "measured from the first failure, not the last");
  await source.opens(3);
  source.latest.on.subscribed();
  assert.equal(feed.unknownForMs(), 0);
  feed.close();
});
