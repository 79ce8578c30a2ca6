import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { connect, type PeerCertificate } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { InvalidArgument, JitgateError, Unauthenticated } from "../../src/errors.ts";
import { type Authenticator, createAuthenticator } from "../../src/identity/authenticator.ts";
import { parseIdentityConfig } from "../../src/identity/config.ts";
import { issueDevToken } from "../../src/identity/dev-issuer.ts";
import { clientCertificateRefusal, identityFromCertificate, serverCredentials, subjectAltNames } from "../../src/identity/mtls.ts";
import { grpcCredentials } from "../../src/server/grpc/access-service.ts";
import { type RunningServer, startServer } from "../../src/server/grpc/server.ts";
import { makeTestCertificates, SPIFFE_ID } from "../support/certificates.ts";

let dir: string;
const file = (name: string) => join(dir, name);

const pem = (name: string) => readFile(file(`${name}.pem`));
const legacy = async (name: string): Promise<PeerCertificate> => new X509Certificate(await pem(name)).toLegacyObject();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "jitgate-mtls-"));
  await makeTestCertificates(dir);
  await writeFile(file("groups.json"), JSON.stringify({ [SPIFFE_ID]: ["deployers"], alice: ["oncall", "dba"] }));
});
after(() => rm(dir, { recursive: true, force: true }));

describe("identity from a client certificate", () => {
  test("a certificate with a SPIFFE URI SAN is identified by it", async () => {
    assert.equal(identityFromCertificate(await legacy("deployer")), SPIFFE_ID);
  });

  test("a certificate without a URI SAN is identified by its subject CN", async () => {
    assert.equal(identityFromCertificate(await legacy("alice")), "alice");
    assert.equal(
      identityFromCertificate({ subject: { CN: "bob" } as PeerCertificate["subject"], subjectaltname: "DNS:bob.example" }),
      "bob",
    );
  });

  test("several URI SANs, several CNs, or neither are refused", () => {
    const subject = (s: object) => s as PeerCertificate["subject"];
    const two = { subject: subject({ CN: "x" }), subjectaltname: "URI:spiffe://a.org/x, URI:spiffe://a.org/y" };
    assert.throws(() => identityFromCertificate(two), { name: "Unauthenticated", message: /several URI SANs/ });
    assert.throws(() => identityFromCertificate({ subject: subject({ CN: ["a", "b"] }), subjectaltname: "" }), /several subject CNs/);
    assert.throws(
      () => identityFromCertificate({ subject: subject({ O: "x" }), subjectaltname: "DNS:x" }),
      /neither a URI SAN nor a subject CN/,
    );
    assert.throws(() => identityFromCertificate({ subject: subject({}), subjectaltname: "URI:spiffe://Example.org/x" }), Unauthenticated);
  });

  test("Node's quoted SAN values are read whole, so a comma cannot smuggle in a second entry", () => {
    const text = 'URI:"spiffe://a.org/x\\u002c URI:spiffe://a.org/admin", DNS:b.example, IP Address:127.0.0.1';
    assert.deepEqual(subjectAltNames(text), [
      { type: "URI", value: "spiffe://a.org/x, URI:spiffe://a.org/admin" },
      { type: "DNS", value: "b.example" },
      { type: "IP Address", value: "127.0.0.1" },
    ]);
    assert.throws(
      () => identityFromCertificate({ subject: {} as PeerCertificate["subject"], subjectaltname: text }),
      /not a valid SPIFFE ID/,
    );
  });
});

