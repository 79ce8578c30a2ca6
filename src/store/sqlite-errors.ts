// Turns SQLite failures into jitgate's errors at the store's edge: availability problems become Unavailable with
// a fixed message (the SQLite error stays in `cause`, never in front of a client); programming errors propagate.
// Also tells which failures mean the file or its disk takes no writes, and tracks that from real writes.
import { randomUUID } from "node:crypto";
import { closeSync, openSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Unavailable } from "../errors.ts";

// Primary result codes (extended codes such as SQLITE_IOERR_FSYNC share the prefix) that mean
// "the database cannot be used right now", with what a client or operator may be told.
const UNAVAILABLE: ReadonlyMap<string, string> = new Map([
  ["SQLITE_BUSY", "the database stayed locked by another writer past the busy timeout"],
  ["SQLITE_LOCKED", "the database is locked"],
  ["SQLITE_FULL", "the disk is full"],
  ["SQLITE_IOERR", "a disk I/O error occurred"],
  ["SQLITE_READONLY", "the database is read-only"],
  ["SQLITE_CANTOPEN", "the database file cannot be opened"],
  ["SQLITE_CORRUPT", "the database file is corrupt"],
  ["SQLITE_NOTADB", "the file is not a SQLite database"],
  ["SQLITE_PROTOCOL", "the database locking protocol failed"],
  ["SQLITE_NOMEM", "SQLite ran out of memory"],
]);

function primaryCode(code: string): string {
  const cut = code.indexOf("_", "SQLITE_".length);
  return cut === -1 ? code : code.slice(0, cut);
}

export function isSqliteError(err: unknown): err is InstanceType<typeof Database.SqliteError> {
  return err instanceof Database.SqliteError;
}

/** What to tell a client when `err` means the database cannot be used right now; undefined for other errors. */
export function unavailableReason(err: unknown): string | undefined {
  return isSqliteError(err) ? UNAVAILABLE.get(primaryCode(err.code)) : undefined;
}

/** The jitgate error to throw in place of `err`, or `err` itself when it is not an availability problem. */
export function storeError(err: unknown): unknown {
  const why = unavailableReason(err);
  return why === undefined ? err : new Unavailable(`store: ${why}`, { cause: err });
}

/** Whether `err` (or the Unavailable that wraps it) is another connection holding the lock: worth another try later. */
export function isLockBusy(err: unknown): boolean {
  const e = err instanceof Unavailable ? err.cause : err;
  return isSqliteError(e) && primaryCode(e.code) === "SQLITE_BUSY";
}

export function isUniqueViolation(err: unknown): boolean {
  return isSqliteError(err) && err.code === "SQLITE_CONSTRAINT_UNIQUE";
}

/** Thrown when SQLite rolled back the whole transaction on its own (SQLITE_FULL, SQLITE_BUSY, ...). */
export function rolledBack(): Unavailable {
  return new Unavailable("store: the transaction was rolled back by the database; retry");
}

// Primary codes meaning the file or the disk under it takes no writes. Not BUSY or LOCKED: another writer
// holding the lock is contention, which the health probe counts on its own (see SqliteStore.probeWrites).
const DISK_FAILURES: ReadonlySet<string> = new Set([
  "SQLITE_FULL",
  "SQLITE_READONLY",
  "SQLITE_IOERR",
  "SQLITE_CANTOPEN",
  "SQLITE_CORRUPT",
  "SQLITE_NOTADB",
]);

/** The SQLite error behind `err`, looking through `cause` (the stores wrap it in Unavailable). */
export function sqliteCause(err: unknown): InstanceType<typeof Database.SqliteError> | undefined {
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (isSqliteError(e)) return e;
  }
  return undefined;
}

/** Whether a SQLite file takes writes now; `reason` and `since` (ms) say why not and since when. */
export interface WriteHealth {
  readonly possible: boolean;
  readonly reason?: string;
  readonly since?: number;
  /** The SQLite primary code of the failure that made writes impossible (SQLITE_FULL, ...). */
  readonly code?: string;
}

export interface WriteTrackerOptions {
  readonly now: () => number;
  /** The folder holding the file: an I/O error there is reported as a read-only file system when it is one. */
  readonly dir?: string;
}

/**
 * Write health learned from real writes: a write failing for a disk-level reason (full, read-only, I/O error,
 * unopenable or corrupt file) makes writes "not possible" from that moment until a later write commits.
 * Lock contention (SQLITE_BUSY) tells nothing about the disk and changes nothing here.
 */
export class WriteTracker {
  readonly #now: () => number;
  readonly #dir: string | undefined;
  #state: WriteHealth = { possible: true };

  constructor(options: WriteTrackerOptions) {
    this.#now = options.now;
    this.#dir = options.dir;
  }

  get current(): WriteHealth {
    return this.#state;
  }

  /** A write committed. */
  succeeded(): void {
    if (!this.#state.possible) this.#state = { possible: true };
  }

  /** A write failed with `err`; true when the failure means the disk or file takes no writes (now recorded). */
  failed(err: unknown): boolean {
    const sqlite = sqliteCause(err);
    const code = sqlite === undefined ? undefined : primaryCode(sqlite.code);
    if (code === undefined || !DISK_FAILURES.has(code)) return false;
    this.notPossible(this.#reasonFor(code), code);
    return true;
  }

  /** Writes are not possible for `reason`; an ongoing outage keeps the time it began. */
  notPossible(reason: string, code?: string): void {
    const since = this.#state.possible ? this.#now() : (this.#state.since ?? this.#now());
    this.#state = code === undefined ? { possible: false, reason, since } : { possible: false, reason, since, code };
  }

  /** Runs the write `fn`, recording how it went; rethrows its failure. */
  track<T>(fn: () => T): T {
    let result: T;
    try {
      result = fn();
    } catch (err) {
      this.failed(err);
      throw err;
    }
    this.succeeded();
    return result;
  }

  /** `track` for a write that settles later (the decision log's writer thread): recorded once it settles. */
  async trackAsync<T>(fn: () => Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await fn();
    } catch (err) {
      this.failed(err);
      throw err;
    }
    this.succeeded();
    return result;
  }

  #reasonFor(code: string): string {
    // SQLite reports a write refused by a file system turned read-only (ext4 errors=remount-ro) as a plain I/O
    // error. access(2) cannot tell (ext4's emergency read-only state is not the mount's flag); creating a file can.
    const mayBeReadOnly = code === "SQLITE_IOERR" || code === "SQLITE_CANTOPEN" || code === "SQLITE_READONLY";
    if (mayBeReadOnly && this.#dir !== undefined && readOnlyFileSystem(this.#dir)) {
      return READ_ONLY_FILE_SYSTEM;
    }
    return UNAVAILABLE.get(code) ?? "the database cannot be written";
  }
}

/** The reason given when the file system holding a database is read-only. */
export const READ_ONLY_FILE_SYSTEM = "the file system is read-only";

/** Whether creating an empty file in `dir` fails with EROFS (the file is removed at once when it does not). */
function readOnlyFileSystem(dir: string): boolean {
  const file = join(dir, `.jitgate-write-check-${randomUUID()}`);
  try {
    closeSync(openSync(file, "wx", 0o600));
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EROFS";
  }
  try {
    unlinkSync(file);
  } catch {
    // Best effort: an empty file with this name is harmless.
  }
  return false;
}
