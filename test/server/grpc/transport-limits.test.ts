// The transport and admission limits: read from flags or the environment, validated once, and handed to
// grpc-js as explicit options (its own defaults are almost no limits at all).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvalidArgument } from "../../../src/errors.ts";
import { loadServeConfig, type ServeFlags } from "../../../src/config.ts";
import { serverOptions } from "../../../src/server/grpc/server.ts";

const configWith = (flags: ServeFlags, env: NodeJS.ProcessEnv = {}) => loadServeConfig({ dev: true, ...flags }, env, "/tmp");
const refusal = (flags: ServeFlags, env: NodeJS.ProcessEnv = {}): InvalidArgument => {
  try {
    configWith(flags, env);
  } catch (err) {
    assert.ok(err instanceof InvalidArgument, String(err));
    return err;
  }
  throw new Error("the configuration was accepted but was expected to be refused");
};
const NEVER = ~(1 << 31);

describe("transport limits", () => {
  test("every limit reaches grpc-js explicitly, with the documented defaults", () => {
    const config = configWith({});
    assert.deepEqual(serverOptions(config.limits), {
      "grpc.max_receive_message_length": 262_144,
      "grpc.max_send_message_length": 4_194_304,
      "grpc.max_concurrent_streams": 256,
      "grpc-node.max_session_memory": 32,
      "grpc.keepalive_time_ms": 60_000,
      "grpc.keepalive_timeout_ms": 20_000,
      "grpc.max_connection_idle_ms": 1_800_000,
      "grpc.max_connection_age_ms": 3_600_000,
      "grpc.max_connection_age_grace_ms": NEVER,
    });
    assert.deepEqual([config.limits.maxInFlight, config.limits.maxInFlightPerConnection], [1024, 128]);
    assert.deepEqual(config.requestRate, { count: 10, periodMs: 60_000, burst: 10 });
    assert.equal(config.decisionLog.overflow, "refuse");
  });

  test("flags win over the environment, which wins over the defaults; 0 turns idle and age limits off", () => {
    const config = configWith(
      { maxMessageBytes: "65536", maxConnectionAge: "0", maxConnectionAgeGrace: "10m" },
      {
        JITGATE_MAX_MESSAGE_BYTES: "32768",
        JITGATE_MAX_IN_FLIGHT: "64",
        JITGATE_MAX_CONNECTION_IDLE: "0",
        JITGATE_KEEPALIVE_INTERVAL: "30s",
      },
    );
    const options = serverOptions(config.limits);
    assert.equal(options["grpc.max_receive_message_length"], 65_536);
    assert.equal(options["grpc.max_connection_age_ms"], NEVER);
    assert.equal(options["grpc.max_connection_idle_ms"], NEVER);
    assert.equal(options["grpc.keepalive_time_ms"], 30_000);
    assert.equal(options["grpc.max_connection_age_grace_ms"], 600_000);
    assert.equal(config.limits.maxInFlight, 64);
  });

  test("the per-connection limit defaults to half the streams of a connection, at most the process limit", () => {
    assert.equal(configWith({ maxConcurrentStreams: "100" }).limits.maxInFlightPerConnection, 50);
    assert.equal(configWith({ maxInFlight: "2" }).limits.maxInFlightPerConnection, 2);
  });

  test("a per-connection limit that would let calls queue in the client, or exceed the process limit, is refused", () => {
    const streams = refusal({ maxInFlightPerConnection: "256" });
    assert.equal(streams.field, "--max-in-flight-per-connection (JITGATE_MAX_IN_FLIGHT_PER_CONNECTION)");
    assert.match(streams.message, /must be below --max-concurrent-streams \(256\), so calls past it are refused, not queued/);
    assert.match(refusal({ maxInFlight: "10", maxInFlightPerConnection: "11" }).message, /11 is more than --max-in-flight \(10\)/);
  });

  test("numbers and durations out of range name the flag and its environment variable", () => {
    assert.equal(refusal({ maxInFlight: "0" }).field, "--max-in-flight (JITGATE_MAX_IN_FLIGHT)");
    assert.equal(refusal({}, { JITGATE_MAX_IN_FLIGHT: "1e3" }).field, "--max-in-flight (JITGATE_MAX_IN_FLIGHT)");
    assert.equal(refusal({ maxMessageBytes: "1024" }).field, "--max-message-bytes (JITGATE_MAX_MESSAGE_BYTES)");
    assert.equal(refusal({ keepaliveTimeout: "0" }).field, "--keepalive-timeout (JITGATE_KEEPALIVE_TIMEOUT)");
    assert.equal(refusal({ decisionLogOverflow: "block" }).field, "--decision-log-overflow (JITGATE_DECISION_LOG_OVERFLOW)");
  });

  test("the request rate is a count per second, minute or hour, or off; the burst defaults to the count", () => {
    assert.deepEqual(configWith({ requestRate: "100/h" }).requestRate, { count: 100, periodMs: 3_600_000, burst: 100 });
    assert.deepEqual(configWith({ requestRate: "2/s", requestBurst: "5" }).requestRate, { count: 2, periodMs: 1_000, burst: 5 });
    assert.equal(configWith({}, { JITGATE_REQUEST_RATE: "off" }).requestRate, undefined);
    assert.equal(refusal({ requestRate: "10 per minute" }).field, "--request-rate (JITGATE_REQUEST_RATE)");
    assert.equal(refusal({ requestRate: "0/m" }).field, "--request-rate (JITGATE_REQUEST_RATE)");
    assert.equal(refusal({ requestBurst: "0" }).field, "--request-burst (JITGATE_REQUEST_BURST)");
  });
});
