// The client commands against a real server: what a person typing them sees, and the exit codes scripts use.
import assert from "node:assert/strict";
import { type ChildProcess, spawnSync } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { REAL_BUNDLE, removeDir, ROOT, tempDir } from "../support/bundles.ts";
import { spawnServe } from "../support/jitgate.ts";

const JITGATE = join(ROOT, "bin", "jitgate");

describe("jitgate client commands", () => {
  let dir: string;
  let server: ChildProcess;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    dir = await tempDir();
    const started = await spawnServe(["--dev", "--listen", "127.0.0.1:0", "--data-dir", join(dir, "data"), "--bundle", REAL_BUNDLE]);
    server = started.child;
    const address = started.address;
    env = { ...process.env, JITGATE_ADDRESS: address, JITGATE_DATA_DIR: join(dir, "data"), XDG_CONFIG_HOME: join(dir, "config") };
  });
  after(async () => {
    server.kill("SIGTERM");
    await new Promise((r) => server.once("exit", r));
    await removeDir(dir);
  });

  const run = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
    spawnSync(JITGATE, args, { cwd: ROOT, env: { ...env, ...extra }, encoding: "utf8", timeout: 30_000 });
  const tokenOf = (id: string, groups: string) => {
    const r = run(["login", "--as", id, "--groups", groups, "--print"]);
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  };

  test("login saves a token the other commands use; request, review and check walk the lifecycle", () => {
    const login = run(["login", "--as", "alice", "--groups", "engineering"]);
    assert.equal(login.status, 0, login.stderr);
    assert.match(login.stderr, /logged in as alice .* DEV token/);

    const requested = run([
      "request",
      "db/orders",
      "--actions",
      "write",
      "--duration",
      "30m",
      "--ticket",
      "INC-123",
      "--justification",
      "repair orders stuck in PAYING",
      "--json",
    ]);
    assert.equal(requested.status, 0, requested.stderr);
    const request = JSON.parse(requested.stdout);
    assert.equal(request.state, "PENDING");

    const self = run(["review", request.id, "--approve"]);
    assert.equal(self.status, 1);
    assert.match(self.stderr, /^jitgate: PERMISSION_DENIED: .*requesters may not review their own request/);
    assert.equal(self.stderr.trim().split("\n").length, 1);

    assert.equal(run(["review", request.id, "--approve"], { JITGATE_TOKEN: tokenOf("bob", "dba") }).status, 0);
    const approved = run(["review", request.id, "--approve", "--comment", "ok"], { JITGATE_TOKEN: tokenOf("carol", "security") });
    assert.equal(approved.status, 0, approved.stderr);
    assert.match(approved.stdout, /APPROVED \(approved by bob, carol\)/);

    const allowed = run(["check", "--subject", "alice", "--resource", "db/orders", "--action", "write", "--context", "source_ip=10.1.2.3"]);
    assert.equal(allowed.status, 0, allowed.stderr);
    assert.match(allowed.stdout, /^ALLOW alice write on db\/orders by grant /);
    const denied = run(["check", "--subject", "alice", "--resource", "db/orders", "--action", "admin", "--context", "source_ip=10.1.2.3"]);
    assert.equal(denied.status, 1);
    assert.match(denied.stdout, /^DENY /);

    const grants = run(["grants", "--subject", "alice", "--json"]);
    const grantId = JSON.parse(grants.stdout).grants[0].id;
    assert.match(run(["grants", "--subject", "alice"]).stdout, /ACTIVE\s+alice\s+db\/orders\s+write/);

    const token = run(["token", grantId]);
    assert.equal(token.status, 0, token.stderr);
    assert.match(token.stderr, new RegExp(`for grant ${grantId} \\(audience orders\\)`));
    const byToken = run([
      "check",
      "--token",
      token.stdout.trim(),
      "--resource",
      "db/orders",
      "--action",
      "write",
      "--context",
      "source_ip=10.1.2.3",
    ]);
    assert.equal(byToken.status, 0, byToken.stderr);
  });

  test("a bad argument is one line naming it, exit code 2", () => {
    const r = run(["request", "db/orders", "--actions", "write", "--duration", "soon", "--justification", "x"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^jitgate: INVALID_ARGUMENT: --duration: 'soon' is not a duration/);
  });

  test("without a token the server answers UNAUTHENTICATED, exit code 5", () => {
    const r = run(["requests"], { XDG_CONFIG_HOME: join(dir, "nobody") });
    assert.equal(r.status, 5);
    assert.match(r.stderr, /^jitgate: UNAUTHENTICATED: no caller identity/);
  });

  test("an unreachable server is UNAVAILABLE after bounded retries, exit code 3", () => {
    const r = run(["requests", "--address", "127.0.0.1:1"]);
    assert.equal(r.status, 3);
    assert.match(r.stderr, /^jitgate: UNAVAILABLE: /);
  });
});
