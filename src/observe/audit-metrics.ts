// Turns committed audit entries into lifecycle metrics, so every count comes from the same facts the audit trail
// records (and only once they are committed): request outcomes, time to approval, tokens issued, revocations.
import type { AuditEntry } from "../access/model.ts";
import type { JitgateMetrics, RequestOutcome } from "./metrics.ts";

const OUTCOME_OF: Partial<Record<AuditEntry["kind"], RequestOutcome>> = {
  REQUEST_APPROVED: "approved",
  REQUEST_DENIED: "denied",
  REQUEST_CANCELLED: "cancelled",
  REQUEST_EXPIRED: "expired",
};

export function countAuditEntries(metrics: JitgateMetrics, entries: readonly AuditEntry[]): void {
  let revoked = 0;
  for (const e of entries) {
    const outcome = OUTCOME_OF[e.kind];
    if (outcome !== undefined) metrics.requestOutcome(outcome);
    if (e.kind === "REQUEST_CREATED" && e.details.state === "PENDING") metrics.requestOutcome("pending");
    if (e.kind === "REQUEST_APPROVED" && typeof e.details.requested_at === "number")
      metrics.approved(Math.max(0, e.at - e.details.requested_at) / 1000);
    if (e.kind === "TOKEN_ISSUED") metrics.tokenIssued();
    if (e.kind === "GRANT_REVOKED") revoked++;
  }
  if (revoked > 0) metrics.revoked(revoked);
}
