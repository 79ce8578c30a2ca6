// The jitgate CLI run by a user who cannot write the test's files. Root ignores file modes, so as root that user
// is nobody, who may not be able to enter the checkout at all (a clone in root's 0700 home): nobody runs an
// installed copy instead (bin/, src/, proto/, package.json and the production node_modules, in a world-readable
// directory under os.tmpdir()) with a Node binary nobody can execute. Anyone else runs the checkout as themselves.
import { type SpawnSyncReturns, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, linkSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, parse } from "node:path";
import { ROOT } from "./bundles.ts";

export const NOBODY = 65534;

export interface OtherUserCli {
  /** Who runs the commands, for messages: `nobody` or the current user. */
  readonly user: string;
  run(args: readonly string[], env?: Record<string, string>): SpawnSyncReturns<string>;
  close(): Promise<void>;
}

/** A CLI whose user cannot write what the test makes read-only; close() removes any copy it installed. */
export async function cliForUserWhoCannotWrite(): Promise<OtherUserCli> {
  if (process.getuid?.() !== 0) return cliAt(ROOT, process.execPath, {}, async () => {});
  if (!reachableByOthers(tmpdir())) throw new Error(`nobody cannot reach ${tmpdir()}: run the tests with TMPDIR=/tmp`);
  const dir = await mkdtemp(join(tmpdir(), "jitgate-installed-"));
  try {
    const node = await install(dir);
    return cliAt(dir, node, { uid: NOBODY, gid: NOBODY }, () => rm(dir, { recursive: true, force: true }));
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

function cliAt(home: string, node: string, user: { uid?: number; gid?: number }, close: () => Promise<void>): OtherUserCli {
  return {
    user: user.uid === undefined ? "the current user" : "nobody",
    run: (args, env = {}) =>
      spawnSync(node, [join(home, "bin", "jitgate"), ...args], {
        cwd: home,
        encoding: "utf8",
        timeout: 30_000,
        env: { PATH: process.env.PATH, ...env },
        ...user,
      }),
    close,
  };
}

/** Installs the CLI into `dir` as a user would (no symlinks back into the checkout); returns the Node to run it. */
async function install(dir: string): Promise<string> {
  for (const part of ["bin", "src", "proto", "package.json", ...productionPackages()]) {
    await cp(join(ROOT, part), join(dir, part), { recursive: true, dereference: true });
  }
  // The checkout's files may be private (a umask of 077): open the copy to everyone, read-only.
  openToReaders(dir);
  return nodeFor(dir);
}

/** The node_modules directories of the production dependencies, from the lockfile that `npm ci` installed. */
function productionPackages(): string[] {
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
    packages: Record<string, { dev?: boolean; devOptional?: boolean; link?: boolean }>;
  };
  return Object.entries(lock.packages)
    .filter(([path, p]) => path.startsWith("node_modules/") && !path.includes("/node_modules/", 1) && !p.dev && !p.devOptional && !p.link)
    .map(([path]) => path)
    .filter((path) => statSync(join(ROOT, path), { throwIfNoEntry: false })?.isDirectory());
}

/** This Node if nobody can run it where it is, else a link to it (or a copy) inside `dir`. */
function nodeFor(dir: string): string {
  const node = realpathSync(process.execPath);
  if (reachableByOthers(node, 0o005)) return node;
  const bin = join(dir, "node", "bin");
  mkdirSync(bin, { recursive: true });
  chmodSync(join(dir, "node"), 0o755);
  chmodSync(bin, 0o755);
  const copy = join(bin, "node");
  // A hard link shares the binary's mode: only when that already lets others run it, and never chmod it.
  if ((statSync(node).mode & 0o005) === 0o005 && tryLink(node, copy)) return copy;
  copyFileSync(node, copy);
  chmodSync(copy, 0o755);
  return copy;
}

function tryLink(target: string, path: string): boolean {
  try {
    linkSync(target, path);
    return true;
  } catch {
    return false; // another file system (EXDEV), or links not allowed here
  }
}

/** Whether a user outside the owner and group of `path` and its directories can reach it and has `access` to it. */
function reachableByOthers(path: string, access = 0o004): boolean {
  const real = realpathSync(path);
  if ((statSync(real).mode & access) !== access) return false;
  for (let d = dirname(real); ; d = dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) return false;
    if (d === parse(d).root) return true;
  }
}

function openToReaders(dir: string): void {
  chmodSync(dir, 0o755);
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    const mode = statSync(path).mode & 0o777;
    const executable = entry.isDirectory() || (mode & 0o100) !== 0;
    chmodSync(path, mode | 0o444 | (executable ? 0o111 : 0));
  }
}
