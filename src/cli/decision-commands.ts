// `jitgate decisions`: lists access-check decisions from a server's decision log, read-only: the SQLite file opened
// read-only, offline (so it works on a backup copy and never disturbs a running server), or the replicas' shared
// PostgreSQL database in one read-only snapshot (--store postgres://..., every replica's records).
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import type { DecisionRecord } from "../access/model.ts";
import { DEFAULTS, parseStore } from "../config.ts";
import { InvalidArgument } from "../errors.ts";
import { DECISIONS_FILE, MAX_DECISIONS_PER_READ, withDecisionsReadOnly, type DecisionFilter } from "../store/decision-store.ts";
import { withPgDecisionsReadOnly } from "../store/postgres/decision-reads.ts";
import { storeLocation } from "../store/postgres/errors.ts";
import { EXIT } from "./exit.ts";
import { id, printableJson, table } from "./format.ts";
import { parseTime, TIME_FORMS } from "./time.ts";

interface DecisionFlags {
  db?: string;
  dataDir?: string;
  store?: string;
  subject?: string;
  decisionId?: string;
  since?: string;
  until?: string;
  denied?: boolean;
  limit: string;
  json?: boolean;
}

function parseLimit(text: string): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_DECISIONS_PER_READ)
    throw new InvalidArgument("--limit", `'${text}' is not a whole number from 1 to ${MAX_DECISIONS_PER_READ}`);
  return n;
}

function databaseFile(o: DecisionFlags): string {
  if (o.db !== undefined) return resolve(o.db);
  return resolve(o.dataDir ?? process.env.JITGATE_DATA_DIR ?? DEFAULTS.dataDir, DECISIONS_FILE);
}

/** Where the decisions are: --db FILE is SQLite (unless --store says otherwise, a contradiction); else --store (JITGATE_STORE). */
function storeOf(o: DecisionFlags): { kind: "sqlite" } | { kind: "postgres"; url: string } {
  const store = parseStore({ store: o.db !== undefined ? (o.store ?? "sqlite") : o.store }, process.env);
  if (store.kind === "postgres" && o.db !== undefined)
    throw new InvalidArgument("--db", "names a SQLite file; it cannot be given with --store postgres://");
  return store;
}

/** The matching decisions, newest first; exits with a usage error when the store holds no decision log. */
async function readDecisions(o: DecisionFlags, filter: DecisionFilter, limit: number): Promise<DecisionRecord[]> {
  const store = storeOf(o);
  if (store.kind === "postgres") {
    const decisions = await withPgDecisionsReadOnly(store.url, (reads) => reads.list(filter, limit));
    if (decisions === undefined) noDecisionLog(`in ${storeLocation(store.url)} (no jitgate server has written decisions there)`);
    return decisions;
  }
  const file = databaseFile(o);
  if (!existsSync(file)) noDecisionLog(`at ${file} (give --db FILE or --data-dir DIR)`);
  return withDecisionsReadOnly(file, (reads) => reads.list(filter, limit));
}

function noDecisionLog(where: string): never {
  process.stderr.write(`jitgate: no decision log ${where}\n`);
  process.exit(EXIT.usage);
}

function filterOf(o: DecisionFlags, now: number): DecisionFilter {
  return {
    ...(o.subject !== undefined && { subject: o.subject }),
    ...(o.decisionId !== undefined && { decisionId: o.decisionId }),
    ...(o.since !== undefined && { since: parseTime("--since", o.since, now) }),
    ...(o.until !== undefined && { until: parseTime("--until", o.until, now) }),
    ...(o.denied === true && { allow: false }),
  };
}

const latency = (us: number) => (us < 1000 ? `${us}us` : `${(us / 1000).toFixed(1)}ms`);

/** The grant that allowed it, or the first reason the policy gave. */
const why = (d: DecisionRecord) => (d.grantId !== "" ? d.grantId : (d.reasons[0]?.code ?? "-"));

export function decisionsTable(ds: readonly DecisionRecord[]): string {
  return table(
    ["TIME", "RESULT", "SUBJECT", "ACTION", "RESOURCE", "CALLER", "GRANT/REASON", "LATENCY", "DECISION"],
    ds.map((d) => [
      new Date(d.at).toISOString(),
      d.allow ? "ALLOW" : "DENY",
      id(d.subject),
      d.action,
      d.resource,
      id(d.caller),
      why(d),
      latency(d.latencyUs),
      d.decisionId,
    ]),
  );
}

export function registerDecisionCommands(program: Command): void {
  program
    .command("decisions")
    .description("list access-check decisions from the decision log, newest first (read-only)")
    .option(
      "--store <store>",
      `where the server keeps them: sqlite (the decision log file) or the replicas' postgres:// URL (env JITGATE_STORE, default ${DEFAULTS.store})`,
    )
    .option("--db <file>", `the decision log file (default <data-dir>/${DECISIONS_FILE})`)
    .option("--data-dir <dir>", `the server's data directory (env JITGATE_DATA_DIR, default ${DEFAULTS.dataDir})`)
    .option("--subject <id>", "only decisions about this subject")
    .option("--decision-id <id>", "only this decision")
    .option("--since <time>", `only decisions at or after this time: ${TIME_FORMS}`)
    .option("--until <time>", "only decisions before this time")
    .option("--denied", "only denials")
    .option("--limit <n>", `at most this many (up to ${MAX_DECISIONS_PER_READ})`, "100")
    .option("--json", "print one JSON object per line")
    .action(async (o: DecisionFlags) => {
      // Flags are checked before the store, so a typo is reported as such even without a database.
      const filter = filterOf(o, Date.now());
      const limit = parseLimit(o.limit);
      const decisions = await readDecisions(o, filter, limit);
      if (o.json) process.stdout.write(decisions.map((d) => `${printableJson(d)}\n`).join(""));
      else process.stdout.write(decisions.length > 0 ? `${decisionsTable(decisions)}\n` : "no decisions match\n");
    });
}
