// One signing key as stored on disk and as held in memory: generating it, serialising it to the key file's
// JSON and parsing that JSON back with every field checked. The private half is imported non-extractable and
// never leaves this module in any other form.
import { calculateJwkThumbprint, type CryptoKey, exportJWK, generateKeyPair, importJWK, type JWK } from "jose";
import { FailedPrecondition } from "../errors.ts";

export type SigningAlgorithm = "EdDSA" | "ES256";
export const SIGNING_ALGORITHMS: readonly SigningAlgorithm[] = Object.freeze(["EdDSA", "ES256"]);

/** The file name of a key: its RFC 7638 thumbprint (SHA-256, base64url: 43 characters) plus `.json`. */
export const KEY_FILE_PATTERN = /^[A-Za-z0-9_-]{43}\.json$/;

/**
 * The public half of a key whose private file was deleted: kept so signatures older than any token (audit
 * checkpoints) still verify. `retired-<kid>.public.json`; never used to sign or published in the JWKS.
 */
export const RETIRED_KEY_PATTERN = /^retired-([A-Za-z0-9_-]{43})\.public\.json$/;

export function retiredKeyFileName(kid: string): string {
  return `retired-${kid}.public.json`;
}

/** A retired key's file text as a public JWK, checked: no private part, and its thumbprint is the kid in its name. */
export async function parseRetiredKeyFile(file: string, kid: string, text: string): Promise<JWK> {
  let jwk: JWK;
  try {
    jwk = JSON.parse(text) as JWK;
  } catch (err) {
    throw new FailedPrecondition(`retired key ${file} is not JSON`, { cause: err });
  }
  if (jwk === null || typeof jwk !== "object" || "d" in jwk) throw new FailedPrecondition(`retired key ${file} is not a public JWK`);
  if ((await calculateJwkThumbprint(jwk)) !== kid || jwk.kid !== kid)
    throw new FailedPrecondition(`retired key ${file} does not match the thumbprint in its name`);
  return jwk;
}

/** A key as held in memory. */
export interface StoredKey {
  readonly file: string;
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  /** ms since the Unix epoch. */
  readonly createdAt: number;
  readonly privateKey: CryptoKey;
  /** The public half, as published in the JWKS. */
  readonly publicJwk: Readonly<JWK>;
}

const CURVES = { EdDSA: { kty: "OKP", crv: "Ed25519" }, ES256: { kty: "EC", crv: "P-256" } } as const;

/** A fresh key pair as the key file's text, with its kid. */
export async function generateKeyFile(alg: SigningAlgorithm, createdAt: number): Promise<{ kid: string; name: string; text: string }> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === "EdDSA" ? { crv: "Ed25519" } : {}) });
  const jwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(publicPart(jwk));
  const body = { kid, alg, created_at: new Date(createdAt).toISOString(), private_jwk: { ...publicPart(jwk), d: jwk.d } };
  return { kid, name: `${kid}.json`, text: `${JSON.stringify(body, null, 2)}\n` };
}

/** Parses a key file; the kid must be the key's thumbprint and the file must be named after it. */
export async function parseKeyFile(file: string, name: string, text: string): Promise<StoredKey> {
  const invalid = (why: string, cause?: unknown) =>
    new FailedPrecondition(`signing key ${file} is not a usable jitgate signing key (${why}): move it out of the directory`, { cause });
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw invalid("not JSON", err);
  }
  if (!isRecord(body)) throw invalid("not a JSON object");
  const { kid, alg, created_at: createdText, private_jwk: jwk } = body;
  if (alg !== "EdDSA" && alg !== "ES256") throw invalid(`'alg' is not one of ${SIGNING_ALGORITHMS.join(", ")}`);
  const createdAt = typeof createdText === "string" ? Date.parse(createdText) : NaN;
  if (!Number.isFinite(createdAt)) throw invalid("'created_at' is not an RFC 3339 time");
  if (!isRecord(jwk) || !fitsAlgorithm(jwk, alg)) throw invalid(`'private_jwk' is not a private ${CURVES[alg].crv} JWK`);
  const publicJwk = publicPart(jwk as JWK);
  const thumbprint = await calculateJwkThumbprint(publicJwk);
  if (kid !== thumbprint || name !== `${thumbprint}.json`) throw invalid("'kid' and the file name must be the key's RFC 7638 thumbprint");
  let privateKey: CryptoKey;
  try {
    privateKey = (await importJWK({ ...publicJwk, d: jwk.d as string }, alg, { extractable: false })) as CryptoKey;
  } catch (err) {
    throw invalid("the key does not import", err);
  }
  return Object.freeze({
    file,
    kid: thumbprint,
    alg,
    createdAt,
    privateKey,
    publicJwk: Object.freeze({ ...publicJwk, kid: thumbprint, alg, use: "sig" }),
  });
}

function fitsAlgorithm(jwk: Record<string, unknown>, alg: SigningAlgorithm): boolean {
  const { kty, crv } = CURVES[alg];
  const coordinates = alg === "ES256" ? [jwk.x, jwk.y, jwk.d] : [jwk.x, jwk.d];
  return jwk.kty === kty && jwk.crv === crv && coordinates.every((c) => typeof c === "string" && c !== "");
}

/** The members of the public key only: what the thumbprint covers and the JWKS shows. */
function publicPart(jwk: JWK): JWK {
  return jwk.kty === "EC" ? { kty: "EC", crv: jwk.crv, x: jwk.x, y: jwk.y } : { kty: jwk.kty, crv: jwk.crv, x: jwk.x };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
