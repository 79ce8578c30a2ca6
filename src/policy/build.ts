// Compiles policies/ into a Wasm bundle with the OPA CLI: every entrypoint of the contract, builtins restricted
// to what opa-wasm can run (so an unsupported builtin fails here, not at request time), test files left out,
// and a content-derived revision in the manifest. The output goes to a temporary file beside the bundle and
// replaces it only through an installer, which may check it first: a refused build never touches the bundle.
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readdir, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join, relative } from "node:path";
import { promisify } from "node:util";
import { describeThrown } from "../errors.ts";
import { loadBundle } from "./bundle.ts";
import { REQUIRED_ENTRYPOINTS } from "./entrypoints.ts";

const run = promisify(execFile);

export interface BuildOptions {
  readonly opa: string;
  readonly policiesDir: string;
  readonly capabilities: string;
  readonly out: string;
}

/** `stage` says what refused the build: `opa build` itself, or the installer's check of its output. */
export type BuildResult = { ok: true; revision: string } | { ok: false; stage: "compile" | "install"; message: string };

/**
 * Puts `candidate` (a compiled bundle in a temporary file beside `out`) in place of `out` by renaming it, or
 * throws to refuse it, leaving `out` as it was. The candidate is deleted afterwards if it is still there.
 */
export type BundleInstaller = (candidate: string, out: string) => Promise<void>;

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

/** Renames the candidate into place unchecked: for test fixtures that need bundles the server would refuse. */
export const installUnchecked: BundleInstaller = (candidate, out) => rename(candidate, out);

/**
 * Checks the candidate with the server's own load-time verification (the contract's entrypoints and answer
 * shapes, the catalogue) and only then renames it into place: `make bundle` never leaves a bundle that
 * `jitgate serve` refuses to start on.
 */
export const installVerified: BundleInstaller = async (candidate, out) => {
  await loadBundle(out, await readFile(candidate));
  await rename(candidate, out);
};

/**
 * Compiles `opts.policiesDir` and hands the result to `install` (by default unchecked; `make bundle` passes
 * installVerified, the dev loop its BundleWatcher). Whatever fails, `opts.out` is left as it was.
 */
export async function buildBundle(opts: BuildOptions, install: BundleInstaller = installUnchecked): Promise<BuildResult> {
  let revision: string;
  try {
    revision = await policyRevision(opts.policiesDir, opts.capabilities);
  } catch (err) {
    return { ok: false, stage: "compile", message: `cannot read the policy sources: ${describeThrown(err)}` };
  }
  // Unique per build, so two builds of one bundle (a test and `make bundle`, say) never share a candidate.
  const candidate = join(dirname(opts.out), `.${basename(opts.out)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  const args = ["build", "-t", "wasm", "--capabilities", opts.capabilities, "--ignore", "*_test.rego", "--revision", revision];
  for (const e of REQUIRED_ENTRYPOINTS) args.push("-e", e);
  args.push("-o", candidate, opts.policiesDir);
  try {
    try {
      await run(opts.opa, args, { maxBuffer: 16 << 20 });
    } catch (err) {
      return { ok: false, stage: "compile", message: compileFailure(opts, err) };
    }
    try {
      await install(candidate, opts.out);
    } catch (err) {
      return { ok: false, stage: "install", message: `compiled, but refused: ${describeThrown(err)}` };
    }
    return { ok: true, revision };
  } finally {
    await rm(candidate, { force: true });
  }
}

function compileFailure(opts: BuildOptions, err: unknown): string {
  const e = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
  if (e.code === "ENOENT") return `OPA CLI not found at ${opts.opa} (run \`make opa\`)`;
  // `opa build` prints compile errors on stdout.
  return [e.stdout, e.stderr].filter(Boolean).join("\n").trim() || e.message;
}
