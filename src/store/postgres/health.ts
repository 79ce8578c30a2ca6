// Whether the PostgreSQL store takes writes, learned from real writes and the health probe's own: a failure that
// means the database cannot be written (unreachable, read-only, out of resources) makes writes "not possible"
// from that moment until a write commits. Another writer holding the lock is contention and changes nothing.
import { JitgateError } from "../../errors.ts";
import type { WriteHealth } from "../sqlite-errors.ts";
import { failureCode, isLockTimeout, unavailableReason } from "./errors.ts";

export type { WriteHealth };

export class PgWriteHealth {
  readonly #now: () => number;
  #state: WriteHealth = { possible: true };

  constructor(now: () => number) {
    this.#now = now;
  }

  get current(): WriteHealth {
    return this.#state;
  }

  succeeded(): void {
    if (!this.#state.possible) this.#state = { possible: true };
  }

  /** Writes are not possible for `reason` (`code`: the SQLSTATE or errno behind it); an ongoing outage keeps its start. */
  notPossible(reason: string, code: string | undefined): void {
    const since = this.#state.possible ? this.#now() : (this.#state.since ?? this.#now());
    this.#state = code === undefined ? { possible: false, reason, since } : { possible: false, reason, since, code };
  }

  /** A write failed with `err` (a driver error, or the store's error wrapping one); records it if it says writes are not possible. */
  failed(err: unknown): void {
    if (isLockTimeout(err)) return;
    const cause = err instanceof JitgateError ? err.cause : err;
    const reason = unavailableReason(cause);
    if (reason !== undefined) this.notPossible(reason, failureCode(cause));
  }
}
