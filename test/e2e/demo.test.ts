// `make demo` is also a test: the whole story runs against real processes on loopback.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { ROOT } from "../support/bundles.ts";

test("the demo walks request, approvals, token, calls, an open stream, revocation and refusal", () => {
  const run = spawnSync(join(ROOT, "scripts", "demo.sh"), { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
  assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);
  const out = run.stdout + run.stderr;
  assert.match(out, /PENDING \(waiting for approvals\)/);
  assert.match(out, /orders: UNAUTHENTICATED: no access token/);
  assert.match(out, /APPROVED \(approved by bob, carol\)/);
  assert.match(out, /\{"id":"o-1","state":"SHIPPED"\}/);
  assert.match(out, /tailing: /);
  assert.equal(out.match(/orders: PERMISSION_DENIED: access revoked/g)?.length, 2, "the stream and the new call are both refused");
  assert.match(out, /demo: done/);
});
