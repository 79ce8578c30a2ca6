// The enforcement library as services get it: `make enforce-package` builds @jitgate/enforce (plain JavaScript,
// type declarations, the protos), and a project that installs the tarball can verify tokens and subscribe to a real
// jitgate's revocations with it, in Node without type stripping (Node never strips types under node_modules).
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { x as untar } from "tar";
import { api, orderReadGrant, tokenFor } from "../support/api.ts";
import { removeDir, ROOT, tempDir } from "../support/bundles.ts";
import { startTestJitgate } from "../support/jitgate.ts";
import type { Jitgate } from "../../src/app.ts";

const SERVICE = `
import { createEnforcer, verifyAccessToken } from "@jitgate/enforce";
import * as grpc from "@grpc/grpc-js";
const { JITGATE_ADDRESS, ACCESS_TOKEN, SERVICE_TOKEN, JWKS } = process.env;
const verified = await verifyAccessToken(ACCESS_TOKEN, JSON.parse(JWKS), { issuer: "jitgate", audience: "orders" });
const metadata = new grpc.Metadata();
metadata.set("authorization", "Bearer " + SERVICE_TOKEN);
const enforcer = createEnforcer({
  jitgate: { address: JITGATE_ADDRESS, credentials: grpc.credentials.createInsecure() },
  callMetadata: () => metadata,
  audience: "orders",
  actionOf: () => "read",
});
await enforcer.ready(5000);
enforcer.close();
console.log(JSON.stringify({ subject: verified.subject, grantId: verified.grantId, ready: true }));
`;

describe("the @jitgate/enforce package", () => {
  let dir: string;
  let jitgate: Jitgate;
  before(async () => {
    dir = await tempDir("jitgate-package-");
    jitgate = await startTestJitgate(join(dir, "data"));
  });
  after(async () => {
    await jitgate.close();
    await removeDir(dir);
  });

  test("installed from its tarball, it verifies a token and subscribes to a real jitgate in plain Node", async () => {
    const tarball = execFileSync(process.execPath, [join(ROOT, "scripts", "pack-enforce.ts")], { cwd: ROOT, encoding: "utf8" }).trim();
    assert.ok(existsSync(tarball), tarball);
    // A service's project: the package unpacked into node_modules, its dependencies linked from ours.
    const project = join(dir, "service");
    const installed = join(project, "node_modules", "@jitgate", "enforce");
    mkdirSync(installed, { recursive: true });
    await untar({ file: tarball, cwd: installed, strip: 1 });
    for (const name of readdirSync(join(ROOT, "node_modules"))) {
      if (name !== ".bin" && !name.startsWith(".")) symlinkSync(join(ROOT, "node_modules", name), join(project, "node_modules", name));
    }
    writeFileSync(join(project, "service.mjs"), SERVICE);

    const dataDir = join(dir, "data");
    const client = api(jitgate.address);
    const { grantId, token } = await orderReadGrant(client.as(await tokenFor(dataDir, "gil", ["engineering"])));
    const jwks = (await client.as(await tokenFor(dataDir, "svc", [])).call("GetJwks", {})).jwks_json;
    client.close();
    // Not spawnSync: this process serves jitgate, and must keep answering while the service runs.
    const service = spawn(process.execPath, ["service.mjs"], {
      cwd: project,
      env: {
        PATH: process.env.PATH,
        JITGATE_ADDRESS: jitgate.address,
        ACCESS_TOKEN: token,
        SERVICE_TOKEN: await tokenFor(dataDir, "orders-service", ["jitgate-checkers"]),
        JWKS: jwks,
      },
    });
    let stdout = "";
    let stderr = "";
    service.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    service.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(service, "exit")) as [number | null];
    assert.equal(code, 0, stderr);
    const run = { stdout };
    assert.deepEqual(JSON.parse(run.stdout), { subject: "gil", grantId, ready: true });
  });
});
