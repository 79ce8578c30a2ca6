// Turns SQLite failures into jitgate's errors at the store's edge: availability problems become Unavailable with
// a fixed message (the SQLite error stays in `cause`, never in front of a client); programming errors propagate.
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

export function isUniqueViolation(err: unknown): boolean {
  return isSqliteError(err) && err.code === "SQLITE_CONSTRAINT_UNIQUE";
}

/** Thrown when SQLite rolled back the whole transaction on its own (SQLITE_FULL, SQLITE_BUSY, ...). */
export function rolledBack(): Unavailable {
  return new Unavailable("store: the transaction was rolled back by the database; retry");
}
