// The gRPC server: explicit transport limits (grpc-js sets almost none by default), the standard health
// service, mTLS on jitgate's own TLS listener, and a clean shutdown. Services are added by the caller; this
// module knows none of their logic.
import { once } from "node:events";
import { createServer as createTlsServer, type TLSSocket } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation, type ServingStatus } from "grpc-health-check";
import { DEFAULT_SERVER_LIMITS, formatListen, type ServerLimits } from "../../config.ts";
import type { Unauthenticated } from "../../errors.ts";
import { type ClientCertificateCheck, clientCertificateRefusal, MutualTlsCredentials, type ServerTls } from "../../identity/mtls.ts";

/**
 * grpc-js's server options for `limits` (defaults and their reasons: DEFAULTS in src/config.ts). Not here because
 * the grpc-js 1.14 server never reads them (checked in its source): `grpc.max_metadata_size` (a C-core option;
 * Node's HTTP/2 layer alone bounds metadata: 128 headers, each at most 64 KiB HPACK-encoded, and the session
 * memory below), `grpc.keepalive_permit_without_calls` and `grpc.http2.min_ping_interval_without_data_ms`
 * (client-side in grpc-js; its server pings on its own schedule and enforces no ping policy).
 */
export function serverOptions(limits: ServerLimits): grpc.ServerOptions {
  const unlimited = ~(1 << 31); // grpc-js's own "never" for these timers
  return {
    "grpc.max_receive_message_length": limits.maxReceiveMessageBytes,
    "grpc.max_send_message_length": limits.maxSendMessageBytes,
    "grpc.max_concurrent_streams": limits.maxConcurrentStreams,
    // MB of HTTP/2 buffers per connection; past it Node refuses new streams (the client sees RESOURCE_EXHAUSTED).
    "grpc-node.max_session_memory": 32,
    "grpc.keepalive_time_ms": limits.keepaliveIntervalMs,
    "grpc.keepalive_timeout_ms": limits.keepaliveTimeoutMs,
    "grpc.max_connection_idle_ms": limits.maxConnectionIdleMs || unlimited,
    "grpc.max_connection_age_ms": limits.maxConnectionAgeMs || unlimited,
    "grpc.max_connection_age_grace_ms": limits.maxConnectionAgeGraceMs || unlimited,
  };
}

/**
 * Health names SERVING while decisions can be served (a policy loaded, the decision log keeping up): the whole
 * server ("") and jit.v1.AccessService, so a load balancer keeps sending Checks while writes are down.
 */
export const DECISION_HEALTH_SERVICES = ["", "jit.v1.AccessService"] as const;

/** The health name SERVING only while lifecycle writes (requests, reviews, grants, revocations) are possible. */
export const WRITES_HEALTH_SERVICE = "jitgate.writes";

/** Every name health reports on. */
export const HEALTH_SERVICES = [...DECISION_HEALTH_SERVICES, WRITES_HEALTH_SERVICE] as const;

/** What jitgate can do now, as gRPC health reports it. */
export interface ServingState {
  /** Checks are answered and their decisions recorded. */
  readonly decisions: boolean;
  /** Lifecycle writes commit. */
  readonly writes: boolean;
}

export interface RunningServer {
  readonly address: string;
  readonly port: number;
  setServing(state: ServingState): void;
  /** Stops accepting calls, lets running ones finish for up to `graceMs`, then cancels the rest. */
  close(graceMs?: number): Promise<void>;
}

/**
 * `credentials` from `serverCredentials` (src/identity/mtls.ts) are served on jitgate's own TLS listener, so a
 * refused client certificate is an UNAUTHENTICATED call naming why; any other credentials go to grpc-js.
 */
export async function startServer(
  host: string,
  port: number,
  credentials: grpc.ServerCredentials,
  register: (server: grpc.Server) => void,
  limits: ServerLimits = DEFAULT_SERVER_LIMITS,
): Promise<RunningServer> {
  const server = new grpc.Server(serverOptions(limits));
  const health = new HealthImplementation(Object.fromEntries(HEALTH_SERVICES.map((s) => [s, "NOT_SERVING"])));
  health.addToServer(server);
  register(server);
  const listener =
    credentials instanceof MutualTlsCredentials
      ? await listenMutualTls(server, credentials.tls, host, port)
      : await bindGrpc(server, credentials, host, port);
  return {
    address: formatListen(host, listener.port),
    port: listener.port,
    setServing(state) {
      const statusOf = (serving: boolean): ServingStatus => (serving ? "SERVING" : "NOT_SERVING");
      for (const s of DECISION_HEALTH_SERVICES) health.setStatus(s, statusOf(state.decisions));
      health.setStatus(WRITES_HEALTH_SERVICE, statusOf(state.writes));
    },
    close(graceMs = 5_000) {
      for (const s of HEALTH_SERVICES) health.setStatus(s, "NOT_SERVING");
      listener.stopAccepting();
      return new Promise<void>((done) => {
        const force = setTimeout(() => server.forceShutdown(), graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          done();
        });
      });
    },
  };
}

