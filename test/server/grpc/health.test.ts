import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Jitgate } from "../../../src/app.ts";
import { HEALTH_SERVICES } from "../../../src/server/grpc/server.ts";
import { removeDir, tempDir } from "../../support/bundles.ts";
import { healthStatus, startTestJitgate } from "../../support/jitgate.ts";

describe("grpc.health.v1.Health", () => {
  let dir: string;
  let jitgate: Jitgate;
  before(async () => {
    dir = await tempDir();
    jitgate = await startTestJitgate(dir);
  });
  after(async () => {
    await jitgate.close();
    await removeDir(dir);
  });

  test("reports SERVING for the server and each jitgate service once a bundle is loaded", async () => {
    for (const service of HEALTH_SERVICES) assert.equal(await healthStatus(jitgate.address, service), "SERVING");
  });

  test("answers NOT_FOUND for a service jitgate does not have", async () => {
    await assert.rejects(healthStatus(jitgate.address, "no.such.Service"), { code: 5 });
  });
});
