import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { PolicyEvaluationError, Unavailable } from "../../src/errors.ts";
import { loadBundleFile } from "../../src/policy/bundle.ts";
import { PolicyEngine } from "../../src/policy/engine.ts";
import { ENTRYPOINTS, formatReason, REQUIRED_ENTRYPOINTS } from "../../src/policy/entrypoints.ts";
import { buildCustom, REAL_BUNDLE, removeDir, tempDir } from "../support/bundles.ts";

const NOW = 1_763_900_000;
const codes = (reasons: readonly { code: string }[]) => reasons.map((r) => r.code);

function request(overrides: Record<string, unknown> = {}) {
  return {
    requester: { id: "alice", groups: ["engineering"] },
    resource: "db/orders",
    actions: ["write"],
    duration_s: 1800,
    justification: "repair orders stuck in the PAYING state",
    ticket: "INC-123",
    emergency: false,
    now: NOW,
    live_grants: [],
    pending_requests: [],
    ...overrides,
  };
}

describe("policy engine on the bundle built from policies/", () => {
  const engine = new PolicyEngine();
  let revision: string;
  before(async () => {
    const bundle = await loadBundleFile(REAL_BUNDLE);
    revision = bundle.revision;
    engine.activate(bundle);
  });

  test("a write on the orders database needs one dba and one security approval", () => {
    const { result, revision: rev } = engine.requestPlan(request());
    assert.equal(rev, revision);
    assert.equal(result.decision, "needs_approval");
    assert.deepEqual(result.approvals, [
      { group: "dba", count: 1 },
      { group: "security", count: 1 },
    ]);
    assert.equal(result.granted_duration_s, 1800);
    assert.equal(result.audience, "orders");
    assert.ok(result.pending_ttl_s > 0);
  });

  test("a read by an engineer is auto-approved and capped at the auto-approval maximum", () => {
    const { result } = engine.requestPlan(request({ actions: ["read"], duration_s: 7200 }));
    assert.equal(result.decision, "auto_approve");
    assert.equal(result.granted_duration_s, 1800);
    assert.ok(codes(result.reasons).includes("duration_capped"));
  });

  test("an unknown resource and a short justification are both denied with reasons", () => {
    const { result } = engine.requestPlan(request({ resource: "db/nope", justification: "x" }));
    assert.equal(result.decision, "deny");
    assert.ok(codes(result.reasons).includes("unknown_resource"));
    assert.equal(result.granted_duration_s, 0);
  });

  test("break-glass access for on-call is auto-approved and notifies security", () => {
    const { result } = engine.requestPlan(request({ requester: { id: "olga", groups: ["oncall"] }, emergency: true, ticket: "" }));
    assert.equal(result.decision, "auto_approve");
    assert.equal(result.break_glass, true);
    assert.ok(result.notify.includes("security"));
  });

  test("emergency access for someone outside the break-glass groups is denied", () => {
    const { result } = engine.requestPlan(request({ emergency: true }));
    assert.equal(result.decision, "deny");
    assert.ok(codes(result.reasons).includes("break_glass_not_allowed"));
  });

  const pending = {
    id: "r1",
    requester: { id: "alice", groups: ["engineering", "dba"] },
    resource: "db/orders",
    actions: ["write"],
    approvals: [
      { group: "dba", count: 1 },
      { group: "security", count: 1 },
    ],
    distinct_approvers: true,
    reviews: [] as unknown[],
  };

  test("a requester cannot review their own request", () => {
    const { result } = engine.reviewVerdict({
      request: pending,
      reviewer: { id: "alice", groups: ["dba"] },
      decision: "approve",
      now: NOW,
    });
    assert.equal(result.allowed, false);
    assert.ok(codes(result.reasons).includes("self_review"));
  });

  test("an eligible approval counts toward its group; the last one approves the request", () => {
    const first = engine.reviewVerdict({ request: pending, reviewer: { id: "bob", groups: ["dba"] }, decision: "approve", now: NOW });
    assert.deepEqual([first.result.allowed, first.result.counts_toward, first.result.outcome], [true, ["dba"], "pending"]);
    const reviews = [{ reviewer: "bob", decision: "approve", counts_toward: ["dba"] }];
    const second = engine.reviewVerdict({
      request: { ...pending, reviews },
      reviewer: { id: "sec", groups: ["security"] },
      decision: "approve",
      now: NOW,
    });
    assert.deepEqual([second.result.allowed, second.result.counts_toward, second.result.outcome], [true, ["security"], "approved"]);
    const again = engine.reviewVerdict({
      request: { ...pending, reviews },
      reviewer: { id: "bob", groups: ["dba"] },
      decision: "approve",
      now: NOW,
    });
    assert.equal(again.result.allowed, false);
    assert.ok(codes(again.result.reasons).includes("already_reviewed"));
  });

  const check = (overrides: Record<string, unknown> = {}) =>
    engine.checkDecision({
      subject: { id: "alice", groups: ["engineering"] },
      resource: "db/orders",
      action: "write",
      context: { source_ip: "10.1.2.3" },
      now: NOW,
      grants: [{ id: "g1", actions: ["read", "write"], expires_at: NOW + 600 }],
      ...overrides,
    }).result;

  test("a live grant allows its actions and names itself and its expiry", () => {
    assert.deepEqual(check(), { allow: true, reasons: [], grant_id: "g1", expires_at: NOW + 600, standing: false });
  });

  test("a grant that has expired allows nothing, even if the caller passed it in", () => {
    const d = check({ grants: [{ id: "g1", actions: ["write"], expires_at: NOW }] });
    assert.equal(d.allow, false);
    assert.deepEqual(codes(d.reasons), ["no_grant"]);
  });

  test("a call from outside the resource's networks is denied even with a grant", () => {
    const d = check({ context: { source_ip: "203.0.113.9" } });
    assert.equal(d.allow, false);
    assert.deepEqual(codes(d.reasons), ["source_not_allowed"]);
  });

  test("standing access allows a dba to read without a grant", () => {
    const d = check({ subject: { id: "dan", groups: ["dba"] }, action: "read", grants: [] });
    assert.deepEqual([d.allow, d.standing, d.grant_id], [true, true, ""]);
  });

  test("reasons read as sentences with their specifics", () => {
    const d = check({ action: "drop" });
    assert.equal(formatReason(d.reasons[0] as never), "the resource does not allow this action (action=drop)");
  });

  test("an entrypoint the bundle lacks is an evaluation error, not an answer", () => {
    assert.throws(() => engine.evaluate("jit/nope", {}), PolicyEvaluationError);
  });
});