interface Listener {
  readonly port: number;
  stopAccepting(): void;
}

async function bindGrpc(server: grpc.Server, credentials: grpc.ServerCredentials, host: string, port: number): Promise<Listener> {
  const bound = await new Promise<number>((ok, fail) =>
    server.bindAsync(formatListen(host, port), credentials, (err, p) => (err ? fail(err) : ok(p))),
  );
  // grpc-js stops its own listeners in tryShutdown/forceShutdown.
  return { port: bound, stopAccepting: () => {} };
}

/**
 * mTLS where grpc-js cannot say why a certificate was refused: its `createSsl(ca, ..., true)` fails the
 * handshake (the client sees UNAVAILABLE) and its `getAuthContext` shows only certificates TLS verified. So
 * this listener asks for a client certificate without failing the handshake, and hands each connection to a
 * grpc-js connection injector by what TLS found: verified, or none where none is needed, to the one that
 * serves calls (grpc-js then reports the verified certificate, and only that, in `getAuthContext`); any other
 * to one that refuses every call on it with UNAUTHENTICATED and the reason, before a handler runs.
 */
async function listenMutualTls(server: grpc.Server, tls: ServerTls, host: string, port: number): Promise<Listener> {
  const serving = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  // One per reason; reasons come from a fixed set of OpenSSL verification codes, so this stays small.
  const refusing = new Map<string, grpc.ConnectionInjector>();
  const refusingWith = (refusal: Unauthenticated) => {
    let injector = refusing.get(refusal.message);
    if (!injector) {
      const credentials = grpc.experimental.createServerCredentialsWithInterceptors(grpc.ServerCredentials.createInsecure(), [
        refuseEveryCall(refusal),
      ]);
      injector = server.createConnectionInjector(credentials);
      refusing.set(refusal.message, injector);
    }
    return injector;
  };
  const listener = createTlsServer({
    ca: tls.ca,
    cert: tls.cert,
    key: tls.key,
    requestCert: true,
    rejectUnauthorized: false,
    ALPNProtocols: ["h2"],
  });
  let stopped = false;
  listener.on("secureConnection", (socket: TLSSocket) => {
    // A handshake that ends after shutdown began would reach a server that no longer drains its connections.
    if (stopped) return socket.destroy();
    // As grpc-js does for its own TLS connections (nodejs/node#35824): an error ends the connection and its calls.
    socket.on("error", () => {});
    // The verdict below, and the certificate grpc-js reports per call, are this handshake's: a TLS 1.2
    // renegotiation must not bring in another certificate afterwards, so it ends the connection instead.
    // (Node's HTTP/2 session disables it too; this keeps the guarantee beside the verdict it protects.)
    socket.disableRenegotiation();
    const refusal = clientCertificateRefusal(certificateCheck(socket), tls.requireClientCert);
    (refusal ? refusingWith(refusal) : serving).injectConnection(socket);
  });
  listener.listen(port, host);
  await once(listener, "listening");
  const address = listener.address();
  return {
    port: typeof address === "object" && address ? address.port : port,
    // Connections already handed over are grpc-js's: the server's shutdown drains them.
    stopAccepting: () => {
      stopped = true;
      listener.close();
    },
  };
}

function certificateCheck(socket: TLSSocket): ClientCertificateCheck {
  // Node's types say Error; at run time it is the OpenSSL code as a string (UNABLE_TO_VERIFY_LEAF_SIGNATURE).
  const error = socket.authorizationError as unknown;
  return {
    presented: socket.getPeerCertificate().raw !== undefined,
    authorized: socket.authorized,
    authorizationError: typeof error === "string" ? error : error instanceof Error ? error.message : undefined,
  };
}

/** Ends each call with `refusal` as soon as its headers arrive, so no handler (or health check) runs. */
function refuseEveryCall(refusal: Unauthenticated): grpc.ServerInterceptor {
  const status = { code: grpc.status.UNAUTHENTICATED, details: refusal.message };
  return (_method, call) => {
    const refused: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(call, {
      start: (next) => next({ onReceiveMetadata: () => refused.sendStatus({ ...status, metadata: new grpc.Metadata() }) }),
    });
    return refused;
  };
}
