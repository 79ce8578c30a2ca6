// Lets observers (metrics) hear of audit entries once they are committed, never before: wraps a store so the
// entries appended inside a transaction are handed over after the outermost transaction commits, and dropped
// with it when it rolls back. The lifecycle code is unchanged: it keeps calling `transaction` and `appendAudit`.
import type { AuditEntry } from "./model.ts";
import type { AccessStore } from "./ports.ts";

export function tapCommittedAudit(store: AccessStore, committed: (entries: readonly AuditEntry[]) => void): AccessStore {
  let pending: AuditEntry[] = [];
  let depth = 0;
  /** Set while a `write` attempt runs its function (synchronously): where its entries go. */
  let collecting: AuditEntry[] | undefined;
  const hand = (entries: readonly AuditEntry[]) => {
    try {
      committed(entries);
    } catch {
      // An observer's failure must not turn a committed change into an error for the caller.
    }
  };
  const overrides: Partial<AccessStore> = {
    transaction<T>(fn: () => T): T {
      const mark = pending.length;
      depth++;
      let result: T;
      try {
        result = store.transaction(fn);
      } catch (err) {
        // This transaction (or savepoint) rolled back: so did the entries appended inside it.
        pending.length = mark;
        throw err;
      } finally {
        depth--;
      }
      if (depth === 0 && pending.length > 0) {
        const done = pending;
        pending = [];
        hand(done);
      }
      return result;
    },
    async write<T>(fn: () => T): Promise<T> {
      // Each attempt collects its own entries: one that rolled back (the lock was taken) leaves none behind.
      let attempt: AuditEntry[] = [];
      const result = await store.write(() => {
        attempt = [];
        const outer = collecting;
        collecting = attempt;
        try {
          return fn();
        } finally {
          collecting = outer;
        }
      });
      if (attempt.length > 0) hand(attempt);
      return result;
    },
    appendAudit(entry: AuditEntry): void {
      store.appendAudit(entry);
      if (collecting) collecting.push(entry);
      else if (depth > 0) pending.push(entry);
      else hand([entry]);
    },
  };
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, prop) {
      if (prop in overrides) return overrides[prop as keyof AccessStore];
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
