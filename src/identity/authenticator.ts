// Who is calling: a verified bearer token (OIDC or the dev issuer) when one is sent, else a client certificate
// that TLS verified. The answer is the only source of requester and reviewer ids; request bodies never are.
// Transport-neutral: every front end (gRPC, HTTP) hands over the same Credentials.
import { readFile } from "node:fs/promises";
import type { PeerCertificate } from "node:tls";
import { decodeJwt } from "jose";
import type { Caller } from "../access/model.ts";
import type { Clock } from "../access/ports.ts";
import { InvalidArgument, Unauthenticated } from "../errors.ts";
import {
  DEFAULT_CLOCK_TOLERANCE_S,
  DEV_AUDIENCE,
  DEV_ISSUER,
  IDENTITY_FIELDS,
  type IdentityConfig,
  type OidcIdentityConfig,
} from "./config.ts";
import { DEV_ALGORITHM, loadOrCreateDevKey } from "./dev-issuer.ts";
import { identityFromCertificate, NO_CLIENT_CERTIFICATE } from "./mtls.ts";
import { createTokenVerifier, groupNameProblem, issuerKeys, localKeys, MAX_TOKEN_BYTES, type TokenVerifier } from "./oidc.ts";

/** What a call presents to say who is calling, whatever its transport. */
export interface Credentials {
  /** Every value of the call's `authorization` header, as sent (none when there is no such header). */
  readonly authorization: readonly (string | Buffer)[];
  /**
   * The client certificate TLS verified against the configured CA, if any: a front end passes only a certificate
   * its TLS listener verified (`socket.authorized`; grpc-js's `sslPeerCertificate`), never one merely presented.
   * Calls on a connection whose certificate failed are refused by the listener (src/server/grpc/server.ts).
   */
  readonly peerCertificate: Pick<PeerCertificate, "subject" | "subjectaltname"> | undefined;
}

export interface Authenticator {
  /** The verified caller, or an Unauthenticated (an Unavailable when the identity provider's keys cannot be fetched). */
  authenticate(credentials: Credentials): Promise<Caller>;
  /** Which identity modes are on, for the start-up log. */
  describe(): string;
}

export interface AuthenticatorOptions {
  readonly clock?: Clock;
}

const NO_IDENTITY = "no caller identity: send 'authorization: Bearer <token>' or a client certificate";
const NO_GROUPS: readonly string[] = Object.freeze([]);

export async function createAuthenticator(config: IdentityConfig, options: AuthenticatorOptions = {}): Promise<Authenticator> {
  const clock = options.clock ?? { now: () => Date.now() };
  const verifiers: TokenVerifier[] = [];
  const modes: string[] = [];
  if (config.oidc) {
    verifiers.push(createTokenVerifier(config.oidc, await issuerKeys(config.oidc), clock));
    modes.push(
      `bearer tokens from OIDC issuer ${config.oidc.issuer} (audience ${config.oidc.audience}, keys from ${config.oidc.jwksUrl ?? config.oidc.jwksFile}, ` +
        `groups from claim '${config.oidc.groupsClaim}')`,
    );
  }
  if (config.dev) {
    const key = await loadOrCreateDevKey(config.dataDir);
    verifiers.push(
      createTokenVerifier(devVerifierConfig(), localKeys({ keys: [{ ...key.publicJwk }] }, IDENTITY_FIELDS.dataDir, key.file), clock),
    );
    modes.push(
      `DEV MODE: tokens from the local dev issuer '${DEV_ISSUER}' (key ${key.file}), which anyone with that file can mint: never in production`,
    );
  }
  const groupsByCertIdentity = config.mtls ? await loadCertificateGroups(config.mtls.groupsFile) : undefined;
  if (config.mtls) {
    modes.push(`client certificates from CA ${config.mtls.caFile} (groups from ${config.mtls.groupsFile ?? "nowhere: no groups"})`);
  }
  const verifierFor = chooseVerifier(verifiers);

  return {
    async authenticate({ authorization, peerCertificate }) {
      const token = bearerToken(authorization);
      if (token !== undefined) {
        if (verifiers.length === 0)
          throw new Unauthenticated("bearer tokens are not accepted here: this server identifies callers by client certificate");
        return verifierFor(token).verify(token);
      }
      if (groupsByCertIdentity && peerCertificate) {
        const id = identityFromCertificate(peerCertificate);
        return Object.freeze({ id, groups: groupsByCertIdentity.get(id) ?? NO_GROUPS });
      }
      throw new Unauthenticated(verifiers.length === 0 ? NO_CLIENT_CERTIFICATE : NO_IDENTITY);
    },
    describe: () => `caller identity: ${modes.join("; ")}`,
  };
}

