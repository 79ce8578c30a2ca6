// Check throughput of `jitgate serve --workers N` over several connections (node:cluster balances connections,
// not calls, so bench/check.ts's one channel lands on one worker). Usage: node bench/check-workers.ts 1 2 1 2
import { once } from "node:events";
import { loadavg } from "node:os";
import * as grpc from "@grpc/grpc-js";
import { accessServiceDefinition, loadAccessPackage } from "../src/proto/loader.ts";
import { api, orderReadGrant, tokenFor } from "../test/support/api.ts";
import { removeDir, tempDir } from "../test/support/bundles.ts";
import { spawnDevServe } from "../test/support/jitgate.ts";
import { runH2load, writeGrpcBody } from "./h2load.ts";

const CONNECTIONS = 8;
const IN_FLIGHT = 64;
const CALLS = 20_000;
const AccessClient = grpc.makeGenericClientConstructor(accessServiceDefinition(loadAccessPackage()), "AccessService");
type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void) => void;

async function run(workers: string): Promise<{ node: number; h2load: number }> {
  const dataDir = await tempDir("jitgate-bench-workers-");
  const serve = await spawnDevServe(dataDir, ["--workers", workers]);
  const holder = api(serve.address);
  await orderReadGrant(holder.as(await tokenFor(dataDir, "tess", ["engineering"])));
  holder.close();
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${await tokenFor(dataDir, "svc-orders", ["jitgate-checkers"])}`);
  const clients = Array.from(
    { length: CONNECTIONS },
    () =>
      new AccessClient(serve.address, grpc.credentials.createInsecure(), {
        "grpc.use_local_subchannel_pool": 1,
      }) as unknown as grpc.Client & Record<string, Unary>,
  );
  const request = {
    subject: "tess",
    subject_groups: ["engineering"],
    resource: "db/orders",
    action: "read",
    context: { source_ip: "10.1.2.3" },
  };
  const check = (i: number) =>
    new Promise<void>((ok, fail) => {
      const c = clients[i % CONNECTIONS] as grpc.Client & Record<string, Unary>;
      (c.Check as Unary).call(c, request, md, { deadline: Date.now() + 10_000 }, (err) => (err ? fail(err) : ok()));
    });
  const burst = async (n: number) => {
    let sent = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async (_, lane) => {
        while (sent < n) {
          sent++;
          await check(lane);
        }
      }),
    );
  };
  await burst(2_000); // warm-up
  const t0 = performance.now();
  await burst(CALLS);
  const rate = CALLS / ((performance.now() - t0) / 1000);
  for (const c of clients) c.close();
  // The same Check from h2load (C, far cheaper per call than a Node client on the same cores).
  const message = accessServiceDefinition(loadAccessPackage()).Check?.requestSerialize(request);
  if (!message) throw new Error("no Check");
  const h2 = await runH2load({
    url: `http://${serve.address}/jit.v1.AccessService/Check`,
    bodyFile: await writeGrpcBody(dataDir, "check.grpc", message),
    headers: { "content-type": "application/grpc", te: "trailers", authorization: md.get("authorization")[0] as string },
    clients: CONNECTIONS,
    streams: IN_FLIGHT / CONNECTIONS,
    seconds: 8,
    logFile: `${dataDir}/h2load.tsv`,
  });
  const exited = once(serve.child, "exit");
  serve.child.kill("SIGTERM");
  await exited;
  await removeDir(dataDir);
  return { node: rate, h2load: h2.perSecond };
}

for (const workers of process.argv.slice(2)) {
  const before = loadavg()[0]?.toFixed(2);
  const rate = await run(workers);
  console.log(
    `workers ${workers}: node client ${rate.node.toFixed(0)} Checks/s, h2load ${rate.h2load.toFixed(0)} Checks/s (${CONNECTIONS} connections, ${IN_FLIGHT} in flight); load ${before} -> ${loadavg()[0]?.toFixed(2)}`,
  );
}
