// The free-text rule at the edge: every free-text field of every message refuses control, bidirectional and
// invisible format characters and lone surrogates, naming the field, the character and where it is, never
// echoing it; newlines only where a field is multi-line; ordinary writing in any script passes untouched.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { InvalidArgument } from "../../../src/errors.ts";
import { question, FREE_TEXT, optionalText, page, requestAccessInput, reviewInput } from "../../../src/server/grpc/validate.ts";

type Wire = Record<string, unknown>;

const REQUEST: Wire = {
  resource: "db/orders",
  actions: ["read"],
  duration: { seconds: "600", nanos: 0 },
  justification: "reading stuck orders",
  ticket: "INC-77",
  client_request_id: "",
};
const CHECK: Wire = { subject: "alice", subject_groups: [], resource: "db/orders", action: "read", context: {}, token: "" };

/** Each free-text field as a caller sends it: the field the error must name, and the message's validation. */
const FIELDS: readonly { field: string; multiline: boolean; validate: (text: string) => unknown }[] = [
  { field: "justification", multiline: true, validate: (t) => requestAccessInput({ ...REQUEST, justification: t }) },
  { field: "ticket", multiline: false, validate: (t) => requestAccessInput({ ...REQUEST, ticket: t }) },
  { field: "client_request_id", multiline: false, validate: (t) => requestAccessInput({ ...REQUEST, client_request_id: t }) },
  { field: "comment", multiline: true, validate: (t) => reviewInput({ id: "r-1", decision: "REVIEW_DECISION_APPROVE", comment: t }) },
  // CancelAccessRequest, RevokeGrant and RevokeSubject all read `reason` through this.
  { field: "reason", multiline: false, validate: (t) => optionalText({ reason: t }, "reason") },
  { field: "context[source_ip]", multiline: false, validate: (t) => question({ ...CHECK, context: { source_ip: t } }) },
  { field: "context", multiline: false, validate: (t) => question({ ...CHECK, context: { [t]: "10.1.2.3" } }) },
];

/** The hostile characters, each as sent and as the error must name it. */
const HOSTILE: readonly { what: string; text: string; named: string }[] = [
  { what: "NUL", text: "\u0000", named: "U+0000" },
  { what: "a terminal escape sequence (clear screen)", text: "\u001b[2J", named: "U+001B" },
  { what: "DEL", text: "\u007f", named: "U+007F" },
  { what: "C1 NEXT LINE", text: "\u0085", named: "U+0085" },
  { what: "C1 CONTROL SEQUENCE INTRODUCER", text: "\u009b2J", named: "U+009B" },
  { what: "a carriage return", text: "\r", named: "U+000D" },
  { what: "a tab", text: "\t", named: "U+0009" },
  { what: "RIGHT-TO-LEFT OVERRIDE", text: "\u202e", named: "U+202E" },
  { what: "LEFT-TO-RIGHT ISOLATE", text: "\u2066", named: "U+2066" },
  { what: "POP DIRECTIONAL ISOLATE", text: "\u2069", named: "U+2069" },
  { what: "ARABIC LETTER MARK", text: "\u061c", named: "U+061C" },
  { what: "RIGHT-TO-LEFT MARK", text: "\u200f", named: "U+200F" },
  { what: "ZERO WIDTH SPACE", text: "\u200b", named: "U+200B" },
  { what: "WORD JOINER", text: "\u2060", named: "U+2060" },
  { what: "a byte order mark", text: "\ufeff", named: "U+FEFF" },
  { what: "LINE SEPARATOR", text: "\u2028", named: "U+2028" },
  { what: "a tag character (invisible ASCII smuggling)", text: "\u{e0041}", named: "U+E0041" },
  { what: "a lone high surrogate", text: "\ud800", named: "U+D800" },
  { what: "a lone low surrogate", text: "\udc00", named: "U+DC00" },
];

/** The InvalidArgument that `fn` throws. */
function refusal(fn: () => unknown): InvalidArgument {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidArgument) return err;
    throw err;
  }
  assert.fail("accepted");
}

/** The message names the field, the character and its place, and holds no such character itself. */
function assertNamed(err: InvalidArgument, field: string, named: string, at: string): void {
  assert.equal(err.field, field);
  assert.ok(err.message.startsWith(`${field}: `), err.message);
  assert.ok(err.message.includes(named) && err.message.includes(at), err.message);
  assert.ok(!/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u.test(err.message), `the message echoes the character: ${JSON.stringify(err.message)}`);
}

const ORDINARY = [
  "Zoë fixes the café's naïve Ångström export",
  "修复卡住的订单",
  "إصلاح الطلبات العالقة",
  "תיקון הזמנות תקועות",
  "می‌خواهم سفارش‌ها را درست کنم", // Persian: ZERO WIDTH NON-JOINER between letters is part of the spelling
  "अक्‍षर", // Devanagari: ZWJ after a virama
  "on it 👩‍💻 🏳️‍🌈 👍🏽 ❤️‍🔥 🏃‍♂️ 🇩🇪 1️⃣",
  "Привет, Ελλάδα, 한국어, ไทย",
];

