// Human-readable output for the CLI: aligned tables and one-line summaries of wire messages. Ids print through
// displayId, so two different ids never look alike; JSON escapes everything beyond printable ASCII.
import { displayId } from "../access/identities.ts";

type Wire = Record<string, unknown>;
interface WireTime {
  seconds: string | number;
  nanos: number;
}

export function time(t: unknown): string {
  if (!t) return "-";
  const ms = Number((t as WireTime).seconds) * 1000 + Math.floor((t as WireTime).nanos / 1e6);
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

export function seconds(d: unknown): string {
  if (!d) return "-";
  const s = Number((d as WireTime).seconds);
  return s % 3600 === 0 ? `${s / 3600}h` : s % 60 === 0 ? `${s / 60}m` : `${s}s`;
}

export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/** An id (caller, subject, reviewer) as people should see it. */
export const id = (v: unknown): string => displayId(String(v ?? ""));

/**
 * JSON whose text shows nothing invisible or look-alike: every character beyond printable ASCII is a \uXXXX
 * escape. Parsing it gives back the exact values, so scripts see the ids as verified.
 */
export function printableJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(/[^\x20-\x7e\n]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

const list = (v: unknown) => (Array.isArray(v) ? v.join(",") : "");

export function reasons(rs: unknown): string[] {
  return (rs as Wire[]).map((r) => {
    const details = Object.entries((r.details as Record<string, string>) ?? {}).map(([k, v]) => `${k}=${v}`);
    return `  - ${r.message}${details.length ? ` (${details.join(", ")})` : ""} [${r.code}]`;
  });
}

export function requestSummary(r: Wire): string {
  const approvals = (r.approvals as Wire[]).map((a) => `${a.group} ${a.received}/${a.required}`).join(", ");
  const grant = r.grant as Wire | null;
  const lines = [
    `request ${r.id}: ${r.state} (${r.state_reason})`,
    `  ${id((r.requester as Wire).id)} wants ${list(r.actions)} on ${r.resource} for ${seconds(r.granted_duration)} (asked ${seconds(r.requested_duration)})`,
  ];
  if (approvals) lines.push(`  approvals: ${approvals}`);
  if (r.state === "PENDING") lines.push(`  pending until ${time(r.pending_until)}`);
  if (grant) lines.push(`  grant ${grant.id}: ${list(grant.actions)} until ${time(grant.expire_time)}`);
  if (r.break_glass) lines.push(`  break-glass; notifying ${list(r.notify)}`);
  lines.push(...reasons(r.reasons));
  lines.push(`  policy revision ${r.policy_revision}`);
  return lines.join("\n");
}

export function requestsTable(rs: readonly Wire[]): string {
  return table(
    ["ID", "STATE", "REQUESTER", "RESOURCE", "ACTIONS", "DURATION", "CREATED"],
    rs.map((r) => [
      String(r.id),
      String(r.state),
      id((r.requester as Wire).id),
      String(r.resource),
      list(r.actions),
      seconds(r.granted_duration),
      time(r.create_time),
    ]),
  );
}

export function grantsTable(gs: readonly Wire[]): string {
  return table(
    ["ID", "STATUS", "SUBJECT", "RESOURCE", "ACTIONS", "EXPIRES", "REVOKED"],
    gs.map((g) => [
      String(g.id),
      String(g.status).replace("GRANT_STATUS_", ""),
      id(g.subject),
      String(g.resource),
      list(g.actions),
      time(g.expire_time),
      g.revoke_time ? `${time(g.revoke_time)} by ${id(g.revoked_by)}` : "-",
    ]),
  );
}

export function grantEventLine(e: Wire): string {
  const g = e.grant as Wire;
  return `${time(e.time)}  #${e.seq}  ${String(e.kind).replace("GRANT_EVENT_KIND_", "")}  ${g.id}  ${id(g.subject)}  ${g.resource}  ${list(g.actions)}`;
}
