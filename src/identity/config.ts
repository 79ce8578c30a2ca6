// Caller-identity configuration: validated once from plain values (flags and environment already merged by
// the caller, which also owns process.env) into a frozen object. Every error names the flag and variable.
import { isAbsolute, resolve } from "node:path";
import { InvalidArgument } from "../errors.ts";

export interface MtlsIdentityConfig {
  /** PEM bundle of the CAs whose client certificates identify callers. */
  readonly caFile: string;
  /** JSON `{ "<certificate identity>": ["group", ...] }`; a missing file means no groups. */
  readonly groupsFile: string | undefined;
}

export interface OidcIdentityConfig {
  readonly issuer: string;
  readonly audience: string;
  readonly jwksFile: string | undefined;
  readonly jwksUrl: string | undefined;
  /** A claim name, or a dotted path into nested claims (`realm_access.roles`). */
  readonly groupsClaim: string;
  /** A top-level claim name. */
  readonly subjectClaim: string;
  readonly algorithms: readonly string[];
  readonly clockToleranceS: number;
}

export interface IdentityConfig {
  readonly mtls: MtlsIdentityConfig | undefined;
  readonly oidc: OidcIdentityConfig | undefined;
  /** Accept tokens from the local dev issuer whose key lives in `dataDir`. Never for production. */
  readonly dev: boolean;
  readonly dataDir: string;
}

/** Values as the user gave them (flags over environment); strings where they came from the environment. */
export interface IdentityInput {
  mtls?: { caFile?: string; groupsFile?: string };
  oidc?: {
    issuer?: string;
    audience?: string;
    jwksFile?: string;
    jwksUrl?: string;
    groupsClaim?: string;
    subjectClaim?: string;
    /** A list, or one comma-separated string. */
    algorithms?: string | readonly string[];
    clockToleranceS?: string | number;
  };
  dev?: boolean | string;
  dataDir?: string;
}

/** How a user writes each setting; errors and the CLI's help use the same names. */
export const IDENTITY_FIELDS = {
  mtlsCa: "--mtls-ca (JITGATE_MTLS_CA)",
  mtlsGroups: "--mtls-groups (JITGATE_MTLS_GROUPS)",
  oidcIssuer: "--oidc-issuer (JITGATE_OIDC_ISSUER)",
  oidcAudience: "--oidc-audience (JITGATE_OIDC_AUDIENCE)",
  oidcJwksFile: "--oidc-jwks-file (JITGATE_OIDC_JWKS_FILE)",
  oidcJwksUrl: "--oidc-jwks-url (JITGATE_OIDC_JWKS_URL)",
  oidcGroupsClaim: "--oidc-groups-claim (JITGATE_OIDC_GROUPS_CLAIM)",
  oidcSubjectClaim: "--oidc-subject-claim (JITGATE_OIDC_SUBJECT_CLAIM)",
  oidcAlgorithms: "--oidc-algorithms (JITGATE_OIDC_ALGORITHMS)",
  oidcClockTolerance: "--oidc-clock-tolerance (JITGATE_OIDC_CLOCK_TOLERANCE)",
  dev: "--dev (JITGATE_DEV)",
  dataDir: "--data-dir (JITGATE_DATA_DIR)",
} as const;

/** Asymmetric JWS algorithms only: an HMAC "key" would be a secret shared with every token holder. */
export const SUPPORTED_ALGORITHMS: readonly string[] = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
];
export const DEFAULT_ALGORITHMS: readonly string[] = ["RS256", "ES256", "EdDSA", "PS256"];
export const DEFAULT_CLOCK_TOLERANCE_S = 30;
/** Forgiveness for tokens dated in the future (nbf, iat; never exp): a larger skew means clocks to fix. */
export const MAX_CLOCK_TOLERANCE_S = 60;
export const DEV_ISSUER = "jitgate-dev";
export const DEV_AUDIENCE = "jitgate";

const F = IDENTITY_FIELDS;

export function parseIdentityConfig(input: IdentityInput, cwd: string): IdentityConfig {
  const path = (p: string) => (isAbsolute(p) ? p : resolve(cwd, p));
  const dev = parseBoolean(input.dev, F.dev);
  const dataDirText = optionalText(input.dataDir, F.dataDir);
  if (dev && dataDirText === undefined) throw new InvalidArgument(F.dataDir, "is required with --dev (the dev issuer key lives there)");
  const mtls = parseMtls(input.mtls, path);
  const oidc = parseOidc(input.oidc, path);
  if (!dev && !mtls && !oidc) {
    throw new InvalidArgument(
      "caller identity",
      "no caller identity configured: use --dev for local development, or configure mTLS or OIDC (--mtls-ca, or --oidc-issuer with --oidc-audience and --oidc-jwks-file or --oidc-jwks-url)",
    );
  }
  if (dev && oidc?.issuer === DEV_ISSUER) {
    throw new InvalidArgument(F.oidcIssuer, `'${DEV_ISSUER}' is reserved for the dev issuer of --dev`);
  }
  return Object.freeze({ mtls, oidc, dev, dataDir: path(dataDirText ?? ".") });
}

