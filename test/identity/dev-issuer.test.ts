import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { FailedPrecondition, InvalidArgument, Unauthenticated } from "../../src/errors.ts";
import { createAuthenticator } from "../../src/identity/authenticator.ts";
import { parseIdentityConfig } from "../../src/identity/config.ts";
import { DEV_KEY_FILE, devPublicJwks, issueDevToken, loadOrCreateDevKey } from "../../src/identity/dev-issuer.ts";

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), "jitgate-dev-issuer-"));
});
after(() => rm(root, { recursive: true, force: true }));

const run = promisify(execFile);
let dirs = 0;
const freshDir = () => join(root, `data-${++dirs}`);

function withBearer(token: string) {
  return { authorization: [`Bearer ${token}`], peerCertificate: undefined };
}

async function refusal(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => assert.fail("it was accepted"),
    (e: unknown) => e as Error,
  );
}

describe("dev issuer", () => {
  test("the key is created on first use with mode 0600, in a data directory that need not exist", async () => {
    const dataDir = freshDir();
    const key = await loadOrCreateDevKey(dataDir);
    assert.equal(key.file, join(dataDir, DEV_KEY_FILE));
    assert.equal((await stat(key.file)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dataDir), [DEV_KEY_FILE], "no temp file is left behind");
    assert.equal(key.publicJwk.d, undefined, "the public JWK carries no private part");
  });

  test("the key is reused on the next call, and concurrent first uses agree on one key", async () => {
    const dataDir = freshDir();
    const keys = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateDevKey(dataDir)));
    assert.equal(new Set(keys.map((k) => k.kid)).size, 1);
    const text = await readFile(join(dataDir, DEV_KEY_FILE), "utf8");
    assert.equal((await loadOrCreateDevKey(dataDir)).kid, keys[0]?.kid);
    assert.equal(await readFile(join(dataDir, DEV_KEY_FILE), "utf8"), text, "the file is not rewritten");
    assert.deepEqual(
      (await devPublicJwks(dataDir)).keys.map((k) => k.kid),
      [keys[0]?.kid],
    );
  });

  test("several processes starting at once on a new data directory end up with one key", async () => {
    const dataDir = freshDir();
    const module = new URL("../../src/identity/dev-issuer.ts", import.meta.url).href;
    const script = `const m = await import(${JSON.stringify(module)}); console.log((await m.loadOrCreateDevKey(${JSON.stringify(dataDir)})).kid);`;
    const runs = [1, 2, 3, 4].map(() => run(process.execPath, ["--input-type=module", "-e", script]));
    const kids = (await Promise.all(runs)).map((r) => r.stdout.trim());
    assert.equal(new Set(kids).size, 1, kids.join(" "));
    assert.deepEqual(await readdir(dataDir), [DEV_KEY_FILE]);
  });

  test("a key file readable by group or others is refused, naming the file and chmod 600", async () => {
    const dataDir = freshDir();
    const { file } = await loadOrCreateDevKey(dataDir);
    await chmod(file, 0o644);
    const err = await refusal(loadOrCreateDevKey(dataDir));
    assert.ok(err instanceof FailedPrecondition);
    assert.ok(err.message.includes(file), err.message);
    assert.match(err.message, /mode 0644/);
    assert.ok(err.message.includes(`chmod 600 ${file}`), err.message);
    await assert.rejects(issueDevToken({ dataDir, subject: "alice", groups: [], ttlSeconds: 60 }), FailedPrecondition);
  });

  test("a symbolic link in place of the key is refused", async () => {
    const dataDir = freshDir();
    const { file } = await loadOrCreateDevKey(join(root, "elsewhere"));
    await loadOrCreateDevKey(dataDir);
    await rm(join(dataDir, DEV_KEY_FILE));
    await symlink(file, join(dataDir, DEV_KEY_FILE));
    assert.match((await refusal(loadOrCreateDevKey(dataDir))).message, /is a symbolic link/);
  });

  test("a corrupt key file is refused with a hint to delete it", async () => {
    const dataDir = freshDir();
    const { file } = await loadOrCreateDevKey(dataDir);
    await writeFile(file, "{not json", { mode: 0o600 });
    const err = await refusal(loadOrCreateDevKey(dataDir));
    assert.ok(err instanceof FailedPrecondition);
    assert.match(err.message, /is not an Ed25519 private JWK: delete it/);
  });

  test("a dev token round-trips through the dev verifier to the caller and groups", async () => {
    const dataDir = freshDir();
    const token = await issueDevToken({ dataDir, subject: "alice", groups: ["oncall", "dba", "oncall"], ttlSeconds: 600 });
    const claims = decodeJwt(token);
    assert.equal(claims.iss, "jitgate-dev");
    assert.equal(claims.aud, "jitgate");
    assert.equal((claims.exp ?? 0) - (claims.iat ?? 0), 600);
    assert.equal(decodeProtectedHeader(token).alg, "EdDSA");
    const auth = await createAuthenticator(parseIdentityConfig({ dev: true, dataDir }, root));
    assert.match(auth.describe(), /DEV MODE/);
    assert.deepEqual(await auth.authenticate(withBearer(token)), { id: "alice", groups: ["oncall", "dba"] });
  });

  test("a dev token from another data directory's key is refused", async () => {
    const token = await issueDevToken({ dataDir: freshDir(), subject: "mallory", groups: ["admin"], ttlSeconds: 60 });
    const auth = await createAuthenticator(parseIdentityConfig({ dev: true, dataDir: freshDir() }, root));
    const err = await refusal(auth.authenticate(withBearer(token)));
    assert.ok(err instanceof Unauthenticated);
    assert.match(err.message, /unknown key/);
  });

  test("an expired dev token is refused", async () => {
    const dataDir = freshDir();
    const token = await issueDevToken({ dataDir, subject: "alice", groups: [], ttlSeconds: 60, now: Date.now() - 3_600_000 });
    const auth = await createAuthenticator(parseIdentityConfig({ dev: true, dataDir }, root));
    assert.match((await refusal(auth.authenticate(withBearer(token)))).message, /token expired/);
  });

  test("a bad subject, group or lifetime is refused naming the login flag", async () => {
    const dataDir = freshDir();
    const cases = [
      [{ subject: " ", groups: [], ttlSeconds: 60 }, "--as"],
      [{ subject: "alice ", groups: [], ttlSeconds: 60 }, "--as"],
      [{ subject: "ali\u200Bce", groups: [], ttlSeconds: 60 }, "--as"],
      [{ subject: "al\u00A0ice", groups: [], ttlSeconds: 60 }, "--as"],
      [{ subject: "alice", groups: ["a,b"], ttlSeconds: 60 }, "--groups"],
      [{ subject: "alice", groups: [], ttlSeconds: 0 }, "--ttl"],
      [{ subject: "alice", groups: [], ttlSeconds: 90_000 }, "--ttl"],
    ] as const;
    for (const [request, field] of cases) {
      const err = await refusal(issueDevToken({ dataDir, ...request }));
      assert.ok(err instanceof InvalidArgument);
      assert.equal(err.field, field);
    }
  });
});
