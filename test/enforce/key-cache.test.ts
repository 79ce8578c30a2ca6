// The key cache against a fake JWKS source: refetches are rate-limited and shared, and a failed refetch keeps
// the keys it had.
import assert from "node:assert/strict";
import { test } from "node:test";
import { exportJWK, generateKeyPair } from "jose";
import { type JwksSource, KeyCache } from "../../src/enforce/key-cache.ts";

async function publicJwks(): Promise<unknown> {
  const { publicKey } = await generateKeyPair("EdDSA");
  return { keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "EdDSA", use: "sig" }] };
}

class FakeJwks implements JwksSource {
  fetches = 0;
  fail = false;
  readonly #jwks: unknown;
  constructor(jwks: unknown) {
    this.#jwks = jwks;
  }
  async jwks(): Promise<unknown> {
    this.fetches++;
    if (this.fail) throw new Error("jitgate is unreachable");
    return this.#jwks;
  }
}

test("unknown-key refetches happen at most once per interval and are shared while in flight", async () => {
  let now = 0;
  const source = new FakeJwks(await publicJwks());
  const cache = new KeyCache(source, { now: () => now, minRefetchMs: 1000 });
  assert.equal(cache.current, undefined);
  await cache.load();
  assert.equal(source.fetches, 1);
  now = 500;
  await cache.refresh();
  assert.equal(source.fetches, 1, "within the interval: no fetch");
  now = 1500;
  await Promise.all([cache.refresh(), cache.refresh(), cache.refresh()]);
  assert.equal(source.fetches, 2, "one fetch for three concurrent refreshes");
});

test("a failed refetch keeps the keys the cache had", async () => {
  let now = 0;
  const source = new FakeJwks(await publicJwks());
  const cache = new KeyCache(source, { now: () => now, minRefetchMs: 1000 });
  const keys = await cache.load();
  source.fail = true;
  now = 5000;
  assert.equal(await cache.refresh(), keys);
  assert.equal(cache.current, keys);
});

test("a key set holding a private key is refused", async () => {
  const { privateKey } = await generateKeyPair("EdDSA", { extractable: true });
  const cache = new KeyCache(new FakeJwks({ keys: [await exportJWK(privateKey)] }), { now: () => 0 });
  await assert.rejects(cache.load(), /private or symmetric/);
});
