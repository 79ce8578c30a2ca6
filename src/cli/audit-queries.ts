// `jitgate audit who-had | history | export`: auditors' questions answered offline from a store file opened
// read-only, so a backup copy in a read-only folder can be queried months later without a server, or from one
// read-only snapshot of a PostgreSQL store.
import { once } from "node:events";
import { closeSync, fsyncSync, openSync, unlinkSync, writeSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { DEFAULTS } from "../config.ts";
import { InvalidArgument } from "../errors.ts";
import {
  exportAudit,
  history,
  whoHad,
  AUDIT_QUERIES_MIN_VERSION,
  type AuditRecord,
  type ExportedAuditRecord,
  type WhoHadRow,
} from "../store/audit-queries.ts";
import * as pg from "../store/postgres/audit-queries.ts";
import { STORE_FILE } from "../store/sqlite.ts";
import { auditStore, readAuditStore, STORE_HELP, type DatabaseFlags } from "./audit-store.ts";
import { EXIT } from "./exit.ts";
import { id, printableJson, table } from "./format.ts";
import { parseTime, TIME_FORMS } from "./time.ts";

type StoreFlags = DatabaseFlags;
interface WhoHadFlags extends StoreFlags {
  resource: string;
  at: string;
  json?: boolean;
}
interface HistoryFlags extends StoreFlags {
  subject: string;
  since?: string;
  until?: string;
  limit: string;
  json?: boolean;
}
interface ExportFlags extends StoreFlags {
  since?: string;
  until?: string;
  afterSeq?: string;
  out?: string;
}

const HISTORY_LIMIT = "1000";

function parseCount(option: string, text: string, min: number): number {
  const n = /^\d{1,15}$/.test(text) ? Number(text) : NaN;
  if (!(n >= min)) throw new InvalidArgument(option, `${JSON.stringify(text)} is not a whole number${min > 0 ? " above 0" : ""}`);
  return n;
}

const QUERIES = { what: "the audit queries", sqliteVersion: AUDIT_QUERIES_MIN_VERSION } as const;

function storeOptions(command: Command): Command {
  return command
    .option("--db <file>", `the database file, or a backup copy of it (default <data-dir>/${STORE_FILE})`)
    .option("--data-dir <dir>", `the server's data directory (env JITGATE_DATA_DIR, default ${DEFAULTS.dataDir})`)
    .option("--store <store>", STORE_HELP);
}

/** `jitgate audit export | head` closes the pipe early: that is the reader's choice, not an error. */
function endQuietlyOnClosedPipe(): void {
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
    process.exit(EXIT.ok);
  });
}

const iso = (ms: number): string => new Date(ms).toISOString().replace(".000Z", "Z");
// Justifications and reasons are typed by requesters: never let them move an auditor's cursor, clear the screen or
// reorder what is shown (bidi controls, Cf).
const printable = (text: string): string => text.replace(/[\p{Cc}\p{Cf}]/gu, " ");
const jsonLines = (records: readonly object[]): string => records.map((r) => `${printableJson(r)}\n`).join("");

function whoHadTable(rows: readonly WhoHadRow[]): string {
  return table(
    ["SUBJECT", "GRANT", "ACTIONS", "CREATED", "EXPIRES", "REVOKED", "APPROVED BY", "REQUEST", "TICKET", "JUSTIFICATION"],
    rows.map((g) =>
      [
        id(g.subject),
        g.break_glass ? `${g.grant_id} (break-glass)` : g.grant_id,
        g.actions.join(","),
        iso(g.created_at),
        iso(g.expires_at),
        g.revoked_at === null ? "-" : `${iso(g.revoked_at)} by ${g.revoked_by === null ? "?" : id(g.revoked_by)}`,
        g.approved_by.map(id).join(", "),
        g.request_id,
        g.ticket,
        g.justification,
      ].map(printable),
    ),
  );
}

function historyTable(records: readonly AuditRecord[]): string {
  return table(
    ["SEQ", "TIME", "KIND", "ACTOR", "SUBJECT", "RESOURCE", "REQUEST", "GRANT", "REASON"],
    records.map((r) =>
      [`#${r.seq}`, iso(r.at), r.kind, id(r.actor), id(r.subject), r.resource, r.request_id ?? "-", r.grant_id ?? "-", r.reason].map(
        printable,
      ),
    ),
  );
}

async function whoHadAction(o: WhoHadFlags): Promise<void> {
  endQuietlyOnClosedPipe();
  const at = parseTime("--at", o.at, Date.now());
  const rows = await readAuditStore(
    auditStore(o),
    QUERIES,
    (db) => whoHad(db, o.resource, at),
    (query) => pg.whoHad(query, o.resource, at),
  );
  if (o.json) return void process.stdout.write(jsonLines(rows));
  const subjects = new Set(rows.map((r) => r.subject)).size;
  const heading = `${o.resource} at ${iso(at)}: ${subjects} subject(s) held ${rows.length} grant(s)`;
  process.stdout.write(rows.length === 0 ? `${heading}\n` : `${heading}\n${whoHadTable(rows)}\n`);
}

