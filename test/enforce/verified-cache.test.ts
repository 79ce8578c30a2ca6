// The verified-caller cache: a hit never outlives the token's exp or the maximum age, and the cache stays bounded.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { VerifiedTokenCache } from "../../src/enforce/verified-cache.ts";

const T0 = Date.UTC(2026, 10, 23, 12, 0, 0);

function cacheAt(maxEntries = 10, maxAgeMs = 60_000) {
  const clock = { t: T0, now: () => clock.t };
  return { clock, cache: new VerifiedTokenCache<string>({ maxEntries, maxAgeMs, clock }) };
}

describe("verified token cache", () => {
  test("a hit lasts until the token's exp, never past it", () => {
    const { clock, cache } = cacheAt();
    cache.set("t1", "alice", T0 + 10_000);
    clock.t = T0 + 9_999;
    assert.equal(cache.get("t1"), "alice");
    clock.t = T0 + 10_000;
    assert.equal(cache.get("t1"), undefined);
  });

  test("a hit lasts at most the maximum age, however long the token is valid", () => {
    const { clock, cache } = cacheAt(10, 60_000);
    cache.set("t1", "alice", T0 + 3_600_000);
    clock.t = T0 + 59_999;
    assert.equal(cache.get("t1"), "alice");
    clock.t = T0 + 60_000;
    assert.equal(cache.get("t1"), undefined);
  });

  test("a token already at or past its exp is never a hit, and takes no room from live entries", () => {
    const { cache } = cacheAt(1);
    cache.set("live", "bob", T0 + 10_000);
    cache.set("t1", "alice", T0 - 1);
    cache.set("t2", "alice", T0);
    assert.deepEqual([cache.get("t1"), cache.get("t2"), cache.get("live")], [undefined, undefined, "bob"]);
  });

  test("when full, the oldest entry makes room", () => {
    const { cache } = cacheAt(2);
    cache.set("t1", "a", T0 + 1000);
    cache.set("t2", "b", T0 + 1000);
    cache.set("t3", "c", T0 + 1000);
    assert.deepEqual([cache.get("t1"), cache.get("t2"), cache.get("t3"), cache.size], [undefined, "b", "c", 2]);
  });
});
