// Test certificates made with the openssl CLI in a temp directory: a CA, a rogue CA, the server's certificate
// and clients good and bad. Each is `<name>.pem` with its key in `<name>.key`.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
export const SPIFFE_ID = "spiffe://example.org/ns/ops/sa/deployer";
const EC_KEY = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";

/**
 * ca, rogue-ca; server (localhost and 127.0.0.1, from ca); from ca: deployer (the SPIFFE ID), alice (CN only),
 * lapsed (expired), web (serverAuth only); from rogue-ca: impostor (the deployer's SPIFFE ID) and
 * impostor-chain (the same, sent with rogue-ca).
 */
export async function makeTestCertificates(dir: string): Promise<void> {
  const file = (name: string) => join(dir, name);
  /** `openssl` with fixed words (split on spaces) followed by arguments that may hold anything. */
  const openssl = (words: string, ...args: string[]) => run("openssl", [...words.split(" "), ...args]);
  const makeCa = async (name: string) => {
    const ext = "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign";
    await openssl(
      `req -x509 ${EC_KEY} -days 1 ${ext}`,
      "-keyout",
      file(`${name}.key`),
      "-out",
      file(`${name}.pem`),
      "-subj",
      `/CN=${name}`,
    );
  };
  // `days` -1 makes a certificate that expired a day before it was issued (OpenSSL 3.0 has no -not_after).
  const makeCert = async (ca: string, name: string, subject: string, extensions: string[], days = 1) => {
    await openssl(`req -new ${EC_KEY}`, "-keyout", file(`${name}.key`), "-out", file(`${name}.csr`), "-subj", subject);
    await writeFile(file(`${name}.ext`), `[ext]\n${extensions.join("\n")}\n`);
    const signer = ["-CA", file(`${ca}.pem`), "-CAkey", file(`${ca}.key`), "-set_serial", `0x${randomBytes(8).toString("hex")}`];
    await openssl(
      `x509 -req -days ${days} -extensions ext`,
      "-in",
      file(`${name}.csr`),
      ...signer,
      "-out",
      file(`${name}.pem`),
      "-extfile",
      file(`${name}.ext`),
    );
  };
  await makeCa("ca");
  await makeCa("rogue-ca");
  await makeCert("ca", "server", "/CN=localhost", ["subjectAltName=DNS:localhost,IP:127.0.0.1", "extendedKeyUsage=serverAuth"]);
  await makeCert("ca", "deployer", "/CN=deployer", [`subjectAltName=URI:${SPIFFE_ID},DNS:deployer.ops.svc`, "extendedKeyUsage=clientAuth"]);
  await makeCert("ca", "alice", "/O=Example/CN=alice", ["extendedKeyUsage=clientAuth"]);
  await makeCert("ca", "lapsed", "/CN=lapsed", [`subjectAltName=URI:${SPIFFE_ID}`, "extendedKeyUsage=clientAuth"], -1);
  await makeCert("ca", "web", "/CN=web", [`subjectAltName=URI:${SPIFFE_ID}`, "extendedKeyUsage=serverAuth"]);
  await makeCert("rogue-ca", "impostor", "/CN=impostor", [`subjectAltName=URI:${SPIFFE_ID}`, "extendedKeyUsage=clientAuth"]);
  // The impostor sending its CA along: a chain that verifies, up to a root the server does not trust.
  await writeFile(file("impostor-chain.pem"), Buffer.concat([await readFile(file("impostor.pem")), await readFile(file("rogue-ca.pem"))]));
  await writeFile(file("impostor-chain.key"), await readFile(file("impostor.key")));
}