describe("free text at the edge", () => {
  for (const { field, multiline, validate } of FIELDS) {
    describe(field, () => {
      for (const { what, text, named } of HOSTILE) {
        test(`${what} is INVALID_ARGUMENT naming ${field}, ${named} and its position`, () => {
          const err = refusal(() => validate(`ordinary ${text} text`));
          assertNamed(err, field, named, "at character 10");
        });
      }

      test(multiline ? "keeps newlines" : "refuses a newline: it is one line", () => {
        const twoLines = "first line\nsecond line";
        if (multiline) assert.doesNotThrow(() => validate(twoLines));
        else
          assertNamed(
            refusal(() => validate(twoLines)),
            field,
            "U+000A",
            "at character 11",
          );
      });

      test("accepts ordinary text in any script, emoji sequences included", () => {
        for (const text of ORDINARY) assert.doesNotThrow(() => validate(text), text);
      });

      test("refuses a joiner that joins no writing: at an edge, between digits, spaces or emoji and text", () => {
        for (const text of ["\u200dINC-7", "INC-7\u200d", "INC-1\u200d23", "fix \u200c it", "👩\u200d and", "a\u200d\u200db"]) {
          assertNamed(
            refusal(() => validate(text)),
            field,
            "U+200",
            "at character",
          );
        }
      });
    });
  }

  test("a multi-line field says on which line the character is", () => {
    const err = refusal(() => reviewInput({ id: "r-1", decision: "REVIEW_DECISION_DENY", comment: "first\nsec\u202eond" }));
    assert.match(
      err.message,
      /^comment: holds the bidirectional control U\+202E \(RIGHT-TO-LEFT OVERRIDE\) at character 10 \(line 2, column 4\)/,
    );
    assert.match(err.message, /remove it/);
  });

  test("each kind of character is explained with its fix", () => {
    const justification = (t: string) => refusal(() => requestAccessInput({ ...REQUEST, justification: t })).message;
    assert.match(justification("\u001b[2J"), /control character U\+001B \(ESCAPE\) at character 1, which terminals act on.*; remove it$/);
    assert.match(justification("a\r\nb"), /carriage return \(U\+000D\) at character 2; end lines with a newline \(U\+000A\) alone$/);
    assert.match(justification("a\tb"), /tab \(U\+0009\) at character 2; use spaces instead$/);
    assert.match(justification("a\u200bb"), /invisible format character U\+200B \(ZERO WIDTH SPACE\) at character 2; remove it$/);
    assert.match(justification("a\ud800"), /lone surrogate U\+D800 at character 2, which is not text; send well-formed UTF-8$/);
    assert.match(
      refusal(() => requestAccessInput({ ...REQUEST, ticket: "INC-7\n" })).message,
      /^ticket: holds a line break \(U\+000A\) at character 6; this field is a single line: join the lines$/,
    );
  });

  test("every free-text field of the table is covered here", () => {
    const covered = new Set(FIELDS.map((f) => f.field.replace(/\[.*\]$/, "")));
    assert.deepEqual([...covered].sort(), Object.keys(FREE_TEXT).sort());
    for (const f of FIELDS) assert.equal(f.multiline, FREE_TEXT[f.field.replace(/\[.*\]$/, "") as keyof typeof FREE_TEXT].multiline);
  });

  test("wherever a refused character sits in ordinary text, the error finds it there and never echoes it", () => {
    const unit = fc.constantFrom(...ORDINARY, " ", "INC-123", "é", "ß");
    const hostile = fc.constantFrom(...HOSTILE);
    fc.assert(
      fc.property(fc.array(unit, { maxLength: 8 }), fc.array(unit, { maxLength: 8 }), hostile, (head, tail, h) => {
        const before = head.join("");
        const err = refusal(() => requestAccessInput({ ...REQUEST, justification: `${before}${h.text}${tail.join("")}` }));
        assertNamed(err, "justification", h.named, `at character ${[...before].length + 1}`);
      }),
    );
  });
});

describe("identifiers refuse what free text refuses, without echoing it", () => {
  const hostile = ["\u202e", "\u001b[2J", "\u200b", "\u0085", "\ud800"];

  test("a resource name is INVALID_ARGUMENT naming resource and the character", () => {
    for (const c of hostile) {
      const err = refusal(() => requestAccessInput({ ...REQUEST, resource: `db/${c}orders` }));
      assertNamed(err, "resource", "U+", "at character 4");
    }
  });

  test("ids, actions, subjects and groups refuse them too", () => {
    for (const c of hostile) {
      assert.equal(refusal(() => reviewInput({ id: `r-1${c}`, decision: "REVIEW_DECISION_APPROVE", comment: "" })).field, "id");
      assert.equal(refusal(() => requestAccessInput({ ...REQUEST, actions: [`re${c}ad`] })).field, "actions[0]");
      assert.equal(refusal(() => question({ ...CHECK, subject: `al${c}ice` })).field, "subject");
      assert.equal(refusal(() => question({ ...CHECK, subject_groups: [`eng${c}`] })).field, "subject_groups[0]");
    }
  });

  test("a plain ASCII name is still shown back, so the caller sees the typo", () => {
    assert.equal(
      refusal(() => requestAccessInput({ ...REQUEST, resource: "db orders" })).message,
      "resource: 'db orders' has a character other than letters, digits and . / : @ + - _ (U+0020 at character 3)",
    );
  });

  test("a page token is only ever base64url", () => {
    assert.equal(refusal(() => page({ page_size: 10, page_token: "bm90\u001b[2J" })).field, "page_token");
    assert.doesNotThrow(() => page({ page_size: 10, page_token: "WzE3MDAwMDAwMDAwMDAsInItMSJd" }));
  });
});
