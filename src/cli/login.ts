// `jitgate login --as alice --groups oncall,dba`: a token from the local dev issuer (dev mode only), saved
// where the CLI looks for it (mode 0600), or printed with --print.
import { chmod, mkdir, rename, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { DEFAULTS } from "../config.ts";
import { InvalidArgument } from "../errors.ts";
import { issueDevToken } from "../identity/dev-issuer.ts";
import { tokenPath } from "./client.ts";

export interface LoginOptions {
  as: string;
  groups: string;
  ttl: string;
  dataDir?: string;
  print?: boolean;
}

export async function loginCommand(o: LoginOptions): Promise<void> {
  const ttlSeconds = Number(o.ttl);
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) throw new InvalidArgument("--ttl", "must be a positive whole number of seconds");
  const groups = o.groups
    .split(",")
    .map((g) => g.trim())
    .filter(Boolean);
  const dataDir = resolve(o.dataDir ?? process.env.JITGATE_DATA_DIR ?? DEFAULTS.dataDir);
  const token = await issueDevToken({ dataDir, subject: o.as, groups, ttlSeconds });
  if (o.print) {
    process.stdout.write(`${token}\n`);
    return;
  }
  const file = tokenPath();
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${token}\n`, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
  process.stderr.write(
    `logged in as ${o.as} (groups: ${groups.join(", ") || "none"}) with a DEV token valid ${ttlSeconds}s; saved to ${file}\n`,
  );
}
