// Private files in the data directory, the way src/identity/dev-issuer.ts keeps its key: reads refuse symbolic
// links, foreign owners and modes open to group or others; writes go to a temp file (created with `wx`, mode
// 0600, synced) that is then hard-linked or renamed into place, so no reader ever sees half a key.
import { randomUUID } from "node:crypto";
import { constants, type Stats } from "node:fs";
import { link, lstat, mkdir, open, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { FailedPrecondition } from "../errors.ts";

const MAX_KEY_FILE_BYTES = 8192;

/** The file's text, or undefined when it does not exist (a key pruned by another process meanwhile). */
export async function readPrivateFile(file: string): Promise<string | undefined> {
  let handle;
  try {
    // O_NOFOLLOW: a symlink planted in the key directory must not redirect us to another key.
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "ELOOP") throw new FailedPrecondition(`signing key ${file} is a symbolic link: refusing it`);
    throw new FailedPrecondition(`signing key ${file} cannot be read: ${(err as Error).message}`, { cause: err });
  }
  try {
    checkPrivateFile(file, await handle.stat());
    return await handle.readFile("utf8");
  } finally {
    await handle.close();
  }
}

/** The names in a private directory, or undefined when it does not exist. Refuses links, foreign owners, loose modes. */
export async function listPrivateDirectory(dir: string): Promise<string[] | undefined> {
  let stats: Stats;
  try {
    stats = await lstat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new FailedPrecondition(`signing key directory ${dir} cannot be read: ${(err as Error).message}`, { cause: err });
  }
  if (!stats.isDirectory()) throw new FailedPrecondition(`signing key directory ${dir} is not a directory (or is a symbolic link)`);
  checkOwner(`signing key directory ${dir}`, stats);
  // Whoever can add a file here can make jitgate publish and sign with their key.
  if (process.platform !== "win32" && (stats.mode & 0o022) !== 0) {
    throw new FailedPrecondition(
      `signing key directory ${dir} is writable by group or others (mode ${modeText(stats)}): run \`chmod 700 ${dir}\``,
    );
  }
  return (await readdir(dir)).sort();
}

/** Adds `name` to an existing directory; false when a file of that name is already there (it is left alone). */
export async function addPrivateFile(dir: string, name: string, text: string): Promise<boolean> {
  const temp = await writeTempFile(dir, text);
  try {
    await link(temp, join(dir, name));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    await rm(temp, { force: true });
  }
  await syncDirectory(dir);
  return true;
}

/**
 * Creates directory `dir` (mode 0700) holding one file, all at once: it is built under a temp name and
 * renamed into place, which fails when another process created a non-empty `dir` first (false: use theirs).
 */
export async function createPrivateDirectory(dir: string, name: string, text: string): Promise<boolean> {
  const parent = dirname(dir);
  await mkdir(parent, { recursive: true, mode: 0o700 });
  const temp = join(parent, `.${basename(dir)}.${process.pid}.${randomUUID()}.tmp`);
  await mkdir(temp, { mode: 0o700 });
  try {
    // Nobody else knows `temp` yet, so the key is written under its final name directly.
    await writeNewFile(join(temp, name), text);
    await syncDirectory(temp);
    try {
      // Replaces an empty `dir` too, so emptying the directory makes the next start create a fresh key.
      await rename(temp, dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOTEMPTY" || code === "EEXIST") return false;
      throw err;
    }
    await syncDirectory(parent);
    return true;
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

export async function removePrivateFile(file: string): Promise<void> {
  await rm(file, { force: true });
}

/** A synced temp file (dot-named, so directory readers skip it) with mode 0600. */
async function writeTempFile(dir: string, text: string): Promise<string> {
  const temp = join(dir, `.${process.pid}.${randomUUID()}.tmp`);
  await writeNewFile(temp, text);
  return temp;
}

/** `wx`: never through an existing file or link; 0600 from the first byte. */
async function writeNewFile(file: string, text: string): Promise<void> {
  const handle = await open(file, "wx", 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } catch (err) {
    await rm(file, { force: true }); // a full disk must not leave half a key behind
    throw err;
  } finally {
    await handle.close();
  }
}

/** Makes a new or removed directory entry survive a crash, not only the file's contents. */
async function syncDirectory(dir: string): Promise<void> {
  if (process.platform === "win32") return;
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function checkPrivateFile(file: string, stats: Stats): void {
  if (!stats.isFile()) throw new FailedPrecondition(`signing key ${file} is not a regular file`);
  if (stats.size > MAX_KEY_FILE_BYTES) throw new FailedPrecondition(`signing key ${file} is too large to be a key`);
  if (process.platform !== "win32" && (stats.mode & 0o077) !== 0) {
    throw new FailedPrecondition(
      `signing key ${file} is accessible by group or others (mode ${modeText(stats)}): run \`chmod 600 ${file}\``,
    );
  }
  checkOwner(`signing key ${file}`, stats);
}

function checkOwner(what: string, stats: Stats): void {
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid)
    throw new FailedPrecondition(`${what} belongs to uid ${stats.uid}, not to this user (uid ${uid})`);
}

function modeText(stats: Stats): string {
  return (stats.mode & 0o777).toString(8).padStart(4, "0");
}
