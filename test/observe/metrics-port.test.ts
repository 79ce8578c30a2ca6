// A metrics address already in use stops the start with one message naming it and the flag to change.
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { removeDir, tempDir } from "../support/bundles.ts";
import { startTestJitgate } from "../support/jitgate.ts";

let dir: string;
before(async () => {
  dir = await tempDir();
});
after(() => removeDir(dir));

test("a metrics port in use: the start fails naming the address and the flag; a later start on the same data directory works", async () => {
  const squatter = createServer().listen(0, "127.0.0.1");
  await once(squatter, "listening");
  const { port } = squatter.address() as AddressInfo;
  try {
    await assert.rejects(
      startTestJitgate(dir, { metricsListen: `127.0.0.1:${port}` }),
      new RegExp(`metrics: cannot listen on 127\\.0\\.0\\.1:${port} .*--metrics-listen`),
    );
  } finally {
    squatter.close();
  }
  const jitgate = await startTestJitgate(dir);
  await jitgate.close();
});