describe("policy engine failing closed", () => {
  let dir: string;
  before(async () => {
    dir = await tempDir();
  });
  after(() => removeDir(dir));

  test("with no bundle loaded every evaluation is refused as unavailable", () => {
    const engine = new PolicyEngine();
    assert.equal(engine.ready, false);
    assert.throws(() => engine.checkDecision({}), Unavailable);
  });

  test("an answer outside the contract is an error, never a decision", async () => {
    const file = join(dir, "sometimes-wrong.tar.gz");
    await buildCustom(
      dir,
      {
        "request.rego": `package jit.request\n\nplan := ${JSON.stringify({ decision: "deny", reasons: [], approvals: [], distinct_approvers: true, max_duration_s: 0, granted_duration_s: 0, pending_ttl_s: 0, break_glass: false, notify: [], audience: "" })}\n`,
        "review.rego": 'package jit.review\n\nverdict := {"allowed": false, "reasons": [], "counts_toward": [], "outcome": "pending"}\n',
        "check.rego": [
          "package jit.check\n",
          'default decision := {"allow": false, "reasons": [], "grant_id": "", "expires_at": 0, "standing": false}\n',
          'decision := {"allow": "yes"} if input.sneaky\n',
          'decision := {"a": 1} if input.conflict\n',
          'decision := {"a": 2} if input.conflict\n',
        ].join("\n"),
        "catalog.rego": "package jit.catalog\n\nerrors := []\n",
      },
      REQUIRED_ENTRYPOINTS,
      file,
    );
    const engine = new PolicyEngine();
    engine.activate(await loadBundleFile(file));
    assert.equal(engine.checkDecision({}).result.allow, false);
    assert.throws(() => engine.checkDecision({ sneaky: true }), /answered \{"allow":"yes"\}, not a valid decision/);
    assert.throws(() => engine.checkDecision({ sneaky: true }), PolicyEvaluationError);
    // A rule that fails at run time (two different values for one complete rule) aborts inside Wasm.
    assert.throws(() => engine.evaluate(ENTRYPOINTS.checkDecision, { conflict: true }), PolicyEvaluationError);
  });
});
