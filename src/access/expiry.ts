// Records what time alone changes: grants reaching their expiry (an EXPIRED event and audit entry at the
// expiry time, so watchers hear of it on time) and pending requests timing out. Checks never wait for it:
// they ignore expired grants by themselves. Sleeps until the next due time, woken early by local changes.
import { audit } from "./audit.ts";
import { type AccessDeps, commitChange } from "./deps.ts";

/** Expiries (and, apart, timeouts) recorded per transaction: one write never grows with the length of an outage. */
export const DUE_PER_PASS = 500;

/** Longest sleep: other processes sharing the store may add earlier due times that nobody tells us of. */
const MAX_SLEEP_MS = 1_000;

export class ExpiryScheduler {
  readonly #deps: AccessDeps;
  readonly #onError: (err: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #stopped = true;
  #running = false;
  #again = false;

  constructor(deps: AccessDeps, onError: (err: unknown) => void) {
    this.#deps = deps;
    this.#onError = onError;
  }

  start(): void {
    this.#stopped = false;
    this.wake();
  }

  /** Records everything due by now, then sleeps until the next due time. Called on every local change. */
  wake(): void {
    if (this.#stopped) return;
    // One pass at a time: a wake while one runs makes it look again when done.
    if (this.#running) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#running = true;
    void this.#pass().finally(() => {
      this.#running = false;
      if (this.#again) {
        this.#again = false;
        this.wake();
      }
    });
  }

  async #pass(): Promise<void> {
    let wait = MAX_SLEEP_MS;
    try {
      // A backlog (after an outage) is recorded a batch per turn of the event loop, so checks go on meanwhile.
      const backlog = (await this.#isDue()) && this.#wasFull(await this.runDue());
      const due = await this.#deps.store.nextDue();
      if (backlog) wait = 0;
      else if (due !== undefined) wait = Math.min(MAX_SLEEP_MS, Math.max(0, due - this.#deps.clock.now()));
    } catch (err) {
      this.#onError(err);
    }
    if (!this.#stopped) this.#timer = setTimeout(() => this.wake(), wait);
  }

  async #isDue(): Promise<boolean> {
    const due = await this.#deps.store.nextDue();
    return due !== undefined && due <= this.#deps.clock.now();
  }

  #wasFull(counts: { grants: number; requests: number }): boolean {
    return counts.grants === DUE_PER_PASS || counts.requests === DUE_PER_PASS;
  }

  /** One pass: up to DUE_PER_PASS grant expiries and request timeouts due by now, in one transaction. Returns the counts. */
  async runDue(): Promise<{ grants: number; requests: number }> {
    const { clock } = this.#deps;
    const now = clock.now();
    const counts = await commitChange(
      this.#deps,
      async (tx) => {
        const expired = await tx.recordExpiries(now, DUE_PER_PASS);
        for (const e of expired)
          await tx.appendAudit(audit.grant("GRANT_EXPIRED", { at: e.at, actor: "jitgate", grant: e.grant, reason: "expired" }));
        const timedOut = await tx.expirePending(now, "timed out waiting for approvals", DUE_PER_PASS);
        for (const r of timedOut)
          await tx.appendAudit(
            audit.request("REQUEST_EXPIRED", { at: r.pendingUntil, actor: "jitgate", request: r, reason: r.stateReason }),
          );
        return { grants: expired.length, requests: timedOut.length };
      },
      (c) => c.grants + c.requests > 0,
    );
    return counts;
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }
}
