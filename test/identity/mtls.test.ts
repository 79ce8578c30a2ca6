import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { PeerCertificate } from "node:tls";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { InvalidArgument, JitgateError, Unauthenticated } from "../../src/errors.ts";
import { type Authenticator, createAuthenticator } from "../../src/identity/authenticator.ts";
import { parseIdentityConfig } from "../../src/identity/config.ts";
import { issueDevToken } from "../../src/identity/dev-issuer.ts";
import { identityFromCertificate, serverCredentials, subjectAltNames } from "../../src/identity/mtls.ts";

const run = promisify(execFile);
const SPIFFE_ID = "spiffe://example.org/ns/ops/sa/deployer";
let dir: string;
const file = (name: string) => join(dir, name);

/** `openssl` with fixed words (split on spaces) followed by arguments that may hold anything. */
async function openssl(words: string, ...args: string[]): Promise<void> {
  await run("openssl", [...words.split(" "), ...args]);
}

const EC_KEY = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";

/** A CA (or a rogue one) and certificates it signs, made with the openssl CLI. */
async function makeCa(name: string): Promise<void> {
  const ext = "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign";
  await openssl(`req -x509 ${EC_KEY} -days 1 ${ext}`, "-keyout", file(`${name}.key`), "-out", file(`${name}.pem`), "-subj", `/CN=${name}`);
}

async function makeCert(ca: string, name: string, subject: string, extensions: string[]): Promise<void> {
  await openssl(`req -new ${EC_KEY}`, "-keyout", file(`${name}.key`), "-out", file(`${name}.csr`), "-subj", subject);
  await writeFile(file(`${name}.ext`), `[ext]\n${extensions.join("\n")}\n`);
  const signer = ["-CA", file(`${ca}.pem`), "-CAkey", file(`${ca}.key`), "-set_serial", `0x${randomBytes(8).toString("hex")}`];
  await openssl(
    "x509 -req -days 1 -extensions ext",
    "-in",
    file(`${name}.csr`),
    ...signer,
    "-out",
    file(`${name}.pem`),
    "-extfile",
    file(`${name}.ext`),
  );
}

const pem = (name: string) => readFile(file(`${name}.pem`));
const legacy = async (name: string): Promise<PeerCertificate> => new X509Certificate(await pem(name)).toLegacyObject();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "jitgate-mtls-"));
  await makeCa("ca");
  await makeCa("rogue-ca");
  await makeCert("ca", "server", "/CN=localhost", ["subjectAltName=DNS:localhost,IP:127.0.0.1", "extendedKeyUsage=serverAuth"]);
  await makeCert("ca", "deployer", "/CN=deployer", [`subjectAltName=URI:${SPIFFE_ID},DNS:deployer.ops.svc`, "extendedKeyUsage=clientAuth"]);
  await makeCert("ca", "alice", "/O=Example/CN=alice", ["extendedKeyUsage=clientAuth"]);
  await makeCert("rogue-ca", "impostor", "/CN=impostor", [`subjectAltName=URI:${SPIFFE_ID}`, "extendedKeyUsage=clientAuth"]);
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
    const cert = { sslPeerCertificate: await legacy("deployer"), transportSecurityType: "ssl" };
    const withGroups = await createAuthenticator(
      parseIdentityConfig({ mtls: { caFile: file("ca.pem"), groupsFile: file("groups.json") } }, dir),
    );
    assert.deepEqual(await withGroups.authenticate({ metadata: new grpc.Metadata(), authContext: cert }), {
      id: SPIFFE_ID,
      groups: ["deployers"],
    });
    const noFile = await createAuthenticator(
      parseIdentityConfig({ mtls: { caFile: file("ca.pem"), groupsFile: file("absent.json") } }, dir),
    );
    assert.deepEqual(await noFile.authenticate({ metadata: new grpc.Metadata(), authContext: cert }), { id: SPIFFE_ID, groups: [] });
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
    const metadata = new grpc.Metadata();
    metadata.set("authorization", "Bearer a.b.c");
    await assert.rejects(auth.authenticate({ metadata, authContext: undefined }), /bearer tokens are not accepted here/);
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

