// --store, --feed-bound and --signing-keys as `jitgate serve` reads them: flag over environment over default,
// and a bad value is one InvalidArgument naming the flag and its variable.
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadServeConfig } from "../../src/config.ts";
import { InvalidArgument } from "../../src/errors.ts";

const load = (flags: Parameters<typeof loadServeConfig>[0], env: NodeJS.ProcessEnv = {}) =>
  loadServeConfig({ dev: true, ...flags }, env, "/srv/jitgate");

function refusal(fn: () => unknown): InvalidArgument {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InvalidArgument, String(err));
    return err;
  }
  return assert.fail("accepted");
}

test("the store is the data directory's SQLite file unless a postgres:// URL is given, by flag or environment", () => {
  assert.deepEqual(load({}).store, { kind: "sqlite" });
  const url = "postgres://jitgate@db.internal:5432/jitgate";
  assert.deepEqual(load({}, { JITGATE_STORE: url }).store, { kind: "postgres", url, feedBoundMs: 2000 });
  assert.deepEqual(load({ store: "sqlite" }, { JITGATE_STORE: url }).store, { kind: "sqlite" }, "the flag wins");
  assert.deepEqual(load({ store: url, feedBound: "500ms" }).store, { kind: "postgres", url, feedBoundMs: 500 });
  assert.equal(load({ store: "postgresql://x@h/d" }).store.kind, "postgres");
});

test("a store that is neither, or a feed bound out of range, is refused naming the flag", () => {
  for (const store of ["mysql://x@h/d", "jitgate.db", "postgres:/missing-slashes", ""]) {
    assert.equal(refusal(() => load({ store })).field, "--store (JITGATE_STORE)", store);
  }
  for (const feedBound of ["100ms", "61s", "soon"]) {
    assert.equal(refusal(() => load({ store: "postgres://x@h/d", feedBound })).field, "--feed-bound (JITGATE_FEED_BOUND)", feedBound);
  }
});

test("the signing keys live in the data directory unless a shared directory is given", () => {
  assert.equal(load({ dataDir: "data" }).tokens.keysDir, "/srv/jitgate/data/signing-keys");
  assert.equal(load({ dataDir: "data", signingKeys: "/mnt/keys" }).tokens.keysDir, "/mnt/keys");
  assert.equal(load({ dataDir: "data" }, { JITGATE_SIGNING_KEYS: "shared/keys" }).tokens.keysDir, "/srv/jitgate/shared/keys");
});
