// jit.v1.AccessService over gRPC: authenticate the caller, validate the message, call the access domain,
// map the answer (or the error, in status.ts) back. Handlers stay thin; the rules live in src/access.
import * as grpc from "@grpc/grpc-js";
import type { Access, WatchStream } from "../../access/access.ts";
import type { AccessRequest, Caller, GrantEvent } from "../../access/model.ts";
import type { Clock } from "../../access/ports.ts";
import type { Logger } from "../../log.ts";
import type { Credentials } from "../../identity/authenticator.ts";
import type { Admission } from "./admission.ts";
import { DeadlineExceeded } from "../../errors.ts";
import { requestIdHeaders, requestIdOf } from "./request-id.ts";
import { toStatus } from "./status.ts";
import * as v from "./validate.ts";
import { auditEntryToWire, checkToWire, grantEventToWire, grantToWire, requestToWire, timestamp } from "./wire.ts";

/** Verifies who is calling (src/identity), from the credentials a call presents. */
export interface CallerAuthenticator {
  authenticate(credentials: Credentials): Promise<Caller>;
}

/** What a gRPC call presents: its `authorization` metadata, and the client certificate TLS verified (if any). */
export function grpcCredentials(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>): Credentials {
  return { authorization: call.metadata.get("authorization"), peerCertificate: call.getAuthContext()?.sslPeerCertificate };
}

type Wire = Record<string, unknown>;

/** `now`: wall-clock time, as grpc deadlines are (not jitgate's clock, which tests may set). */
function pastDeadline(deadline: grpc.Deadline, now: number): boolean {
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) && at <= now;
}

/** A watcher that falls this far behind is cut off and told where to resume, instead of buffering forever. */
const MAX_WATCH_BUFFER = 1 << 20;

export function accessServiceHandlers(
  access: Access,
  auth: CallerAuthenticator,
  clock: Clock,
  log: Logger,
  admission: Admission,
): grpc.UntypedServiceImplementation {
  const debug = log.isLevelEnabled("debug");
  const unary =
    (
      fn: (caller: Caller, req: Wire, call: grpc.ServerUnaryCall<Wire, unknown>) => unknown | Promise<unknown>,
    ): grpc.handleUnaryCall<Wire, unknown> =>
    async (call, callback) => {
      const requestId = requestIdOf(call.metadata);
      const started = debug ? performance.now() : 0;
      let code: grpc.status = grpc.status.OK;
      let leave: (() => void) | undefined;
      try {
        leave = admission.enter(call.getPeer());
        // A call its client gave up on stops counting, even while its handler waits on (RequestAccess with wait).
        call.once("cancelled", leave);
        const caller = await auth.authenticate(grpcCredentials(call));
        // Nothing is started for a client that has gone or a deadline that has passed (grpc-js ends such a call
        // on its own from a timer; this check does not depend on that timer having run).
        if (call.cancelled) return;
        if (pastDeadline(call.getDeadline(), Date.now()))
          throw new DeadlineExceeded("the call's deadline passed before jitgate started it");
        const answer = await fn(caller, call.request, call);
        call.sendMetadata(requestIdHeaders(requestId));
        callback(null, answer);
      } catch (err) {
        admission.refused(err);
        const status = toStatus(err, log.child({ request_id: requestId, method: call.getPath() }), requestId);
        code = status.code ?? grpc.status.UNKNOWN;
        if (!call.cancelled) {
          call.sendMetadata(requestIdHeaders(requestId));
          callback(status);
        }
      } finally {
        leave?.();
        // One line per call only at debug level: the decision path logs nothing by default (the decision log has it).
        if (debug)
          log.debug({ request_id: requestId, method: call.getPath(), code: grpc.status[code], ms: performance.now() - started }, "call");
      }
    };
  // A watch holds its slot while it is open: until it ends, fails or its client cancels it.
  const admitted = (serve: (call: EventStream) => unknown) => (call: EventStream) => {
    let leave: () => void;
    try {
      leave = admission.enter(call.getPeer());
    } catch (err) {
      admission.refused(err);
      call.emit("error", toStatus(err, log, requestIdOf(call.metadata)));
      return;
    }
    call.once("close", leave);
    call.once("cancelled", leave);
    return serve(call);
  };
  const withGrant = async (r: AccessRequest) => requestToWire(r, r.grantId ? await access.getGrant(r.grantId) : undefined, clock.now());

  return {
    RequestAccess: unary(async (caller, req, call) => {
      const input = v.requestAccessInput(req);
      const request = await access.requestAccess(caller, input);
      if (!input.wait || request.state !== "PENDING") return withGrant(request);
      return withGrant(await decided(access, request.id, call));
    }),
    GetAccessRequest: unary(async (caller, req) => withGrant(await access.getRequest(caller, v.requiredName(req, "id")))),
    ListAccessRequests: unary(async (caller, req) => {
      const filter = { state: v.requestState(req), requester: v.optionalName(req, "requester"), resource: v.optionalName(req, "resource") };
      const page = await access.listRequests(caller, filter, v.page(req));
      return { requests: await Promise.all(page.items.map(withGrant)), next_page_token: page.next };
    }),
    ReviewAccessRequest: unary(async (caller, req) => withGrant(await access.review(caller, v.reviewInput(req)))),
    CancelAccessRequest: unary(async (caller, req) =>
      withGrant(await access.cancel(caller, v.requiredName(req, "id"), v.optionalText(req, "reason"))),
    ),
    Check: unary(async (caller, req) => checkToWire(await access.ask(caller, v.question(req)))),
    IssueToken: unary(async (caller, req) => {
      const t = await access.issueToken(caller, v.requiredName(req, "grant_id"));
      return { token: t.token, expire_time: timestamp(t.expiresAt), token_id: t.jti, grant_id: t.grantId, audience: t.audience };
    }),
    GetJwks: unary(async () => ({ jwks_json: JSON.stringify(await access.jwks()) })),
    WatchRevocations: admitted((call) => watchRevocations(access, auth, clock, log, call)),
    ListGrants: unary(async (caller, req) => {
      const filter = {
        subject: v.optionalName(req, "subject"),
        resource: v.optionalName(req, "resource"),
        activeAt: v.asOf(req),
        includeInactive: req.include_inactive === true,
      };
      const page = await access.listGrants(caller, filter, v.page(req));
      return { grants: page.items.map((g) => grantToWire(g, clock.now())), next_page_token: page.next };
    }),
    ListAuditEntries: unary(async (caller, req) => {
      const filter = { subject: v.optionalName(req, "subject"), resource: v.optionalName(req, "resource"), ...v.timeRange(req) };
      const page = await access.listAuditEntries(caller, filter, v.page(req));
      return { entries: page.items.map(auditEntryToWire), next_page_token: page.next };
    }),
    RevokeGrant: unary(async (caller, req) =>
      grantToWire(await access.revokeGrant(caller, v.requiredName(req, "grant_id"), v.optionalText(req, "reason")), clock.now()),
    ),
    RevokeSubject: unary(async (caller, req) => ({
      revoked: (await access.revokeSubject(caller, v.requiredName(req, "subject"), v.optionalText(req, "reason"))).map((g) =>
        grantToWire(g, clock.now()),
      ),
    })),
    WatchGrants: admitted((call) => watchGrants(access, auth, clock, log, call)),
  };
}

