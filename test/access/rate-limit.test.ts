// The RequestAccess rate limit: a token bucket per exact requester id, on a fake clock.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ResourceExhausted } from "../../src/errors.ts";
import { RequestRateLimit } from "../../src/access/rate-limit.ts";

const T0 = Date.UTC(2026, 11, 1, 9, 0, 0);
const TEN_PER_MINUTE = { count: 10, periodMs: 60_000, burst: 10 };

const refusalOf = (fn: () => void): ResourceExhausted => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ResourceExhausted, `expected ResourceExhausted, got ${String(err)}`);
    return err;
  }
  throw new Error("the request was let through but was expected to be refused");
};

describe("request rate limit", () => {
  test("a requester gets the burst at once, then is refused naming the limit and when to retry", () => {
    const limit = new RequestRateLimit(TEN_PER_MINUTE);
    for (let i = 0; i < 10; i++) limit.take("alice", T0);
    const refused = refusalOf(() => limit.take("alice", T0));
    assert.equal(refused.code, "RESOURCE_EXHAUSTED");
    assert.equal(refused.limit, "request_rate");
    assert.equal(refused.retryAfterMs, 6_000);
    assert.equal(refused.message, "access requests by alice are over the limit of 10 per minute (bursts of 10); retry in 6 s");
  });

  test("the bucket refills at the rate: one request every 6 s at 10 per minute", () => {
    const limit = new RequestRateLimit(TEN_PER_MINUTE);
    for (let i = 0; i < 10; i++) limit.take("alice", T0);
    refusalOf(() => limit.take("alice", T0 + 5_999));
    limit.take("alice", T0 + 6_000);
    assert.equal(refusalOf(() => limit.take("alice", T0 + 6_000)).retryAfterMs, 6_000);
    // A long pause refills no more than the burst.
    for (let i = 0; i < 10; i++) limit.take("alice", T0 + 3_600_000);
    refusalOf(() => limit.take("alice", T0 + 3_600_000));
  });

  test("requesters are kept apart by their exact id: look-alikes and case variants are not one bucket", () => {
    const limit = new RequestRateLimit({ count: 1, periodMs: 60_000, burst: 1 });
    limit.take("alice", T0);
    refusalOf(() => limit.take("alice", T0));
    for (const other of ["Alice", "alice ", "аlice" /* Cyrillic а */, "bob"]) limit.take(other, T0);
  });

  test("a refused request takes nothing: retrying early does not push the next allowed time back", () => {
    const limit = new RequestRateLimit({ count: 1, periodMs: 10_000, burst: 1 });
    limit.take("alice", T0);
    for (let t = 1_000; t < 10_000; t += 1_000) refusalOf(() => limit.take("alice", T0 + t));
    limit.take("alice", T0 + 10_000);
  });

  test("a clock that steps back neither refills nor fails", () => {
    const limit = new RequestRateLimit({ count: 1, periodMs: 10_000, burst: 1 });
    limit.take("alice", T0);
    refusalOf(() => limit.take("alice", T0 - 60_000));
    limit.take("alice", T0 + 10_000);
  });

  test("memory stays bounded: buckets that have refilled are forgotten as other requesters come by", () => {
    const limit = new RequestRateLimit(TEN_PER_MINUTE);
    // 10,000 requesters, one every 10 ms, each asking once: a bucket is full again 6 s after one request, so
    // about 600 are worth keeping at any time.
    for (let i = 0; i < 10_000; i++) limit.take(`user-${i}`, T0 + i * 10);
    assert.ok(limit.size <= 601, `${limit.size} buckets kept`);
    // Long after, a trickle of callers sweeps the idle ones away.
    for (let i = 0; i < 6_000; i++) limit.take("carol", T0 + 200_000 + i * 100_000);
    assert.equal(limit.size, 1);
  });

  test("a hard cap bounds the table even when every requester is active", () => {
    const limit = new RequestRateLimit(TEN_PER_MINUTE, { maxBuckets: 100 });
    for (let i = 0; i < 1_000; i++) limit.take(`user-${i}`, T0);
    assert.equal(limit.size, 100);
  });
});
