// Loads jitgate's protos: the service definition for grpc-js and reflection (also what src/enforce's client
// uses, so this file needs nothing beyond grpc-js and proto-loader).
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

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
