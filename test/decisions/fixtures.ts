// Decision records for the decision-log tests: valid defaults, overridden by what a test is about.
import type { DecisionRecord } from "../../src/access/model.ts";

export const T0 = Date.UTC(2026, 10, 23, 9, 0, 0);

export function aDecisionRecord(over: Partial<DecisionRecord> & { decisionId: string }): DecisionRecord {
  return {
    at: T0,
    caller: "orders-service",
    subject: "alice",
    resource: "orders-db",
    action: "read",
    allow: true,
    reasons: [],
    policyRevision: "rev-1",
    grantId: "g1",
    tokenId: "",
    latencyUs: 100,
    ...over,
  };
}