/** Resolves when the request is decided; rejects never: a passed deadline cancels the call, and grpc-js answers DEADLINE_EXCEEDED. */
function decided(access: Access, id: string, call: grpc.ServerUnaryCall<Wire, unknown>) {
  return new Promise<AccessRequest>((resolve) => {
    const stop = access.waitForDecision(id, resolve);
    call.once("cancelled", stop);
  });
}

type EventStream = grpc.ServerWritableStream<Wire, unknown>;

/**
 * Serves a resumable event stream: authenticates, subscribes after `after_seq` (0: from when the call
 * arrived, so nothing committed during authentication is lost), sends headers once live, cuts off a watcher
 * that falls too far behind with the seq to resume from, and unsubscribes when the call ends.
 */
async function serveEvents(
  access: Access,
  auth: CallerAuthenticator,
  log: Logger,
  call: EventStream,
  subscribe: (caller: Caller, afterSeq: number, stream: WatchStream) => () => void,
  toWire: (event: GrantEvent) => object,
  startPoint: () => Promise<number> = () => access.latestGrantEventSeq(),
) {
  // Asked when the call arrives: nothing committed while the caller is being authenticated is missed.
  const arrivedAt = startPoint();
  arrivedAt.catch(() => undefined);
  const requestId = requestIdOf(call.metadata);
  const fail = (err: unknown) => call.emit("error", toStatus(err, log.child({ request_id: requestId, method: call.getPath() }), requestId));
  try {
    const caller = await auth.authenticate(grpcCredentials(call));
    const requested = Number(call.request.after_seq ?? 0);
    let lastSeq = requested > 0 ? requested : await arrivedAt;
    // Headers first, in the same turn as the subscription below: nothing can slip in between, and replayed
    // events (which follow at once) come after them with the request id.
    call.sendMetadata(requestIdHeaders(requestId));
    const stop = subscribe(caller, lastSeq, {
      deliver: (event) => {
        if (call.cancelled) return;
        if (call.writableLength > MAX_WATCH_BUFFER) {
          stop();
          call.emit("error", { code: grpc.status.RESOURCE_EXHAUSTED, details: `watcher too slow; resume with after_seq=${lastSeq}` });
          return;
        }
        lastSeq = event.seq;
        call.write(toWire(event));
      },
      ended: () => call.end(),
      // The store could not be read for the backlog: the watcher resumes by seq once it can.
      failed: (err) => {
        if (!call.cancelled) fail(err);
      },
    });
    call.once("cancelled", stop);
  } catch (err) {
    // grpc-js ends a server stream with the status of an emitted error.
    fail(err);
  }
}

function watchGrants(access: Access, auth: CallerAuthenticator, clock: Clock, log: Logger, call: EventStream) {
  // The filter is validated inside serveEvents' error handling: a bad one ends the stream with INVALID_ARGUMENT.
  const filter = () => ({ subject: v.optionalName(call.request, "subject"), resource: v.optionalName(call.request, "resource") });
  return serveEvents(
    access,
    auth,
    log,
    call,
    (caller, afterSeq, stream) => access.watchGrants(caller, { ...filter(), afterSeq }, stream),
    (e) => grantEventToWire(e, clock.now()),
  );
}

/** Revoked grants for token verifiers; resumable by seq like WatchGrants. */
function watchRevocations(access: Access, auth: CallerAuthenticator, clock: Clock, log: Logger, call: EventStream) {
  return serveEvents(
    access,
    auth,
    log,
    call,
    (caller, afterSeq, stream) => access.watchRevocations(caller, afterSeq, stream),
    (e) => {
      const g = grantEventToWire(e, clock.now()).grant;
      return {
        seq: String(e.seq),
        grant_id: g.id,
        subject: g.subject,
        audience: g.audience,
        revoke_time: g.revoke_time,
        expire_time: g.expire_time,
      };
    },
    // include_in_force: start from the revocations whose grants have not expired, so none is missed.
    () => (call.request.include_in_force === true ? access.revocationsInForceSeq() : access.latestGrantEventSeq()),
  );
}
