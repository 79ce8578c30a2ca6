// The enforcement library services embed: a grpc-js server interceptor that admits a call only with a valid
// jitgate access token for the method's action, and ends admitted streaming calls the moment their access
// expires or their grant is revoked.
import * as grpc from "@grpc/grpc-js";
import { ACCESS_EXPIRED, ACCESS_REVOKED, type Admit, type Admitted, localAdmission, refuse, remoteAdmission } from "./admission.ts";
import { type CallMetadata, JitgateClient, type JitgateEndpoint } from "./jitgate-client.ts";
import { KeyCache } from "./key-cache.ts";
import { RevocationFeed } from "./revocations.ts";

export type { CallMetadata, JitgateEndpoint } from "./jitgate-client.ts";

export interface EnforcerOptions {
  /** Where jitgate's API listens and the channel credentials to reach it. */
  readonly jitgate: JitgateEndpoint;
  /** This service's own credentials for its calls to jitgate (GetJwks, WatchRevocations, Check). */
  readonly callMetadata: CallMetadata;
  /** The `iss` of jitgate's tokens (default "jitgate"). */
  readonly issuer?: string;
  /** The audience this service answers to: tokens for any other audience are refused. */
  readonly audience: string;
  /** The action a method needs (`"/pkg.Service/Method"` -> `"read"`); undefined refuses the method to every token. */
  readonly actionOf: (methodPath: string) => string | undefined;
  /**
   * Allowed clock skew for a token's `nbf` and `iat` (seconds; default 30, at most 60): a token dated slightly
   * in the future is accepted. Never applied to `exp`: no call is admitted at or after it.
   */
  readonly clockToleranceS?: number;
  /** "local" (default): verify tokens offline against jitgate's JWKS. "remote": ask jitgate's Check per call. */
  readonly mode?: "local" | "remote";
  /** The jitgate resource this service is (for example "db/orders"); required in remote mode. */
  readonly resource?: string;
  /** Resume the revocation stream after this seq on start ("0", the default: every revocation still in force, then new ones). */
  readonly revocationsAfterSeq?: string;
  /** The shortest time between two JWKS fetches triggered by unknown keys (ms, default 10 000). */
  readonly minJwksRefetchMs?: number;
  /**
   * Local mode: how long the revocation stream may be down before calls are refused with UNAVAILABLE (ms,
   * default 30 000; `Infinity` keeps admitting valid tokens with the revocations already known). Calls are
   * refused until the stream is first up.
   */
  readonly maxRevocationStalenessMs?: number;
  /** Reconnect backoff for the revocation stream (ms; defaults 100 and 5000). */
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** The current time in ms since the epoch (default `Date.now`); expiry timers are set from it. */
  readonly now?: () => number;
}

export interface Enforcer {
  /** Pass in `new grpc.Server({ interceptors: [enforcer.interceptor] })`. */
  readonly interceptor: grpc.ServerInterceptor;
  /**
   * Resolves once jitgate's keys are loaded (local mode) and the revocation stream is subscribed; rejects when
   * that takes longer than `timeoutMs` (default 10 000) or the keys cannot be fetched. Calls before it are
   * refused with UNAVAILABLE (local mode) or may miss revocations.
   */
  ready(timeoutMs?: number): Promise<void>;
  /** Stops following revocations and closes the channel to jitgate; open calls are left as they are. */
  close(): void;
}

export const DEFAULT_MAX_REVOCATION_STALENESS_MS = 30_000;

/** Ends one admitted call with a status. */
type EndCall = (code: grpc.status, details: string) => void;

/**
 * Creates an enforcer. Calls without a token, with a token that does not verify (one at or past its `exp` by
 * the `now` clock included), for a method with no action or an action the token lacks, or for a revoked grant
 * are ended with UNAUTHENTICATED or PERMISSION_DENIED before the handler runs. Admitted streaming calls are
 * ended with PERMISSION_DENIED "access expired" at the token's expiry (no tolerance added) and "access
 * revoked" as soon as the grant's revocation arrives. Fails closed: when tokens cannot be verified (no keys
 * yet, jitgate unreachable in remote mode, revocations not followed for longer than `maxRevocationStalenessMs`
 * in local mode) calls get UNAVAILABLE.
 */
