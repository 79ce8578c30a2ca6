// A tiny protected service for the enforcer's tests: unary Read and Write, server-streaming Tail, and an
// Admin method with no action mapping, served on loopback behind an enforcer, with a client for it.
import * as grpc from "@grpc/grpc-js";
import type { Enforcer } from "../../src/enforce/interceptor.ts";

interface Msg {
  text: string;
}
const serialize = (m: Msg) => Buffer.from(JSON.stringify(m));
const deserialize = (b: Buffer) => JSON.parse(b.toString()) as Msg;
const method = (name: string, responseStream: boolean) => ({
  path: `/test.Orders/${name}`,
  requestStream: false,
  responseStream,
  requestSerialize: serialize,
  requestDeserialize: deserialize,
  responseSerialize: serialize,
  responseDeserialize: deserialize,
});

export const ORDERS_SERVICE: grpc.ServiceDefinition = {
  Read: method("Read", false),
  Write: method("Write", false),
  Admin: method("Admin", false),
  Tail: method("Tail", true),
};

/** The action each method needs; Admin has none. */
export const ORDERS_ACTIONS: Readonly<Record<string, string>> = {
  "/test.Orders/Read": "read",
  "/test.Orders/Write": "write",
  "/test.Orders/Tail": "read",
};

type Unary = (req: Msg, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Msg) => void) => void;
type Stream = (req: Msg, md: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientReadableStream<Msg>;
const OrdersClient = grpc.makeGenericClientConstructor(ORDERS_SERVICE, "Orders");

export interface OrdersService {
  readonly address: string;
  /** How many calls reached a handler so far. */
  readonly handled: number;
  /** A unary call as the holder of `token` (no authorization header when undefined). */
  call(name: "Read" | "Write" | "Admin", token: string | undefined): Promise<Msg>;
  tail(token: string): grpc.ClientReadableStream<Msg>;
  close(): Promise<void>;
}

export async function startOrdersService(enforcer: Enforcer): Promise<OrdersService> {
  const server = new grpc.Server({ interceptors: [enforcer.interceptor] });
  const timers = new Set<NodeJS.Timeout>();
  let handled = 0;
  const unary: grpc.handleUnaryCall<Msg, Msg> = (call, cb) => {
    handled++;
    cb(null, { text: `ok ${call.request.text}` });
  };
  server.addService(ORDERS_SERVICE, {
    Read: unary,
    Write: unary,
    Admin: unary,
    Tail: (call: grpc.ServerWritableStream<Msg, Msg>) => {
      handled++;
      // One line every 50 ms until the call ends, however it ends.
      const timer = setInterval(() => call.write({ text: "line" }), 50);
      timers.add(timer);
      const stop = () => {
        clearInterval(timer);
        timers.delete(timer);
      };
      call.on("cancelled", stop);
      call.on("close", stop);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const address = `127.0.0.1:${port}`;
  const client = new OrdersClient(address, grpc.credentials.createInsecure()) as unknown as grpc.Client &
    Record<"Read" | "Write" | "Admin", Unary> & { Tail: Stream };
  const metadata = (token: string | undefined) => {
    const md = new grpc.Metadata();
    if (token !== undefined) md.set("authorization", `Bearer ${token}`);
    return md;
  };
  return {
    address,
    get handled() {
      return handled;
    },
    call: (name, token) =>
      new Promise((resolve, reject) =>
        client[name].call(client, { text: name }, metadata(token), { deadline: Date.now() + 5000 }, (err, res) =>
          err ? reject(err) : resolve(res as Msg),
        ),
      ),
    tail: (token) => client.Tail.call(client, { text: "tail" }, metadata(token), { deadline: Date.now() + 20_000 }),
    async close() {
      for (const t of timers) clearInterval(t);
      client.close();
      server.forceShutdown();
    },
  };
}

/** When and how a stream ended: its status code and message, and the time (ms) it ended. */
export function streamEnd(stream: grpc.ClientReadableStream<unknown>): Promise<{ code: grpc.status; details: string; at: number }> {
  return new Promise((resolve) => {
    stream.on("data", () => undefined);
    stream.on("error", (err: grpc.ServiceError) => resolve({ code: err.code, details: err.details, at: Date.now() }));
    stream.on("end", () => resolve({ code: grpc.status.OK, details: "", at: Date.now() }));
  });
}

/** Resolves once the stream has delivered its first message (the call was admitted and is running). */
export function firstMessage(stream: grpc.ClientReadableStream<unknown>, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message within ${timeoutMs} ms`)), timeoutMs);
    stream.once("data", () => {
      clearTimeout(timer);
      resolve();
    });
    stream.once("error", (err: Error) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
