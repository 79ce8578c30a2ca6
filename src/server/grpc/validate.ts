// Validation at the edge: each jit.v1 request message becomes the domain's typed input, or an
// InvalidArgument that names the field as the .proto names it and says what is expected.
import type { Question } from "../../access/access.ts";
import { REQUEST_STATES, type RequestState, type ReviewDecision } from "../../access/model.ts";
import type { Page } from "../../access/ports.ts";
import type { RequestAccessInput } from "../../access/request.ts";
import type { ReviewInput } from "../../access/review.ts";
import { InvalidArgument } from "../../errors.ts";
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
  if (value === "" || NAME.test(value)) return value;
  const chars = Array.from(value);
  const at = chars.findIndex((c) => !NAME.test(c));
  // Echoed only when it is plain printable ASCII: anything else could act on the terminal that shows the error.
  const shown = /^[\x20-\x7e]*$/.test(value) ? `'${value}' has` : "has";
  throw new InvalidArgument(
    field,
    `${shown} a character other than letters, digits and . / : @ + - _ (${codePoint(chars[at] ?? "")} at character ${at + 1})`,
  );
}

/**
 * The free-text fields, named as in the .proto, and what each may hold. None may hold a control character
 * (Unicode Cc), a bidirectional control or other invisible format character (Cf), a line or paragraph
 * separator (U+2028, U+2029) or a lone surrogate: people read these fields in terminals, the console and the
 * audit trail, where such characters clear the screen, move the cursor, hide text or show it in another order
 * than it was written. A multi-line field keeps the newline (U+000A) alone: no carriage return (on a terminal it
 * lets a line overwrite itself) and no tab (it misaligns every table the text appears in; spaces do not).
 * Zero-width joiners stay where writing needs them: ZWJ or ZWNJ between two letters (Persian, Indic scripts),
 * ZWJ between two emoji (the technologist, a family).
 */
export const FREE_TEXT = {
  // RequestAccessRequest: the why is prose and may run to several lines; a ticket is a reference.
  justification: { max: MAX_TEXT, multiline: true },
  ticket: { max: MAX_ID, multiline: false },
  client_request_id: { max: 128, multiline: false },
  // ReviewAccessRequestRequest
  comment: { max: MAX_TEXT, multiline: true },
  // CancelAccessRequestRequest, RevokeGrantRequest, RevokeSubjectRequest: one line of the audit trail.
  reason: { max: MAX_TEXT, multiline: false },
  // CheckRequest: each key and value of the policy's attributes.
  context: { max: MAX_ID, multiline: false },
} as const satisfies Record<string, { max: number; multiline: boolean }>;

export type FreeTextField = keyof typeof FREE_TEXT;

/** A free-text field of `msg` by its rule in FREE_TEXT, or an InvalidArgument saying what is where, and how to fix it. */
export function freeText(msg: Wire, field: FreeTextField): string {
  const rule = FREE_TEXT[field];
  const value = text(msg, field, { max: rule.max });
  const problem = freeTextProblem(value, rule.multiline);
  if (problem !== undefined) throw new InvalidArgument(field, problem);
  return value;
}

// Every character that may be refused; text without one (nearly all of it) costs one scan.
const SUSPECT = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
const LETTER_OR_MARK = /[\p{L}\p{M}]/u;
const LETTER = /\p{L}/u;
const EMOJI = /\p{Extended_Pictographic}/u;
const ZWNJ = "\u200C";
const ZWJ = "\u200D";

/** The bidirectional formatting characters (UAX #9), by their Unicode names. */
const BIDI: ReadonlyMap<number, string> = new Map([
  [0x061c, "ARABIC LETTER MARK"],
  [0x200e, "LEFT-TO-RIGHT MARK"],
  [0x200f, "RIGHT-TO-LEFT MARK"],
  [0x202a, "LEFT-TO-RIGHT EMBEDDING"],
  [0x202b, "RIGHT-TO-LEFT EMBEDDING"],
  [0x202c, "POP DIRECTIONAL FORMATTING"],
  [0x202d, "LEFT-TO-RIGHT OVERRIDE"],
  [0x202e, "RIGHT-TO-LEFT OVERRIDE"],
  [0x2066, "LEFT-TO-RIGHT ISOLATE"],
  [0x2067, "RIGHT-TO-LEFT ISOLATE"],
  [0x2068, "FIRST STRONG ISOLATE"],
  [0x2069, "POP DIRECTIONAL ISOLATE"],
]);
/** Names of the other refused characters people most often meet (pasted text, terminal escapes). */
const NAMES: ReadonlyMap<number, string> = new Map([
  [0x00, "NULL"],
  [0x1b, "ESCAPE"],
  [0x7f, "DELETE"],
  [0x85, "NEXT LINE"],
  [0x9b, "CONTROL SEQUENCE INTRODUCER"],
  [0xad, "SOFT HYPHEN"],
  [0x200b, "ZERO WIDTH SPACE"],
  [0x200c, "ZERO WIDTH NON-JOINER"],
  [0x200d, "ZERO WIDTH JOINER"],
  [0x2028, "LINE SEPARATOR"],
  [0x2029, "PARAGRAPH SEPARATOR"],
  [0x2060, "WORD JOINER"],
  [0xfeff, "ZERO WIDTH NO-BREAK SPACE"],
]);

/** Why `value` cannot be stored as free text, or undefined when it can. Names characters, never echoes them. */
function freeTextProblem(value: string, multiline: boolean): string | undefined {
  if (!SUSPECT.test(value)) return undefined;
  const chars = Array.from(value);
  let line = 1;
  let column = 0;
  for (const [i, c] of chars.entries()) {
    column++;
    if (c === "\n" && multiline) {
      line++;
      column = 0;
      continue;
    }
    if (!SUSPECT.test(c) || joinsWriting(chars, i)) continue;
    return refusal(c, `character ${i + 1}${line > 1 ? ` (line ${line}, column ${column})` : ""}`, multiline);
  }
  return undefined;
}

