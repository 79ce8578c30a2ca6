// `jitgate audit verify`: checks the audit trail's hash chain offline, on a database file opened read-only.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { DEFAULTS } from "../config.ts";
import { verifyAuditChain } from "../store/audit-chain.ts";
import { STORE_FILE } from "../store/sqlite.ts";
import { EXIT } from "./exit.ts";

interface VerifyFlags {
  db?: string;
  dataDir?: string;
}

function databaseFile(o: VerifyFlags): string {
  if (o.db !== undefined) return resolve(o.db);
  return resolve(o.dataDir ?? process.env.JITGATE_DATA_DIR ?? DEFAULTS.dataDir, STORE_FILE);
}

export function registerAuditCommands(program: Command): void {
  const audit = program.command("audit").description("the audit trail in a server's database");
  audit
    .command("verify")
    .description("check the audit trail's hash chain; exits 1 at the first broken link")
    .option("--db <file>", `the database file (default <data-dir>/${STORE_FILE})`)
    .option("--data-dir <dir>", `the server's data directory (env JITGATE_DATA_DIR, default ${DEFAULTS.dataDir})`)
    .action((o: VerifyFlags) => {
      const file = databaseFile(o);
      if (!existsSync(file)) {
        process.stderr.write(`jitgate: no database at ${file} (give --db FILE or --data-dir DIR)\n`);
        process.exit(EXIT.usage);
      }
      const report = verifyAuditChain(file);
      if (!report.ok) {
        process.stderr.write(`audit chain broken at #${report.seq}: ${report.reason}\n`);
        process.exit(EXIT.denied);
      }
      const head = report.head === undefined ? "none" : `#${report.head.seq} ${report.head.hash}`;
      process.stdout.write(`audit chain intact: ${report.rows} entries, head ${head}\n`);
    });
}
