// `jitgate token GRANT_ID` (a short-lived access token for one of your grants) and `jitgate keys rotate|jwks`
// (the signing keys in a server's data directory, for operators on that machine).
import { userInfo } from "node:os";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import type { AccessStore } from "../access/ports.ts";
import { DEFAULTS, parseStore } from "../config.ts";
import { audit } from "../access/audit.ts";
import { openPgStore } from "../store/postgres/store.ts";
import { openSqliteStore, STORE_FILE } from "../store/sqlite.ts";
import { parseTokenConfig, type RotatedKey, rotateSigningKey, TokenService } from "../tokens/index.ts";
import { connectionOptions } from "./access-commands.ts";
import { type ConnectionFlags, JitgateClient } from "./client.ts";
import { time } from "./format.ts";

interface KeyFlags {
  dataDir?: string;
  signingKeys?: string;
  store?: string;
  alg?: string;
}

function tokenConfig(o: KeyFlags) {
  const dataDir = resolve(o.dataDir ?? process.env.JITGATE_DATA_DIR ?? DEFAULTS.dataDir);
  const keysDir = o.signingKeys ?? process.env.JITGATE_SIGNING_KEYS;
  return parseTokenConfig({ dataDir, keysDir, algorithm: o.alg ?? process.env.JITGATE_TOKEN_ALG }, process.cwd());
}

/** The store whose audit trail records a rotation: --store (JITGATE_STORE), else the data directory's SQLite file. */
async function auditStore(o: KeyFlags, dataDir: string): Promise<{ write: AccessStore["write"]; close(): unknown }> {
  const store = parseStore({ store: o.store }, process.env);
  if (store.kind === "postgres") return openPgStore(store.url);
  return openSqliteStore(join(dataDir, STORE_FILE));
}

export function registerTokenCommands(program: Command): void {
  connectionOptions(program.command("token").description("print a short-lived access token for one of your active grants"))
    .argument("<grant-id>")
    .action(async (grantId: string, o: ConnectionFlags & { json?: boolean }) => {
      const client = new JitgateClient(o);
      try {
        const t = await client.call<Record<string, unknown>>("IssueToken", { grant_id: grantId }, "idempotent");
        process.stdout.write(o.json ? `${JSON.stringify(t, null, 2)}\n` : `${t.token}\n`);
        if (!o.json)
          process.stderr.write(`token ${t.token_id} for grant ${grantId} (audience ${t.audience}) expires ${time(t.expire_time)}\n`);
      } finally {
        client.close();
      }
    });

  const keys = program.command("keys").description("the token signing keys in a server's data directory");
  const dataDirOption = `the server's data directory (env JITGATE_DATA_DIR, default ${DEFAULTS.dataDir})`;
  const keysDirOption = "the signing keys' directory (env JITGATE_SIGNING_KEYS, default <data-dir>/signing-keys)";
  const storeOption = `the store whose audit trail records the rotation: sqlite (<data-dir>/${STORE_FILE}) or a postgres:// URL (env JITGATE_STORE)`;
  keys
    .command("rotate")
    .description("make a new signing key; the old public key stays in the JWKS until its tokens have expired")
    .option("--data-dir <dir>", dataDirOption)
    .option("--signing-keys <dir>", keysDirOption)
    .option("--store <store>", storeOption)
    .option("--alg <alg>", "EdDSA or ES256 (env JITGATE_TOKEN_ALG, default EdDSA)")
    .action(async (o: KeyFlags) => {
      const config = tokenConfig(o);
      // The store is opened first: a data directory whose audit trail cannot be written gets no new key.
      const store = await auditStore(o, config.dataDir);
      try {
        const rotated = await rotateSigningKey(config.keysDir, { algorithm: config.algorithm, now: () => Date.now() });
        const entry = audit.signingKey({ at: rotated.createdAt, actor: `os:${userInfo().username}`, ...rotated });
        await store.write(async (tx) => tx.appendAudit(entry));
        report(rotated);
      } finally {
        await store.close();
      }
    });
  keys
    .command("jwks")
    .description("print the public keys that verify jitgate's tokens (JWKS)")
    .option("--data-dir <dir>", dataDirOption)
    .option("--signing-keys <dir>", keysDirOption)
    .action(async (o: KeyFlags) => {
      const service = await TokenService.open(tokenConfig(o), { now: () => Date.now() });
      process.stdout.write(`${JSON.stringify(await service.jwks(), null, 2)}\n`);
    });
}

function report(rotated: RotatedKey): void {
  process.stdout.write(
    `new signing key ${rotated.kid} (${rotated.alg}); previous ${rotated.previousKid ?? "none"}; removed ${rotated.pruned.length} expired key(s)\n`,
  );
}
