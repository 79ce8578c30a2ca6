// The error table: every jitgate error code has a gRPC status that is grpc-js's own number for the same name, and
// the HTTP status of Google's canonical mapping; a typed error reaches a gRPC caller with that status.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import {
  AlreadyExists,
  FailedPrecondition,
  InvalidArgument,
  NotFound,
  PermissionDenied,
  Unauthenticated,
  Unavailable,
} from "../../src/errors.ts";
import { STATUS_OF } from "../../src/server/error-table.ts";
import { toStatus } from "../../src/server/grpc/status.ts";

const HTTP_OF_GRPC: Readonly<Record<string, number>> = {
  INVALID_ARGUMENT: 400,
  FAILED_PRECONDITION: 400,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  RESOURCE_EXHAUSTED: 429,
  INTERNAL: 500,
  UNAVAILABLE: 503,
  DEADLINE_EXCEEDED: 504,
};

test("each error code maps to grpc-js's status of the same name and to its canonical HTTP status", () => {
  for (const [code, status] of Object.entries(STATUS_OF)) {
    assert.equal(status.grpc, grpc.status[code as keyof typeof grpc.status], code);
    assert.equal(status.http, HTTP_OF_GRPC[code], code);
  }
  assert.deepEqual(Object.keys(STATUS_OF).sort(), Object.keys(HTTP_OF_GRPC).sort());
});

test("a typed error reaches a gRPC caller with its table status and its own message; anything else is INTERNAL", () => {
  const log = pino({ level: "silent" });
  const cases = [
    new InvalidArgument("resource", "is required"),
    new NotFound("grant g does not exist"),
    new AlreadyExists("request exists"),
    new PermissionDenied("no"),
    new Unauthenticated("token expired"),
    new FailedPrecondition("not pending"),
    new Unavailable("store down"),
  ];
  for (const err of cases) {
    const status = toStatus(err, log);
    assert.equal(status.code, STATUS_OF[err.code].grpc, err.code);
    assert.equal(status.details, err.message);
  }
  const internal = toStatus(new Error("SELECT * FROM secrets"), log, "c-1");
  assert.deepEqual([internal.code, internal.details], [grpc.status.INTERNAL, "internal error (correlation id c-1)"]);
});
