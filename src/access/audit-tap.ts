// Lets observers (metrics) hear of audit entries once they are committed, never before: wraps a store so the
// entries appended inside a write are handed over after it commits, and dropped with it when it rolls back.
// The lifecycle code is unchanged: it keeps calling `write` and appending through its transaction.
import type { AuditEntry } from "./model.ts";
import type { AccessStore, WriteTx } from "./ports.ts";
import { txView } from "./tx-view.ts";

export function tapCommittedAudit(store: AccessStore, committed: (entries: readonly AuditEntry[]) => void): AccessStore {
  const hand = (entries: readonly AuditEntry[]) => {
    try {
      committed(entries);
    } catch {
      // An observer's failure must not turn a committed change into an error for the caller.
    }
  };
  const write = async <T>(fn: (tx: WriteTx) => Promise<T>): Promise<T> => {
    const entries: AuditEntry[] = [];
    const result = await store.write((tx) =>
      fn(
        txView(tx, {
          appendAudit: (entry: AuditEntry) => {
            const appended = tx.appendAudit(entry);
            entries.push(entry);
            return appended;
          },
        }),
      ),
    );
    if (entries.length > 0) hand(entries);
    return result;
  };
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, prop) {
      if (prop === "write") return write;
      const cached = bound.get(prop);
      if (cached !== undefined) return cached;
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      // Methods run on the real store (its private fields are not on the proxy); bound once, not per call.
      const method = (value as (...args: unknown[]) => unknown).bind(target);
      bound.set(prop, method);
      return method;
    },
  });
}
