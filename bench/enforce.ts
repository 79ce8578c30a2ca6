// `make bench` (enforcement part), against a real jitgate and a protected service on loopback:
// 1. the interceptor's cost per call: a unary call through it vs the same service without it (baseline,
//    same run), and token verification alone with the cached JWKS;
// 2. revocation delay: time from RevokeGrant returning to the service refusing the token, over 200 grants.
import * as grpc from "@grpc/grpc-js";
import { createEnforcer, type Enforcer } from "../src/enforce/interceptor.ts";
import { accessTokenKeySet, verifyAccessToken } from "../src/enforce/verify.ts";
import { bearerMetadata, orderReadGrant, startE2eServer, tokenFor } from "../test/support/api.ts";
import { ORDERS_ACTIONS, startOrdersService } from "../test/enforce/orders-service.ts";
import { pct } from "./stats.ts";

const CALLS = 3_000;
const VERIFIES = 20_000;
const REVOCATIONS = 200;

const micros = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1_000;

const jitgate = await startE2eServer();
const serviceToken = await tokenFor(jitgate.dataDir, "orders-service", []);
const enforcer = createEnforcer({
  jitgate: { address: jitgate.jitgate.address, credentials: grpc.credentials.createInsecure() },
  callMetadata: () => bearerMetadata(serviceToken),
  audience: "orders",
  actionOf: (path) => ORDERS_ACTIONS[path],
});
await enforcer.ready();
const guarded = await startOrdersService(enforcer);
// The baseline has a pass-through interceptor, so the difference is the enforcer's work alone.
const passThrough = {
  interceptor: (_d: unknown, call: grpc.ServerInterceptingCallInterface) => new grpc.ServerInterceptingCall(call),
} as unknown as Enforcer;
const open = await startOrdersService(passThrough);

let n = 0;
async function readToken() {
  const holder = await jitgate.as(`bench-${++n}`, ["engineering"]);
  return { holder, ...(await orderReadGrant(holder, 1800)) };
}

const { token } = await readToken();
// Alternating rounds, so neither side gains from running second on a warmer process.
const baseSamples: number[] = [];
const enforcedSamples: number[] = [];
for (const service of [open, guarded]) for (let i = 0; i < 300; i++) await service.call("Read", token);
for (let round = 0; round < 10; round++) {
  for (const [service, samples] of [
    [open, baseSamples],
    [guarded, enforcedSamples],
  ] as const) {
    for (let i = 0; i < CALLS / 10; i++) {
      const t0 = process.hrtime.bigint();
      await service.call("Read", token);
      samples.push(micros(t0));
    }
  }
}
const base = pct(baseSamples);
const enforced = pct(enforcedSamples);

const keys = accessTokenKeySet(JSON.parse((await jitgate.client.as(serviceToken).call("GetJwks", {})).jwks_json));
const verifies: number[] = [];
for (let i = 0; i < VERIFIES; i++) {
  const t0 = process.hrtime.bigint();
  await verifyAccessToken(token, keys, { issuer: "jitgate", audience: "orders" });
  verifies.push(micros(t0));
}
const verify = pct(verifies.slice(2_000));

const delays: number[] = [];
for (let i = 0; i < REVOCATIONS; i++) {
  const g = await readToken();
  await guarded.call("Read", g.token);
  await g.holder.call("RevokeGrant", { grant_id: g.grantId, reason: "benchmark" });
  const revokedAt = performance.now();
  for (;;) {
    const refused = await guarded.call("Read", g.token).then(
      () => false,
      (e: grpc.ServiceError) => e.code === grpc.status.PERMISSION_DENIED,
    );
    if (refused) break;
    if (performance.now() - revokedAt > 10_000) throw new Error("revocation not enforced within 10 s");
  }
  delays.push(performance.now() - revokedAt);
}
const delay = pct(delays);

const f = (x: number) => x.toFixed(1).padStart(8);
console.log(`enforcement on loopback (Node ${process.version}); ${CALLS} sequential unary calls each`);
console.log(`unary call, service without interceptor (baseline)  p50/p99 µs ${f(base.p50)} / ${f(base.p99)}`);
console.log(`unary call, service with the interceptor            p50/p99 µs ${f(enforced.p50)} / ${f(enforced.p99)}`);
console.log(`token verification alone, cached JWKS               p50/p99 µs ${f(verify.p50)} / ${f(verify.p99)}`);
console.log(
  `revocation delay over ${REVOCATIONS} revocations (RevokeGrant returned -> call refused)  p50/p99 ms ${f(delay.p50)} / ${f(delay.p99)}`,
);

await guarded.close();
await open.close();
enforcer.close();
await jitgate.close();
