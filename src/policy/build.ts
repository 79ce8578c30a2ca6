// Compiles policies/ into a Wasm bundle with the OPA CLI: every entrypoint of the contract, builtins restricted
// to what opa-wasm can run (so an unsupported builtin fails here, not at request time), test files left out,
// a content-derived revision in the manifest, and the result renamed into place so a watcher never sees
// half a file.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { readdir, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join, relative } from "node:path";
import { promisify } from "node:util";
import { REQUIRED_ENTRYPOINTS } from "./entrypoints.ts";

const run = promisify(execFile);

export interface BuildOptions {
  readonly opa: string;
  readonly policiesDir: string;
  readonly capabilities: string;
  readonly out: string;
}

export type BuildResult = { ok: true; revision: string } | { ok: false; message: string };

const SOURCE = /\.(rego|json|ya?ml)$/;
const isTest = (path: string) => path.endsWith("_test.rego");

/**
 * The revision is a digest of everything that shapes the bundle: the policy sources, the entrypoints and
 * the builtin allowlist. Same inputs, same revision; a watcher skips a bundle whose revision it serves.
 */
export async function policyRevision(policiesDir: string, capabilities: string): Promise<string> {
  const files = (await readdir(policiesDir, { recursive: true, withFileTypes: true }))
    .filter((d) => d.isFile() && SOURCE.test(d.name) && !isTest(d.name))
    .map((d) => join(d.parentPath, d.name))
    .sort();
  const hash = createHash("sha256")
    .update(REQUIRED_ENTRYPOINTS.join(","))
    .update("\0")
    .update(await readFile(capabilities));
  for (const file of files) {
    hash
      .update(relative(policiesDir, file))
      .update("\0")
      .update(await readFile(file))
      .update("\0");
  }
  return hash.digest("hex").slice(0, 16);
}

export async function buildBundle(opts: BuildOptions): Promise<BuildResult> {
  const revision = await policyRevision(opts.policiesDir, opts.capabilities);
  const tmp = join(dirname(opts.out), `.${basename(opts.out)}.${process.pid}.tmp`);
  const args = ["build", "-t", "wasm", "--capabilities", opts.capabilities, "--ignore", "*_test.rego", "--revision", revision];
  for (const e of REQUIRED_ENTRYPOINTS) args.push("-e", e);
  args.push("-o", tmp, opts.policiesDir);
  try {
    await run(opts.opa, args, { maxBuffer: 16 << 20 });
    await rename(tmp, opts.out);
    return { ok: true, revision };
  } catch (err) {
    await rm(tmp, { force: true });
    const e = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
    if (e.code === "ENOENT") return { ok: false, message: `OPA CLI not found at ${opts.opa} (run \`make opa\`)` };
    // `opa build` prints compile errors on stdout.
    return { ok: false, message: [e.stdout, e.stderr].filter(Boolean).join("\n").trim() || e.message };
  }
}
