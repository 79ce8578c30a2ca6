// Admission control at the gRPC edge: bounds the calls served at once, per process and per connection, and
// refuses one past either bound at once with RESOURCE_EXHAUSTED (before authentication or any other work), so
// overload is answered in microseconds instead of queued until the caller's deadline passes.
import { ResourceExhausted, type ResourceLimit } from "../../errors.ts";

export interface AdmissionLimits {
  readonly maxInFlight: number;
  readonly maxInFlightPerConnection: number;
}

/** What grpc-js's `getPeer()` says when the socket has no address: no connection to count by. */
const UNKNOWN_PEER = "unknown";

export class Admission {
  readonly #limits: AdmissionLimits;
  readonly #onRefused: (limit: ResourceLimit) => void;
  readonly #byConnection = new Map<string, number>();
  #inFlight = 0;
  // Built once: under overload every refusal would otherwise allocate (and capture a stack for) a new error.
  readonly #processFull: ResourceExhausted;
  readonly #connectionFull: ResourceExhausted;

  /** `onRefused`: told of every refusal this edge answers, jitgate's own limits and the domain's alike. */
  constructor(limits: AdmissionLimits, onRefused: (limit: ResourceLimit) => void = () => {}) {
    this.#limits = limits;
    this.#onRefused = onRefused;
    this.#processFull = new ResourceExhausted(
      "in_flight",
      `jitgate is at its limit of ${limits.maxInFlight} calls in flight; retry with backoff`,
    );
    this.#connectionFull = new ResourceExhausted(
      "connection_in_flight",
      `this connection is at jitgate's limit of ${limits.maxInFlightPerConnection} calls in flight per connection; retry with backoff`,
    );
  }

  /**
   * Admits one call on `connection` (grpc-js's `call.getPeer()`: address and port, one per connection), or throws
   * ResourceExhausted. The returned function ends the call; calling it again does nothing.
   */
  enter(connection: string): () => void {
    if (this.#inFlight >= this.#limits.maxInFlight) throw this.#processFull;
    const counted = connection !== UNKNOWN_PEER;
    const onConnection = counted ? (this.#byConnection.get(connection) ?? 0) : 0;
    if (onConnection >= this.#limits.maxInFlightPerConnection) throw this.#connectionFull;
    this.#inFlight++;
    if (counted) this.#byConnection.set(connection, onConnection + 1);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.#inFlight--;
      if (!counted) return;
      const rest = (this.#byConnection.get(connection) ?? 1) - 1;
      if (rest > 0) this.#byConnection.set(connection, rest);
      else this.#byConnection.delete(connection);
    };
  }

  /** Counts a refusal answered at this edge (`err` is anything a call failed with; only ResourceExhausted counts). */
  refused(err: unknown): void {
    if (err instanceof ResourceExhausted) this.#onRefused(err.limit);
  }

  /** Calls being served now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Connections with calls being served now (the per-connection table never outgrows this). */
  get connections(): number {
    return this.#byConnection.size;
  }
}