async function startServer(auth: Authenticator, requireClientCert: boolean): Promise<{ port: number; server: grpc.Server }> {
  const server = new grpc.Server();
  server.addService(WHO_AM_I, {
    whoAmI(call: grpc.ServerUnaryCall<Buffer, string>, callback: grpc.sendUnaryData<string>) {
      auth.authenticate({ metadata: call.metadata, authContext: call.getAuthContext() }).then(
        (caller) => callback(null, `${caller.id}|${caller.groups.join(",")}`),
        (err: unknown) => {
          const code = err instanceof Unauthenticated ? grpc.status.UNAUTHENTICATED : grpc.status.INTERNAL;
          callback({ code, details: err instanceof JitgateError ? err.message : "internal error" });
        },
      );
    },
  });
  const credentials = await serverCredentials({
    caFile: file("ca.pem"),
    certFile: file("server.pem"),
    keyFile: file("server.key"),
    requireClientCert,
  });
  const port = await new Promise<number>((ok, fail) => server.bindAsync("127.0.0.1:0", credentials, (err, p) => (err ? fail(err) : ok(p))));
  return { port, server };
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

describe("mTLS end to end (grpc-js on loopback)", () => {
  test("client certificates are required: the SPIFFE id and CN come back; no certificate fails the handshake", async () => {
    const auth = await createAuthenticator(parseIdentityConfig({ mtls: { caFile: file("ca.pem"), groupsFile: file("groups.json") } }, dir));
    const { port, server } = await startServer(auth, true);
    try {
      assert.equal(await whoAmI(port, "deployer"), `${SPIFFE_ID}|deployers`);
      assert.equal(await whoAmI(port, "alice"), "alice|oncall,dba");
      const noCert = await callError(whoAmI(port, undefined));
      assert.equal(noCert.code, grpc.status.UNAVAILABLE);
      assert.match(noCert.details, /alert certificate required/);
      assert.equal((await callError(whoAmI(port, "impostor"))).code, grpc.status.UNAVAILABLE, "another CA's certificate fails too");
    } finally {
      server.forceShutdown();
    }
  });

  test("optional client certificates: a token alone works, a token beats a certificate, an unverified certificate identifies no one", async () => {
    const dataDir = join(dir, "data");
    const config = parseIdentityConfig({ mtls: { caFile: file("ca.pem"), groupsFile: file("groups.json") }, dev: true, dataDir }, dir);
    const auth = await createAuthenticator(config);
    assert.match(auth.describe(), /client certificates from CA .*ca\.pem/);
    const { port, server } = await startServer(auth, false);
    try {
      const token = await issueDevToken({ dataDir, subject: "carol", groups: ["sre"], ttlSeconds: 60 });
      assert.equal(await whoAmI(port, undefined, token), "carol|sre");
      assert.equal(await whoAmI(port, "deployer", token), "carol|sre");
      assert.equal(await whoAmI(port, "deployer"), `${SPIFFE_ID}|deployers`);
      const expired = await issueDevToken({ dataDir, subject: "carol", groups: [], ttlSeconds: 60, now: Date.now() - 3_600_000 });
      const downgrade = await callError(whoAmI(port, "deployer", expired));
      assert.equal(downgrade.code, grpc.status.UNAUTHENTICATED, "a bad token is refused, not replaced by the certificate");
      assert.match(downgrade.details, /token expired/);
      const anonymous = await callError(whoAmI(port, undefined));
      assert.equal(anonymous.code, grpc.status.UNAUTHENTICATED);
      assert.match(anonymous.details, /no caller identity: send 'authorization: Bearer <token>' or a client certificate/);
      assert.equal((await callError(whoAmI(port, "impostor"))).code, grpc.status.UNAUTHENTICATED);
    } finally {
      server.forceShutdown();
    }
  });
});
