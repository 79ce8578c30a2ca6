// Client-certificate identity: the server's TLS credentials (which CAs may vouch for callers) and the caller
// id read from a certificate that TLS already verified (a URI SAN such as a SPIFFE ID, else the subject CN).
import { readFile } from "node:fs/promises";
import { createSecureContext, type PeerCertificate } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { InvalidArgument, Unauthenticated } from "../errors.ts";
import { IDENTITY_FIELDS } from "./config.ts";

/** How a user names the server's own certificate and key (owned by the server's configuration). */
export const TLS_FIELDS = {
  caFile: IDENTITY_FIELDS.mtlsCa,
  certFile: "--tls-cert (JITGATE_TLS_CERT)",
  keyFile: "--tls-key (JITGATE_TLS_KEY)",
} as const;

export interface ServerTlsFiles {
  /** PEM CAs that client certificates must chain to. */
  readonly caFile: string;
  /** The server's own certificate chain and private key (PEM). */
  readonly certFile: string;
  readonly keyFile: string;
  /**
   * true (the default): the handshake fails without a client certificate from `caFile`. false: a certificate
   * is asked for but optional, so callers with only a bearer token can connect too; a certificate that does not
   * chain to `caFile` then identifies no one (grpc-js hides unverified certificates from `getAuthContext`).
   */
  readonly requireClientCert?: boolean;
}

const MAX_IDENTITY_LENGTH = 1024;

/** gRPC server credentials for mTLS; every file is read and checked now, so a bad one fails start-up. */
export async function serverCredentials(files: ServerTlsFiles): Promise<grpc.ServerCredentials> {
  const ca = await readPem(files.caFile, TLS_FIELDS.caFile);
  const cert = await readPem(files.certFile, TLS_FIELDS.certFile);
  const key = await readPem(files.keyFile, TLS_FIELDS.keyFile);
  try {
    createSecureContext({ ca, cert, key });
  } catch (err) {
    throw new InvalidArgument(
      TLS_FIELDS.keyFile,
      `${files.keyFile} and ${files.certFile} do not make a usable TLS identity: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  if (files.requireClientCert ?? true) return grpc.ServerCredentials.createSsl(ca, [{ private_key: key, cert_chain: cert }], true);
  const provider = staticCertificates(ca, cert, key);
  return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
}

/**
 * The caller id a verified client certificate carries: its URI SAN when it has one (a SPIFFE ID in a mesh),
 * else its subject CN. Several URI SANs or several CNs are ambiguous and refused.
 */
export function identityFromCertificate(cert: Pick<PeerCertificate, "subject" | "subjectaltname">): string {
  const uris = subjectAltNames(cert.subjectaltname ?? "")
    .filter((n) => n.type === "URI")
    .map((n) => n.value);
  if (uris.length > 1) throw new Unauthenticated("client certificate has several URI SANs: cannot tell which identifies the caller");
  const cn = cert.subject?.CN as string | string[] | undefined;
  if (Array.isArray(cn)) throw new Unauthenticated("client certificate has several subject CNs: cannot tell which identifies the caller");
  const id = uris[0] ?? cn;
  if (id === undefined || id.trim() === "") throw new Unauthenticated("client certificate has neither a URI SAN nor a subject CN");
  if (id.length > MAX_IDENTITY_LENGTH || /\p{Cc}/u.test(id)) throw new Unauthenticated("client certificate identity is not usable");
  if (id.startsWith("spiffe://") && !isSpiffeId(id)) throw new Unauthenticated("client certificate URI SAN is not a valid SPIFFE ID");
  return id;
}

export interface AltName {
  readonly type: string;
  readonly value: string;
}

/**
 * Node's `subjectaltname` text: `URI:spiffe://a/b, DNS:x, IP Address:127.0.0.1`. Since the fix for
 * CVE-2021-44532, a value holding a comma, quote or other special character is a JSON string in quotes,
 * so a crafted SAN cannot smuggle in a second entry; a plain `split(", ")` would undo that protection.
 */
export function subjectAltNames(text: string): AltName[] {
  const names: AltName[] = [];
  let at = 0;
  while (at < text.length) {
    const colon = text.indexOf(":", at);
    if (colon < 0) throw new Unauthenticated("client certificate has an unreadable subject alternative name");
    const type = text.slice(at, colon);
    let value: string;
    if (text[colon + 1] === '"') {
      const end = closingQuote(text, colon + 2);
      value = JSON.parse(text.slice(colon + 1, end + 1)) as string;
      at = end + 1;
    } else {
      const comma = text.indexOf(", ", colon + 1);
      value = text.slice(colon + 1, comma < 0 ? text.length : comma);
      at = comma < 0 ? text.length : comma;
    }
    names.push({ type, value });
    if (at < text.length) {
      if (!text.startsWith(", ", at)) throw new Unauthenticated("client certificate has an unreadable subject alternative name");
      at += 2;
    }
  }
  return names;
}

function closingQuote(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    if (text[i] === "\\") i++;
    else if (text[i] === '"') return i;
  }
  throw new Unauthenticated("client certificate has an unreadable subject alternative name");
}

/** SPIFFE ID syntax (spiffe.io, "SPIFFE ID"): lowercase trust domain, path segments of [A-Za-z0-9._-]. */
function isSpiffeId(id: string): boolean {
  return /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(id) && !/\/\.{1,2}(\/|$)/.test(id);
}

async function readPem(file: string, field: string): Promise<Buffer> {
  let pem: Buffer;
  try {
    pem = await readFile(file);
  } catch (err) {
    throw new InvalidArgument(field, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      cause: err,
    });
  }
  if (!pem.includes("-----BEGIN ")) throw new InvalidArgument(field, `${file} is not a PEM file`);
  return pem;
}

/**
 * Fixed certificates for grpc-js's certificate-provider credentials, the only server credentials in grpc-js
 * 1.14 that ask for a client certificate without requiring one. Updates are delivered asynchronously because
 * grpc-js registers its watcher only after subscribing to the provider.
 */
function staticCertificates(ca: Buffer, cert: Buffer, key: Buffer): grpc.experimental.CertificateProvider {
  return {
    addCaCertificateListener: (listener) => queueMicrotask(() => listener({ caCertificate: ca })),
    removeCaCertificateListener: () => {},
    addIdentityCertificateListener: (listener) => queueMicrotask(() => listener({ certificate: cert, privateKey: key })),
    removeIdentityCertificateListener: () => {},
  };
}
