// Validation at the edge: each jit.v1 request message becomes the domain's typed input, or an
// InvalidArgument that names the field as the .proto names it and says what is expected.
import type { CheckInput } from "../access/check.ts";
import { REQUEST_STATES, type RequestState, type ReviewDecision } from "../access/model.ts";
import type { Page } from "../access/ports.ts";
import type { RequestAccessInput } from "../access/request.ts";
import type { ReviewInput } from "../access/review.ts";
import { InvalidArgument } from "../errors.ts";
import { fromTimestamp, type Timestamp } from "./wire.ts";

const MAX_ID = 256;
const MAX_TEXT = 4_000;
const MAX_DURATION_S = 366 * 24 * 3600;
const NAME = /^[\w./:@+-]+$/;

type Wire = Record<string, unknown>;

function text(msg: Wire, field: string, opts: { required?: boolean; max?: number } = {}): string {
  const value = msg[field];
  if (typeof value !== "string") throw new InvalidArgument(field, "must be a string");
  const max = opts.max ?? MAX_TEXT;
  if (value.length > max) throw new InvalidArgument(field, `is longer than ${max} characters`);
  if (opts.required && value.trim() === "") throw new InvalidArgument(field, "is required");
  return value;
}

function name(msg: Wire, field: string, required = true): string {
  const value = text(msg, field, { required, max: MAX_ID });
  if (value !== "" && !NAME.test(value))
    throw new InvalidArgument(field, `'${value}' has characters other than letters, digits and . / : @ + - _`);
  return value;
}

function names(msg: Wire, field: string, opts: { required: boolean; max: number }): string[] {
  const list = msg[field];
  if (!Array.isArray(list)) throw new InvalidArgument(field, "must be a list");
  if (opts.required && list.length === 0) throw new InvalidArgument(field, "needs at least one entry");
  if (list.length > opts.max) throw new InvalidArgument(field, `has more than ${opts.max} entries`);
  const out: string[] = [];
  for (const [i, v] of list.entries()) {
    if (typeof v !== "string" || v.length === 0 || v.length > MAX_ID || !NAME.test(v)) {
      throw new InvalidArgument(`${field}[${i}]`, `must be a name of letters, digits and . / : @ + - _ (at most ${MAX_ID})`);
    }
    if (out.includes(v)) throw new InvalidArgument(field, `lists '${v}' twice`);
    out.push(v);
  }
  return out;
}

export function requestAccessInput(msg: Wire): RequestAccessInput & { wait: boolean } {
  const d = msg.duration as { seconds?: string | number; nanos?: number } | null;
  if (!d) throw new InvalidArgument("duration", "is required (for example 1800s)");
  const seconds = Number(d.seconds ?? 0);
  if (!Number.isSafeInteger(seconds) || seconds <= 0 || (d.nanos ?? 0) !== 0)
    throw new InvalidArgument("duration", "must be a positive whole number of seconds");
  if (seconds > MAX_DURATION_S) throw new InvalidArgument("duration", `must be at most ${MAX_DURATION_S} seconds`);
  return {
    resource: name(msg, "resource"),
    actions: names(msg, "actions", { required: true, max: 32 }),
    durationS: seconds,
    justification: text(msg, "justification"),
    ticket: text(msg, "ticket", { max: MAX_ID }),
    emergency: msg.emergency === true,
    clientKey: text(msg, "client_request_id", { max: 128 }),
    wait: msg.wait === true,
  };
}

export function reviewInput(msg: Wire): ReviewInput {
  const decisions: Record<string, ReviewDecision> = { REVIEW_DECISION_APPROVE: "approve", REVIEW_DECISION_DENY: "deny" };
  const decision = decisions[String(msg.decision)];
  if (!decision) throw new InvalidArgument("decision", "must be REVIEW_DECISION_APPROVE or REVIEW_DECISION_DENY");
  return { requestId: name(msg, "id"), decision, comment: text(msg, "comment") };
}

export function checkInput(msg: Wire): {
  token: string;
  resource: string;
  action: string;
  context: Record<string, string>;
  subject?: CheckInput["subject"];
} {
  const context = msg.context as Record<string, unknown>;
  if (typeof context !== "object" || context === null) throw new InvalidArgument("context", "must be a map of strings");
  const entries = Object.entries(context);
  if (entries.length > 64) throw new InvalidArgument("context", "has more than 64 entries");
  for (const [k, v] of entries) {
    if (typeof v !== "string" || v.length > MAX_ID)
      throw new InvalidArgument(`context[${k}]`, `must be a string of at most ${MAX_ID} characters`);
  }
  const token = text(msg, "token", { max: 16_384 });
  const common = { token, resource: name(msg, "resource"), action: name(msg, "action"), context: context as Record<string, string> };
  if (token !== "") {
    if (msg.subject) throw new InvalidArgument("subject", "give a subject or a token, not both");
    return common;
  }
  if (!msg.subject) throw new InvalidArgument("subject", "is required (or pass token)");
  return { ...common, subject: { id: name(msg, "subject"), groups: names(msg, "subject_groups", { required: false, max: 256 }) } };
}

export function page(msg: Wire): Page {
  const size = Number(msg.page_size ?? 0);
  if (!Number.isInteger(size) || size < 0 || size > 500) throw new InvalidArgument("page_size", "must be between 1 and 500 (0 means 50)");
  return { size: size === 0 ? 50 : size, token: text(msg, "page_token", { max: 1024 }) };
}

export function requestState(msg: Wire): RequestState | undefined {
  const state = String(msg.state ?? "REQUEST_STATE_UNSPECIFIED");
  if (state === "REQUEST_STATE_UNSPECIFIED") return undefined;
  if (!REQUEST_STATES.includes(state as RequestState))
    throw new InvalidArgument("state", `'${state}' is not one of ${REQUEST_STATES.join(", ")}`);
  return state as RequestState;
}

/** The optional `since` / `until` range of a listing; `until` must come after `since`. */
export function timeRange(msg: Wire): { since?: number; until?: number } {
  const since = fromTimestamp(msg.since as Timestamp | null);
  const until = fromTimestamp(msg.until as Timestamp | null);
  if (since !== undefined && until !== undefined && until <= since) throw new InvalidArgument("until", "must be after since");
  return { ...(since === undefined ? {} : { since }), ...(until === undefined ? {} : { until }) };
}

export function asOf(msg: Wire): number | undefined {
  return fromTimestamp(msg.as_of as Timestamp | null);
}

export function optionalName(msg: Wire, field: string): string | undefined {
  return name(msg, field, false) || undefined;
}

export { name as requiredName, text as optionalText };
