// Separation of duties on the real policy and a real SQLite file: nobody a reader would take for the requester
// reviews, and nobody a reader would take for an earlier reviewer fills a second "distinct approver" slot.
// Explicit look-alike attacks first, then properties over generated look-alikes (case, width, mathematical
// fonts, Cyrillic and Greek homoglyphs, digits, combining marks, normalisation).
import assert from "node:assert/strict";
import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import fc from "fast-check";
import type { Access } from "../../src/access/access.ts";
import { callerIdProblem, displayId, samePerson } from "../../src/access/identities.ts";
import type { AccessRequest, Caller, ReviewDecision } from "../../src/access/model.ts";
import { PermissionDenied } from "../../src/errors.ts";
import type { SqliteStore } from "../../src/store/sqlite.ts";
import { type AccessDomain, type AccessDomains, openAccessDomains, writeOrders } from "../support/access-domain.ts";

const T0 = Date.UTC(2026, 10, 23, 10, 0, 0);
const APPROVER_GROUPS = ["dba", "security"];

/** Domains on fresh SQLite files in a temp dir, with a fixed clock. */
let domains: AccessDomains;
before(async () => {
  domains = await openAccessDomains(() => T0);
});
after(() => domains.remove());

/** The PermissionDenied a review must end in, with its reason codes. */
async function refusedReview(
  access: Access,
  reviewer: Caller,
  requestId: string,
  decision: ReviewDecision = "approve",
): Promise<PermissionDenied> {
  try {
    await access.review(reviewer, { requestId, decision, comment: "" });
  } catch (err) {
    assert.ok(err instanceof PermissionDenied, `${displayId(reviewer.id)}: expected PermissionDenied, got ${String(err)}`);
    return err;
  }
  return assert.fail(`${displayId(reviewer.id)} was allowed to review request ${requestId}`);
}

const reasonCodes = (err: PermissionDenied) => (err.facts.reasons ?? []).map((r) => r.code);
const reviewers = (r: AccessRequest) => r.reviews.map((x) => x.reviewer.id);
/** A request as stored. */
const stored = (store: SqliteStore, id: string) => store.request(id) ?? assert.fail(`request ${id} is not stored`);
/** The request's audit trail as stored: [kind, actor], oldest first. */
const auditTrail = (store: SqliteStore, requestId: string) =>
  store
    .auditEntries({ resource: "db/orders" }, { size: 500, token: "" })
    .items.filter((e) => e.requestId === requestId)
    .map((e) => [e.kind, e.actor]);

describe("separation of duties: look-alike attacks", () => {
  let domain: AccessDomain;
  let access: Access;
  beforeEach(() => {
    domain = domains.open();
    access = domain.access;
  });
  afterEach(() => domain.close());

  const alice: Caller = { id: "alice", groups: ["engineering"] };
  const aliceLookAlikes = ["ALICE", "Alice", "ａｌｉｃｅ", "alice\u0301", "alic\u00E9", "\u0430lice", "𝐚𝐥𝐢𝐜𝐞", "aIice"];

  test("a requester cannot review their own request under any look-alike of their id", async () => {
    const pending = await access.requestAccess(alice, writeOrders);
    assert.equal(pending.state, "PENDING");
    for (const id of aliceLookAlikes) {
      assert.equal(callerIdProblem(id), undefined, `${displayId(id)} is a usable caller id`);
      for (const decision of ["approve", "deny"] as const) {
        const err = await refusedReview(access, { id, groups: APPROVER_GROUPS }, pending.id, decision);
        assert.deepEqual(reasonCodes(err), ["self_review"], displayId(id));
        assert.equal(err.facts.reasons?.[0]?.requester, "alice");
        assert.equal(
          err.message,
          `${displayId(id)} may not review request ${pending.id}: requesters may not review their own request (requester=alice)`,
        );
      }
    }
    const after = stored(domain.store, pending.id);
    assert.equal(after.state, "PENDING");
    assert.deepEqual(after.reviews, []);
    // The refused attempts leave nothing: no review, no REVIEW_RECORDED.
    assert.deepEqual(auditTrail(domain.store, pending.id), [["REQUEST_CREATED", "alice"]]);
  });

  test("a denial message shows a homoglyph reviewer's id escaped, never as the id it imitates", async () => {
    const pending = await access.requestAccess(alice, writeOrders);
    const err = await refusedReview(access, { id: "\u0430lice", groups: ["dba"] }, pending.id);
    assert.match(err.message, /^\\u\{0430\}lice may not review request /);
    assert.ok(!err.message.includes("\u0430"), err.message);
  });

  test("one person cannot fill two distinct-approver slots under look-alike ids", async () => {
    const pending = await access.requestAccess(alice, writeOrders);
    const bob: Caller = { id: "bob", groups: ["dba"] };
    assert.equal((await access.review(bob, { requestId: pending.id, decision: "approve", comment: "checked the fix" })).state, "PENDING");
    for (const id of ["BOB", "Bob", "b0b", "b\u043Eb", "ｂｏｂ", "b\u03BFb"]) {
      const err = await refusedReview(access, { id, groups: ["security"] }, pending.id);
      assert.deepEqual(reasonCodes(err), ["already_reviewed"], displayId(id));
      assert.equal(err.facts.reasons?.[0]?.reviewer, "bob");
      assert.equal(
        err.message,
        `${displayId(id)} may not review request ${pending.id}: this reviewer has already reviewed the request (reviewer=bob)`,
      );
      const now = stored(domain.store, pending.id);
      assert.equal(now.state, "PENDING");
      assert.deepEqual(reviewers(now), ["bob"]);
    }
    const approved = await access.review(
      { id: "carol", groups: ["security"] },
      { requestId: pending.id, decision: "approve", comment: "" },
    );
    assert.equal(approved.state, "APPROVED");
    assert.deepEqual(reviewers(approved), ["bob", "carol"]);
    assert.equal(approved.stateReason, "approved by bob, carol");
    assert.equal(domain.store.grant(approved.grantId as string)?.subject, "alice");
    assert.deepEqual(auditTrail(domain.store, pending.id), [
      ["REQUEST_CREATED", "alice"],
      ["REVIEW_RECORDED", "bob"],
      ["REVIEW_RECORDED", "carol"],
      ["REQUEST_APPROVED", "carol"],
      ["GRANT_CREATED", "carol"],
    ]);
  });

  test("a different person whose id merely resembles the requester's may review", async () => {
    const pending = await access.requestAccess(alice, writeOrders);
    const alicia = await access.review({ id: "alicia", groups: ["dba"] }, { requestId: pending.id, decision: "approve", comment: "" });
    assert.deepEqual(reviewers(alicia), ["alicia"]);
    const approved = await access.review(
      { id: "malice", groups: ["security"] },
      { requestId: pending.id, decision: "approve", comment: "" },
    );
    assert.equal(approved.state, "APPROVED");
    assert.deepEqual(reviewers(approved), ["alicia", "malice"]);
  });

  test("an all-Cyrillic capitals look-alike of the requester (ТОМ for tom) cannot review", async () => {
    const pending = await access.requestAccess({ id: "tom", groups: ["engineering"] }, writeOrders);
    assert.deepEqual(reasonCodes(await refusedReview(access, { id: "\u0422\u041E\u041C", groups: ["dba"] }, pending.id)), ["self_review"]);
    assert.deepEqual(stored(domain.store, pending.id).reviews, []);
  });
});

