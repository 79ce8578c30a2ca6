// A client of the example orders service: get, update or tail orders with a jitgate access token.
// Usage: node examples/orders/client.ts get|update|tail --token TOKEN [--address 127.0.0.1:7444]
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    address: { type: "string", default: "127.0.0.1:7444" },
    token: { type: "string" },
    state: { type: "string", default: "SHIPPED" },
  },
});
const pkg = protoLoader.loadSync(join(dirname(fileURLToPath(import.meta.url)), "orders.proto"));
type Unary = (req: object, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;
type Stream = (req: object, md: grpc.Metadata) => grpc.ClientReadableStream<unknown>;
type Client = grpc.Client & { GetOrder: Unary; UpdateOrder: Unary; TailOrders: Stream };
const Orders = (
  grpc.loadPackageDefinition(pkg) as never as {
    example: { orders: { v1: { Orders: new (a: string, c: grpc.ChannelCredentials) => Client } } };
  }
).example.orders.v1.Orders;
const client = new Orders(values.address as string, grpc.credentials.createInsecure());
const md = new grpc.Metadata();
if (values.token) md.set("authorization", `Bearer ${values.token}`);

const fail = (err: grpc.ServiceError) => {
  process.stderr.write(`orders: ${grpc.status[err.code]}: ${err.details}\n`);
  process.exit(1);
};
const done = (err: grpc.ServiceError | null, res: unknown) => {
  if (err) fail(err);
  process.stdout.write(`${JSON.stringify(res)}\n`);
  client.close();
};
switch (positionals[0]) {
  case "get":
    client.GetOrder({ id: "o-1" }, md, done);
    break;
  case "update":
    client.UpdateOrder({ id: "o-1", state: values.state as string }, md, done);
    break;
  case "tail": {
    const stream = client.TailOrders({}, md);
    let shown = 0;
    stream.on("data", (o) => {
      if (shown++ === 0) process.stdout.write(`tailing: ${JSON.stringify(o)}\n`);
    });
    stream.on("error", fail);
    break;
  }
  default:
    process.stderr.write("usage: client.ts get|update|tail --token TOKEN [--address host:port]\n");
    process.exit(2);
}
