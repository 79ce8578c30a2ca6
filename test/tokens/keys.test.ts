import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, readdir, readFile, rename, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { inspect, promisify } from "node:util";
import { calculateJwkThumbprint } from "jose";
import { FailedPrecondition } from "../../src/errors.ts";
import { KEY_DIRECTORY, rotateSigningKey } from "../../src/tokens/keys.ts";
import { fakeClock, openRing, refusal, tempDirs } from "./fixtures.ts";

const freshDir = tempDirs("keys");
const run = promisify(execFile);
const KEYS_MODULE = new URL("../../src/tokens/keys.ts", import.meta.url).href;
/** The publication window of the test rings: TTL 300 s + tolerance 30 s + the 1 s refresh interval. */
const WINDOW_MS = (300 + 30) * 1000 + 1000;

const kidsOf = async (ring: { jwks(): Promise<{ keys: { kid?: string }[] }> }) => (await ring.jwks()).keys.map((k) => k.kid);

describe("signing keys", () => {
  test("the first start creates the key directory (0700) with one key file (0600) named after its thumbprint", async () => {
    const dataDir = freshDir();
    const ring = await openRing(dataDir, fakeClock());
    const { kid } = await ring.signingKey();
    assert.equal(ring.directory, join(dataDir, KEY_DIRECTORY));
    assert.equal((await stat(ring.directory)).mode & 0o777, 0o700);
    assert.deepEqual(await readdir(ring.directory), [`${kid}.json`], "no temp file is left behind");
    assert.deepEqual(await readdir(dataDir), [KEY_DIRECTORY], "no temp directory is left behind");
    assert.equal((await stat(join(ring.directory, `${kid}.json`))).mode & 0o777, 0o600);
    const [published] = (await ring.jwks()).keys;
    assert.ok(published);
    assert.equal(kid, await calculateJwkThumbprint(published), "the kid is the RFC 7638 thumbprint");
    assert.deepEqual(Object.keys(published).sort(), ["alg", "crv", "kid", "kty", "use", "x"]);
    assert.equal(published.use, "sig");
    assert.equal(published.alg, "EdDSA");
  });

  test("the key is reused by the next start, and the file is not rewritten", async () => {
    const dataDir = freshDir();
    const first = await (await openRing(dataDir, fakeClock())).signingKey();
    const file = join(dataDir, KEY_DIRECTORY, `${first.kid}.json`);
    const text = await readFile(file, "utf8");
    const again = await (await openRing(dataDir, fakeClock())).signingKey();
    assert.equal(again.kid, first.kid);
    assert.equal(await readFile(file, "utf8"), text);
  });

  test("several processes starting at once on a new data directory end up with one key", async () => {
    const dataDir = freshDir();
    const script = `const m = await import(${JSON.stringify(KEYS_MODULE)});
      const ring = await m.KeyRing.open(${JSON.stringify(join(dataDir, KEY_DIRECTORY))}, { algorithm: "EdDSA", maxTokenTtlS: 300, clockToleranceS: 30, now: Date.now });
      console.log((await ring.signingKey()).kid);`;
    const runs = [1, 2, 3, 4].map(() => run(process.execPath, ["--input-type=module", "-e", script]));
    const kids = (await Promise.all(runs)).map((r) => r.stdout.trim());
    assert.equal(new Set(kids).size, 1, kids.join(" "));
    assert.deepEqual(await readdir(join(dataDir, KEY_DIRECTORY)), [`${kids[0]}.json`]);
    assert.deepEqual(await readdir(dataDir), [KEY_DIRECTORY]);
  });

  test("a key file readable by group or others is refused, naming the file and chmod 600", async () => {
    const dataDir = freshDir();
    const { kid } = await (await openRing(dataDir, fakeClock())).signingKey();
    const file = join(dataDir, KEY_DIRECTORY, `${kid}.json`);
    await chmod(file, 0o644);
    const err = await refusal(openRing(dataDir, fakeClock()));
    assert.ok(err instanceof FailedPrecondition);
    assert.ok(err.message.includes(file), err.message);
    assert.match(err.message, /mode 0644/);
    assert.ok(err.message.includes(`chmod 600 ${file}`), err.message);
  });

  test("a key directory writable by group or others is refused, naming chmod 700", async () => {
    const dataDir = freshDir();
    const ring = await openRing(dataDir, fakeClock());
    await chmod(ring.directory, 0o777);
    const err = await refusal(openRing(dataDir, fakeClock()));
    assert.ok(err instanceof FailedPrecondition);
    assert.ok(err.message.includes(`chmod 700 ${ring.directory}`), err.message);
  });

  test("a key file that is a symbolic link, or whose kid is not its thumbprint, is refused", async () => {
    const dataDir = freshDir();
    const { kid } = await (await openRing(dataDir, fakeClock())).signingKey();
    const dir = join(dataDir, KEY_DIRECTORY);
    const other = join(dataDir, "elsewhere.json");
    await rename(join(dir, `${kid}.json`), other);
    await symlink(other, join(dir, `${kid}.json`));
    assert.match((await refusal(openRing(dataDir, fakeClock()))).message, /is a symbolic link/);

    const renamed = `${"A".repeat(43)}.json`;
    await rename(other, join(dir, renamed));
    await rename(join(dir, `${kid}.json`), join(dataDir, "dangling"));
    const err = await refusal(openRing(dataDir, fakeClock()));
    assert.ok(err.message.includes(join(dir, renamed)), err.message);
    assert.match(err.message, /thumbprint/);
  });

  test("a key file that is not a key is refused without echoing its contents", async () => {
    const dataDir = freshDir();
    const ring = await openRing(dataDir, fakeClock());
    const { kid } = await ring.signingKey();
    const file = join(ring.directory, `${kid}.json`);
    const secret = JSON.parse(await readFile(file, "utf8")).private_jwk.d as string;
    await writeFile(file, JSON.stringify({ kid, alg: "ES256", created_at: "2026-11-23T10:00:00Z", private_jwk: { d: secret } }));
    const err = await refusal(openRing(dataDir, fakeClock()));
    assert.match(err.message, /'private_jwk' is not a private P-256 JWK/);
    assert.ok(!err.message.includes(secret));
  });

  test("neither the JWKS, nor the signing key, nor the ring shows the private key", async () => {
    const ring = await openRing(freshDir(), fakeClock());
    const key = await ring.signingKey();
    const d = JSON.parse(await readFile(join(ring.directory, `${key.kid}.json`), "utf8")).private_jwk.d as string;
    for (const shown of [JSON.stringify(await ring.jwks()), JSON.stringify(key), inspect(key, { depth: 5 }), inspect(ring, { depth: 5 })]) {
      assert.ok(!shown.includes(d), shown);
      assert.ok(!shown.includes('"d"'), shown);
    }
    assert.equal(key.privateKey.extractable, false);
  });

  test("a ring configured for ES256 creates ES256 keys, and refuses to start on an EdDSA key until a rotation", async () => {
    const es = await openRing(freshDir(), fakeClock(), { algorithm: "ES256" });
    assert.equal((await es.signingKey()).alg, "ES256");
    assert.deepEqual(Object.keys((await es.jwks()).keys[0] ?? {}).sort(), ["alg", "crv", "kid", "kty", "use", "x", "y"]);

    const dataDir = freshDir();
    const clock = fakeClock();
    await openRing(dataDir, clock);
    const err = await refusal(openRing(dataDir, clock, { algorithm: "ES256" }));
    assert.ok(err instanceof FailedPrecondition);
    assert.match(err.message, /active signing key .* is EdDSA, not ES256 as configured: run `jitgate keys rotate`/);
    await rotateSigningKey(join(dataDir, KEY_DIRECTORY), { algorithm: "ES256", now: () => clock.now() });
    assert.equal((await (await openRing(dataDir, clock, { algorithm: "ES256" })).signingKey()).alg, "ES256");
  });
});

