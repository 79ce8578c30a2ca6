// Opening a jitgate SQLite file for writing, the one way both stores do it: created 0600 (so its -wal and -shm
// are too), WAL journal, the given synchronous level and busy timeout, migrated; every failure names the file.
import { closeSync, openSync } from "node:fs";
import Database from "better-sqlite3";
import { FailedPrecondition, JitgateError, Unavailable } from "../errors.ts";
import { type Migration, migrate } from "./migrations.ts";
import { unavailableReason } from "./sqlite-errors.ts";

export interface WalFileOptions {
  /** Names the store in messages ("store", "decision log"). */
  readonly label: string;
  readonly synchronous: "FULL" | "NORMAL";
  readonly busyTimeoutMs: number;
  readonly migrations?: readonly Migration[];
  readonly foreignKeys?: boolean;
}

export function openWalFile(path: string, o: WalFileOptions): Database.Database {
  let db: Database.Database | undefined;
  try {
    if (path !== ":memory:") closeSync(openSync(path, "a", 0o600));
    db = new Database(path, { timeout: o.busyTimeoutMs });
    const mode = db.pragma("journal_mode = WAL", { simple: true });
    if (mode !== "wal" && path !== ":memory:")
      throw new FailedPrecondition(`${o.label}: database ${path} cannot use WAL (journal mode ${String(mode)})`);
    db.pragma(`synchronous = ${o.synchronous}`);
    if (o.foreignKeys) db.pragma("foreign_keys = ON");
    db.pragma(`busy_timeout = ${o.busyTimeoutMs}`);
    if (o.migrations) migrate(db, path, o.migrations);
    else migrate(db, path);
    return db;
  } catch (err) {
    db?.close();
    throw openError(o.label, path, err);
  }
}

/** Names the file in every failure to open it: the operator has to find it. */
function openError(label: string, path: string, err: unknown): unknown {
  if (err instanceof JitgateError && err.message.includes(path)) return err;
  // better-sqlite3 throws a TypeError, not a SqliteError, when the directory is missing.
  const errno = (err as NodeJS.ErrnoException).syscall !== undefined ? (err as Error).message : undefined;
  const why = err instanceof TypeError ? err.message : (errno ?? unavailableReason(err));
  return why === undefined ? err : new Unavailable(`${label}: cannot open database ${path}: ${why}`, { cause: err });
}
