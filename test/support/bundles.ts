// Test fixtures for policy bundles: the real bundle `make bundle` builds, variants of it built from a copy of
// policies/ with a change applied, and small hand-made bundles for the failure cases.
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { create } from "tar";
import { buildBundle } from "../../src/policy/build.ts";

export const ROOT = resolve(import.meta.dirname, "..", "..");
export const REAL_BUNDLE = join(ROOT, "bundles", "jitgate.tar.gz");
export const POLICIES = join(ROOT, "policies");
export const OPA = process.env.OPA ?? join(ROOT, "tools", "bin", "opa");
export const CAPABILITIES = join(ROOT, "build", "wasm-capabilities.json");

export async function tempDir(prefix = "jitgate-test-"): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** A copy of policies/ in `dir`/policies, changed by `edit`, compiled to `out`. Returns the revision. */
export async function buildVariant(
  dir: string,
  out: string,
  edit: (policiesDir: string) => Promise<void> = async () => {},
): Promise<string> {
  const policiesDir = join(dir, "policies");
  await rm(policiesDir, { recursive: true, force: true });
  await cp(POLICIES, policiesDir, { recursive: true });
  await edit(policiesDir);
  const result = await buildBundle({ opa: OPA, policiesDir, capabilities: CAPABILITIES, out });
  if (!result.ok) throw new Error(`variant bundle did not build: ${result.message}`);
  return result.revision;
}

/** Adds a data file that changes nothing the policy reads but does change the bundle's revision. */
export async function touchRevision(policiesDir: string, marker: string): Promise<void> {
  await mkdir(join(policiesDir, "variant"), { recursive: true });
  await writeFile(join(policiesDir, "variant", "data.json"), JSON.stringify({ marker }));
}

/** Compiles hand-written Rego files (name -> source) with the given entrypoints, for contract-breaking bundles. */
export async function buildCustom(dir: string, files: Record<string, string>, entrypoints: readonly string[], out: string): Promise<void> {
  const src = await mkdtemp(join(dir, "custom-"));
  for (const [name, rego] of Object.entries(files)) await writeFile(join(src, name), rego);
  const args = ["build", "-t", "wasm", "--revision", "custom-1", "-o", out, src];
  for (const e of entrypoints) args.push("-e", e);
  await promisify(execFile)(OPA, args);
}

/** A .tar.gz with exactly these members (name -> content), for malformed-bundle tests. */
export async function makeArchive(dir: string, members: Record<string, string | Buffer>, out: string): Promise<void> {
  const stage = join(dir, "stage");
  await rm(stage, { recursive: true, force: true });
  await mkdir(stage, { recursive: true });
  for (const [name, content] of Object.entries(members)) await writeFile(join(stage, name), content);
  await create({ gzip: true, file: out, cwd: stage }, Object.keys(members));
}

/** The three members of the real bundle the engine reads, to reassemble with one of them changed. */
export async function realMembers(): Promise<Record<string, Buffer>> {
  const { Parser } = await import("tar");
  const { gunzipSync } = await import("node:zlib");
  const members: Record<string, Buffer> = {};
  const parser = new Parser({
    onReadEntry: (entry) => {
      const chunks: Buffer[] = [];
      entry.on("data", (c: Buffer) => chunks.push(c));
      entry.on("end", () => {
        const name = entry.path.replace(/^\/+/, "");
        if (["policy.wasm", "data.json", ".manifest"].includes(name)) members[name] = Buffer.concat(chunks);
      });
    },
  });
  parser.end(gunzipSync(await readFile(REAL_BUNDLE)));
  return members;
}
