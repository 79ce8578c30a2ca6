// Which store an offline audit command reads, from its flags, and reading it read-only in one snapshot: the
// SQLite file (or a backup copy of it) or a PostgreSQL database. Shared by src/cli/audit-commands.ts and
// src/cli/audit-queries.ts.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type Database from "better-sqlite3";
import { DEFAULTS, parseStore } from "../config.ts";
import { InvalidArgument } from "../errors.ts";
import { withPgAuditSnapshot } from "../store/postgres/audit-snapshot.ts";
import { storeLocation } from "../store/postgres/errors.ts";
import type { SnapshotQuery } from "../store/postgres/transactions.ts";
import { SCHEMA_VERSION } from "../store/migrations.ts";
import { withReadOnlyDatabase } from "../store/read-only.ts";
import { STORE_FILE } from "../store/sqlite.ts";
import { EXIT } from "./exit.ts";

export interface DatabaseFlags {
  db?: string;
  dataDir?: string;
  store?: string;
}

/** The store an offline command reads: a SQLite file, or a PostgreSQL database (`location` is its URL without secrets). */
export type AuditStore =
  | { readonly kind: "sqlite"; readonly file: string; readonly location: string }
  | { readonly kind: "postgres"; readonly url: string; readonly location: string };

export const DATA_DIR_HELP = `the server's data directory (env JITGATE_DATA_DIR, default ${DEFAULTS.dataDir})`;
export const STORE_HELP = `sqlite (the --db file) or a postgres:// URL, as the server's --store (env JITGATE_STORE, default ${DEFAULTS.store})`;

export function dataDirOf(o: DatabaseFlags): string {
  return resolve(o.dataDir ?? process.env.JITGATE_DATA_DIR ?? DEFAULTS.dataDir);
}

/** The store file the flags name; exits with a usage error when there is none. */
export function databaseFile(o: DatabaseFlags): string {
  const file = o.db !== undefined ? resolve(o.db) : join(dataDirOf(o), STORE_FILE);
  if (!existsSync(file)) {
    process.stderr.write(`jitgate: no database at ${file} (give --db FILE or --data-dir DIR)\n`);
    process.exit(EXIT.usage);
  }
  return file;
}

/**
 * The store the flags name: --store, else JITGATE_STORE, else sqlite, read as `jitgate serve` reads them (the feed
 * bound means nothing here); but --db names a SQLite file, so given without --store it beats the environment (an
 * auditor's copy of a backup). SQLite's file must exist (else a usage error and exit, before anything is created).
 */
export function auditStore(o: DatabaseFlags): AuditStore {
  const flags = { store: o.store ?? (o.db === undefined ? undefined : "sqlite"), feedBound: DEFAULTS.feedBound };
  const store = parseStore(flags, process.env);
  if (store.kind === "postgres") {
    if (o.db !== undefined) throw new InvalidArgument("--db", "names a SQLite file; it cannot be read with --store postgres://");
    return { kind: "postgres", url: store.url, location: storeLocation(store.url) };
  }
  const file = databaseFile(o);
  return { kind: "sqlite", file, location: file };
}

/**
 * Reads `store` read-only in one snapshot: `sqlite` on the file opened read-only (schema at least `sqliteVersion`),
 * `postgres` in one REPEATABLE READ READ ONLY transaction. `what` names the feature, for a too-old schema.
 */
export async function readAuditStore<T>(
  store: AuditStore,
  need: { readonly what: string; readonly sqliteVersion: number },
  sqlite: (db: Database.Database) => T,
  postgres: (query: SnapshotQuery) => Promise<T>,
): Promise<T> {
  if (store.kind === "sqlite") return withReadOnlyDatabase(store.file, { min: need.sqliteVersion, max: SCHEMA_VERSION }, need.what, sqlite);
  return withPgAuditSnapshot(store.url, { what: need.what }, postgres);
}
