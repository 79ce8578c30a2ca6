// `jitgate audit verify|checkpoint`: checks the audit trail's hash chain (and its signed checkpoints) offline, on a
// database file opened read-only or a PostgreSQL snapshot read-only; signs a checkpoint of the trail's head.
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import type { JSONWebKeySet } from "jose";
import { signCheckpoint } from "../checkpoints/checkpoint.ts";
import { appendCheckpoint, CHECKPOINTS_FILE, readCheckpoints } from "../checkpoints/checkpoint-file.ts";
import { verifyCheckpoints } from "../checkpoints/verify.ts";
import { InvalidArgument, JitgateError } from "../errors.ts";
import { AUDIT_CHAIN_VERSION, readAuditHashAt, readAuditHead, verifyAuditChain } from "../store/audit-chain.ts";
import * as pgChain from "../store/postgres/audit-chain.ts";
import { STORE_FILE } from "../store/sqlite.ts";
import { keyDirectory, parseTokenConfig, readPublicKeys, TokenService } from "../tokens/index.ts";
import { registerAuditQueries } from "./audit-queries.ts";
import { auditStore, DATA_DIR_HELP, dataDirOf, type DatabaseFlags, readAuditStore, STORE_HELP } from "./audit-store.ts";
import { EXIT } from "./exit.ts";

interface VerifyFlags extends DatabaseFlags {
  checkpoints?: string;
  jwks?: string[];
}

const CHAIN = { what: "the audit chain", sqliteVersion: AUDIT_CHAIN_VERSION } as const;

export function registerAuditCommands(program: Command): void {
  const audit = program.command("audit").description("the audit trail in a server's database");
  audit
    .command("verify")
    .description("check the audit trail's hash chain (and, with --checkpoints, its signed checkpoints); exits 1 at the first broken link")
    .option("--db <file>", `the database file (default <data-dir>/${STORE_FILE})`)
    .option("--data-dir <dir>", DATA_DIR_HELP)
    .option("--store <store>", STORE_HELP)
    .option(
      "--checkpoints <file>",
      `also check the trail against these signed checkpoints (the server writes <data-dir>/${CHECKPOINTS_FILE})`,
    )
    .option("--jwks <file...>", "trusted public keys for the checkpoints (JWKS files; default: the keys in <data-dir>/signing-keys)")
    .action((o: VerifyFlags) => verifyCommand(o));
  audit
    .command("checkpoint")
    .description("sign the audit trail's head with the active signing key and append it to the checkpoints file")
    .option("--data-dir <dir>", `${DATA_DIR_HELP}; its signing keys sign the checkpoint`)
    .option("--store <store>", STORE_HELP)
    .option("--checkpoints <file>", `the checkpoints file (env JITGATE_AUDIT_CHECKPOINTS, default <data-dir>/${CHECKPOINTS_FILE})`)
    .action((o: DatabaseFlags & { checkpoints?: string }) => checkpointCommand(o));
  registerAuditQueries(audit);
}

async function verifyCommand(o: VerifyFlags): Promise<void> {
  const store = auditStore(o);
  const lines = o.checkpoints === undefined ? [] : await readCheckpoints(resolve(o.checkpoints));
  const named = lines.flatMap((l) => ("checkpoint" in l ? [l.checkpoint.seq] : []));
  // One read of the store: the chain, and the stored hashes at the seqs the checkpoints name.
  const { report, hashes } = await readAuditStore(
    store,
    CHAIN,
    (db) => {
      const hashAt = readAuditHashAt(db);
      return { report: verifyAuditChain(db), hashes: new Map(named.map((seq) => [seq, hashAt(seq)] as const)) };
    },
    async (query) => {
      const report = await pgChain.verifyAuditChain(query);
      const hashes = new Map<number, string | undefined>();
      for (const seq of named) hashes.set(seq, await pgChain.readAuditHashAt(query, seq));
      return { report, hashes };
    },
  );
  if (!report.ok) {
    process.stderr.write(`audit chain broken at #${report.seq}: ${report.reason}\n`);
    process.exit(EXIT.denied);
  }
  const head = report.head === undefined ? "none" : `#${report.head.seq} ${report.head.hash}`;
  process.stdout.write(`audit chain intact: ${report.rows} entries, head ${head}\n`);
  if (o.checkpoints === undefined) return;

  const keys = await trustedKeys(o);
  const checked = await verifyCheckpoints(lines, { head: report.head, hashAt: (seq) => hashes.get(seq) }, keys);
  if (!checked.ok) {
    process.stderr.write(`audit checkpoints: line ${checked.line} of ${o.checkpoints}: ${checked.reason}\n`);
    process.exit(EXIT.denied);
  }
  const latest = checked.latest;
  process.stdout.write(
    `audit checkpoints intact: ${checked.verified} verified, latest #${latest.seq} signed ${new Date(latest.at).toISOString()}; ${checked.uncovered} newer entries not yet checkpointed\n`,
  );
}

async function trustedKeys(o: VerifyFlags): Promise<JSONWebKeySet> {
  if (o.jwks === undefined || o.jwks.length === 0) return dataDirKeys(o);
  const keys: JSONWebKeySet["keys"] = [];
  for (const f of o.jwks) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(f, "utf8"));
    } catch (err) {
      throw new InvalidArgument("--jwks", `${f} is not a readable JSON file (${err instanceof Error ? err.message : String(err)})`);
    }
    const list = (parsed as { keys?: unknown })?.keys;
    if (!Array.isArray(list)) throw new InvalidArgument("--jwks", `${f} is not a JWKS (an object with a "keys" array)`);
    keys.push(...(list as JSONWebKeySet["keys"]));
  }
  return { keys };
}

/** The public keys in the data directory, read without creating or changing anything. */
async function dataDirKeys(o: DatabaseFlags): Promise<JSONWebKeySet> {
  const dataDir = dataDirOf(o);
  let keys: JSONWebKeySet | undefined;
  try {
    keys = await readPublicKeys(keyDirectory(dataDir));
  } catch (err) {
    if (!(err instanceof JitgateError)) throw err;
    throw new InvalidArgument("--jwks", `cannot use the keys in ${dataDir} (${err.message}); give the trusted keys with --jwks FILE`);
  }
  if (keys === undefined) throw new InvalidArgument("--jwks", `${dataDir} holds no signing keys; give the trusted keys with --jwks FILE`);
  return keys;
}

function tokenService(o: DatabaseFlags): Promise<TokenService> {
  const dataDir = dataDirOf(o);
  return TokenService.open(
    parseTokenConfig({ dataDir, algorithm: process.env.JITGATE_TOKEN_ALG, issuer: process.env.JITGATE_TOKEN_ISSUER }, process.cwd()),
    {
      now: () => Date.now(),
    },
  );
}

async function checkpointCommand(o: DatabaseFlags & { checkpoints?: string }): Promise<void> {
  const store = auditStore(o);
  const head = await readAuditStore(store, CHAIN, readAuditHead, pgChain.readAuditHead);
  if (head === undefined) {
    process.stderr.write(`jitgate: the audit trail in ${store.location} is empty; nothing to checkpoint\n`);
    process.exit(EXIT.failure);
  }
  const tokens = await tokenService(o);
  const out = resolve(o.checkpoints ?? process.env.JITGATE_AUDIT_CHECKPOINTS ?? join(dataDirOf(o), CHECKPOINTS_FILE));
  const line = await signCheckpoint(tokens.signer, head, Date.now(), tokens.issuer);
  await appendCheckpoint(out, line);
  process.stdout.write(`checkpoint #${line.seq} ${line.hash} signed by key ${line.kid}, appended to ${out}\n`);
}