// ---- generated look-alikes

const ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".split("");
const MAX_BASE = 20;

/**
 * Homoglyphs of lowercase letters, and their own capitals where those are homoglyphs too: a reader takes each
 * for the Latin letter in either case.
 */
const HOMOGLYPHS: Readonly<Record<string, readonly string[]>> = {
  a: ["\u0430", "\u03B1", "\u0251"],
  A: ["\u0410", "\u0391"],
  c: ["\u0441"],
  C: ["\u0421"],
  d: ["\u0501"],
  e: ["\u0435"],
  E: ["\u0415"],
  h: ["\u04BB"],
  i: ["\u0456", "\u03B9"],
  I: ["\u0406", "\u0399"],
  j: ["\u0458"],
  J: ["\u0408"],
  l: ["1"],
  o: ["\u043E", "\u03BF", "0"],
  O: ["\u041E", "\u039F", "0"],
  p: ["\u0440", "\u03C1"],
  P: ["\u0420", "\u03A1"],
  q: ["\u051B"],
  s: ["\u0455"],
  S: ["\u0405"],
  v: ["\u03BD"],
  w: ["\u051D"],
  x: ["\u0445"],
  X: ["\u0425"],
  y: ["\u0443"],
};

/** Capitals whose lowercase looks like nothing Latin (Cyrillic К is k-like, к is not), and the I/l swap. */
const UPPERCASE_ONLY_HOMOGLYPHS: Readonly<Record<string, readonly string[]>> = {
  B: ["\u0412", "\u0392"],
  E: ["\u0395"],
  H: ["\u041D", "\u0397"],
  I: ["l", "1"],
  K: ["\u041A", "\u039A"],
  M: ["\u041C", "\u039C"],
  N: ["\u039D"],
  T: ["\u0422", "\u03A4"],
  X: ["\u03A7"],
  Y: ["\u04AE", "\u03A5"],
  Z: ["\u0396"],
  l: ["I"],
};

const MARKS = ["\u0300", "\u0301", "\u0302", "\u0303", "\u0308", "\u030A", "\u030C", "\u0323", "\u0327", "\u0331"];

type Look = "plain" | "fullwidth" | "bold" | "homoglyph";
interface Unit {
  /** The base's character here, before any case step. */
  readonly original: string;
  ch: string;
  look: Look;
  pick: number;
  marks: string;
}
type Step =
  | { kind: "case"; upper: boolean; where: readonly boolean[] }
  | { kind: "look"; look: Look; pick: number; where: readonly boolean[] }
  | { kind: "mark"; mark: string; where: readonly boolean[] };
interface Variant {
  base: string;
  steps: readonly Step[];
  form: "as is" | "NFC" | "NFD";
}

