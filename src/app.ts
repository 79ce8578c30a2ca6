// The composition root: builds jitgate's parts from a config once and wires them together. `jitgate serve`
// and the end-to-end tests both start jitgate through here, so tests run the same graph users do.
import { mkdir } from "node:fs/promises";
import type { ServeConfig } from "./config.ts";
import type { Logger } from "./log.ts";
import { PolicyEngine } from "./policy/engine.ts";
import { PolicySourceWatcher } from "./policy/source-watcher.ts";
import { BundleWatcher } from "./policy/watcher.ts";
import { startServer } from "./server/server.ts";

export interface Jitgate {
  readonly address: string;
  readonly engine: PolicyEngine;
  close(): Promise<void>;
}

export async function startJitgate(config: ServeConfig, log: Logger): Promise<Jitgate> {
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const engine = new PolicyEngine();
  const bundles = new BundleWatcher(config.bundle, engine, {
    activated: ({ revision, previous, file }) => log.info({ revision, previous, file }, "policy bundle activated"),
    rejected: ({ file, reason, serving }) =>
      log.error({ file, reason, serving }, "policy bundle rejected; still serving the previous revision"),
  });
  // No valid bundle, no server: jitgate never answers without a policy (fail closed).
  await bundles.start();

  const server = await startServer(config.listen.host, config.listen.port, () => {});
  server.setServing(engine.ready);

  let sources: PolicySourceWatcher | undefined;
  if (config.watchPolicies) {
    sources = new PolicySourceWatcher(
      { opa: config.opa, policiesDir: config.policiesDir, capabilities: config.capabilities, out: config.bundle },
      (result) =>
        result.ok
          ? log.info({ revision: result.revision }, "policies rebuilt")
          : log.error({ error: result.message }, "policies do not compile; still serving the last good bundle"),
    );
    await sources.start();
  }
  log.info({ address: server.address, revision: engine.active?.revision }, "jitgate serving");

  return {
    address: server.address,
    engine,
    async close() {
      await sources?.close();
      await bundles.close();
      await server.close();
    },
  };
}