describe("mTLS configuration", () => {
  test("groups come from the mapping file; a missing file means no groups", async () => {
    const cert = await legacy("deployer");
    const withGroups = await createAuthenticator(
      parseIdentityConfig({ mtls: { caFile: file("ca.pem"), groupsFile: file("groups.json") } }, dir),
    );
    assert.deepEqual(await withGroups.authenticate({ authorization: [], peerCertificate: cert }), {
      id: SPIFFE_ID,
      groups: ["deployers"],
    });
    const noFile = await createAuthenticator(
      parseIdentityConfig({ mtls: { caFile: file("ca.pem"), groupsFile: file("absent.json") } }, dir),
    );
    assert.deepEqual(await noFile.authenticate({ authorization: [], peerCertificate: cert }), { id: SPIFFE_ID, groups: [] });
  });

  test("a groups file that is not a map of lists is refused naming the flag", async () => {
    await writeFile(file("bad-groups.json"), JSON.stringify({ [SPIFFE_ID]: "deployers" }));
    const config = parseIdentityConfig({ mtls: { caFile: file("ca.pem"), groupsFile: file("bad-groups.json") } }, dir);
    await assert.rejects(createAuthenticator(config), (err: unknown) => {
      assert.ok(err instanceof InvalidArgument);
      assert.equal(err.field, "--mtls-groups (JITGATE_MTLS_GROUPS)");
      assert.match(err.message, /must be a list of non-empty strings/);
      return true;
    });
  });

  test("a bearer token sent to a certificate-only server is refused, not ignored", async () => {
    const auth = await createAuthenticator(parseIdentityConfig({ mtls: { caFile: file("ca.pem") } }, dir));
    await assert.rejects(
      auth.authenticate({ authorization: ["Bearer a.b.c"], peerCertificate: undefined }),
      /bearer tokens are not accepted here/,
    );
  });

  test("unreadable or mismatched TLS files are refused at start-up, naming the setting", async () => {
    await assert.rejects(serverCredentials({ caFile: file("absent.pem"), certFile: file("server.pem"), keyFile: file("server.key") }), {
      name: "InvalidArgument",
      message: /^--mtls-ca \(JITGATE_MTLS_CA\): cannot read .*absent\.pem: ENOENT/,
    });
    await assert.rejects(serverCredentials({ caFile: file("ca.pem"), certFile: file("server.pem"), keyFile: file("alice.key") }), {
      name: "InvalidArgument",
      message: /^--tls-key \(JITGATE_TLS_KEY\): .* do not make a usable TLS identity/,
    });
    await assert.rejects(
      serverCredentials({ caFile: file("groups.json"), certFile: file("server.pem"), keyFile: file("server.key") }),
      /is not a PEM file/,
    );
  });
});

describe("refusing a connection's client certificate", () => {
  const check = (presented: boolean, authorized: boolean, authorizationError?: string) => ({ presented, authorized, authorizationError });

  test("a verified certificate is never refused; none is refused only where certificates are required", () => {
    assert.equal(clientCertificateRefusal(check(true, true), true), undefined);
    // OpenSSL reports UNABLE_TO_GET_ISSUER_CERT when no certificate came at all: that is not "another CA".
    assert.equal(clientCertificateRefusal(check(false, false, "UNABLE_TO_GET_ISSUER_CERT"), true)?.message, "no client certificate");
    assert.equal(clientCertificateRefusal(check(false, false, "UNABLE_TO_GET_ISSUER_CERT"), false), undefined);
  });

  test("a certificate TLS could not verify is refused in both modes, naming why in words and by its code", () => {
    for (const required of [true, false]) {
      const refusal = clientCertificateRefusal(check(true, false, "SELF_SIGNED_CERT_IN_CHAIN"), required);
      assert.ok(refusal instanceof Unauthenticated);
      assert.equal(
        refusal.message,
        "client certificate not issued by a trusted CA (SELF_SIGNED_CERT_IN_CHAIN: its chain ends at a CA this server does not trust)",
      );
    }
    assert.equal(
      clientCertificateRefusal(check(true, false, "CERT_HAS_EXPIRED"), false)?.message,
      "client certificate not accepted (CERT_HAS_EXPIRED: it has expired)",
    );
    assert.equal(
      clientCertificateRefusal(check(true, false, "SOME_FUTURE_CODE"), false)?.message,
      "client certificate not accepted (SOME_FUTURE_CODE)",
    );
    assert.equal(clientCertificateRefusal(check(true, false), false)?.message, "client certificate not accepted (UNKNOWN)");
  });

  test("a certificate-only server without a verified certificate says so, not 'send a bearer token'", async () => {
    const auth = await createAuthenticator(parseIdentityConfig({ mtls: { caFile: file("ca.pem") } }, dir));
    await assert.rejects(auth.authenticate({ authorization: [], peerCertificate: undefined }), {
      name: "Unauthenticated",
      message: "no client certificate",
    });
  });
});

// A one-method service whose handler answers with the caller jitgate sees: "<id>|<groups>".
const WHO_AM_I = {
  whoAmI: {
    path: "/jitgate.test.Identity/WhoAmI",
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (s: string) => Buffer.from(s),
    responseDeserialize: (b: Buffer) => b.toString(),
  },
} as const;
const IdentityClient = grpc.makeGenericClientConstructor(WHO_AM_I, "Identity");

