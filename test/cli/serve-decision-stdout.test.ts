// `jitgate serve --decision-log -`: standard output carries decision records only (OPA's shape, one per line),
// and the server's own logs move to standard error, so a log pipeline can read stdout as it is.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { api, tokenFor } from "../support/api.ts";
import { REAL_BUNDLE, removeDir, ROOT, tempDir } from "../support/bundles.ts";

describe("jitgate serve --decision-log -", () => {
  let dir: string;
  before(async () => {
    dir = await tempDir();
  });
  after(() => removeDir(dir));

  test("stdout holds one decision event per check and nothing else; logs go to stderr", async () => {
    const dataDir = join(dir, "data");
    const args = ["serve", "--dev", "--listen", "127.0.0.1:0", "--metrics-listen", "off", "--data-dir", dataDir, "--bundle", REAL_BUNDLE];
    const child = spawn(process.execPath, [join(ROOT, "bin", "jitgate"), ...args, "--decision-log", "-"], { cwd: ROOT });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    const address = await new Promise<string>((ok, fail) => {
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
        const m = /jitgate listening on (\S+)/.exec(stderr);
        if (m) ok(m[1] as string);
      });
      child.once("exit", (code) => fail(new Error(`serve exited ${code}: ${stderr}`)));
    });
    const client = api(address);
    const ids: string[] = [];
    try {
      const caller = client.as(await tokenFor(dataDir, "svc", ["jitgate-checkers"]));
      for (const action of ["read", "write", "read"]) {
        const r = await caller.call("Check", { subject: "tess", resource: "db/orders", action, context: { source_ip: "10.1.2.3" } });
        ids.push(r.decision_id);
      }
    } catch (err) {
      child.kill("SIGKILL");
      throw err;
    } finally {
      client.close();
    }
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    assert.deepEqual((await exited)[0], 0);
    const events = stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { decision_id: string; path: string });
    assert.deepEqual(
      events.map((e) => e.decision_id),
      ids,
    );
    assert.ok(events.every((e) => e.path === "jit/check/decision"));
    assert.match(stderr, /"msg":"jitgate serving"/);
  });
});
