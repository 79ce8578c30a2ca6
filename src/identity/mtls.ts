// Client-certificate identity: the server's TLS material (which CA may vouch for callers), why a connection's
// client certificate is refused (none, or one TLS could not verify), and the caller id read from a certificate
// that TLS verified (a URI SAN such as a SPIFFE ID, else the subject CN).
import { callerIdProblem } from "../access/identities.ts";
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
   * true (the default): every call needs a client certificate from `caFile`. false: a certificate is optional,
   * so callers with only a bearer token get through too. Either way the handshake asks for one and never fails
   * over it, and a certificate that does not chain to `caFile` gets every call refused, naming why.
   */
  readonly requireClientCert?: boolean;
}

/** The server's TLS material, read and checked: transport-neutral, for whichever listener serves it. */
export interface ServerTls {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly requireClientCert: boolean;
}

/**
 * mTLS for a grpc-js server, as jitgate's own TLS listener serves it (`startServer` in src/server/grpc/server.ts),
 * so that a refused client certificate becomes an UNAUTHENTICATED call naming why, not a failed handshake.
 * grpc-js's `bindAsync` would accept no connection with these (no secure context): it fails closed.
 */
export class MutualTlsCredentials extends grpc.ServerCredentials {
  readonly tls: ServerTls;
  constructor(tls: ServerTls) {
    super({ requestCert: true, rejectUnauthorized: false });
    this.tls = tls;
  }
  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

/** What a TLS handshake found about the client's certificate (Node's TLSSocket reports these three). */
export interface ClientCertificateCheck {
  /** The client sent a certificate. */
  readonly presented: boolean;
  /** It chains to the configured CA and is valid now. */
  readonly authorized: boolean;
  /** Why not: an OpenSSL verification code such as UNABLE_TO_VERIFY_LEAF_SIGNATURE. */
  readonly authorizationError: string | undefined;
}

export const NO_CLIENT_CERTIFICATE = "no client certificate";

/** gRPC server credentials for mTLS; every file is read and checked now, so a bad one fails start-up. */
export async function serverCredentials(files: ServerTlsFiles): Promise<grpc.ServerCredentials> {
  return new MutualTlsCredentials(await loadServerTls(files));
}

/**
 * Why calls on a connection are refused, from what its handshake found; undefined: they may go on (with a
 * verified certificate, or with none where bearer tokens are accepted). A certificate that fails verification
 * is refused even beside a valid token: it identifies no one, and the caller meant to be known by it.
 */
export function clientCertificateRefusal(check: ClientCertificateCheck, requireClientCert: boolean): Unauthenticated | undefined {
  if (check.authorized) return undefined;
  // Without a certificate OpenSSL still reports a code (UNABLE_TO_GET_ISSUER_CERT), so `presented` decides.
  if (!check.presented) return requireClientCert ? new Unauthenticated(NO_CLIENT_CERTIFICATE) : undefined;
  const code = check.authorizationError ?? "UNKNOWN";
  const untrusted = NOT_TRUSTED[code];
  if (untrusted) return new Unauthenticated(`client certificate not issued by a trusted CA (${code}: ${untrusted})`);
  const invalid = NOT_VALID[code];
  return new Unauthenticated(`client certificate not accepted (${code}${invalid ? `: ${invalid}` : ""})`);
}

/** OpenSSL's X509_V_ERR_* names (as Node reports them) for a chain that does not lead to the configured CA. */
const NOT_TRUSTED: Readonly<Record<string, string>> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "its issuer is not a CA this server trusts",
  UNABLE_TO_GET_ISSUER_CERT: "its issuer is not a CA this server trusts",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "its issuer is not a CA this server trusts",
  SELF_SIGNED_CERT_IN_CHAIN: "its chain ends at a CA this server does not trust",
  DEPTH_ZERO_SELF_SIGNED_CERT: "it is self-signed",
  CERT_SIGNATURE_FAILURE: "its signature does not verify against its issuer",
};

/** ... and for a certificate from the right CA that is not usable now or for this. */
const NOT_VALID: Readonly<Record<string, string>> = {
  CERT_HAS_EXPIRED: "it has expired",
  CERT_NOT_YET_VALID: "it is not valid yet",
  CERT_REVOKED: "it has been revoked",
  INVALID_PURPOSE: "it is not meant for client authentication (extended key usage)",
  CERT_CHAIN_TOO_LONG: "its chain is too long",
  INVALID_CA: "an intermediate in its chain is not a CA",
};

/** The CA, certificate and key, read and checked now, so a bad file fails start-up naming its setting. */
export async function loadServerTls(files: ServerTlsFiles): Promise<ServerTls> {
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
  return Object.freeze({ ca, cert, key, requireClientCert: files.requireClientCert ?? true });
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
  // The one identity rule (src/access/identities.ts), as for tokens: "ali\u200Bce" or "alice " is nobody.
  const problem = callerIdProblem(id);
  if (problem !== undefined) throw new Unauthenticated(`client certificate identity is not a usable caller id: it ${problem}`);
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
