// protobufjs types for the rich error details jitgate sends (google.rpc.Status carrying jit.v1.ErrorDetails).
import { join } from "node:path";
import protobuf from "protobufjs";
import { ACCESS_PROTO, PROTO_DIR } from "./loader.ts";

/** protobufjs types for encoding and decoding error details. */
export function errorDetailTypes(): { status: protobuf.Type; details: protobuf.Type } {
  const root = new protobuf.Root();
  // Our files by name under proto/; google/protobuf/* are protobufjs's bundled well-known types.
  root.resolvePath = (_origin, target) =>
    target.startsWith("google/protobuf/") || target.startsWith("/") ? target : join(PROTO_DIR, target);
  root.loadSync(["google/rpc/status.proto", ACCESS_PROTO], { keepCase: true });
  return { status: root.lookupType("google.rpc.Status"), details: root.lookupType("jit.v1.ErrorDetails") };
}