export function createEnforcer(opts: EnforcerOptions): Enforcer {
  const now = opts.now ?? Date.now;
  const mode = opts.mode ?? "local";
  if (mode === "remote" && !opts.resource) throw new RangeError("remote mode needs the service's jitgate resource");
  const client = new JitgateClient(opts.jitgate, opts.callMetadata);
  const openCalls = new Map<string, Set<EndCall>>();
  const revocations = new RevocationFeed(client, {
    now,
    ...(opts.revocationsAfterSeq === undefined ? {} : { afterSeq: opts.revocationsAfterSeq }),
    ...(opts.minBackoffMs === undefined ? {} : { minBackoffMs: opts.minBackoffMs }),
    ...(opts.maxBackoffMs === undefined ? {} : { maxBackoffMs: opts.maxBackoffMs }),
    onRevoked: (grantId) => {
      for (const end of openCalls.get(grantId) ?? []) end(grpc.status.PERMISSION_DENIED, ACCESS_REVOKED);
    },
  });
  const keys = new KeyCache(client, { now, ...(opts.minJwksRefetchMs === undefined ? {} : { minRefetchMs: opts.minJwksRefetchMs }) });
  const admit: Admit =
    mode === "remote"
      ? remoteAdmission({ client, revocations, actionOf: opts.actionOf, resource: opts.resource as string })
      : localAdmission({
          keys,
          revocations,
          maxRevocationStalenessMs: opts.maxRevocationStalenessMs ?? DEFAULT_MAX_REVOCATION_STALENESS_MS,
          actionOf: opts.actionOf,
          verify: {
            issuer: opts.issuer ?? "jitgate",
            audience: opts.audience,
            now,
            ...(opts.clockToleranceS === undefined ? {} : { clockToleranceS: opts.clockToleranceS }),
          },
        });

  /** Keeps an admitted streaming call bounded by its access; returns the function that lets it go. */
  const bound = (admission: Admitted, end: EndCall): (() => void) => {
    // Without a grant id there is no revocation to follow, but the expiry still ends the call.
    const calls = admission.grantId === "" ? new Set<EndCall>() : (openCalls.get(admission.grantId) ?? new Set<EndCall>());
    if (admission.grantId !== "") openCalls.set(admission.grantId, calls);
    calls.add(end);
    const timer =
      admission.expiresAt === undefined
        ? undefined
        : setTimeout(
            () => end(grpc.status.PERMISSION_DENIED, ACCESS_EXPIRED),
            Math.max(0, Math.min(admission.expiresAt - now(), 2 ** 31 - 1)),
          );
    return () => {
      clearTimeout(timer);
      calls.delete(end);
      if (calls.size === 0 && openCalls.get(admission.grantId) === calls) openCalls.delete(admission.grantId);
    };
  };

  const interceptor: grpc.ServerInterceptor = (method, call) => {
    const streaming = method.requestStream || method.responseStream;
    let finished = false;
    let release: (() => void) | undefined;
    const finish = () => {
      finished = true;
      release?.();
      release = undefined;
    };
    const end: EndCall = (code, details) => {
      if (!finished) intercepting.sendStatus({ code, details, metadata: new grpc.Metadata() });
    };
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        const incoming = { methodPath: method.path, metadata, deadline: call.getDeadline(), sourceIp: sourceIpOf(call) };
        // admit does not throw, but a throwing actionOf must not leave the call hanging: fail closed.
        const decided = admit(incoming).catch(() => refuse(grpc.status.INTERNAL, "access could not be decided"));
        void decided.then((admission) => {
          if (finished) return;
          if (!admission.admitted) return end(admission.code, admission.details);
          // Access that has ended while it was being decided (or by this clock, in remote mode) admits nothing.
          if (admission.expiresAt !== undefined && admission.expiresAt <= now()) {
            return end(grpc.status.PERMISSION_DENIED, ACCESS_EXPIRED);
          }
          if (streaming) release = bound(admission, end);
          next(metadata);
        });
      })
      .withOnCancel(finish)
      .build();
    const responder = new grpc.ResponderBuilder()
      .withStart((next) => next(listener))
      // Once the call is ended here, nothing the handler still writes goes out.
      .withSendMessage((message, next) => {
        if (!finished) next(message);
      })
      .withSendStatus((status, next) => {
        if (finished) return;
        finish();
        next(status);
      })
      .build();
    const intercepting = new grpc.ServerInterceptingCall(call, responder);
    return intercepting;
  };

  return {
    interceptor,
    async ready(timeoutMs = 10_000) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`jitgate did not answer within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await Promise.race([Promise.all([mode === "local" ? keys.load() : undefined, revocations.start()]), timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    close() {
      revocations.close();
      client.close();
    },
  };
}

/** The caller's IP address as policy compares it (IPv4-mapped IPv6 addresses in their IPv4 form). */
function sourceIpOf(call: grpc.ServerInterceptingCallInterface): string | undefined {
  const address = call.getConnectionInfo().remoteAddress;
  return address?.startsWith("::ffff:") ? address.slice("::ffff:".length) : address;
}
