// A WriteTx that passes every call to another one, with some calls replaced: how the domain observes what a
// write does (its grant events, its audit entries) without knowing the store's transaction class. Each method
// is forwarded explicitly, so a transaction whose methods live on a class prototype works too.
import type { WriteTx } from "./ports.ts";

export function txView(tx: WriteTx, over: Partial<WriteTx>): WriteTx {
  return {
    request: over.request ?? ((id) => tx.request(id)),
    insertRequest: over.insertRequest ?? ((r) => tx.insertRequest(r)),
    insertReview: over.insertReview ?? ((r) => tx.insertReview(r)),
    decideRequest: over.decideRequest ?? ((id, from, change) => tx.decideRequest(id, from, change)),
    insertGrant: over.insertGrant ?? ((g) => tx.insertGrant(g)),
    revokeGrant: over.revokeGrant ?? ((id, at, by, reason) => tx.revokeGrant(id, at, by, reason)),
    revokeGrantsOf: over.revokeGrantsOf ?? ((subject, at, by, reason) => tx.revokeGrantsOf(subject, at, by, reason)),
    recordExpiries: over.recordExpiries ?? ((now, limit) => tx.recordExpiries(now, limit)),
    expirePending: over.expirePending ?? ((now, reason, limit) => tx.expirePending(now, reason, limit)),
    appendAudit: over.appendAudit ?? ((e) => tx.appendAudit(e)),
  };
}
