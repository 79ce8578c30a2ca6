// A request id for every call: the caller's own `x-request-id` when it sent a sensible one (so one id follows a
// request across services), else a new one. It is sent back in the response headers, named in the log lines
// about the call, and is the correlation id an INTERNAL error quotes.
import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";

export const REQUEST_ID_HEADER = "x-request-id";
const SENSIBLE = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdOf(metadata: grpc.Metadata): string {
  const [given] = metadata.get(REQUEST_ID_HEADER);
  return typeof given === "string" && SENSIBLE.test(given) ? given : randomUUID();
}

/** Response headers carrying the request id. */
export function requestIdHeaders(requestId: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(REQUEST_ID_HEADER, requestId);
  return md;
}
