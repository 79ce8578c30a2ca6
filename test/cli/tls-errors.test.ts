// How the CLI reports certificate and TLS problems: never as a server outage, never retried, exit code 5.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import type { Jitgate } from "../../src/app.ts";
import { EXIT } from "../../src/cli/exit.ts";
import { retryable, tlsFailure, withRetry } from "../../src/cli/retry.ts";
import { removeDir, ROOT, tempDir } from "../support/bundles.ts";
import { makeTestCertificates } from "../support/certificates.ts";
import { startTestJitgate } from "../support/jitgate.ts";

// grpc-js 1.14's own words for failed connections, as the CLI receives them (the TLS ones are Node's and OpenSSL's).
const lastError = (words: string) =>
  Object.assign(new Error(words), {
    code: grpc.status.UNAVAILABLE,
    details: `No connection established. Last error: ${words}. Resolution note: `,
  });
const CERT_REQUIRED = lastError(
  "40DD02D6E47F0000:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:918:SSL alert number 116\n (2026-12-01T09:11:37.383Z)",
);
const UNKNOWN_CA = lastError(
  "40C7:error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:918:SSL alert number 48\n (2026-12-01T09:11:37.383Z)",
);
const CLOSED_AFTER_HANDSHAKE = lastError("Failed to connect (2026-12-01T09:11:37.389Z)");
const RESET_AFTER_HANDSHAKE = lastError("read ECONNRESET (2026-12-01T09:22:01.871Z)");
const UNTRUSTED_SERVER = lastError(
  "Error: unable to verify the first certificate; if the root CA is installed locally, try running Node.js with --use-system-ca",
);
const WRONG_NAME = lastError(
  "Error [ERR_TLS_CERT_ALTNAME_INVALID]: Hostname/IP does not match certificate's altnames: Host: other.example. is not in the cert's altnames: DNS:localhost, IP Address:127.0.0.1",
);
const PLAINTEXT_SERVER = lastError(
  "Error: 40DD02D6E47F0000:error:0A00010B:SSL routines:tls_validate_record_header:wrong version number:../deps/openssl/openssl/ssl/record/methods/tlsany_meth.c:77:\n",
);
const REFUSED = lastError("Error: connect ECONNREFUSED 127.0.0.1:1");

describe("reading a failed TLS handshake from grpc-js's connection errors", () => {
  const withCert = { clientCertificate: true };

  test("each handshake failure names what to check, in Node's or OpenSSL's words without their noise", () => {
    assert.deepEqual(tlsFailure(CERT_REQUIRED, withCert), {
      problem: "the server requires a client certificate: give --cert and --key (JITGATE_CERT, JITGATE_KEY)",
      detail: "tlsv13 alert certificate required",
    });
    assert.deepEqual(tlsFailure(UNKNOWN_CA, withCert), {
      problem: "the server refused the client certificate (--cert, JITGATE_CERT)",
      detail: "tlsv1 alert unknown ca",
    });
    assert.deepEqual(tlsFailure(UNTRUSTED_SERVER, withCert), {
      problem: "the server's certificate is not trusted: check --ca (JITGATE_CA)",
      detail: "unable to verify the first certificate",
    });
    assert.equal(tlsFailure(WRONG_NAME, withCert)?.problem, "the server's certificate does not name the address connected to (--address)");
    assert.deepEqual(tlsFailure(PLAINTEXT_SERVER, withCert), {
      problem: "the server does not speak TLS at this address",
      detail: "wrong version number",
    });
  });

  test("a connection closed or reset right after the handshake is a refused certificate only when one was sent", () => {
    for (const err of [CLOSED_AFTER_HANDSHAKE, RESET_AFTER_HANDSHAKE]) {
      assert.match(tlsFailure(err, withCert)?.problem ?? "", /refuses the client certificate/);
      assert.equal(tlsFailure(err, { clientCertificate: false }), undefined);
    }
    assert.equal(tlsFailure(RESET_AFTER_HANDSHAKE, withCert)?.detail, "read ECONNRESET");
  });

  test("outages and other codes are not TLS failures, even when their words mention certificates", () => {
    for (const err of [REFUSED, lastError("Socket closed"), { code: grpc.status.UNAVAILABLE, details: "Connection dropped" }]) {
      assert.equal(tlsFailure(err, withCert), undefined);
    }
    assert.equal(
      tlsFailure({ code: grpc.status.UNAVAILABLE, details: "no policy bundle: certificate store unreadable" }, withCert),
      undefined,
    );
    assert.equal(tlsFailure({ ...UNTRUSTED_SERVER, code: grpc.status.INTERNAL }, withCert), undefined);
  });

  test("a failed handshake is never retried, even for an idempotent call; an outage still is", async () => {
    for (const err of [CERT_REQUIRED, UNKNOWN_CA, UNTRUSTED_SERVER, WRONG_NAME, PLAINTEXT_SERVER]) {
      assert.equal(retryable(err, "idempotent"), false, err.details);
    }
    assert.equal(retryable({ code: grpc.status.UNAUTHENTICATED, details: "no client certificate" }, "idempotent"), false);
    assert.equal(retryable(REFUSED, "not-idempotent"), true);
    let calls = 0;
    await assert.rejects(
      withRetry(
        async () => {
          calls++;
          throw UNTRUSTED_SERVER;
        },
        "idempotent",
        { attempts: 5, baseMs: 1, maxMs: 1 },
        async () => {},
      ),
    );
    assert.equal(calls, 1);
  });
});

