// The CLI's client commands: request, review, cancel, requests, grants, revoke, check, watch. Each talks
// gRPC to a jitgate server and prints a table (or JSON with --json).
import { randomUUID } from "node:crypto";
import type { Command } from "commander";
import { InvalidArgument } from "../errors.ts";
import { type ConnectionFlags, JitgateClient } from "./client.ts";
import { EXIT } from "./exit.ts";
import * as fmt from "./format.ts";
import { DEFAULT_RETRY } from "./retry.ts";

type Wire = Record<string, unknown>;
type Flags = ConnectionFlags & { json?: boolean };

export function connectionOptions(cmd: Command): Command {
  return cmd
    .option("--address <host:port>", "jitgate server (env JITGATE_ADDRESS, default 127.0.0.1:7443)")
    .option("--token-file <file>", "caller token (env JITGATE_TOKEN or JITGATE_TOKEN_FILE; default: the file `jitgate login` writes)")
    .option("--ca <file>", "CA certificate of the server, for TLS (env JITGATE_CA)")
    .option("--cert <file>", "client certificate, for mTLS (env JITGATE_CERT)")
    .option("--key <file>", "client private key, for mTLS (env JITGATE_KEY)")
    .option("--timeout <seconds>", "deadline of each call (env JITGATE_TIMEOUT, default 30)")
    .option("--json", "print the answer as JSON");
}