/** jitgate's own server (its mTLS listener) with the WhoAmI service; `handled` counts calls that reached it. */
async function serveWhoAmI(
  auth: Authenticator,
  requireClientCert: boolean,
): Promise<{ port: number; server: RunningServer; handled: () => number }> {
  let handled = 0;
  const credentials = await serverCredentials({
    caFile: file("ca.pem"),
    certFile: file("server.pem"),
    keyFile: file("server.key"),
    requireClientCert,
  });
  const server = await startServer("127.0.0.1", 0, credentials, (s) =>
    s.addService(WHO_AM_I, {
      whoAmI(call: grpc.ServerUnaryCall<Buffer, string>, callback: grpc.sendUnaryData<string>) {
        handled++;
        auth.authenticate(grpcCredentials(call)).then(
          (caller) => callback(null, `${caller.id}|${caller.groups.join(",")}`),
          (err: unknown) => {
            const code = err instanceof Unauthenticated ? grpc.status.UNAUTHENTICATED : grpc.status.INTERNAL;
            callback({ code, details: err instanceof JitgateError ? err.message : "internal error" });
          },
        );
      },
    }),
  );
  return { port: server.port, server, handled: () => handled };
}

async function whoAmI(port: number, client: string | undefined, token?: string): Promise<string> {
  const ca = await pem("ca");
  const creds = client
    ? grpc.credentials.createSsl(ca, await readFile(file(`${client}.key`)), await pem(client))
    : grpc.credentials.createSsl(ca);
  // Loopback by address; the name checked against the server certificate is localhost (SNI takes no IPs).
  const stub = new IdentityClient(`127.0.0.1:${port}`, creds, {
    "grpc.ssl_target_name_override": "localhost",
  }) as unknown as grpc.Client & {
    whoAmI(req: Buffer, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: string) => void): void;
  };
  const metadata = new grpc.Metadata();
  if (token) metadata.set("authorization", `Bearer ${token}`);
  try {
    return await new Promise<string>((ok, fail) =>
      stub.whoAmI(Buffer.alloc(0), metadata, { deadline: Date.now() + 5_000 }, (err, res) => (err ? fail(err) : ok(res as string))),
    );
  } finally {
    stub.close();
  }
}

async function callError(promise: Promise<string>): Promise<grpc.ServiceError> {
  return promise.then(
    (answer) => assert.fail(`the call succeeded as ${answer}`),
    (err: grpc.ServiceError) => err,
  );
}

/** The call's status code and details, for a call that must fail. */
async function refusal(promise: Promise<string>): Promise<[string, string]> {
  const err = await callError(promise);
  return [grpc.status[err.code] as string, err.details];
}

const FOREIGN_CA = [
  "UNAUTHENTICATED",
  "client certificate not issued by a trusted CA (UNABLE_TO_VERIFY_LEAF_SIGNATURE: its issuer is not a CA this server trusts)",
];

