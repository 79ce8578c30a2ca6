// Shared setup for the token tests: a temp root removed afterwards, a fake clock, a grant, and a way to catch
// the error a promise rejects with.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import type { TokenGrant } from "../../src/tokens/issue.ts";
import { KeyRing, keyDirectory, type KeyRingOptions } from "../../src/tokens/keys.ts";

export const T0 = Date.UTC(2026, 10, 23, 10, 0, 0);

export interface FakeClock {
  t: number;
  now(): number;
  advance(ms: number): void;
}

export function fakeClock(t = T0): FakeClock {
  return {
    t,
    now() {
      return this.t;
    },
    advance(ms) {
      this.t += ms;
    },
  };
}

/** A fresh data directory per call, under one temp root that is removed after the file's tests. */
export function tempDirs(prefix: string): () => string {
  // Created at once, not in a hook: other hooks may ask for a directory before a `before` hook has run.
  const root = mkdtempSync(join(tmpdir(), `jitgate-${prefix}-`));
  let count = 0;
  after(() => rm(root, { recursive: true, force: true }));
  return () => join(root, `data-${++count}`);
}

export function grant(overrides: Partial<TokenGrant> = {}): TokenGrant {
  return {
    id: "grant-1",
    subject: "alice",
    actions: ["read", "write"],
    audience: "orders-db",
    expiresAt: T0 + 30 * 60_000,
    revokedAt: undefined,
    ...overrides,
  };
}

export function openRing(dataDir: string, clock: FakeClock, options: Partial<KeyRingOptions> = {}): Promise<KeyRing> {
  return KeyRing.open(keyDirectory(dataDir), {
    algorithm: "EdDSA",
    maxTokenTtlS: 300,
    clockToleranceS: 30,
    now: () => clock.now(),
    ...options,
  });
}

export async function refusal(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => assert.fail("it was accepted"),
    (e: unknown) => {
      assert.ok(e instanceof Error, `expected an Error, got ${String(e)}`);
      return e;
    },
  );
}