async function withClient<T>(flags: Flags, fn: (c: JitgateClient) => Promise<T>): Promise<T> {
  const client = new JitgateClient(flags);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

function print(flags: Flags, value: unknown, human: () => string): void {
  process.stdout.write(`${flags.json ? fmt.printableJson(value, 2) : human()}\n`);
}
const csv = (v: string | undefined) =>
  v
    ? v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
    : [];

function durationSeconds(text: string): number {
  const m = /^(\d+)(s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new InvalidArgument("--duration", `'${text}' is not a duration such as 1800s, 30m, 8h or 1d`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? "s") as "s"];
}

export function registerAccessCommands(program: Command): void {
  connectionOptions(program.command("request").description("ask for temporary access"))
    .argument("<resource>", "a resource of the policy catalogue, for example db/orders")
    .requiredOption("--actions <list>", "comma-separated actions, for example read,write")
    .requiredOption("--duration <time>", "for how long: 1800s, 30m, 8h, 1d")
    .requiredOption("--justification <text>", "why you need it")
    .option("--ticket <ref>", "ticket reference, for example INC-123", "")
    .option("--emergency", "break-glass access (policy decides who may)")
    .option("--wait", "wait until the request is decided (up to --timeout, default 15 minutes here)")
    .action(async (resource: string, o: Flags & Record<string, string | boolean | undefined>) => {
      const wait = o.wait === true;
      const req = {
        resource,
        actions: csv(o.actions as string),
        duration: { seconds: durationSeconds(o.duration as string), nanos: 0 },
        justification: o.justification,
        ticket: o.ticket,
        emergency: o.emergency === true,
        wait,
        // The idempotency key makes RequestAccess safe to retry after a lost answer.
        client_request_id: randomUUID(),
      };
      const timeoutMs = (Number(o.timeout ?? (wait ? 900 : 30)) || 30) * 1000;
      const r = await withClient(o, (c) => c.call<Wire>("RequestAccess", req, "idempotent", timeoutMs));
      print(o, r, () => fmt.requestSummary(r));
      if (wait && r.state !== "APPROVED") process.exitCode = EXIT.denied;
    });

  connectionOptions(program.command("review").description("approve or deny a pending request"))
    .argument("<request-id>")
    .option("--approve", "approve it")
    .option("--deny", "deny it")
    .option("--comment <text>", "why", "")
    .action(async (id: string, o: Flags & { approve?: boolean; deny?: boolean; comment: string }) => {
      if (o.approve === o.deny) throw new InvalidArgument("--approve/--deny", "give exactly one of them");
      const decision = o.approve ? "REVIEW_DECISION_APPROVE" : "REVIEW_DECISION_DENY";
      const r = await withClient(o, (c) => c.call<Wire>("ReviewAccessRequest", { id, decision, comment: o.comment }, "not-idempotent"));
      print(o, r, () => fmt.requestSummary(r));
    });

  connectionOptions(program.command("cancel").description("withdraw your pending request"))
    .argument("<request-id>")
    .option("--reason <text>", "why", "")
    .action(async (id: string, o: Flags & { reason: string }) => {
      const r = await withClient(o, (c) => c.call<Wire>("CancelAccessRequest", { id, reason: o.reason }, "not-idempotent"));
      print(o, r, () => fmt.requestSummary(r));
    });

  connectionOptions(program.command("requests").description("list access requests, newest first"))
    .argument("[request-id]", "show one request in full")
    .option("--state <state>", "PENDING, APPROVED, DENIED, CANCELLED or EXPIRED")
    .option("--requester <id>")
    .option("--resource <name>")
    .option("--limit <n>", "at most this many", "50")
    .action(async (id: string | undefined, o: Flags & { state?: string; requester?: string; resource?: string; limit: string }) => {
      if (id) {
        const r = await withClient(o, (c) => c.call<Wire>("GetAccessRequest", { id }, "idempotent"));
        print(o, r, () => fmt.requestSummary(r));
        return;
      }
      const req = {
        state: o.state?.toUpperCase() ?? "REQUEST_STATE_UNSPECIFIED",
        requester: o.requester ?? "",
        resource: o.resource ?? "",
        page_size: Number(o.limit),
      };
      const page = await withClient(o, (c) => c.call<{ requests: Wire[] }>("ListAccessRequests", req, "idempotent"));
      print(o, page, () => fmt.requestsTable(page.requests));
    });

  connectionOptions(program.command("grants").description("list grants (active ones unless --all or --as-of)"))
    .option("--subject <id>")
    .option("--resource <name>")
    .option("--all", "also expired and revoked grants")
    .option("--as-of <time>", "grants active at this ISO 8601 time")
    .option("--limit <n>", "at most this many", "50")
    .action(async (o: Flags & { subject?: string; resource?: string; all?: boolean; asOf?: string; limit: string }) => {
      let as_of = null;
      if (o.asOf) {
        const ms = Date.parse(o.asOf);
        if (Number.isNaN(ms)) throw new InvalidArgument("--as-of", `'${o.asOf}' is not an ISO 8601 time such as 2026-11-23T10:00:00Z`);
        as_of = { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
      }
      const req = {
        subject: o.subject ?? "",
        resource: o.resource ?? "",
        include_inactive: o.all === true,
        as_of,
        page_size: Number(o.limit),
      };
      const page = await withClient(o, (c) => c.call<{ grants: Wire[] }>("ListGrants", req, "idempotent"));
      print(o, page, () => fmt.grantsTable(page.grants));
    });

  connectionOptions(program.command("revoke").description("end a grant now, or every grant of a subject (--subject)"))
    .argument("[grant-id]")
    .option("--subject <id>", "revoke every active grant of this subject (admins)")
    .requiredOption("--reason <text>", "why (kept in the audit trail)")
    .action(async (grantId: string | undefined, o: Flags & { subject?: string; reason: string }) => {
      if ((grantId === undefined) === (o.subject === undefined))
        throw new InvalidArgument("grant-id/--subject", "give a grant id or --subject, not both");
      if (o.subject) {
        const res = await withClient(o, (c) =>
          c.call<{ revoked: Wire[] }>("RevokeSubject", { subject: o.subject, reason: o.reason }, "not-idempotent"),
        );
        print(o, res, () => `revoked ${res.revoked.length} grant(s) of ${o.subject}\n${fmt.grantsTable(res.revoked)}`);
        return;
      }
      const g = await withClient(o, (c) => c.call<Wire>("RevokeGrant", { grant_id: grantId, reason: o.reason }, "not-idempotent"));
      print(o, g, () => fmt.grantsTable([g]));
    });

  connectionOptions(program.command("check").description("may a subject do an action on a resource now? exits 0 if allowed, 1 if not"))
    .option("--subject <id>", "the subject to check (or --token)")
    .option("--token <jwt>", "check an access token instead of a subject")
    .option("--groups <list>", "the subject's groups, comma-separated", "")
    .requiredOption("--resource <name>")
    .requiredOption("--action <name>")
    .option("--context <key=value...>", "request context attributes, for example source_ip=10.1.2.3")
    .action(
      async (o: Flags & { subject?: string; token?: string; groups: string; resource: string; action: string; context?: string[] }) => {
        if ((o.subject === undefined) === (o.token === undefined))
          throw new InvalidArgument("--subject/--token", "give exactly one of them");
        const context: Record<string, string> = {};
        for (const kv of o.context ?? []) {
          const at = kv.indexOf("=");
          if (at <= 0) throw new InvalidArgument("--context", `'${kv}' is not key=value`);
          context[kv.slice(0, at)] = kv.slice(at + 1);
        }
        const req = {
          subject: o.subject ?? "",
          token: o.token ?? "",
          subject_groups: csv(o.groups),
          resource: o.resource,
          action: o.action,
          context,
        };
        const d = await withClient(o, (c) => c.call<Wire>("Check", req, "idempotent"));
        print(o, d, () =>
          [
            `${d.allow ? "ALLOW" : "DENY"} ${o.subject ?? "token"} ${o.action} on ${o.resource}${d.grant_id ? ` by grant ${d.grant_id} until ${fmt.time(d.grant_expire_time)}` : d.standing ? " (standing access)" : ""}`,
            ...fmt.reasons(d.reasons),
            `  decision ${d.decision_id}, policy revision ${d.policy_revision}`,
          ].join("\n"),
        );
        process.exitCode = d.allow ? EXIT.ok : EXIT.denied;
      },
    );

  connectionOptions(program.command("watch").description("follow grant events (created, revoked, expired); reconnects and resumes"))
    .option("--subject <id>")
    .option("--resource <name>")
    .option("--after <seq>", "resume after this event number", "0")
    .action((o: Flags & { subject?: string; resource?: string; after: string }) => watch(o));
}

/** Follows WatchGrants, reconnecting with backoff and jitter and resuming after the last event seen. */
async function watch(o: Flags & { subject?: string; resource?: string; after: string }): Promise<void> {
  const client = new JitgateClient(o);
  let after = o.after;
  let failures = 0;
  for (;;) {
    const err = await new Promise<{ code?: number; details?: string } | undefined>((done) => {
      const stream = client.stream("WatchGrants", { subject: o.subject ?? "", resource: o.resource ?? "", after_seq: after });
      stream.on("data", (e: Wire) => {
        failures = 0;
        after = String(e.seq);
        process.stdout.write(`${o.json ? fmt.printableJson(e) : fmt.grantEventLine(e)}\n`);
      });
      stream.on("error", (e: Error & { code?: number; details?: string }) => done(e));
      stream.on("end", () => done(undefined));
    });
    // A server ends a watch only when it shuts down: reconnect then too, as after UNAVAILABLE.
    if (err && err.code !== 14 && err.code !== 8) {
      client.close();
      throw err;
    }
    failures++;
    const cap = Math.min(DEFAULT_RETRY.maxMs * 5, DEFAULT_RETRY.baseMs * 2 ** Math.min(failures, 10));
    process.stderr.write(`jitgate: watch interrupted (${err?.details ?? "server closed the stream"}); resuming after #${after}\n`);
    await new Promise((r) => setTimeout(r, Math.random() * cap));
  }
}
