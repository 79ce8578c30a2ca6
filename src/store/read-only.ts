// Opens a store file read-only for offline tools (audit verify, queries, checkpoints), so an auditor can work on a
// backup copy in a read-only folder without a running server and without changing the file.
import { existsSync, readFileSync } from "node:fs";
import Database from "better-sqlite3";
import { FailedPrecondition, Unavailable } from "../errors.ts";
import { isSqliteError, unavailableReason } from "./sqlite-errors.ts";

/**
 * Runs `fn` on the database at `file` opened read-only, after checking its schema is at least `minVersion`
 * (`what` names the feature that needs it, for the message) and at most `maxVersion` (what this jitgate knows: a
 * newer jitgate's schema may mean something else). Closes the database afterwards.
 */
export function withReadOnlyDatabase<T>(
  file: string,
  versions: { readonly min: number; readonly max: number },
  what: string,
  fn: (db: Database.Database) => T,
): T {
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    db.pragma("user_version", { simple: true });
  } catch (err) {
    db?.close();
    // A read-only connection to a WAL database needs a -shm file beside it, which it cannot create in a read-only
    // directory (an auditor's copy). With no -wal file every committed row is in the main file: read it into memory.
    if (!needsSharedMemory(err) || !existsSync(file) || existsSync(`${file}-wal`)) throw readError(file, err);
    db = new Database(asRollbackJournal(readFileSync(file)), { readonly: true });
  }
  try {
    const version = db.pragma("user_version", { simple: true }) as number;
    if (version < versions.min)
      throw new FailedPrecondition(
        `audit: database ${file} has schema version ${version}, before ${what}; open it with jitgate once to migrate`,
      );
    if (version > versions.max)
      throw new FailedPrecondition(
        `audit: database ${file} has schema version ${version}, newer than this jitgate knows (${versions.max}); upgrade jitgate`,
      );
    return fn(db);
  } finally {
    db.close();
  }
}

function needsSharedMemory(err: unknown): boolean {
  return isSqliteError(err) && (err.code.startsWith("SQLITE_READONLY") || err.code.startsWith("SQLITE_CANTOPEN"));
}

/** The database image with its header's read/write versions (bytes 18, 19) set from WAL (2) to rollback (1). */
function asRollbackJournal(image: Buffer): Buffer {
  image[18] = 1;
  image[19] = 1;
  return image;
}

function readError(file: string, err: unknown): unknown {
  if (err instanceof TypeError) return new Unavailable(`audit: cannot open database ${file}: ${err.message}`, { cause: err });
  const why = unavailableReason(err);
  return why === undefined ? err : new Unavailable(`audit: cannot read database ${file}: ${why}`, { cause: err });
}
