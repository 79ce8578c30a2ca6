import assert from "node:assert/strict";
import { copyFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { BundleError } from "../../src/errors.ts";
import { loadBundle, loadBundleFile } from "../../src/policy/bundle.ts";
import { REQUIRED_ENTRYPOINTS } from "../../src/policy/entrypoints.ts";
import { buildCustom, buildVariant, makeArchive, REAL_BUNDLE, realMembers, removeDir, tempDir } from "../support/bundles.ts";

let dir: string;
before(async () => {
  dir = await tempDir();
});
after(() => removeDir(dir));

async function rejection(file: string): Promise<BundleError> {
  const err = await loadBundleFile(file).then(
    () => assert.fail(`${file} was accepted`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof BundleError, `expected a BundleError, got ${String(err)}`);
  assert.ok(err.message.includes(file), `the message names the file: ${err.message}`);
  return err;
}

describe("policy bundle loading", () => {
  test("the bundle built from policies/ loads with every required entrypoint and a revision", async () => {
    const bundle = await loadBundleFile(REAL_BUNDLE);
    assert.match(bundle.revision, /^[0-9a-f]{16}$/);
    for (const e of REQUIRED_ENTRYPOINTS) assert.ok(bundle.entrypoints.includes(e), `has ${e}`);
  });

  test("a missing file is refused with a hint to build it", async () => {
    const err = await rejection(join(dir, "absent.tar.gz"));
    assert.match(err.message, /does not exist \(run `make bundle`\)/);
  });

  test("an empty file is refused", async () => {
    const file = join(dir, "empty.tar.gz");
    await writeFile(file, "");
    assert.match((await rejection(file)).message, /is empty/);
  });

  test("a file that is not gzip is refused", async () => {
    const file = join(dir, "text.tar.gz");
    await writeFile(file, "package jit\nallow := true\n");
    assert.match((await rejection(file)).message, /is not a gzip file/);
  });

  test("a truncated bundle is refused", async () => {
    const bytes = await readFile(REAL_BUNDLE);
    const file = join(dir, "truncated.tar.gz");
    await writeFile(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
    assert.match((await rejection(file)).message, /cannot be decompressed/);
  });

  test("gzip data that is not a tar archive is refused", async () => {
    const file = join(dir, "notar.tar.gz");
    await writeFile(file, gzipSync(Buffer.alloc(2048, 7)));
    assert.match((await rejection(file)).message, /not a valid tar archive|holds no files/);
  });

  test("a bundle without policy.wasm is refused", async () => {
    const members = await realMembers();
    const file = join(dir, "nowasm.tar.gz");
    await makeArchive(dir, { ".manifest": members[".manifest"] as Buffer, "data.json": "{}" }, file);
    assert.match((await rejection(file)).message, /has no policy\.wasm/);
  });

  test("a manifest without a revision is refused", async () => {
    const members = await realMembers();
    const file = join(dir, "norev.tar.gz");
    await makeArchive(dir, { ...members, ".manifest": JSON.stringify({ roots: [""] }) }, file);
    assert.match((await rejection(file)).message, /\.manifest has no revision/);
  });

  test("a data.json that is not JSON is refused, naming the member", async () => {
    const members = await realMembers();
    const file = join(dir, "baddata.tar.gz");
    await makeArchive(dir, { ...members, "data.json": "{ not json" }, file);
    assert.match((await rejection(file)).message, /data\.json is not valid JSON/);
  });

  test("a wasm module that is not WebAssembly is refused", async () => {
    const members = await realMembers();
    const file = join(dir, "badwasm.tar.gz");
    await makeArchive(dir, { ...members, "policy.wasm": Buffer.from("definitely not wasm") }, file);
    assert.match((await rejection(file)).message, /policy\.wasm does not load/);
  });

  test("a bundle without the contract's entrypoints is refused, listing the missing ones", async () => {
    const file = join(dir, "wrong-entrypoint.tar.gz");
    await buildCustom(dir, { "other.rego": "package other\n\nallow := true\n" }, ["other/allow"], file);
    const err = await rejection(file);
    for (const e of REQUIRED_ENTRYPOINTS) assert.ok(err.message.includes(e), `names ${e}: ${err.message}`);
  });

  test("a bundle whose entrypoints answer outside the contract is refused", async () => {
    const file = join(dir, "wrong-shape.tar.gz");
    const files = {
      "request.rego": 'package jit.request\n\nplan := {"decision": "maybe"}\n',
      "review.rego": 'package jit.review\n\nverdict := {"allowed": true}\n',
      "check.rego": "package jit.check\n\ndecision := true\n",
      "catalog.rego": "package jit.catalog\n\nerrors := []\n",
    };
    await buildCustom(dir, files, REQUIRED_ENTRYPOINTS, file);
    assert.match((await rejection(file)).message, /not the contract's shape/);
  });

  test("a bundle whose resource catalogue has errors is refused, listing them", async () => {
    const file = join(dir, "bad-catalog.tar.gz");
    await buildVariant(dir, file, async (policiesDir) => {
      const catalog = join(policiesDir, "catalog", "data.json");
      const data = JSON.parse(await readFile(catalog, "utf8"));
      data.resources["db/orders"].actions = "write";
      data.resources["db/orders"].source_cidr = ["10.0.0.0/8"];
      await writeFile(catalog, JSON.stringify(data));
    });
    const err = await rejection(file);
    assert.match(err.message, /the policy data has errors \(fix policies\/catalog\/data\.json\)/);
    assert.match(err.message, /"resource":"db\/orders"/);
    assert.match(err.message, /source_cidr/);
  });

  test("loading never depends on the file name: the same bytes load from a copy", async () => {
    const copy = join(dir, "copy.tar.gz");
    await copyFile(REAL_BUNDLE, copy);
    const a = await loadBundleFile(REAL_BUNDLE);
    const b = await loadBundle(copy, await readFile(copy));
    assert.equal(a.revision, b.revision);
  });
});