describe("key rotation", () => {
  test("the new key signs at once; the old public key stays published until retire + TTL + tolerance, then drops out", async () => {
    const clock = fakeClock();
    const ring = await openRing(freshDir(), clock);
    const old = (await ring.signingKey()).kid;
    clock.advance(60_000);
    const retiredAt = clock.now();
    const rotated = await ring.rotate();
    assert.equal(rotated.previousKid, old);
    assert.notEqual(rotated.kid, old);
    assert.equal(rotated.createdAt, retiredAt);
    assert.equal((await ring.signingKey()).kid, rotated.kid);
    assert.deepEqual(await kidsOf(ring), [rotated.kid, old], "the active key first");

    clock.t = retiredAt + WINDOW_MS - 1;
    assert.deepEqual(await kidsOf(ring), [rotated.kid, old]);
    clock.t = retiredAt + WINDOW_MS;
    assert.deepEqual(await kidsOf(ring), [rotated.kid]);
  });

  test("rotating twice at the same instant still makes the newest key the signing one", async () => {
    const clock = fakeClock();
    const ring = await openRing(freshDir(), clock);
    await ring.rotate();
    const second = await ring.rotate();
    assert.equal((await ring.signingKey()).kid, second.kid);
    assert.equal((await ring.jwks()).keys.length, 3);
  });

  test("another process (the CLI) rotating is picked up by a running ring within a second, without restart", async () => {
    const dataDir = freshDir();
    const clock = fakeClock(Date.now());
    const ring = await openRing(dataDir, clock);
    const old = (await ring.signingKey()).kid;
    const script = `const m = await import(${JSON.stringify(KEYS_MODULE)});
      console.log((await m.rotateSigningKey(${JSON.stringify(join(dataDir, KEY_DIRECTORY))}, { algorithm: "EdDSA", now: Date.now })).kid);`;
    const rotated = (await run(process.execPath, ["--input-type=module", "-e", script])).stdout.trim();
    assert.notEqual(rotated, old);

    clock.advance(500);
    assert.equal((await ring.signingKey()).kid, old, "the directory is checked at most once a second");
    clock.advance(500);
    assert.equal((await ring.signingKey()).kid, rotated);
    assert.deepEqual(await kidsOf(ring), [rotated, old]);
  });

  test("a second ring on the same directory picks up a rotation done by the first", async () => {
    const dataDir = freshDir();
    const clock = fakeClock();
    const [a, b] = [await openRing(dataDir, clock), await openRing(dataDir, clock)];
    const rotated = await a.rotate();
    clock.advance(1000);
    assert.equal((await b.signingKey()).kid, rotated.kid);
    assert.deepEqual(await kidsOf(b), await kidsOf(a));
  });

  test("rotation deletes key files only once no configuration could still publish them, never the active key", async () => {
    const dataDir = freshDir();
    const clock = fakeClock();
    const ring = await openRing(dataDir, clock);
    const first = (await ring.signingKey()).kid;
    const second = await ring.rotate();
    clock.advance(WINDOW_MS);
    const third = await ring.rotate();
    assert.deepEqual(third.pruned, [], "past this ring's window, but a 3600 s TTL could still need them");
    clock.advance((3600 + 60) * 1000 + 1000);
    const fourth = await ring.rotate();
    assert.deepEqual(fourth.pruned, [first, second.kid]);
    assert.deepEqual(
      (await readdir(ring.directory)).sort(),
      [`${third.kid}.json`, `${fourth.kid}.json`, `retired-${first}.public.json`, `retired-${second.kid}.public.json`].sort(),
    );
    assert.equal((await ring.signingKey()).kid, fourth.kid);
    assert.deepEqual(await kidsOf(ring), [fourth.kid, third.kid], "pruned keys are out of the JWKS");
    const all = (await ring.allPublicKeys()).keys;
    assert.deepEqual(all.map((k) => k.kid).sort(), [first, second.kid, third.kid, fourth.kid].sort());
    assert.ok(
      all.every((k) => !("d" in k)),
      "public halves only",
    );
  });

  test("emptying the key directory makes the next read create a fresh key (every old token is refused)", async () => {
    const dataDir = freshDir();
    const clock = fakeClock();
    const ring = await openRing(dataDir, clock);
    const old = (await ring.signingKey()).kid;
    await rename(join(ring.directory, `${old}.json`), join(dataDir, "moved-away.json"));
    await ring.refresh();
    const fresh = (await ring.signingKey()).kid;
    assert.notEqual(fresh, old);
    assert.deepEqual(await kidsOf(ring), [fresh]);
  });
});
