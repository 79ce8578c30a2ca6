// Retrying UNAVAILABLE with exponential backoff and full jitter, bounded. A call that may already have
// been applied is only retried when the failure shows it never reached a server.
import { status } from "@grpc/grpc-js";

export interface RetryPolicy {
  readonly attempts: number;
  readonly baseMs: number;
  readonly maxMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseMs: 100, maxMs: 2_000 };

/** grpc-js's words for "there was no connection", so the call was never sent. */
const NEVER_SENT = /No connection established|ECONNREFUSED|connect ENOENT|Name resolution failed/i;

export type Idempotence = "idempotent" | "not-idempotent";

export function retryable(err: unknown, idempotence: Idempotence): boolean {
  const e = err as { code?: number; details?: string };
  if (e.code !== status.UNAVAILABLE) return false;
  return idempotence === "idempotent" || NEVER_SENT.test(e.details ?? "");
}

export async function withRetry<T>(
  call: () => Promise<T>,
  idempotence: Idempotence,
  policy: RetryPolicy = DEFAULT_RETRY,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (attempt >= policy.attempts || !retryable(err, idempotence)) throw err;
      const cap = Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1));
      await sleep(Math.random() * cap);
    }
  }
}
