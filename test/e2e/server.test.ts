// What generic gRPC tooling sees of a running jitgate: the standard health service and server reflection.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { type E2eServer, startE2eServer } from "../support/api.ts";
import { healthStatus } from "../support/jitgate.ts";

/** reflection.proto as @grpc/reflection ships it (found through the package, not a fixed node_modules path). */
const REFLECTION_PROTO = join(
  dirname(createRequire(import.meta.url).resolve("@grpc/reflection")),
  "..",
  "proto",
  "grpc",
  "reflection",
  "v1",
  "reflection.proto",
);

interface ReflectionResponse {
  list_services_response?: { service: { name: string }[] };
  error_response?: { error_code: number; error_message: string };
}

/** grpc.reflection.v1.ServerReflection/ServerReflectionInfo with one list_services request. */
function listServices(address: string): Promise<string[]> {
  const pkg = protoLoader.loadSync(REFLECTION_PROTO, { keepCase: true, defaults: true, oneofs: true });
  const Client = grpc.makeGenericClientConstructor(pkg["grpc.reflection.v1.ServerReflection"] as grpc.ServiceDefinition, "Reflection");
  const client = new Client(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    ServerReflectionInfo: (opts: grpc.CallOptions) => grpc.ClientDuplexStream<object, ReflectionResponse>;
  };
  const call = client.ServerReflectionInfo({ deadline: Date.now() + 5_000 });
  return new Promise<string[]>((ok, fail) => {
    call.once("data", (res: ReflectionResponse) => {
      call.end();
      if (res.list_services_response) ok(res.list_services_response.service.map((s) => s.name));
      else fail(new Error(`reflection answered ${JSON.stringify(res)}`));
    });
    call.once("error", fail);
    call.write({ list_services: "" });
  }).finally(() => client.close());
}

describe("gRPC tooling", () => {
  let server: E2eServer;
  before(async () => {
    server = await startE2eServer();
  });
  after(() => server.close());

  test("health reports SERVING for the whole server and for jit.v1.AccessService", async () => {
    assert.equal(await healthStatus(server.jitgate.address, ""), "SERVING");
    assert.equal(await healthStatus(server.jitgate.address, "jit.v1.AccessService"), "SERVING");
  });

  test("server reflection lists jit.v1.AccessService", async () => {
    const services = await listServices(server.jitgate.address);
    assert.ok(services.includes("jit.v1.AccessService"), `services: ${services.join(", ")}`);
  });
});
