// The identity rule (src/access/identities.ts): which caller ids are accepted, when two ids are the same person
// for separation of duties, and how ids are printed. Look-alikes and invisible characters sit next to each
// happy case; the end-to-end consequences for reviews are in separation-of-duties.test.ts.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { callerIdProblem, displayId, MAX_CALLER_ID_LENGTH, samePerson } from "../../src/access/identities.ts";

const hex = (c: string) => (c.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0");
const escaped = (c: string) => `\\u{${hex(c)}}`;

/** Reads displayId's output back: every backslash starts a \u{X} escape, everything else is itself. */
function undisplay(shown: string): string {
  return shown.replace(/\\u\{([0-9A-F]{4,6})\}|\\/g, (m, cp: string | undefined) => {
    if (cp === undefined) assert.fail(`a bare backslash in ${JSON.stringify(shown)}`);
    return String.fromCodePoint(parseInt(cp, 16));
  });
}

/** Characters a reader cannot see (or sees as something else), by class; none may appear in a caller id. */
const INVISIBLE: readonly (readonly [string, string])[] = [
  ["zero width space", "\u200B"],
  ["zero width non-joiner", "\u200C"],
  ["zero width joiner", "\u200D"],
  ["word joiner", "\u2060"],
  ["invisible times", "\u2062"],
  ["soft hyphen", "\u00AD"],
  ["byte order mark", "\uFEFF"],
  ["right-to-left override", "\u202E"],
  ["left-to-right isolate", "\u2066"],
  ["left-to-right mark", "\u200E"],
  ["Arabic letter mark", "\u061C"],
  ["Mongolian vowel separator", "\u180E"],
  ["variation selector 16", "\uFE0F"],
  ["combining grapheme joiner", "\u034F"],
  ["Hangul filler", "\u3164"],
  ["Hangul choseong filler", "\u115F"],
  ["halfwidth Hangul filler", "\uFFA0"],
  ["Khmer vowel inherent", "\u17B4"],
  ["Braille pattern blank", "\u2800"],
  ["interlinear annotation anchor", "\uFFF9"],
  ["tag latin capital letter A", "\u{E0041}"],
  ["private use", "\uE000"],
  ["supplementary private use", "\u{F0000}"],
  ["unassigned", "\u0378"],
  ["noncharacter", "\uFFFF"],
  ["line separator", "\u2028"],
  ["paragraph separator", "\u2029"],
];

/** Spaces other than U+0020. */
const OTHER_SPACES: readonly (readonly [string, string])[] = [
  ["no-break space", "\u00A0"],
  ["ideographic space", "\u3000"],
  ["thin space", "\u2009"],
  ["narrow no-break space", "\u202F"],
  ["ogham space mark", "\u1680"],
  ["em space", "\u2003"],
];

const C0_AND_C1 = [...Array.from({ length: 0x20 }, (_, i) => i), ...Array.from({ length: 0x21 }, (_, i) => 0x7f + i)].map((cp) =>
  String.fromCodePoint(cp),
);

describe("callerIdProblem: ids every identity source accepts", () => {
  test("plain names, emails, SPIFFE IDs, names with single spaces and non-Latin names are accepted", () => {
    const accepted = [
      "alice",
      "svc-orders_01.prod",
      "alice@example.com",
      "spiffe://example.org/ns/prod/sa/orders",
      "CN=orders,OU=prod",
      "O'Brien",
      "Alice Smith",
      "Jean de la Fontaine",
      "山田太郎",
      "Ωmega",
      "José",
      "Jose\u0301",
      "x".repeat(MAX_CALLER_ID_LENGTH),
    ];
    for (const id of accepted) assert.equal(callerIdProblem(id), undefined, JSON.stringify(id));
  });
});

describe("callerIdProblem: ids nobody can be", () => {
  test("an empty id or one that is not text identifies nobody", () => {
    for (const id of ["", undefined, null, 42, ["alice"], { id: "alice" }]) {
      assert.equal(callerIdProblem(id), "is empty or not text", JSON.stringify(id));
    }
  });

  test("every C0 and C1 control character is refused, naming its code point and position", () => {
    for (const c of C0_AND_C1) {
      const problem = callerIdProblem(`ali${c}ce`);
      assert.equal(problem, `holds an invisible, control or format character (U+${hex(c)} at position 3)`, `U+${hex(c)}`);
    }
  });

  test("every invisible, format, bidi, filler, tag, private-use and unassigned character is refused", () => {
    for (const [name, c] of INVISIBLE) {
      const problem = callerIdProblem(`ali${c}ce`);
      assert.equal(problem, `holds an invisible, control or format character (U+${hex(c)} at position 3)`, name);
      assert.equal(callerIdProblem(`alice${c}`), `holds an invisible, control or format character (U+${hex(c)} at position 5)`, name);
    }
  });

  test("a lone surrogate is refused as text that is not well-formed", () => {
    assert.equal(callerIdProblem("ali\uD800ce"), "is not well-formed text (a lone surrogate)");
    assert.equal(callerIdProblem("alice\uDC00"), "is not well-formed text (a lone surrogate)");
  });

  test("spaces other than U+0020 are refused, even between words", () => {
    for (const [name, c] of OTHER_SPACES) {
      assert.equal(callerIdProblem(`ali${c}ce`), `holds whitespace other than a single space (U+${hex(c)} at position 3)`, name);
    }
  });

  test("surrounding spaces and two spaces in a row are refused", () => {
    assert.equal(callerIdProblem(" alice"), "has surrounding whitespace");
    assert.equal(callerIdProblem("alice "), "has surrounding whitespace");
    assert.equal(callerIdProblem("\u3000alice"), "has surrounding whitespace");
    assert.equal(callerIdProblem("Alice  Smith"), "holds two spaces in a row");
  });

  test("an id that starts with a combining mark is refused", () => {
    assert.equal(callerIdProblem("\u0301alice"), "starts with a combining mark");
    assert.equal(callerIdProblem("\u20DDalice"), "starts with a combining mark");
  });

  test("an id longer than 1024 characters is refused", () => {
    assert.equal(callerIdProblem("x".repeat(MAX_CALLER_ID_LENGTH + 1)), `is longer than ${MAX_CALLER_ID_LENGTH} characters`);
  });

  test("the reason never repeats the id it refuses", () => {
    for (const id of ["mallory\u200B", " mallory", "mall  ory", "mallory\u00A0x", "\u0301mallory", `mallory${"y".repeat(1100)}`]) {
      const problem = callerIdProblem(id);
      assert.ok(problem !== undefined && !problem.includes("mallory"), JSON.stringify(problem));
    }
  });
});

describe("samePerson: ids a reader would take for the same person", () => {
  const same: readonly (readonly [string, string, string])[] = [
    ["alice", "alice", "the same id"],
    ["alice", "ALICE", "upper case"],
    ["alice", "Alice", "title case"],
    ["alice", "aLiCe", "mixed case"],
    ["alice", "ａｌｉｃｅ", "fullwidth letters"],
    ["alice", "𝐚𝐥𝐢𝐜𝐞", "mathematical bold"],
    ["alice", "𝗔𝗟𝗜𝗖𝗘", "mathematical sans-serif bold capitals"],
    ["fiona", "ﬁona", "the fi ligature"],
    ["kate", "\u212Aate", "the Kelvin sign for K"],
    ["alice", "alic\u00E9", "a precomposed accent"],
    ["alice", "alice\u0301", "a combining accent"],
    ["alic\u00E9", "alice\u0301", "precomposed against decomposed"],
    ["alice", "a\u0308l\u0327i\u0303ce", "several combining marks"],
    ["alice", "\u0430lice", "Cyrillic а"],
    ["alice", "alic\u0435", "Cyrillic е"],
    ["bob", "b\u043Eb", "Cyrillic о"],
    ["peter", "\u0440eter", "Cyrillic р"],
    ["carol", "\u0441arol", "Cyrillic с"],
    ["max", "ma\u0445", "Cyrillic х"],
    ["alice", "\u0430l\u0456\u0441\u0435", "four Cyrillic letters at once"],
    ["bob", "b\u03BFb", "Greek ο"],
    ["alice", "\u03B1lice", "Greek α"],
    ["bob", "b0b", "the digit 0 for o"],
    ["carol", "caro1", "the digit 1 for l"],
    ["alice", "aIice", "capital I for l"],
    ["kim", "kirn", "rn for m"],
    ["straße", "strasse", "ß for ss"],
    ["STRASSE", "Straße", "ß for SS"],
    ["Ωmega", "ωmega", "Greek case"],
  ];
  for (const [a, b, how] of same) {
    test(`${how}: ${displayId(a)} and ${displayId(b)} are the same person, either way round`, () => {
      assert.equal(samePerson(a, b), true);
      assert.equal(samePerson(b, a), true);
    });
  }
});

describe("samePerson: clearly different people", () => {
  const different: readonly (readonly [string, string])[] = [
    ["alice", "bob"],
    ["alice", "alicia"],
    ["alice", "alic"],
    ["alice", "malice"],
    ["alice", "alice2"],
    ["alice", "ali ce"],
    ["ann", "anne"],
    ["bob", "rob"],
    ["a-b", "a_b"],
    ["alice@example.com", "alice@example.org"],
    ["山田太郎", "山田次郎"],
    ["Ωmega", "omega"],
  ];
  for (const [a, b] of different) {
    test(`${displayId(a)} and ${displayId(b)} are different people`, () => {
      assert.equal(samePerson(a, b), false);
      assert.equal(samePerson(b, a), false);
    });
  }
});

// Pairs a reader takes for the same person that samePerson misses today: its two keys (fold then skeleton,
// skeleton then fold) disagree for ids that mix an uppercase I (whose prototype is l) with a lowercase i, or an
// uppercase-only homoglyph (Cyrillic М, Т, К, Н, В; Greek Ε, Μ, Τ, Κ, Ν, Χ, Υ, Ζ) with a letter whose
// lowercase has a prototype (m -> rn); and NFKC turns the lunate sigma ϲ into σ before the skeleton sees it.
describe("samePerson: look-alikes it misses", () => {
  const missed: readonly (readonly [string, string, string])[] = [
    ["tom", "\u0422\u041E\u041C", "all-Cyrillic capitals ТОМ for tom"],
    ["mallory", "\u041Callory", "Cyrillic capital М"],
    ["mallory", "\u039Callory", "Greek capital Μ"],
    ["alice", "ALIC\u0395", "Greek capital Ε after a capital I"],
    ["nick", "NIC\u041A", "Cyrillic capital К after a capital I"],
    ["alice", "ALlCE", "lowercase l for the I of ALICE (ASCII only)"],
    ["carol", "\u03F2arol", "Greek lunate sigma ϲ for c"],
  ];
  for (const [a, b, how] of missed) {
    test(`${how}: ${displayId(a)} and ${displayId(b)} are the same person`, () => {
      assert.equal(samePerson(a, b), true);
    });
  }
});

describe("displayId: ids as people see them", () => {
  test("printable ASCII ids with single spaces between words print as they are", () => {
    for (const id of ["alice", "alice@example.com", "spiffe://example.org/ns/prod/sa/orders", "Alice Smith", "O'Brien", "a~b!c{d}"]) {
      assert.equal(displayId(id), id);
    }
    const word = fc.string({
      unit: fc
        .integer({ min: 0x21, max: 0x7e })
        .filter((c) => c !== 0x5c)
        .map((c) => String.fromCharCode(c)),
      minLength: 1,
    });
    fc.assert(
      fc.property(fc.array(word, { minLength: 1, maxLength: 4 }), (words) => {
        const id = words.join(" ");
        assert.equal(displayId(id), id);
      }),
      { numRuns: 300 },
    );
  });

  test("names in other scripts with nothing to confuse print as they are", () => {
    for (const id of ["山田太郎", "José", "Jürgen Müller", "Jörg", "Dvořák", "김민수", "やまだ タロウ"]) assert.equal(displayId(id), id);
  });

  test("an id that mixes scripts prints every non-ASCII character escaped", () => {
    assert.equal(displayId("\u03A9mega"), "\\u{03A9}mega");
    assert.equal(displayId("zo\u0451"), "zo\\u{0451}");
  });

  test("every invisible, control, format and other space character is escaped", () => {
    for (const [name, c] of [...INVISIBLE, ...OTHER_SPACES, ...C0_AND_C1.map((c) => [`U+${hex(c)}`, c] as const)]) {
      assert.equal(displayId(`ali${c}ce`), `ali${escaped(c)}ce`, name);
    }
    assert.equal(displayId("ali\uD800ce"), "ali\\u{D800}ce", "a lone surrogate");
  });

  test("a space shows only between two other characters, one at a time", () => {
    assert.equal(displayId(" alice"), "\\u{0020}alice");
    assert.equal(displayId("alice "), "alice\\u{0020}");
    assert.equal(displayId("Alice  Smith"), "Alice\\u{0020}\\u{0020}Smith");
    assert.equal(displayId("Jürgen Müller"), "Jürgen Müller");
  });

  test("combining marks, compatibility forms and confusable letters are escaped", () => {
    const cases: readonly (readonly [string, string])[] = [
      ["alice\u0301", "alice\\u{0301}"],
      ["ﬁona", "\\u{FB01}ona"],
      ["ａｌｉｃｅ", "\\u{FF41}\\u{FF4C}\\u{FF49}\\u{FF43}\\u{FF45}"],
      ["𝐚lice", "\\u{1D41A}lice"],
      ["\u212Aate", "\\u{212A}ate"],
      ["\u0430lice", "\\u{0430}lice"],
      ["b\u03BFb", "b\\u{03BF}b"],
      ["al\u0131ce", "al\\u{0131}ce"],
    ];
    for (const [id, shown] of cases) assert.equal(displayId(id), shown, JSON.stringify(id));
  });

  test("a backslash is escaped, so an ASCII id spelling an escape never prints like the character it spells", () => {
    assert.equal(displayId("a\\b"), "a\\u{005C}b");
    const spelled = "\\u{0430}lice";
    assert.equal(displayId(spelled), "\\u{005C}u{0430}lice");
    assert.notEqual(displayId(spelled), displayId("\u0430lice"));
  });

  test("look-alikes of one id all print differently, and differently from the id", () => {
    const lookAlikes = [
      "alice",
      "ALICE",
      "ａｌｉｃｅ",
      "𝐚𝐥𝐢𝐜𝐞",
      "alic\u00E9",
      "alice\u0301",
      "\u0430lice",
      "\u03B1lice",
      "al\u0456ce",
      "aIice",
      "ali\u200Bce",
      "alice\u200D",
      "\u202Eecila",
      "alice ",
      " alice",
      "ali ce",
      "ali  ce",
      "ali\u00A0ce",
      "ali\u3000ce",
      "alice\uFE0F",
      "alice\u{E0041}",
      "\\u{0430}lice",
    ];
    const shown = lookAlikes.map(displayId);
    assert.equal(new Set(shown).size, lookAlikes.length, shown.join(" | "));
    // Visible differences print as they are (ASCII is never escaped, so aIice relies on the reader's font).
    const visible = new Set(["alice", "ALICE", "aIice", "ali ce", "alic\u00E9"]);
    for (const [i, id] of lookAlikes.entries()) {
      if (visible.has(id)) assert.equal(shown[i], id);
      else assert.match(shown[i] as string, /\\u\{/, `${JSON.stringify(id)} prints as ${shown[i]}`);
    }
  });

  test("two different ids never print the same: every printed id reads back to exactly the id", () => {
    const tricky = fc.constantFrom(
      " ",
      "\\",
      "u",
      "{",
      "}",
      "0",
      "a",
      "\u0301",
      "\u0430",
      "\u200B",
      "\u00A0",
      "\uD800",
      "\uDC00",
      "é",
      "ﬁ",
    );
    const unit = fc.oneof(fc.string({ unit: "binary", maxLength: 1 }), tricky);
    fc.assert(
      fc.property(fc.array(unit, { maxLength: 24 }), (parts) => {
        const id = parts.join("");
        assert.equal(undisplay(displayId(id)), id);
      }),
      { numRuns: 2000 },
    );
  });

  // confusables.txt lists decomposed forms, so a precomposed letter whose base is confusable (Cyrillic ё is
  // е + diaeresis) has no entry of its own and prints as is, like the Latin letter it copies.
  test("precomposed letters from two scripts that look alike print differently", () => {
    for (const [latin, other] of [
      ["zo\u00EB", "zo\u0451"],
      ["\u00E8ve", "\u0450ve"],
      ["lo\u00EFc", "lo\u0457c"],
      ["\u00F3scar", "\u03CCscar"],
    ]) {
      assert.equal(samePerson(latin as string, other as string), true);
      assert.match(displayId(other as string), /\\u\{/, `${other} prints as ${displayId(other as string)}`);
    }
  });
});
