// The benchmark's baseline: jit.v1.AccessService on grpc-js whose Check answers a fixed allow at once (no
// authentication, store, policy or logging), so the difference to jitgate is jitgate's own work per call.
import * as grpc from "@grpc/grpc-js";
import { accessServiceDefinition, loadAccessPackage } from "../src/proto/loader.ts";

const server = new grpc.Server();
const answer = { allow: true, reasons: [], decision_id: "baseline", grant_id: "g", standing: false, policy_revision: "baseline" };
server.addService(accessServiceDefinition(loadAccessPackage()), {
  Check: (_call: unknown, callback: grpc.sendUnaryData<object>) => callback(null, answer),
});
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stderr.write(`listening on 127.0.0.1:${port}\n`);
});
process.once("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
