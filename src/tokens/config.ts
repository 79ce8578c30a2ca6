// Access-token configuration: validated once from plain values (flags and environment already merged by the
// caller) into a frozen object. Every error names the flag and its environment variable.
import { isAbsolute, resolve } from "node:path";
import { DEFAULT_CLOCK_TOLERANCE_S, MAX_CLOCK_TOLERANCE_S, MAX_TOKEN_TTL_S } from "../enforce/verify.ts";
import { InvalidArgument } from "../errors.ts";
import { SIGNING_ALGORITHMS, type SigningAlgorithm } from "./key-material.ts";
import { keyDirectory } from "./keys.ts";

export interface TokenConfig {
  readonly dataDir: string;
  /**
   * Where the signing keys live: `<dataDir>/signing-keys` unless given. Replicas share one directory (a shared
   * volume), so a token issued by one verifies on all, and a rotation is seen by all within a second.
   */
  readonly keysDir: string;
  readonly issuer: string;
  /** The longest a token lives, in seconds; a token never outlives its grant either. */
  readonly ttlS: number;
  /** The algorithm of keys jitgate creates (first start, rotation). */
  readonly algorithm: SigningAlgorithm;
  readonly clockToleranceS: number;
}

/** Values as the user gave them (flags over environment); strings where they came from the environment. */
export interface TokenInput {
  dataDir?: string;
  keysDir?: string;
  issuer?: string;
  ttlS?: number | string;
  algorithm?: string;
  clockToleranceS?: number | string;
}

export const TOKEN_FIELDS = {
  dataDir: "--data-dir (JITGATE_DATA_DIR)",
  keysDir: "--signing-keys (JITGATE_SIGNING_KEYS)",
  issuer: "--token-issuer (JITGATE_TOKEN_ISSUER)",
  ttl: "--token-ttl (JITGATE_TOKEN_TTL)",
  algorithm: "--token-alg (JITGATE_TOKEN_ALG)",
  clockTolerance: "--token-clock-tolerance (JITGATE_TOKEN_CLOCK_TOLERANCE)",
} as const;

export const TOKEN_DEFAULTS = { issuer: "jitgate", ttlS: 300, algorithm: "EdDSA", clockToleranceS: DEFAULT_CLOCK_TOLERANCE_S } as const;

const F = TOKEN_FIELDS;

export function parseTokenConfig(input: TokenInput, cwd: string): TokenConfig {
  const dataDir = text(input.dataDir);
  if (dataDir === undefined) throw new InvalidArgument(F.dataDir, "is required (the signing keys live there)");
  const issuer = text(input.issuer) ?? TOKEN_DEFAULTS.issuer;
  if (issuer.length > 256 || /[\p{Cc}\s]/u.test(issuer)) {
    throw new InvalidArgument(F.issuer, `'${issuer}' is not a usable issuer (1-256 characters, no spaces)`);
  }
  const absolute = (p: string) => (isAbsolute(p) ? p : resolve(cwd, p));
  const keysDir = text(input.keysDir);
  return Object.freeze({
    dataDir: absolute(dataDir),
    keysDir: keysDir === undefined ? keyDirectory(absolute(dataDir)) : absolute(keysDir),
    issuer,
    ttlS: wholeSeconds(input.ttlS, TOKEN_DEFAULTS.ttlS, 1, MAX_TOKEN_TTL_S, F.ttl),
    algorithm: parseAlgorithm(input.algorithm),
    clockToleranceS: wholeSeconds(input.clockToleranceS, TOKEN_DEFAULTS.clockToleranceS, 0, MAX_CLOCK_TOLERANCE_S, F.clockTolerance),
  });
}

function parseAlgorithm(value: string | undefined): SigningAlgorithm {
  const given = text(value);
  if (given === undefined) return TOKEN_DEFAULTS.algorithm;
  const alg = SIGNING_ALGORITHMS.find((a) => a.toLowerCase() === given.toLowerCase());
  if (alg === undefined) throw new InvalidArgument(F.algorithm, `'${given}' is not one of ${SIGNING_ALGORITHMS.join(", ")}`);
  return alg;
}

function wholeSeconds(value: number | string | undefined, fallback: number, min: number, max: number, field: string): number {
  if (value === undefined || value === "") return fallback;
  const n = typeof value === "number" ? value : /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new InvalidArgument(field, `'${value}' is not a whole number of seconds from ${min} to ${max}`);
  }
  return n;
}

function text(value: string | undefined): string | undefined {
  const t = value?.trim();
  return t === undefined || t === "" ? undefined : t;
}
