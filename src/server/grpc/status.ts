// The one place where errors become gRPC statuses. jitgate's typed errors map by their code (../error-table.ts), with the
// policy's reasons as jit.v1.ErrorDetails in the standard grpc-status-details-bin trailer; anything else is
// INTERNAL with a correlation id that the log line carries, and no internal detail reaches the caller.
import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { InvalidArgument, JitgateError, PermissionDenied, type ReasonDetail } from "../../errors.ts";
import type { Logger } from "../../log.ts";
import { errorDetailTypes } from "../../proto/error-details.ts";
import { STATUS_OF } from "../error-table.ts";

const ERROR_DETAILS_URL = "type.googleapis.com/jit.v1.ErrorDetails";
const types = errorDetailTypes();

/** `correlationId`: the call's request id, so the caller's message and the log line name the same id. */
export function toStatus(err: unknown, log: Logger, correlationId?: string): Partial<grpc.StatusObject> {
  if (err instanceof JitgateError && err.code !== "INTERNAL") {
    const code: grpc.status = STATUS_OF[err.code].grpc;
    return { code, details: err.message, metadata: detailsTrailer(code, err) };
  }
  const id = correlationId ?? randomUUID();
  log.error({ err, correlation_id: id }, "internal error");
  return { code: grpc.status.INTERNAL, details: `internal error (correlation id ${id})` };
}

/** Wire form of a policy reason: the specifics as strings (JSON for anything that is not a string). */
export function reasonToWire(r: ReasonDetail): { code: string; message: string; details: Record<string, string> } {
  const details: Record<string, string> = {};
  for (const [k, v] of Object.entries(r)) {
    if (k !== "code" && k !== "message") details[k] = typeof v === "string" ? v : JSON.stringify(v);
  }
  return { code: r.code, message: r.message, details };
}

function detailsTrailer(code: grpc.status, err: JitgateError): grpc.Metadata | undefined {
  const reasons = err instanceof PermissionDenied ? (err.facts.reasons ?? []) : [];
  const field = err instanceof InvalidArgument ? err.field : "";
  const revision = err instanceof PermissionDenied ? (err.facts.revision ?? "") : "";
  const requestId = err instanceof PermissionDenied ? (err.facts.requestId ?? "") : "";
  if (reasons.length === 0 && field === "") return undefined;
  const details = types.details
    .encode(types.details.create({ reasons: reasons.map(reasonToWire), policy_revision: revision, field, request_id: requestId }))
    .finish();
  const status = types.status
    .encode(types.status.create({ code, message: err.message, details: [{ type_url: ERROR_DETAILS_URL, value: details }] }))
    .finish();
  const md = new grpc.Metadata();
  md.set("grpc-status-details-bin", Buffer.from(status));
  return md;
}

export interface WireErrorDetails {
  reasons: { code: string; message: string; details: Record<string, string> }[];
  policy_revision: string;
  field: string;
  request_id: string;
}

/** For clients (the CLI, tests): the jit.v1.ErrorDetails of a failed call, if it carries any. */
export function errorDetailsOf(err: { metadata?: grpc.Metadata }): WireErrorDetails | undefined {
  const raw = err.metadata?.get("grpc-status-details-bin")[0];
  if (!(raw instanceof Buffer)) return undefined;
  const status = types.status.toObject(types.status.decode(raw), { defaults: true }) as {
    details: { type_url: string; value: Uint8Array }[];
  };
  const any = status.details.find((d) => d.type_url === ERROR_DETAILS_URL);
  return any
    ? (types.details.toObject(types.details.decode(any.value), { defaults: true, arrays: true, objects: true }) as never)
    : undefined;
}
