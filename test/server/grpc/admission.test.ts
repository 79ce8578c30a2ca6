// Admission control: how many calls jitgate serves at once, per process and per connection, and what a call
// past either bound is told.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { ResourceExhausted, type ResourceLimit } from "../../../src/errors.ts";
import { Admission } from "../../../src/server/grpc/admission.ts";
import { toStatus } from "../../../src/server/grpc/status.ts";

const refusalOf = (fn: () => unknown): ResourceExhausted => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ResourceExhausted, `expected ResourceExhausted, got ${String(err)}`);
    return err;
  }
  throw new Error("the call was admitted but was expected to be refused");
};

describe("admission", () => {
  test("past the process limit a call is refused with RESOURCE_EXHAUSTED naming the limit", () => {
    const admission = new Admission({ maxInFlight: 2, maxInFlightPerConnection: 2 });
    admission.enter("10.0.0.1:1000");
    admission.enter("10.0.0.2:1000");
    const refused = refusalOf(() => admission.enter("10.0.0.3:1000"));
    assert.equal(refused.limit, "in_flight");
    assert.equal(refused.message, "jitgate is at its limit of 2 calls in flight; retry with backoff");
    const status = toStatus(refused, pino({ level: "silent" }));
    assert.equal(status.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(status.details, refused.message);
    assert.equal(admission.inFlight, 2, "a refused call is not counted");
  });

  test("a call that ends gives its place back, once however often it ends", () => {
    const admission = new Admission({ maxInFlight: 1, maxInFlightPerConnection: 1 });
    const leave = admission.enter("10.0.0.1:1000");
    leave();
    leave();
    assert.equal(admission.inFlight, 0);
    admission.enter("10.0.0.1:1000");
    assert.equal(admission.inFlight, 1);
    refusalOf(() => admission.enter("10.0.0.2:1000"));
  });

  test("one connection at its limit is refused while other connections are still admitted", () => {
    const admission = new Admission({ maxInFlight: 10, maxInFlightPerConnection: 2 });
    admission.enter("10.0.0.1:1000");
    const second = admission.enter("10.0.0.1:1000");
    const refused = refusalOf(() => admission.enter("10.0.0.1:1000"));
    assert.equal(refused.limit, "connection_in_flight");
    assert.match(refused.message, /limit of 2 calls in flight per connection; retry with backoff/);
    // Another port on the same address is another connection.
    admission.enter("10.0.0.1:1001");
    second();
    admission.enter("10.0.0.1:1000");
    assert.equal(admission.inFlight, 3);
  });

  test("the per-connection table forgets a connection once its calls have ended", () => {
    const admission = new Admission({ maxInFlight: 1000, maxInFlightPerConnection: 10 });
    const leaves = Array.from({ length: 500 }, (_, i) => admission.enter(`10.0.${i >> 8}.${i & 255}:4000`));
    assert.equal(admission.connections, 500);
    for (const leave of leaves) leave();
    assert.equal(admission.connections, 0);
    assert.equal(admission.inFlight, 0);
  });

  test("calls without a known peer count toward the process, never toward one shared connection", () => {
    const admission = new Admission({ maxInFlight: 3, maxInFlightPerConnection: 1 });
    admission.enter("unknown");
    admission.enter("unknown");
    admission.enter("unknown");
    assert.equal(refusalOf(() => admission.enter("unknown")).limit, "in_flight");
    assert.equal(admission.connections, 0);
  });

  test("refusals are counted by the limit that refused, the domain's included; other errors are not", () => {
    const counted: ResourceLimit[] = [];
    const admission = new Admission({ maxInFlight: 1, maxInFlightPerConnection: 1 }, (limit) => counted.push(limit));
    admission.enter("10.0.0.1:1");
    admission.refused(refusalOf(() => admission.enter("10.0.0.2:1")));
    admission.refused(new ResourceExhausted("decision_log", "the decision log cannot keep up; retry with backoff"));
    admission.refused(new Error("something else"));
    assert.deepEqual(counted, ["in_flight", "decision_log"]);
  });
});
