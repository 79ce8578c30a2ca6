import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { describe, test } from "node:test";
import { retryable, withRetry } from "../../src/cli/retry.ts";

const unavailable = (details: string) => Object.assign(new Error(details), { code: status.UNAVAILABLE, details });
const noSleep = async () => {};

describe("CLI retries", () => {
  test("an idempotent call is retried on UNAVAILABLE until it succeeds", async () => {
    let calls = 0;
    const result = await withRetry(
      async () => {
        if (++calls < 3) throw unavailable("Connection dropped");
        return "ok";
      },
      "idempotent",
      undefined,
      noSleep,
    );
    assert.deepEqual([result, calls], ["ok", 3]);
  });

  test("retries stop after the bounded number of attempts", async () => {
    let calls = 0;
    await assert.rejects(
      withRetry(
        async () => {
          calls++;
          throw unavailable("Connection dropped");
        },
        "idempotent",
        { attempts: 4, baseMs: 1, maxMs: 1 },
        noSleep,
      ),
      /Connection dropped/,
    );
    assert.equal(calls, 4);
  });

  test("a call that may have been applied is retried only when it never reached a server", () => {
    assert.equal(retryable(unavailable("Connection dropped"), "not-idempotent"), false);
    assert.equal(retryable(unavailable("No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1"), "not-idempotent"), true);
  });

  test("an overload or rate-limit refusal is retried whatever the call: jitgate refused it before doing any of it", () => {
    const refused = (details: string) => ({ code: status.RESOURCE_EXHAUSTED, details });
    for (const details of [
      "jitgate is at its limit of 1024 calls in flight; retry with backoff",
      "the decision log cannot keep up; retry with backoff",
      "access requests by alice are over the limit of 10 per minute (bursts of 10); retry in 6 s",
    ]) {
      assert.equal(retryable(refused(details), "not-idempotent"), true, details);
      assert.equal(retryable(refused(details), "idempotent"), true, details);
    }
    // A message over a size limit stays too large however often it is sent.
    assert.equal(retryable(refused("Received message larger than max (300000 vs 262144)"), "idempotent"), false);
    assert.equal(retryable(refused("Sent message larger than max (5000000 vs. 4194304)"), "idempotent"), false);
  });

  test("other codes are never retried", () => {
    for (const code of [status.PERMISSION_DENIED, status.DEADLINE_EXCEEDED, status.INTERNAL]) {
      assert.equal(retryable({ code, details: "x" }, "idempotent"), false);
    }
  });

  test("backoff waits grow exponentially with full jitter, capped", async () => {
    const waits: number[] = [];
    await assert.rejects(
      withRetry(
        async () => {
          throw unavailable("down");
        },
        "idempotent",
        { attempts: 6, baseMs: 100, maxMs: 400 },
        async (ms) => {
          waits.push(ms);
        },
      ),
    );
    const caps = [100, 200, 400, 400, 400];
    assert.equal(waits.length, caps.length);
    waits.forEach((w, i) => assert.ok(w >= 0 && w <= (caps[i] as number), `wait ${i} = ${w}`));
  });
});