async function historyAction(o: HistoryFlags): Promise<void> {
  endQuietlyOnClosedPipe();
  const now = Date.now();
  const limit = parseCount("--limit", o.limit, 1);
  const since = o.since === undefined ? undefined : parseTime("--since", o.since, now);
  const until = o.until === undefined ? undefined : parseTime("--until", o.until, now);
  const filter = { since, until, limit };
  const records = await readAuditStore(
    auditStore(o),
    QUERIES,
    (db) => history(db, o.subject, filter),
    (query) => pg.history(query, o.subject, filter),
  );
  if (o.json) process.stdout.write(jsonLines(records));
  else process.stdout.write(records.length === 0 ? `no audit entries by or about ${o.subject}\n` : `${historyTable(records)}\n`);
  if (records.length === limit)
    process.stderr.write(`jitgate: showing the first ${limit} entries; narrow with --since/--until, raise --limit, or use audit export\n`);
}

const EXPORT_CHUNK = 64 * 1024;

/** Export lines, written in chunks of about EXPORT_CHUNK characters; counts what it wrote. */
class ExportSink {
  readonly #write: (text: string) => void;
  #pending = "";
  count = 0;
  last: number | undefined;

  constructor(write: (text: string) => void) {
    this.#write = write;
  }

  /** Adds one record; true when that wrote a chunk. */
  add(record: ExportedAuditRecord): boolean {
    this.#pending += `${printableJson(record)}\n`;
    this.count++;
    this.last = record.seq;
    if (this.#pending.length < EXPORT_CHUNK) return false;
    this.#write(this.#pending);
    this.#pending = "";
    return true;
  }

  end(): void {
    this.#write(this.#pending);
    this.#pending = "";
  }
}

/** Until standard output has taken what it was given: an export read page by page keeps only a page in memory. */
async function stdoutDrained(): Promise<void> {
  if (process.stdout.writableNeedDrain) await once(process.stdout, "drain");
}

async function exportAction(o: ExportFlags): Promise<void> {
  endQuietlyOnClosedPipe();
  const now = Date.now();
  const filter = {
    since: o.since === undefined ? undefined : parseTime("--since", o.since, now),
    until: o.until === undefined ? undefined : parseTime("--until", o.until, now),
    afterSeq: o.afterSeq === undefined ? undefined : parseCount("--after-seq", o.afterSeq, 0),
  };
  // The store first: a missing one exits at once, and must not leave an empty export file behind.
  const store = auditStore(o);
  const out = o.out === undefined ? undefined : createExportFile(resolve(o.out));
  const sink = new ExportSink(out === undefined ? (text) => void process.stdout.write(text) : (text) => void writeSync(out.fd, text));
  const drained = out === undefined ? stdoutDrained : async () => {};
  try {
    await readAuditStore(
      store,
      QUERIES,
      (db) => {
        for (const record of exportAudit(db, filter)) sink.add(record);
        sink.end();
      },
      async (query) => {
        for await (const record of pg.exportAudit(query, filter)) if (sink.add(record)) await drained();
        sink.end();
      },
    );
    if (out !== undefined) {
      fsyncSync(out.fd);
      closeSync(out.fd);
      const next = sink.last ?? filter.afterSeq;
      const resume = next === undefined ? "" : `; next time give --after-seq ${next}`;
      process.stderr.write(`exported ${sink.count} audit entries to ${out.file}${resume}\n`);
    }
  } catch (err) {
    // A half-written export must not pass for a complete one.
    if (out !== undefined) {
      closeSync(out.fd);
      unlinkSync(out.file);
    }
    throw err;
  }
}

/** A new file, 0600 (the trail names who had access to what); never an existing one. */
function createExportFile(file: string): { file: string; fd: number } {
  try {
    return { file, fd: openSync(file, "wx", 0o600) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") throw new InvalidArgument("--out", `${file} already exists; give a new file name`, { cause: err });
    throw new InvalidArgument("--out", `cannot create ${file} (${code ?? String(err)})`, { cause: err });
  }
}

/** Adds the auditors' queries to `jitgate audit`. */
export function registerAuditQueries(audit: Command): void {
  storeOptions(
    audit
      .command("who-had")
      .description("every subject with a grant on a resource at a time: the grant, why it was asked for, who approved it")
      .addHelpText(
        "after",
        "\nOnly grants are listed: access that policy gives a subject standingly, without a request, leaves no grant\n" +
          "and is not here. A grant counts from its creation up to, not including, its expiry or revocation.",
      )
      .requiredOption("--resource <name>", "the resource, exactly as requested")
      .option("--at <time>", `when: ${TIME_FORMS}`, "now")
      .option("--json", "one JSON object per grant per line (times in ms since the epoch)"),
  ).action(whoHadAction);
  storeOptions(
    audit
      .command("history")
      .description("audit entries about a subject or done by them (as requester, reviewer, revoker), oldest first")
      .requiredOption("--subject <id>", "the subject or actor id")
      .option("--since <time>", `entries at or after this time: ${TIME_FORMS}`)
      .option("--until <time>", "entries before this time (same forms)")
      .option("--limit <n>", "at most this many entries", HISTORY_LIMIT)
      .option("--json", "one JSON object per entry per line (times in ms since the epoch)"),
  ).action(historyAction);
  storeOptions(
    audit
      .command("export")
      .description("the audit trail as JSON lines in seq order, with prev_hash and hash to check against the chain")
      .option("--since <time>", `entries at or after this time: ${TIME_FORMS}`)
      .option("--until <time>", "entries before this time (same forms)")
      .option("--after-seq <n>", "entries after this seq (where a previous export stopped)")
      .option("--out <file>", "write to this new file (0600; never overwrites) instead of standard output"),
  ).action(exportAction);
}
