// Small real file systems for failure tests, each mounted on its own temp dir: a size-limited tmpfs that fills up
// for real, and an ext4 image on a loop device that the kernel turns read-only on an error (errors=remount-ro),
// as it does for a failing disk. Both need mount(2) (root); where it is refused, the mount answers why, so a test
// can skip saying so.
import { execFileSync } from "node:child_process";
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

const COMMAND_TIMEOUT_MS = 10_000;
const FILLER = "filler";
const UNMOUNT_TRIES = 20;

export interface ScratchFs {
  readonly dir: string;
  /** Writes a file until the file system has no block left, then gives `leaveBytes` back; returns the bytes kept. */
  fill(leaveBytes?: number): number;
  /** Deletes what `fill` wrote. */
  free(): void;
  /** Unmounts and removes the mount point (and image); close every file in `dir` first. */
  unmount(): void;
}

export interface Ext4Fs extends ScratchFs {
  /** Reports a file-system error to ext4, which remounts it read-only at once (open files included). */
  turnReadOnly(): void;
}

/**
 * Why no scratch file system can be mounted, for the test to skip on, but only where mounting needs a
 * privilege this user lacks: as root (CI here) a failed mount is a failure, never a silent skip.
 */
function unmountable(why: string): string {
  if (process.getuid?.() === 0) throw new Error(`${why}: root should be able to mount it; the disk-fault tests cannot run`);
  return why;
}

/** A tmpfs of `bytes` on a fresh temp dir, or (not as root) why none can be mounted here. */
export function mountTmpfs(bytes: number): ScratchFs | string {
  const dir = mkdtempSync(join(tmpdir(), "jitgate-tmpfs-"));
  const failed = run("mount", ["-t", "tmpfs", "-o", `size=${bytes},mode=0700`, "tmpfs", dir]);
  if (failed !== undefined) {
    rmSync(dir, { recursive: true, force: true });
    return unmountable(`cannot mount a tmpfs here (${failed})`);
  }
  return scratch(dir, () => undefined);
}

/** An ext4 file system of `bytes` on a loop device, mounted errors=remount-ro, or why none can be mounted here. */
export function mountExt4(bytes: number): Ext4Fs | string {
  const home = mkdtempSync(join(tmpdir(), "jitgate-ext4-"));
  const image = join(home, "disk.img");
  const dir = join(home, "mnt");
  execFileSync("mkdir", [dir]);
  execFileSync("truncate", ["-s", String(bytes), image]);
  // -m 0: no blocks reserved for root, which the tests run as; a full disk is full for them too.
  const failed =
    run("mkfs.ext4", ["-q", "-F", "-m", "0", image]) ?? run("mount", ["-t", "ext4", "-o", "loop,errors=remount-ro", image, dir]);
  if (failed !== undefined) {
    rmSync(home, { recursive: true, force: true });
    return unmountable(`cannot mount an ext4 image here (${failed})`);
  }
  const device = execFileSync("findmnt", ["-n", "-o", "SOURCE", dir], { encoding: "utf8", timeout: COMMAND_TIMEOUT_MS }).trim();
  const fs = scratch(dir, () => rmSync(home, { recursive: true, force: true }));
  return {
    ...fs,
    turnReadOnly() {
      execFileSync("sh", ["-c", `echo jitgate-test > /sys/fs/ext4/${basename(device)}/trigger_fs_error`], { timeout: COMMAND_TIMEOUT_MS });
    },
  };
}

function scratch(dir: string, cleanUp: () => void): ScratchFs {
  const filler = join(dir, FILLER);
  return {
    dir,
    fill(leaveBytes = 0) {
      const fd = openSync(filler, "a");
      const chunk = Buffer.alloc(64 * 1024, 0x5a);
      let written = 0;
      try {
        // Big chunks first, then pages, so what is left is smaller than a page.
        for (const size of [chunk.length, 4096, 512]) {
          for (;;) {
            try {
              written += writeSync(fd, chunk, 0, size);
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code === "ENOSPC") break;
              throw err;
            }
          }
        }
        written = Math.max(0, written - leaveBytes);
        ftruncateSync(fd, written);
      } finally {
        closeSync(fd);
      }
      return written;
    },
    free() {
      unlinkSync(filler);
    },
    unmount() {
      // The kernel may call the file system busy for a moment after its last file closed: retry, then detach it
      // lazily, so that a test that failed with a file still open leaves no mount behind.
      let failed = run("umount", [dir]);
      for (let i = 0; failed !== undefined && i < UNMOUNT_TRIES; i++) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
        failed = run("umount", [dir]);
      }
      if (failed !== undefined) run("umount", ["-l", dir]);
      try {
        rmSync(dir, { recursive: true, force: true });
      } finally {
        cleanUp();
      }
    },
  };
}

/** mkfs.ext4 and friends live in sbin, which a non-login PATH (a CI runner's) may leave out. */
const WITH_SBIN = { ...process.env, PATH: `${process.env.PATH ?? ""}:/usr/local/sbin:/usr/sbin:/sbin` };

/** Runs a command; undefined when it succeeded, else its first line of complaint. */
function run(command: string, args: readonly string[]): string | undefined {
  try {
    execFileSync(command, args, { stdio: ["ignore", "ignore", "pipe"], timeout: COMMAND_TIMEOUT_MS, env: WITH_SBIN });
    return undefined;
  } catch (err) {
    const said = (err as { stderr?: Buffer }).stderr?.toString().trim().split("\n")[0] || (err as Error).message;
    return said.startsWith(`${command}:`) ? said : `${command}: ${said}`;
  }
}
