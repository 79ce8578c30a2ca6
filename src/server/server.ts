// The gRPC server: explicit transport limits (grpc-js sets almost none by default), the standard health
// service, and a clean shutdown. Services are added by the caller; this module knows none of their logic.
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation, type ServingStatus } from "grpc-health-check";
import { formatListen } from "../config.ts";

export const SERVER_OPTIONS: grpc.ServerOptions = {
  "grpc.max_receive_message_length": 1 << 20,
  "grpc.max_send_message_length": 4 << 20,
  "grpc.max_concurrent_streams": 256,
  "grpc-node.max_session_memory": 32,
  "grpc.keepalive_time_ms": 60_000,
  "grpc.keepalive_timeout_ms": 20_000,
  "grpc.keepalive_permit_without_calls": 1,
  "grpc.http2.min_ping_interval_without_data_ms": 10_000,
  "grpc.max_connection_idle_ms": 30 * 60_000,
};

/** The names health reports on: the whole server ("") and each jitgate service. */
export const HEALTH_SERVICES = ["", "jit.v1.AccessService"] as const;

export interface RunningServer {
  readonly address: string;
  readonly port: number;
  setServing(serving: boolean): void;
  /** Stops accepting calls, lets running ones finish for up to `graceMs`, then cancels the rest. */
  close(graceMs?: number): Promise<void>;
}

export async function startServer(
  host: string,
  port: number,
  credentials: grpc.ServerCredentials,
  register: (server: grpc.Server) => void,
): Promise<RunningServer> {
  const server = new grpc.Server(SERVER_OPTIONS);
  const health = new HealthImplementation(Object.fromEntries(HEALTH_SERVICES.map((s) => [s, "NOT_SERVING"])));
  health.addToServer(server);
  register(server);
  const bound = await new Promise<number>((ok, fail) =>
    server.bindAsync(formatListen(host, port), credentials, (err, p) => (err ? fail(err) : ok(p))),
  );
  return {
    address: formatListen(host, bound),
    port: bound,
    setServing(serving) {
      const status: ServingStatus = serving ? "SERVING" : "NOT_SERVING";
      for (const s of HEALTH_SERVICES) health.setStatus(s, status);
    },
    close(graceMs = 5_000) {
      for (const s of HEALTH_SERVICES) health.setStatus(s, "NOT_SERVING");
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
