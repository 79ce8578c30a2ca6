// Check: may this subject do this action on this resource now? The subject's live grants on the resource from
// the live-grant index (memory, kept exact against the store), then the policy (off this thread, within its
// budget), then a confirmation that an allowing grant is still live. Every check leaves a decision record (handed to the decision sink, which
// writes it later in a batch).
import { JitgateError, PermissionDenied, PolicyEvaluationError, PolicyTimeout, type ReasonDetail } from "../errors.ts";
import { type AccessDeps, admitDecision, mayCheckOthers } from "./deps.ts";
import { displayId } from "./identities.ts";
import type { Caller, DecisionRecord } from "./model.ts";
import { checkInput, millis } from "./policy-input.ts";

export interface CheckInput {
  readonly subject: Caller;
  readonly resource: string;
  readonly action: string;
  readonly context: Readonly<Record<string, string>>;
  /** Who asked (the authenticated caller, usually a service); for the decision record. */
  readonly caller?: string;
}

export interface CheckResult {
  readonly allow: boolean;
  readonly reasons: readonly ReasonDetail[];
  readonly decisionId: string;
  readonly grantId: string;
  /** When the allowing grant expires (ms); 0 for standing access or a denial. */
  readonly grantExpiresAt: number;
  readonly standing: boolean;
  readonly policyRevision: string;
  readonly decidedAt: number;
}

export async function check(deps: AccessDeps, input: CheckInput): Promise<CheckResult> {
  admitDecision(deps);
  const started = performance.now();
  const question = { caller: input.caller ?? "", subject: input.subject.id, resource: input.resource, action: input.action };
  let result: CheckResult;
  try {
    result = await decide(deps, input);
  } catch (err) {
    // The caller gets the error (never an allow); the log keeps that this check could not be decided.
    recordDecision(deps, started, question, refusal(deps, deps.clock.now(), failureReason(err)));
    throw err;
  }
  recordDecision(deps, started, question, result);
  return result;
}

/**
 * A check on behalf of `caller`: who may learn whether a subject has access, and whose word counts for the
 * subject's groups, are jitgate's rules, not the policy's. Checker services, admins and auditors may ask about
 * anyone, with the groups they send; anyone else only about themselves (the exact verified id), checked with
 * all their verified groups (those they send must be among them: a group they add is refused, never trusted). A refused attempt is recorded too
 * (someone probing others' access, or claiming groups, is what auditors look for).
 */
export async function checkAs(deps: AccessDeps, caller: Caller, input: CheckInput): Promise<CheckResult> {
  if (mayCheckOthers(deps, caller)) return check(deps, { ...input, caller: caller.id });
  const trusted = [...deps.checkerGroups, ...deps.adminGroups, ...deps.auditorGroups].join(", ");
  const refuse = (code: string, message: string, error: string): never => {
    // A refusal is recorded too: it needs its place in the decision log like any answer.
    admitDecision(deps);
    const question = { caller: caller.id, subject: input.subject.id, resource: input.resource, action: input.action };
    recordDecision(deps, performance.now(), question, refusal(deps, deps.clock.now(), { code, message }));
    throw new PermissionDenied(error);
  };
  if (input.subject.id !== caller.id) {
    refuse(
      "caller_may_not_check",
      "the caller may check only its own access",
      `${displayId(caller.id)} may check only its own access; checking others is for members of ${trusted}`,
    );
  }
  const claimed = input.subject.groups.filter((g) => !caller.groups.includes(g));
  if (claimed.length > 0) {
    refuse(
      "caller_may_not_assert_groups",
      "the caller named groups its identity does not carry",
      `subject_groups are taken only from members of ${trusted}; a caller checking itself is checked with the groups its identity carries, and ${displayId(caller.id)} does not carry ${claimed.map(displayId).join(", ")}`,
    );
  }
  return check(deps, { ...input, subject: caller, caller: caller.id });
}

function stillLive(deps: AccessDeps, input: CheckInput, grantId: string): boolean {
  const g = deps.liveGrants.confirm(grantId, deps.clock.now());
  return g !== undefined && g.subject === input.subject.id && g.resource === input.resource;
}

/** A denial decided before (or instead of) the policy. */
export function refusal(deps: AccessDeps, now: number, reason: ReasonDetail): CheckResult {
  return {
    allow: false,
    reasons: [reason],
    decisionId: deps.newId(),
    grantId: "",
    grantExpiresAt: 0,
    standing: false,
    policyRevision: "",
    decidedAt: now,
  };
}

/** The reason a decision record gives for a check that failed with `err`: jitgate's own message, or nothing internal. */
export function failureReason(err: unknown): ReasonDetail {
  const message = err instanceof JitgateError ? err.message : "internal error";
  // A policy that fails on a real input is told apart from every other failure (and from a denial).
  return { code: err instanceof PolicyEvaluationError ? "policy_error" : "check_failed", message };
}

/** What the decision record says about the question asked. */
export interface DecisionQuestion {
  readonly caller: string;
  readonly subject: string;
  readonly resource: string;
  readonly action: string;
  readonly tokenId?: string;
}

/** Hands the decision to the sink; `started` is the performance.now() at which deciding began. */
export function recordDecision(deps: AccessDeps, started: number, q: DecisionQuestion, r: CheckResult): void {
  const record: DecisionRecord = {
    decisionId: r.decisionId,
    at: r.decidedAt,
    caller: q.caller,
    subject: q.subject,
    resource: q.resource,
    action: q.action,
    allow: r.allow,
    reasons: r.reasons,
    policyRevision: r.policyRevision,
    grantId: r.grantId,
    tokenId: q.tokenId ?? "",
    latencyUs: Math.round((performance.now() - started) * 1000),
  };
  deps.decisions.record(record);
}

/**
 * The decision without its record. `onlyGrant`: consider this grant alone (a check by token speaks for one grant).
 * The policy answers off this thread, so a grant could be revoked (or expire) while it thinks: an allow by a
 * grant is confirmed against the store once the answer is in, and becomes a denial if the grant is gone. A
 * policy that does not answer within its budget is a denial (`policy_timeout`), never an error that a caller
 * might retry into an allow.
 */
export async function decide(deps: AccessDeps, input: CheckInput, onlyGrant?: string): Promise<CheckResult> {
  const now = deps.clock.now();
  const live = deps.liveGrants.on(input.subject.id, input.resource, now);
  const grants = onlyGrant === undefined ? live : live.filter((g) => g.id === onlyGrant);
  let answer: Awaited<ReturnType<AccessDeps["policy"]["checkDecision"]>>;
  try {
    answer = await deps.policy.checkDecision(checkInput(input.subject, input.resource, input.action, input.context, now, grants));
  } catch (err) {
    if (err instanceof PolicyTimeout) return refusal(deps, now, { code: err.reason, message: err.message });
    throw err;
  }
  const { result, revision } = answer;
  if (result.allow && result.grant_id !== "" && !stillLive(deps, input, result.grant_id)) {
    return {
      ...refusal(deps, now, { code: "grant_ended", message: "the grant ended while the check was decided" }),
      policyRevision: revision,
    };
  }
  return {
    allow: result.allow,
    reasons: result.reasons,
    decisionId: deps.newId(),
    grantId: result.grant_id,
    grantExpiresAt: result.allow && result.grant_id !== "" ? millis(result.expires_at) : 0,
    standing: result.standing,
    policyRevision: revision,
    decidedAt: now,
  };
}
