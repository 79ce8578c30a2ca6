// The local dev issuer behind `jitgate serve --dev` and `jitgate login`: an Ed25519 key pair kept in the data
// directory (private JWK, mode 0600), created on first use and shared by every process using that directory.
// Tokens it signs are for local development only; the server labels dev mode loudly at start-up.
import { callerIdProblem, displayId } from "../access/identities.ts";
import { randomUUID } from "node:crypto";
import { constants, type Stats } from "node:fs";
import { link, mkdir, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { calculateJwkThumbprint, type CryptoKey, exportJWK, generateKeyPair, importJWK, type JSONWebKeySet, type JWK, SignJWT } from "jose";
import { FailedPrecondition, InvalidArgument } from "../errors.ts";
import { DEV_AUDIENCE, DEV_ISSUER } from "./config.ts";

export const DEV_KEY_FILE = "dev-issuer.jwk";
export const DEV_ALGORITHM = "EdDSA";
/** Matches the verifier's maxTokenAge: a longer-lived dev token would be refused anyway. */
export const MAX_DEV_TOKEN_TTL_S = 24 * 3600;
const MAX_KEY_FILE_BYTES = 4096;

export interface DevIssuerKey {
  readonly file: string;
  readonly kid: string;
  readonly privateKey: CryptoKey;
  /** The public half only, as it goes into the dev verifier's JWKS. */
  readonly publicJwk: Readonly<JWK>;
}

export interface DevTokenRequest {
  readonly dataDir: string;
  readonly subject: string;
  readonly groups: readonly string[];
  readonly ttlSeconds: number;
  /** Issue time in ms since the epoch; defaults to now. */
  readonly now?: number;
}

/** The dev issuer's key from `<dataDir>/dev-issuer.jwk`, creating it when absent. */
export async function loadOrCreateDevKey(dataDir: string): Promise<DevIssuerKey> {
  const file = join(dataDir, DEV_KEY_FILE);
  const existing = await readKeyFile(file);
  if (existing !== undefined) return parseKey(file, existing);
  await createKeyFile(dataDir, file);
  const created = await readKeyFile(file);
  if (created === undefined) throw new FailedPrecondition(`dev issuer key ${file} vanished right after it was created`);
  return parseKey(file, created);
}

/** The JWKS that verifies dev tokens (the public key only). */
export async function devPublicJwks(dataDir: string): Promise<JSONWebKeySet> {
  const key = await loadOrCreateDevKey(dataDir);
  return { keys: [{ ...key.publicJwk }] };
}

/** A signed dev token for `subject` with `groups`, accepted by a server running with `--dev` on `dataDir`. */
export async function issueDevToken(request: DevTokenRequest): Promise<string> {
  // The same rule the server applies when it verifies the token: refused here, it fails at once and clearly.
  const subject = request.subject;
  const problem = callerIdProblem(subject);
  if (problem !== undefined) throw new InvalidArgument("--as", `'${displayId(subject)}' is not a usable caller id: it ${problem}`);
  const groups = [...new Set(request.groups.map((g) => g.trim()).filter((g) => g !== ""))];
  for (const g of groups) {
    if (/[\p{Cc}\s,]/u.test(g) || g.length > 256) throw new InvalidArgument("--groups", `'${g}' is not a usable group name`);
  }
  const ttl = request.ttlSeconds;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_DEV_TOKEN_TTL_S) {
    throw new InvalidArgument("--ttl", `${ttl} is not a whole number of seconds from 1 to ${MAX_DEV_TOKEN_TTL_S}`);
  }
  const key = await loadOrCreateDevKey(request.dataDir);
  const iat = Math.floor((request.now ?? Date.now()) / 1000);
  return new SignJWT({ groups })
    .setProtectedHeader({ alg: DEV_ALGORITHM, kid: key.kid, typ: "JWT" })
    .setIssuer(DEV_ISSUER)
    .setAudience(DEV_AUDIENCE)
    .setSubject(subject)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttl)
    .setJti(randomUUID())
    .sign(key.privateKey);
}

/** The file's text, or undefined when it does not exist. Refuses links, foreign owners and loose modes. */
async function readKeyFile(file: string): Promise<string | undefined> {
  let handle;
  try {
    // O_NOFOLLOW: a symlink planted in the data directory must not redirect us to another key.
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    if ((err as NodeJS.ErrnoException).code === "ELOOP")
      throw new FailedPrecondition(`dev issuer key ${file} is a symbolic link: refusing it`);
    throw new FailedPrecondition(`dev issuer key ${file} cannot be read: ${(err as Error).message}`, { cause: err });
  }
  try {
    checkKeyFileStats(file, await handle.stat());
    return await handle.readFile("utf8");
  } finally {
    await handle.close();
  }
}

function checkKeyFileStats(file: string, stats: Stats): void {
  if (!stats.isFile()) throw new FailedPrecondition(`dev issuer key ${file} is not a regular file`);
  if (stats.size > MAX_KEY_FILE_BYTES) throw new FailedPrecondition(`dev issuer key ${file} is too large to be a key`);
  if (process.platform === "win32") return; // no POSIX modes to check
  if ((stats.mode & 0o077) !== 0) {
    const mode = (stats.mode & 0o777).toString(8).padStart(4, "0");
    throw new FailedPrecondition(`dev issuer key ${file} is accessible by group or others (mode ${mode}): run \`chmod 600 ${file}\``);
  }
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid) {
    throw new FailedPrecondition(`dev issuer key ${file} belongs to uid ${stats.uid}, not to this user (uid ${uid})`);
  }
}

/**
 * Writes a new key to a private temp file (created with `wx`, mode 0600, synced), then hard-links it into
 * place: the link fails if another process got there first (we then use theirs), and no reader ever sees
 * a half-written key.
 */
async function createKeyFile(dataDir: string, file: string): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const { privateKey } = await generateKeyPair(DEV_ALGORITHM, { crv: "Ed25519", extractable: true });
  const jwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(jwk);
  const text = `${JSON.stringify({ ...jwk, kid, alg: DEV_ALGORITHM, use: "sig" })}\n`;
  const temp = join(dataDir, `.${DEV_KEY_FILE}.${process.pid}.${randomUUID()}.tmp`);
  const handle = await open(temp, "wx", 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(temp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  } finally {
    await rm(temp, { force: true });
  }
}

async function parseKey(file: string, text: string): Promise<DevIssuerKey> {
  const invalid = (cause?: unknown) =>
    new FailedPrecondition(`dev issuer key ${file} is not an Ed25519 private JWK: delete it and a new one is created`, { cause });
  let jwk: JWK;
  try {
    jwk = JSON.parse(text) as JWK;
  } catch (err) {
    throw invalid(err);
  }
  if (
    !jwk ||
    typeof jwk !== "object" ||
    jwk.kty !== "OKP" ||
    jwk.crv !== "Ed25519" ||
    typeof jwk.d !== "string" ||
    typeof jwk.x !== "string"
  ) {
    throw invalid();
  }
  let privateKey: CryptoKey;
  try {
    privateKey = (await importJWK({ kty: "OKP", crv: "Ed25519", x: jwk.x, d: jwk.d }, DEV_ALGORITHM)) as CryptoKey;
  } catch (err) {
    throw invalid(err);
  }
  const publicJwk = { kty: "OKP", crv: "Ed25519", x: jwk.x };
  const kid = await calculateJwkThumbprint(publicJwk);
  return Object.freeze({ file, kid, privateKey, publicJwk: Object.freeze({ ...publicJwk, kid, alg: DEV_ALGORITHM, use: "sig" }) });
}
