// `jitgate token GRANT_ID` (a short-lived access token for one of your grants) and `jitgate keys rotate|jwks`
// (the signing keys in a server's data directory, for operators on that machine).
import { userInfo } from "node:os";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { DEFAULTS } from "../config.ts";
import { audit } from "../access/audit.ts";
import { openSqliteStore, STORE_FILE } from "../store/sqlite.ts";
import { parseTokenConfig, type RotatedKey, rotateSigningKey, TokenService } from "../tokens/index.ts";
import { connectionOptions } from "./access-commands.ts";
import { type ConnectionFlags, JitgateClient } from "./client.ts";
import { time } from "./format.ts";

interface KeyFlags {
  dataDir?: string;
  alg?: string;
}

function tokenConfig(o: KeyFlags) {
  const dataDir = resolve(o.dataDir ?? process.env.JITGATE_DATA_DIR ?? DEFAULTS.dataDir);
  return parseTokenConfig({ dataDir, algorithm: o.alg ?? process.env.JITGATE_TOKEN_ALG }, process.cwd());
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
  keys
    .command("rotate")
    .description("make a new signing key; the old public key stays in the JWKS until its tokens have expired")
    .option("--data-dir <dir>", dataDirOption)
    .option("--alg <alg>", "EdDSA or ES256 (env JITGATE_TOKEN_ALG, default EdDSA)")
    .action(async (o: KeyFlags) => {
      const config = tokenConfig(o);
      // The store is opened first: a data directory whose audit trail cannot be written gets no new key.
      const store = openSqliteStore(join(config.dataDir, STORE_FILE));
      try {
        const rotated = await rotateSigningKey(config.dataDir, { algorithm: config.algorithm, now: () => Date.now() });
        const entry = audit.signingKey({ at: rotated.createdAt, actor: `os:${userInfo().username}`, ...rotated });
        store.transaction(() => store.appendAudit(entry));
        report(rotated);
      } finally {
        store.close();
      }
    });
  keys
    .command("jwks")
    .description("print the public keys that verify jitgate's tokens (JWKS)")
    .option("--data-dir <dir>", dataDirOption)
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
