// Loads jitgate's protos once: the service definition for grpc-js and reflection, and protobufjs types
// for the rich error details (google.rpc.Status carrying jit.v1.ErrorDetails).
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";

export const PROTO_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "proto");
export const ACCESS_PROTO = "jit/v1/access.proto";

/** How wire messages look in JavaScript: field names as in the .proto, enums as names, int64 as strings. */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

export function loadAccessPackage(): protoLoader.PackageDefinition {
  return protoLoader.loadSync(ACCESS_PROTO, LOADER_OPTIONS);
}

export function accessServiceDefinition(pkg: protoLoader.PackageDefinition): grpc.ServiceDefinition {
  return pkg["jit.v1.AccessService"] as grpc.ServiceDefinition;
}

/** protobufjs types for encoding and decoding error details. */
export function errorDetailTypes(): { status: protobuf.Type; details: protobuf.Type } {
  const root = new protobuf.Root();
  // Our files by name under proto/; google/protobuf/* are protobufjs's bundled well-known types.
  root.resolvePath = (_origin, target) =>
    target.startsWith("google/protobuf/") || target.startsWith("/") ? target : join(PROTO_DIR, target);
  root.loadSync(["google/rpc/status.proto", ACCESS_PROTO], { keepCase: true });
  return { status: root.lookupType("google.rpc.Status"), details: root.lookupType("jit.v1.ErrorDetails") };
}
