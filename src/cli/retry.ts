// Retrying UNAVAILABLE and RESOURCE_EXHAUSTED with exponential backoff and full jitter, bounded. A call that
// may already have been applied is only retried on UNAVAILABLE when the failure shows it never reached a
// server; a failed TLS handshake (a certificate or TLS setting, which no retry fixes) never is. jitgate refuses
// an overload or a rate limit (RESOURCE_EXHAUSTED) before doing any of the call, so that is retried whatever the
// call, except a message over a size limit, which no retry fixes. Every other code, UNAUTHENTICATED too, is final.
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

/** grpc-js's words for a message over a size limit (sent or received): RESOURCE_EXHAUSTED, and final. */
const TOO_LARGE = /message larger than max|decompresses to a size larger than/i;

export function retryable(err: unknown, idempotence: Idempotence): boolean {
  const e = err as { code?: number; details?: string };
  if (e.code === status.RESOURCE_EXHAUSTED) return !TOO_LARGE.test(e.details ?? "");
  if (e.code !== status.UNAVAILABLE) return false;
  if (tlsFailure(e, { clientCertificate: false })) return false;
  return idempotence === "idempotent" || NEVER_SENT.test(e.details ?? "");
}

/** A TLS handshake that failed: what to fix, in words for the user, and Node's or OpenSSL's own words. */
export interface TlsFailure {
  readonly problem: string;
  readonly detail: string;
}

/**
 * The TLS failure in a grpc-js connection error (UNAVAILABLE, "No connection established. Last error: ..."),
 * or undefined. `clientCertificate`: whether this client sent one. A Node server that refuses it drops the
 * connection after the handshake without an alert, which grpc-js reports only as "Failed to connect" or "read
 * ECONNRESET" (data was in flight); that is read as a refused certificate only when one was sent.
 */
export function tlsFailure(err: unknown, tls: { readonly clientCertificate: boolean }): TlsFailure | undefined {
  const e = err as { code?: number; details?: string };
  if (e.code !== status.UNAVAILABLE) return undefined;
  const lastError = /Last error: ([\s\S]*?)(?:\. Resolution note:[\s\S]*)?$/.exec(e.details ?? "")?.[1];
  if (lastError === undefined) return undefined;
  const detail = plainTlsWords(lastError);
  const found = TLS_PROBLEMS.find(([words]) => words.test(lastError));
  if (found) return { problem: found[1], detail };
  if (tls.clientCertificate && /^(Failed to connect|(Error: )?read ECONNRESET)\b/.test(lastError)) {
    return {
      problem:
        "the server closed the connection during the TLS handshake, as a server does that refuses the client certificate (--cert, JITGATE_CERT)",
      detail,
    };
  }
  return undefined;
}

/** Node's and OpenSSL's words for a failed handshake, first match wins, and what the user should check. */
const TLS_PROBLEMS: readonly (readonly [RegExp, string])[] = [
  [
    /alert certificate required|peer did not return a certificate/i,
    "the server requires a client certificate: give --cert and --key (JITGATE_CERT, JITGATE_KEY)",
  ],
  [
    /alert (unknown ca|bad certificate|certificate unknown|certificate expired|certificate revoked|unsupported certificate|access denied)/i,
    "the server refused the client certificate (--cert, JITGATE_CERT)",
  ],
  [/altnames|ERR_TLS_CERT_ALTNAME_INVALID/i, "the server's certificate does not name the address connected to (--address)"],
  [
    /unable to verify|self[- ]signed certificate|unable to get (local )?issuer|certificate has expired|certificate is not yet valid|certificate signature failure/i,
    "the server's certificate is not trusted: check --ca (JITGATE_CA)",
  ],
  [/wrong version number|packet length too long|unknown protocol/i, "the server does not speak TLS at this address"],
  [/before secure TLS connection was established|SSL routines|handshake failure/i, "the TLS handshake failed"],
];

/** Just the words of Node's "Error [CODE]: words; advice (time)" or OpenSSL's "...:SSL routines:fn:words:file:...". */
function plainTlsWords(lastError: string): string {
  const openssl = /SSL routines:[^:]*:([^:]+)/.exec(lastError)?.[1];
  const words = openssl ?? lastError.replace(/^Error(?: \[[A-Z0-9_]+\])?: /, "").replace(/; if the root CA is installed locally.*$/s, "");
  return words.replace(/\s*\(\d{4}-\d\d-\d\dT[^)]*\)\s*$/, "").trim();
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
