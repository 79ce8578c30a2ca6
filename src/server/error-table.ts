// The one table from jitgate's error codes to each transport's status: gRPC's status code (the numbers
// google.rpc.Code defines) and HTTP's (Google's canonical mapping of those codes, as gRPC-HTTP gateways use). The
// gRPC front end (grpc/status.ts) and the HTTP front end both read it; nothing else maps errors to statuses.
import type { ErrorCode } from "../errors.ts";

export interface TransportStatus {
  /** google.rpc.Code / grpc-js `grpc.status`. */
  readonly grpc: number;
  readonly http: number;
}

export const STATUS_OF: Readonly<Record<ErrorCode, TransportStatus>> = Object.freeze({
  INVALID_ARGUMENT: { grpc: 3, http: 400 },
  DEADLINE_EXCEEDED: { grpc: 4, http: 504 },
  NOT_FOUND: { grpc: 5, http: 404 },
  ALREADY_EXISTS: { grpc: 6, http: 409 },
  PERMISSION_DENIED: { grpc: 7, http: 403 },
  RESOURCE_EXHAUSTED: { grpc: 8, http: 429 },
  FAILED_PRECONDITION: { grpc: 9, http: 400 },
  INTERNAL: { grpc: 13, http: 500 },
  UNAVAILABLE: { grpc: 14, http: 503 },
  UNAUTHENTICATED: { grpc: 16, http: 401 },
});