// grpc-js sends an IP address as the TLS server name, which Node warns about once per process (not jitgate's line).
const IP_SERVERNAME_WARNING = /^\(node:\d+\) \[DEP0123\] DeprecationWarning: .*\n\(Use `node --trace-deprecation .*\n/m;

/** Calls every grpc-js server in this process has started (channelz counts refused calls too). */
async function callsStarted(): Promise<number> {
  const { GetServers } = grpc.getChannelzHandlers();
  const reply = await new Promise<{ server: { data?: { calls_started?: unknown } }[] }>((ok, fail) =>
    GetServers(
      { request: { start_server_id: "0", max_results: "0" } } as never,
      ((err: Error | null, res: never) => (err ? fail(err) : ok(res))) as never,
    ),
  );
  return reply.server.reduce((n, s) => n + Number(s.data?.calls_started ?? 0), 0);
}

describe("the CLI against mTLS servers", () => {
  let dir: string;
  let jitgate: Jitgate;
  const file = (name: string) => join(dir, name);
  before(async () => {
    dir = await tempDir();
    await makeTestCertificates(dir);
    jitgate = await startTestJitgate(join(dir, "data"), {
      dev: false,
      tlsCert: file("server.pem"),
      tlsKey: file("server.key"),
      mtlsCa: file("ca.pem"),
    });
  });
  after(async () => {
    await jitgate.close();
    await removeDir(dir);
  });

  /** `jitgate requests` (idempotent, so an UNAVAILABLE would be retried) as a child process. */
  const requests = (address: string, ca: string, client?: string) =>
    new Promise<{ code: number; stderr: string }>((done) => {
      const tls = ["--ca", file(`${ca}.pem`), ...(client ? ["--cert", file(`${client}.pem`), "--key", file(`${client}.key`)] : [])];
      const env = { PATH: process.env.PATH, HOME: dir, XDG_CONFIG_HOME: join(dir, "config") };
      execFile(
        process.execPath,
        [join(ROOT, "bin", "jitgate"), "requests", "--address", address, ...tls],
        { cwd: ROOT, env },
        (err, _out, stderr) =>
          done({ code: typeof err?.code === "number" ? err.code : 0, stderr: stderr.replace(IP_SERVERNAME_WARNING, "") }),
      );
    });

  test("a certificate from another CA: UNAUTHENTICATED naming why, exit code 5, after exactly one call", async () => {
    const before = await callsStarted();
    const run = await requests(jitgate.address, "ca", "impostor");
    assert.deepEqual(run, {
      code: EXIT.unauthenticated,
      stderr:
        "jitgate: UNAUTHENTICATED: client certificate not issued by a trusted CA (UNABLE_TO_VERIFY_LEAF_SIGNATURE: its issuer is not a CA this server trusts)\n",
    });
    assert.equal((await callsStarted()) - before, 1, "not retried");
    const none = await requests(jitgate.address, "ca");
    assert.deepEqual(none, { code: EXIT.unauthenticated, stderr: "jitgate: UNAUTHENTICATED: no client certificate\n" });
    assert.equal((await requests(jitgate.address, "ca", "deployer")).code, EXIT.ok, "the CA's certificate is served");
  });

  test("a server certificate the CLI does not trust is a TLS problem, not an outage", async () => {
    const run = await requests(jitgate.address, "rogue-ca", "deployer");
    assert.equal(run.code, EXIT.unauthenticated);
    assert.ok(
      run.stderr.startsWith(
        `jitgate: UNAUTHENTICATED: TLS handshake with ${jitgate.address} failed (a certificate or TLS setting, not a server outage): ` +
          "the server's certificate is not trusted: check --ca (JITGATE_CA): ",
      ),
      run.stderr,
    );
    assert.equal(run.stderr.split("\n").length, 2, "one line");
  });

  test("a server that refuses certificates in the handshake itself (grpc-js's createSsl) is reported as a certificate problem", async () => {
    const strict = new grpc.Server();
    const identity = { cert_chain: await readFile(file("server.pem")), private_key: await readFile(file("server.key")) };
    const credentials = grpc.ServerCredentials.createSsl(await readFile(file("ca.pem")), [identity], true);
    const port = await new Promise<number>((ok, fail) =>
      strict.bindAsync("127.0.0.1:0", credentials, (err, p) => (err ? fail(err) : ok(p))),
    );
    try {
      const address = `127.0.0.1:${port}`;
      const foreign = await requests(address, "ca", "impostor");
      assert.equal(foreign.code, EXIT.unauthenticated, foreign.stderr);
      assert.match(
        foreign.stderr,
        /^jitgate: UNAUTHENTICATED: TLS handshake with 127\.0\.0\.1:\d+ failed \(a certificate or TLS setting, not a server outage\): the server closed the connection during the TLS handshake, as a server does that refuses the client certificate \(--cert, JITGATE_CERT\): (Failed to connect|read ECONNRESET)\n$/,
      );
      const none = await requests(address, "ca");
      assert.equal(none.code, EXIT.unauthenticated, none.stderr);
      assert.match(none.stderr, /the server requires a client certificate: give --cert and --key .*: tlsv13 alert certificate required\n$/);
    } finally {
      strict.forceShutdown();
    }
  });
});
