// Check: may this subject do this action on this resource now? One indexed read of the subject's live
// grants on the resource, then the policy, synchronously: nothing can change between the two.
import type { ReasonDetail } from "../errors.ts";
import type { AccessDeps } from "./deps.ts";
import type { Caller } from "./model.ts";
import { checkInput, millis } from "./policy-input.ts";

export interface CheckInput {
  readonly subject: Caller;
  readonly resource: string;
  readonly action: string;
  readonly context: Readonly<Record<string, string>>;
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

/** `onlyGrant`: consider this grant alone (a check by token speaks for one grant). */
export function check(deps: AccessDeps, input: CheckInput, onlyGrant?: string): CheckResult {
  const now = deps.clock.now();
  const live = deps.store.liveGrantsOn(input.subject.id, input.resource, now);
  const grants = onlyGrant === undefined ? live : live.filter((g) => g.id === onlyGrant);
  const { result, revision } = deps.policy.checkDecision(
    checkInput(input.subject, input.resource, input.action, input.context, now, grants),
  );
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