/** A joiner between two letters, or a ZWJ between two emoji (the first may carry a variation or skin tone). */
function joinsWriting(chars: readonly string[], i: number): boolean {
  const c = chars[i];
  if (c !== ZWJ && c !== ZWNJ) return false;
  const before = chars[i - 1] ?? "";
  const after = chars[i + 1] ?? "";
  if (LETTER_OR_MARK.test(before) && LETTER.test(after)) return true;
  // VARIATION SELECTOR-16 (emoji presentation) or a skin tone between the emoji and the joiner.
  const modifier = before.codePointAt(0) ?? 0;
  const base = modifier === 0xfe0f || (modifier >= 0x1f3fb && modifier <= 0x1f3ff) ? (chars[i - 2] ?? "") : before;
  return c === ZWJ && EMOJI.test(base) && EMOJI.test(after);
}

function refusal(c: string, at: string, multiline: boolean): string {
  const cp = c.codePointAt(0) ?? 0;
  const oneLine = "this field is a single line: join the lines";
  if (c === "\n") return `holds a line break (U+000A) at ${at}; ${oneLine}`;
  if (c === "\r") return `holds a carriage return (U+000D) at ${at}; ${multiline ? "end lines with a newline (U+000A) alone" : oneLine}`;
  if (c === "\t") return `holds a tab (U+0009) at ${at}; use spaces instead`;
  if (cp >= 0xd800 && cp <= 0xdfff) return `holds a lone surrogate ${codePoint(c)} at ${at}, which is not text; send well-formed UTF-8`;
  const bidi = BIDI.get(cp);
  if (bidi !== undefined)
    return `holds the bidirectional control ${codePoint(c)} (${bidi}) at ${at}, which shows text in another order than it was written; remove it (right-to-left text displays correctly without it)`;
  const named = NAMES.has(cp) ? `${codePoint(c)} (${NAMES.get(cp)})` : codePoint(c);
  if (cp === 0x2028 || cp === 0x2029) return `holds the ${named} at ${at}; ${multiline ? "break lines with a newline (U+000A)" : oneLine}`;
  if (/\p{Cc}/u.test(c))
    return `holds the control character ${named} at ${at}, which terminals act on (clearing the screen, moving the cursor); remove it`;
  return `holds the invisible format character ${named} at ${at}; remove it`;
}

function codePoint(c: string): string {
  return `U+${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`;
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
    justification: freeText(msg, "justification"),
    ticket: freeText(msg, "ticket"),
    emergency: msg.emergency === true,
    clientKey: freeText(msg, "client_request_id"),
    wait: msg.wait === true,
  };
}

export function reviewInput(msg: Wire): ReviewInput {
  const decisions: Record<string, ReviewDecision> = { REVIEW_DECISION_APPROVE: "approve", REVIEW_DECISION_DENY: "deny" };
  const decision = decisions[String(msg.decision)];
  if (!decision) throw new InvalidArgument("decision", "must be REVIEW_DECISION_APPROVE or REVIEW_DECISION_DENY");
  return { requestId: name(msg, "id"), decision, comment: freeText(msg, "comment") };
}

/** A CheckRequest as the domain's question: about `subject` (with `subject_groups`) or about `token`'s holder. */
export function question(msg: Wire): Question {
  const context = msg.context as Record<string, unknown>;
  if (typeof context !== "object" || context === null) throw new InvalidArgument("context", "must be a map of strings");
  const entries = Object.entries(context);
  if (entries.length > 64) throw new InvalidArgument("context", "has more than 64 entries");
  const { max, multiline } = FREE_TEXT.context;
  for (const [k, v] of entries) {
    // The key is checked first: it names the field of any later error about its value.
    const keyProblem = k.length > max ? `is longer than ${max} characters` : freeTextProblem(k, multiline);
    if (keyProblem !== undefined) throw new InvalidArgument("context", `a key ${keyProblem}`);
    if (typeof v !== "string" || v.length > max)
      throw new InvalidArgument(`context[${k}]`, `must be a string of at most ${max} characters`);
    const problem = freeTextProblem(v, multiline);
    if (problem !== undefined) throw new InvalidArgument(`context[${k}]`, problem);
  }
  const token = text(msg, "token", { max: 16_384 });
  const common = { resource: name(msg, "resource"), action: name(msg, "action"), context: context as Record<string, string> };
  if (token !== "") {
    if (msg.subject) throw new InvalidArgument("subject", "give a subject or a token, not both");
    return { ...common, token };
  }
  if (!msg.subject) throw new InvalidArgument("subject", "is required (or pass token)");
  return { ...common, subject: { id: name(msg, "subject"), groups: names(msg, "subject_groups", { required: false, max: 256 }) } };
}

export function page(msg: Wire): Page {
  const size = Number(msg.page_size ?? 0);
  if (!Number.isInteger(size) || size < 0 || size > 500) throw new InvalidArgument("page_size", "must be between 1 and 500 (0 means 50)");
  const token = text(msg, "page_token", { max: 1024 });
  // Our tokens are base64url; the decoder would skip anything else, so refuse it here.
  if (!/^[\w-]*$/.test(token)) throw new InvalidArgument("page_token", "is not a token from a previous page");
  return { size: size === 0 ? 50 : size, token };
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

// The handlers' names for these: `optionalText` is a free-text field (the reasons) by its rule in FREE_TEXT.
export { name as requiredName, freeText as optionalText };
