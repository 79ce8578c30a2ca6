// The composition root: builds jitgate's parts from a config once and wires them together. `jitgate serve`
// and the end-to-end tests both start jitgate through here, so tests run the same graph users do.
import { randomUUID } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { Access } from "./access/access.ts";
import { ChangeFeed } from "./access/feed.ts";
import type { Clock } from "./access/ports.ts";
import type { ServeConfig } from "./config.ts";
import { createAuthenticator } from "./identity/authenticator.ts";
import { serverCredentials } from "./identity/mtls.ts";
import type { Logger } from "./log.ts";
import { PolicyEngine } from "./policy/engine.ts";
import { PolicySourceWatcher } from "./policy/source-watcher.ts";
import { BundleWatcher } from "./policy/watcher.ts";
import { accessServiceHandlers } from "./server/access-service.ts";
import { accessServiceDefinition, loadAccessPackage } from "./server/proto.ts";
import { startServer } from "./server/server.ts";
import { openSqliteStore, STORE_FILE } from "./store/sqlite.ts";
import { TokenService } from "./tokens/index.ts";

export interface Jitgate {
  readonly address: string;
  readonly engine: PolicyEngine;
  readonly access: Access;
  close(): Promise<void>;
}

const HEALTH_INTERVAL_MS = 2_000;

export async function startJitgate(config: ServeConfig, log: Logger, clock: Clock = { now: () => Date.now() }): Promise<Jitgate> {
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const engine = new PolicyEngine();
  const bundles = new BundleWatcher(config.bundle, engine, {
    activated: ({ revision, previous, file }) => log.info({ revision, previous, file }, "policy bundle activated"),
    rejected: ({ file, reason, serving }) =>
      log.error({ file, reason, serving }, "policy bundle rejected; still serving the previous revision"),
  });
  // No valid bundle, no server: jitgate never answers without a policy (fail closed).
  await bundles.start();

  const auth = await createAuthenticator(config.identity, { clock });
  log.info(auth.describe());
  const tokens = await TokenService.open(config.tokens, clock);
  const store = openSqliteStore(join(config.dataDir, STORE_FILE));
  const access = new Access(
    { store, policy: engine, clock, newId: randomUUID, feed: new ChangeFeed(store), adminGroups: config.adminGroups, tokens },
    (err) => log.error({ err }, "recording expiries failed; will retry"),
  );
  access.start();

  const pkg = loadAccessPackage();
  const server = await startServer(config.listen.host, config.listen.port, await credentialsFor(config), (s) => {
    s.addService(
      accessServiceDefinition(pkg),
      accessServiceHandlers(
        access,
        { authenticate: (call) => auth.authenticate({ metadata: call.metadata, authContext: call.getAuthContext() }) },
        clock,
        log,
      ),
    );
    new ReflectionService(pkg).addToServer(s);
  });
  // Serving only while a policy is loaded and the store takes writes.
  const updateHealth = () => server.setServing(engine.ready && store.isWritable());
  updateHealth();
  const health = setInterval(updateHealth, HEALTH_INTERVAL_MS);

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
    access,
    async close() {
      clearInterval(health);
      await sources?.close();
      await bundles.close();
      // Ends open WatchGrants/WatchRevocations streams, so shutdown does not wait for watchers to leave.
      access.stop();
      await server.close();
      store.close();
    },
  };
}

async function credentialsFor(config: ServeConfig): Promise<grpc.ServerCredentials> {
  if (!config.tls) return grpc.ServerCredentials.createInsecure();
  const { certFile, keyFile } = config.tls;
  const identity = config.identity;
  if (identity.mtls) {
    // Token callers may connect without a certificate when tokens are accepted too.
    return serverCredentials({ caFile: identity.mtls.caFile, certFile, keyFile, requireClientCert: !identity.oidc && !identity.dev });
  }
  return grpc.ServerCredentials.createSsl(null, [{ cert_chain: await readFile(certFile), private_key: await readFile(keyFile) }], false);
}
