import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { REAL_BUNDLE, ROOT, removeDir, tempDir } from "../support/bundles.ts";
import { healthStatus, spawnServe } from "../support/jitgate.ts";

const JITGATE = join(ROOT, "bin", "jitgate");

function jitgate(args: string[], input?: string) {
  return spawnSync(JITGATE, args, { cwd: ROOT, input, encoding: "utf8", timeout: 30_000 });
}

describe("jitgate CLI", () => {
  let dir: string;
  before(async () => {
    dir = await tempDir();
  });
  after(() => removeDir(dir));

  test("eval prints the JSON answer of an entrypoint for an input file", async () => {
    const input = join(dir, "check.json");
    await writeFile(
      input,
      JSON.stringify({
        subject: { id: "alice", groups: [] },
        resource: "db/orders",
        action: "read",
        context: {},
        now: 100,
        grants: [{ id: "g7", actions: ["read"], expires_at: 200 }],
      }),
    );
    const run = jitgate(["eval", "jit/check/decision", "--input", input, "--bundle", REAL_BUNDLE]);
    assert.equal(run.status, 0, run.stderr);
    const answer = JSON.parse(run.stdout);
    assert.equal(typeof answer.allow, "boolean");
    assert.ok(Array.isArray(answer.reasons));
  });

  test("eval reads its input from standard input with --input -", () => {
    const run = jitgate(["eval", "jit/check/decision", "--input", "-", "--bundle", REAL_BUNDLE], "{}");
    assert.equal(run.status, 0, run.stderr);
    assert.equal(JSON.parse(run.stdout).allow, false);
  });

  test("eval names the input file when it is not JSON, and exits 2", async () => {
    const input = join(dir, "broken.json");
    await writeFile(input, "{ nope");
    const run = jitgate(["eval", "jit/check/decision", "--input", input, "--bundle", REAL_BUNDLE]);
    assert.equal(run.status, 2);
    assert.match(run.stderr, new RegExp(`^jitgate: INVALID_ARGUMENT: --input: ${input} is not valid JSON`));
    assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
  });

  test("eval of an entrypoint the bundle lacks says so in one line", () => {
    const run = jitgate(["eval", "jit/nope", "--input", "-", "--bundle", REAL_BUNDLE], "{}");
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /entrypoint jit\/nope is not in bundle/);
    assert.equal(run.stderr.trim().split("\n").length, 1);
  });

  test("serve refuses to start without a valid bundle, naming the file", () => {
    const missing = join(dir, "none.tar.gz");
    const run = jitgate(["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", join(dir, "d1"), "--bundle", missing]);
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, new RegExp(`policy bundle ${missing}: does not exist`));
  });

  test("serve refuses to start without any caller identity configured", () => {
    const run = jitgate(["serve", "--listen", "127.0.0.1:0", "--data-dir", join(dir, "d2"), "--bundle", REAL_BUNDLE]);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /no caller identity configured/);
  });

  test("serve refuses a non-loopback address without TLS", () => {
    const run = jitgate(["serve", "--dev", "--listen", "0.0.0.0:0", "--data-dir", join(dir, "d3"), "--bundle", REAL_BUNDLE]);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /0\.0\.0\.0 is not a loopback address: serving beyond this machine needs TLS/);
  });

  test("serve rejects a malformed --listen with the flag's name and exit code 2", () => {
    const run = jitgate(["serve", "--listen", "localhost", "--bundle", REAL_BUNDLE]);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /--listen \(JITGATE_LISTEN\): 'localhost' is not host:port/);
  });

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    test(`serve answers health checks and stops cleanly on ${signal}`, async () => {
      const { child, address } = await spawnServe([
        "--dev",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        join(dir, signal),
        "--bundle",
        REAL_BUNDLE,
      ]);
      assert.equal(await healthStatus(address), "SERVING");
      const exited = new Promise<number | null>((ok) => child.once("exit", (code) => ok(code)));
      child.kill(signal);
      assert.equal(await exited, 0);
    });
  }
});
