// The example orders service: a few lines wire jitgate's enforcer in front of it.
// Usage: node examples/orders/server.ts --listen 127.0.0.1:7444 --jitgate 127.0.0.1:7443 --data-dir data
// (dev mode: the service identifies itself to jitgate with a token from jitgate's local dev issuer).
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createEnforcer } from "../../src/enforce/interceptor.ts";
import { issueDevToken } from "../../src/identity/dev-issuer.ts";

const { values } = parseArgs({
  options: {
    listen: { type: "string", default: "127.0.0.1:7444" },
    jitgate: { type: "string", default: "127.0.0.1:7443" },
    "data-dir": { type: "string", default: "data" },
  },
});
const pkg = protoLoader.loadSync(join(dirname(fileURLToPath(import.meta.url)), "orders.proto"));
const service = (
  grpc.loadPackageDefinition(pkg) as never as { example: { orders: { v1: { Orders: { service: grpc.ServiceDefinition } } } } }
).example.orders.v1.Orders.service;

const serviceToken = await issueDevToken({
  dataDir: values["data-dir"] as string,
  subject: "orders-service",
  // Following revocations is for the services that enforce access: jitgate's checker group (--checker-groups).
  groups: ["jitgate-checkers"],
  ttlSeconds: 86_400,
});
const enforcer = createEnforcer({
  jitgate: { address: values.jitgate as string, credentials: grpc.credentials.createInsecure() },
  callMetadata: () => {
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${serviceToken}`);
    return md;
  },
  audience: "orders",
  actionOf: (path) =>
    ({
      "/example.orders.v1.Orders/GetOrder": "read",
      "/example.orders.v1.Orders/UpdateOrder": "write",
      "/example.orders.v1.Orders/TailOrders": "read",
    })[path],
});
await enforcer.ready();

const orders = new Map([["o-1", "PAYING"]]);
const server = new grpc.Server({ interceptors: [enforcer.interceptor] });
server.addService(service, {
  GetOrder: (call: grpc.ServerUnaryCall<{ id: string }, unknown>, cb: grpc.sendUnaryData<unknown>) =>
    cb(null, { id: call.request.id, state: orders.get(call.request.id) ?? "UNKNOWN" }),
  UpdateOrder: (call: grpc.ServerUnaryCall<{ id: string; state: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
    orders.set(call.request.id, call.request.state);
    cb(null, { id: call.request.id, state: call.request.state });
  },
  TailOrders: (call: grpc.ServerWritableStream<unknown, unknown>) => {
    const tick = setInterval(() => {
      for (const [id, state] of orders) call.write({ id, state });
    }, 200);
    call.on("close", () => clearInterval(tick));
    call.on("cancelled", () => clearInterval(tick));
  },
});
const port = await new Promise<number>((ok, fail) =>
  server.bindAsync(values.listen as string, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? fail(err) : ok(p))),
);
process.stderr.write(`orders service listening on ${(values.listen as string).replace(/:\d+$/, `:${port}`)}\n`);
const stop = () =>
  server.tryShutdown(() => {
    enforcer.close();
    process.exit(0);
  });
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