/** The dev verifier is the OIDC verifier with the dev issuer's fixed settings and public key. */
export function devVerifierConfig(): OidcIdentityConfig {
  return Object.freeze({
    issuer: DEV_ISSUER,
    audience: DEV_AUDIENCE,
    jwksFile: undefined,
    jwksUrl: undefined,
    groupsClaim: "groups",
    subjectClaim: "sub",
    algorithms: Object.freeze([DEV_ALGORITHM]),
    clockToleranceS: DEFAULT_CLOCK_TOLERANCE_S,
  });
}

/**
 * The token from `authorization: Bearer <token>` (the header's values as sent), undefined when no such header is
 * sent. The scheme is case-insensitive (RFC 7235); anything else in the header is refused rather than ignored.
 */
export function bearerToken(values: readonly (string | Buffer)[]): string | undefined {
  if (values.length === 0) return undefined;
  if (values.length > 1) throw new Unauthenticated("malformed authorization header: sent more than once");
  const header = values[0];
  if (typeof header !== "string") throw new Unauthenticated("malformed authorization header: not text");
  if (header.length > MAX_TOKEN_BYTES + 16) throw new Unauthenticated(`token too large (over ${MAX_TOKEN_BYTES} bytes)`);
  const match = /^Bearer +(\S+) *$/i.exec(header);
  if (!match) throw new Unauthenticated("malformed authorization header: expected 'Bearer <token>'");
  const token = match[1] as string;
  if (token.length > MAX_TOKEN_BYTES) throw new Unauthenticated(`token too large (over ${MAX_TOKEN_BYTES} bytes)`);
  if (!/^[\w-]+\.[\w-]+\.[\w-]*$/.test(token)) throw new Unauthenticated("malformed token: not a compact JWS (header.payload.signature)");
  return token;
}

/**
 * With one trusted issuer every token goes to its verifier, so a wrong issuer is reported as such. With
 * several (OIDC and dev), the unverified `iss` only picks the verifier; that verifier then checks everything.
 */
function chooseVerifier(verifiers: readonly TokenVerifier[]): (token: string) => TokenVerifier {
  const only = verifiers[0];
  if (verifiers.length === 1 && only) return () => only;
  return (token) => {
    let iss: unknown;
    try {
      iss = decodeJwt(token).iss;
    } catch (err) {
      throw new Unauthenticated("malformed token: not a signed JWT", { cause: err });
    }
    if (typeof iss !== "string") throw new Unauthenticated("token has no 'iss' claim");
    const verifier = verifiers.find((v) => v.issuer === iss);
    if (!verifier)
      throw new Unauthenticated(`token has the wrong issuer (expected one of ${verifiers.map((v) => `'${v.issuer}'`).join(", ")})`);
    return verifier;
  };
}

/**
 * `{ "<certificate identity>": ["group", ...] }`; a missing file means no groups for anyone. Group names are
 * used exactly as written (never trimmed or case-folded): one with surrounding whitespace or an invisible
 * character refuses the whole file, as a token claim holding one refuses the token.
 */
export async function loadCertificateGroups(file: string | undefined): Promise<ReadonlyMap<string, readonly string[]>> {
  const groups = new Map<string, readonly string[]>();
  if (file === undefined) return groups;
  const field = IDENTITY_FIELDS.mtlsGroups;
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, "utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return groups;
    throw new InvalidArgument(field, `${file} is not a readable JSON file: ${(err as Error).message}`, { cause: err });
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new InvalidArgument(field, `${file} must hold an object mapping certificate identities to lists of groups`);
  }
  for (const [id, list] of Object.entries(parsed)) {
    if (!Array.isArray(list) || !list.every((g) => typeof g === "string" && g !== "")) {
      throw new InvalidArgument(field, `${file}: the groups of '${id}' must be a list of non-empty strings`);
    }
    list.forEach((name: string, i) => {
      const problem = groupNameProblem(name);
      if (problem !== undefined) throw new InvalidArgument(field, `${file}: group ${i + 1} of '${id}' ${problem}`);
    });
    groups.set(id, Object.freeze([...new Set(list as string[])]));
  }
  return groups;
}