function parseMtls(input: IdentityInput["mtls"], path: (p: string) => string): MtlsIdentityConfig | undefined {
  const caFile = optionalText(input?.caFile, F.mtlsCa);
  const groupsFile = optionalText(input?.groupsFile, F.mtlsGroups);
  if (caFile === undefined) {
    if (groupsFile !== undefined) throw new InvalidArgument(F.mtlsCa, "is required when --mtls-groups is set");
    return undefined;
  }
  return Object.freeze({ caFile: path(caFile), groupsFile: groupsFile === undefined ? undefined : path(groupsFile) });
}

function parseOidc(input: IdentityInput["oidc"], path: (p: string) => string): OidcIdentityConfig | undefined {
  if (!input || Object.values(input).every((v) => v === undefined || v === "")) return undefined;
  const issuer = requiredText(input.issuer, F.oidcIssuer, "is required to verify bearer tokens");
  const audience = requiredText(
    input.audience,
    F.oidcAudience,
    "is required: the audience the identity provider puts in tokens for jitgate",
  );
  const jwksFile = optionalText(input.jwksFile, F.oidcJwksFile);
  const jwksUrl = optionalText(input.jwksUrl, F.oidcJwksUrl);
  if ((jwksFile === undefined) === (jwksUrl === undefined)) {
    throw new InvalidArgument(F.oidcJwksUrl, "give exactly one of --oidc-jwks-url and --oidc-jwks-file (the issuer's public keys)");
  }
  if (jwksUrl !== undefined) checkJwksUrl(jwksUrl);
  const groupsClaim = optionalText(input.groupsClaim, F.oidcGroupsClaim) ?? "groups";
  if (groupsClaim.split(".").some((part) => part === "")) {
    throw new InvalidArgument(F.oidcGroupsClaim, `'${groupsClaim}' is not a claim name or a dotted path like realm_access.roles`);
  }
  return Object.freeze({
    issuer,
    audience,
    jwksFile: jwksFile === undefined ? undefined : path(jwksFile),
    jwksUrl,
    groupsClaim,
    subjectClaim: optionalText(input.subjectClaim, F.oidcSubjectClaim) ?? "sub",
    algorithms: Object.freeze(parseAlgorithms(input.algorithms)),
    clockToleranceS: parseClockTolerance(input.clockToleranceS),
  });
}

function checkJwksUrl(value: string): void {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgument(F.oidcJwksUrl, `'${value}' is not a URL`);
  }
  // Plain http would let anyone on the path swap the keys; loopback is allowed for local identity providers.
  const loopback = ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    throw new InvalidArgument(F.oidcJwksUrl, `'${value}' must be an https URL (http only for localhost)`);
  }
}

function parseAlgorithms(value: string | readonly string[] | undefined): string[] {
  if (value === undefined || value === "") return [...DEFAULT_ALGORITHMS];
  const list = (typeof value === "string" ? value.split(",") : [...value]).map((a) => String(a).trim()).filter((a) => a !== "");
  if (list.length === 0) throw new InvalidArgument(F.oidcAlgorithms, "lists no algorithm");
  for (const alg of list) {
    if (/^HS\d+$/.test(alg) || alg.toLowerCase() === "none") {
      throw new InvalidArgument(
        F.oidcAlgorithms,
        `'${alg}' is not accepted: only asymmetric signatures (${SUPPORTED_ALGORITHMS.join(", ")})`,
      );
    }
    if (!SUPPORTED_ALGORITHMS.includes(alg)) {
      throw new InvalidArgument(F.oidcAlgorithms, `'${alg}' is not one of ${SUPPORTED_ALGORITHMS.join(", ")}`);
    }
  }
  return [...new Set(list)];
}

function parseClockTolerance(value: string | number | undefined): number {
  if (value === undefined || value === "") return DEFAULT_CLOCK_TOLERANCE_S;
  const n = typeof value === "number" ? value : /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > MAX_CLOCK_TOLERANCE_S) {
    throw new InvalidArgument(F.oidcClockTolerance, `'${value}' is not a whole number of seconds from 0 to ${MAX_CLOCK_TOLERANCE_S}`);
  }
  return n;
}

function parseBoolean(value: boolean | string | undefined, field: string): boolean {
  if (value === undefined || value === "" || value === false) return false;
  if (value === true) return true;
  const v = value.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(v)) return true;
  if (["0", "false", "no", "off"].includes(v)) return false;
  throw new InvalidArgument(field, `'${value}' is not a boolean (use 1 or 0)`);
}

function optionalText(value: unknown, field: string): string | undefined {
  if (value === undefined || value === "") return undefined;
  if (typeof value !== "string") throw new InvalidArgument(field, "must be text");
  const text = value.trim();
  if (text === "" || /[\p{Cc}]/u.test(text)) throw new InvalidArgument(field, "must be non-empty text without control characters");
  return text;
}

function requiredText(value: unknown, field: string, why: string): string {
  const text = optionalText(value, field);
  if (text === undefined) throw new InvalidArgument(field, why);
  return text;
}