describe("mTLS end to end (jitgate's server on loopback)", () => {
  test("client certificates are required: the CA's certificates identify callers; none, or a bad one, is UNAUTHENTICATED naming why", async () => {
    const auth = await createAuthenticator(parseIdentityConfig({ mtls: { caFile: file("ca.pem"), groupsFile: file("groups.json") } }, dir));
    const { port, server, handled } = await serveWhoAmI(auth, true);
    try {
      assert.equal(await whoAmI(port, "deployer"), `${SPIFFE_ID}|deployers`);
      assert.equal(await whoAmI(port, "alice"), "alice|oncall,dba");
      const reached = handled();
      assert.deepEqual(await refusal(whoAmI(port, undefined)), ["UNAUTHENTICATED", "no client certificate"]);
      // The impostor carries the deployer's SPIFFE ID; signed by another CA it identifies no one.
      assert.deepEqual(await refusal(whoAmI(port, "impostor")), FOREIGN_CA);
      assert.deepEqual(await refusal(whoAmI(port, "impostor-chain")), [
        "UNAUTHENTICATED",
        "client certificate not issued by a trusted CA (SELF_SIGNED_CERT_IN_CHAIN: its chain ends at a CA this server does not trust)",
      ]);
      assert.deepEqual(await refusal(whoAmI(port, "lapsed")), [
        "UNAUTHENTICATED",
        "client certificate not accepted (CERT_HAS_EXPIRED: it has expired)",
      ]);
      assert.deepEqual(await refusal(whoAmI(port, "web")), [
        "UNAUTHENTICATED",
        "client certificate not accepted (INVALID_PURPOSE: it is not meant for client authentication (extended key usage))",
      ]);
      assert.equal(handled(), reached, "refused connections never reach a handler");
      assert.equal(await whoAmI(port, "deployer"), `${SPIFFE_ID}|deployers`, "the server still serves good certificates afterwards");
    } finally {
      await server.close(1_000);
    }
  });

  test("a TLS 1.2 renegotiation ends the connection: a second handshake could bring another certificate", async () => {
    const auth = await createAuthenticator(parseIdentityConfig({ mtls: { caFile: file("ca.pem") } }, dir));
    const { port, server } = await serveWhoAmI(auth, true);
    try {
      const [ca, cert, key] = await Promise.all([pem("ca"), pem("alice"), readFile(file("alice.key"))]);
      const socket = connect({
        port,
        host: "127.0.0.1",
        servername: "localhost",
        ca,
        cert,
        key,
        maxVersion: "TLSv1.2",
        ALPNProtocols: ["h2"],
      });
      socket.on("error", () => {});
      socket.resume();
      await once(socket, "secureConnect");
      let renegotiated = false;
      socket.renegotiate({}, (err) => (renegotiated = err === null));
      await once(socket, "close");
      assert.equal(renegotiated, false);
    } finally {
      await server.close(1_000);
    }
  });

  test("the mTLS credentials given straight to grpc-js's bindAsync serve no call at all (fail closed)", async () => {
    const server = new grpc.Server();
    server.addService(WHO_AM_I, { whoAmI: (_call: unknown, callback: grpc.sendUnaryData<string>) => callback(null, "served") });
    const credentials = await serverCredentials({ caFile: file("ca.pem"), certFile: file("server.pem"), keyFile: file("server.key") });
    const port = await new Promise<number>((ok, fail) =>
      server.bindAsync("127.0.0.1:0", credentials, (err, p) => (err ? fail(err) : ok(p))),
    );
    try {
      assert.equal((await callError(whoAmI(port, "deployer"))).code, grpc.status.UNAVAILABLE);
    } finally {
      server.forceShutdown();
    }
  });

  test("optional client certificates: a token alone works, a token beats a certificate, a certificate that fails verification is refused even with a valid token", async () => {
    const dataDir = join(dir, "data");
    const config = parseIdentityConfig({ mtls: { caFile: file("ca.pem"), groupsFile: file("groups.json") }, dev: true, dataDir }, dir);
    const auth = await createAuthenticator(config);
    assert.match(auth.describe(), /client certificates from CA .*ca\.pem/);
    const { port, server } = await serveWhoAmI(auth, false);
    try {
      const token = await issueDevToken({ dataDir, subject: "carol", groups: ["sre"], ttlSeconds: 60 });
      assert.equal(await whoAmI(port, undefined, token), "carol|sre");
      assert.equal(await whoAmI(port, "deployer", token), "carol|sre");
      assert.equal(await whoAmI(port, "deployer"), `${SPIFFE_ID}|deployers`);
      const expired = await issueDevToken({ dataDir, subject: "carol", groups: [], ttlSeconds: 60, now: Date.now() - 3_600_000 });
      const downgrade = await callError(whoAmI(port, "deployer", expired));
      assert.equal(downgrade.code, grpc.status.UNAUTHENTICATED, "a bad token is refused, not replaced by the certificate");
      assert.match(downgrade.details, /token expired/);
      assert.deepEqual(await refusal(whoAmI(port, undefined)), [
        "UNAUTHENTICATED",
        "no caller identity: send 'authorization: Bearer <token>' or a client certificate",
      ]);
      assert.deepEqual(await refusal(whoAmI(port, "impostor")), FOREIGN_CA);
      // Refused, not served as carol: the caller offered a credential that identifies no one, and should hear so.
      assert.deepEqual(await refusal(whoAmI(port, "impostor", token)), FOREIGN_CA);
    } finally {
      await server.close(1_000);
    }
  });
});