const where = fc.array(fc.boolean(), { minLength: MAX_BASE, maxLength: MAX_BASE });
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant("case" as const), upper: fc.boolean(), where }),
  fc.record({
    kind: fc.constant("look" as const),
    look: fc.constantFrom<Look>("plain", "fullwidth", "bold", "homoglyph"),
    pick: fc.nat(2),
    where,
  }),
  fc.record({ kind: fc.constant("mark" as const), mark: fc.constantFrom(...MARKS), where }),
);
const variants: fc.Arbitrary<Variant> = fc.record({
  base: fc.string({ unit: fc.constantFrom(...ALNUM), minLength: 1, maxLength: MAX_BASE }),
  steps: fc.array(step, { minLength: 1, maxLength: 6 }),
  form: fc.constantFrom("as is" as const, "NFC" as const, "NFD" as const),
});

function mathematicalBold(ch: string): string {
  const c = ch.codePointAt(0) as number;
  if (ch >= "A" && ch <= "Z") return String.fromCodePoint(0x1d400 + c - 0x41);
  if (ch >= "a" && ch <= "z") return String.fromCodePoint(0x1d41a + c - 0x61);
  return String.fromCodePoint(0x1d7ce + c - 0x30);
}

function rendered(u: Unit, homoglyphs: Readonly<Record<string, readonly string[]>>): string {
  // The I/l swap holds for a capital I or small l as written, not for one a case step made: "aIavia" passes
  // for "alavia", but "alavia" is not "aiavia".
  const swapped = (u.ch === "I" || u.ch === "l") && u.ch !== u.original;
  const alternatives = swapped ? [] : (homoglyphs[u.ch] ?? []);
  const glyph =
    u.look === "fullwidth"
      ? String.fromCodePoint((u.ch.codePointAt(0) as number) + 0xfee0)
      : u.look === "bold"
        ? mathematicalBold(u.ch)
        : u.look === "homoglyph" && alternatives.length > 0
          ? (alternatives[u.pick % alternatives.length] as string)
          : u.ch;
  return glyph + u.marks;
}

/** The variant's text: each step changes the chosen characters of the base, in order. */
function variantOf(v: Variant, homoglyphs: Readonly<Record<string, readonly string[]>> = HOMOGLYPHS): string {
  const units: Unit[] = [...v.base].map((ch) => ({ original: ch, ch, look: "plain", pick: 0, marks: "" }));
  for (const s of v.steps) {
    units.forEach((u, i) => {
      if (!s.where[i]) return;
      if (s.kind === "case") u.ch = s.upper ? u.ch.toUpperCase() : u.ch.toLowerCase();
      else if (s.kind === "look") Object.assign(u, { look: s.look, pick: s.pick });
      else u.marks += s.mark;
    });
  }
  const text = units.map((u) => rendered(u, homoglyphs)).join("");
  return v.form === "as is" ? text : text.normalize(v.form);
}

describe("separation of duties: generated look-alikes", () => {
  test("every case, width, font, homoglyph, mark and normalisation variant of an id is the same person as the id", () => {
    fc.assert(
      fc.property(variants, (v) => {
        const variant = variantOf(v);
        assert.equal(callerIdProblem(variant), undefined, `${displayId(variant)} is a usable caller id`);
        assert.equal(samePerson(v.base, variant), true, `${v.base} and ${displayId(variant)}`);
        assert.equal(samePerson(variant, v.base), true, `${displayId(variant)} and ${v.base}`);
      }),
      { numRuns: 200 },
    );
  });

  test("no variant of a requester's id can review their request, whichever of the two asked", async () => {
    await fc.assert(
      fc.asyncProperty(variants, fc.boolean(), fc.constantFrom<ReviewDecision>("approve", "deny"), async (v, baseAsks, decision) => {
        const variant = variantOf(v);
        fc.pre(variant !== v.base);
        const [requester, reviewer] = baseAsks ? [v.base, variant] : [variant, v.base];
        const domain = domains.open();
        try {
          const pending = await domain.access.requestAccess({ id: requester, groups: ["engineering"] }, writeOrders);
          assert.equal(pending.state, "PENDING");
          const err = await refusedReview(domain.access, { id: reviewer, groups: APPROVER_GROUPS }, pending.id, decision);
          assert.deepEqual(reasonCodes(err), ["self_review"]);
          const after = stored(domain.store, pending.id);
          assert.equal(after.state, "PENDING");
          assert.deepEqual(after.reviews, []);
        } finally {
          domain.close();
        }
      }),
      { numRuns: 50 },
    );
  });

  test("variants with uppercase-only homoglyphs or an I/l swap are the same person as the id", () => {
    fc.assert(
      fc.property(variants, (v) => {
        const variant = variantOf(v, { ...HOMOGLYPHS, ...UPPERCASE_ONLY_HOMOGLYPHS });
        assert.equal(samePerson(v.base, variant), true, `${v.base} and ${displayId(variant)}`);
      }),
      { numRuns: 200 },
    );
  });
});
