// The signing keys of access tokens, kept in the data directory and shared by every jitgate process using it.
//
//   <dataDir>/signing-keys/        mode 0700; created (atomically, with its first key) on first start
//     <kid>.json                   mode 0600; one key, written once and never rewritten:
//                                  {"kid", "alg": "EdDSA"|"ES256", "created_at": RFC 3339, "private_jwk": {...}}
//
// kid is the RFC 7638 thumbprint of the public key. The newest key (by created_at, then kid) signs. An older
// key was retired when its successor was created (retired_at = the successor's created_at) and stays in the
// JWKS until every token it may have signed has expired: retired_at + max token TTL + clock tolerance + the
// refresh interval (a process may sign with it for that long before it notices the rotation). Rotating
// (`jitgate keys rotate`) adds a file, and deletes the files past the longest window any configuration allows,
// leaving their public half as `retired-<kid>.public.json` (audit checkpoints they signed must still verify).
// Since files are only ever added or removed, a KeyRing notices another process's rotation by listing the
// directory, at most once per refresh interval, before signing and before answering the JWKS.
import { join } from "node:path";
import type { CryptoKey, JSONWebKeySet, JWK } from "jose";
import { MAX_CLOCK_TOLERANCE_S, MAX_TOKEN_TTL_S } from "../enforce/verify.ts";
import { FailedPrecondition } from "../errors.ts";
import { addPrivateFile, createPrivateDirectory, listPrivateDirectory, readPrivateFile, removePrivateFile } from "./key-files.ts";
import {
  generateKeyFile,
  KEY_FILE_PATTERN,
  parseKeyFile,
  parseRetiredKeyFile,
  RETIRED_KEY_PATTERN,
  retiredKeyFileName,
  type SigningAlgorithm,
  type StoredKey,
} from "./key-material.ts";

export { SIGNING_ALGORITHMS, type SigningAlgorithm } from "./key-material.ts";

export const KEY_DIRECTORY = "signing-keys";
export const DEFAULT_REFRESH_INTERVAL_MS = 1000;
/** Files are deleted only past the longest window any jitgate configuration could still publish them for. */
const PRUNE_AFTER_MS = (MAX_TOKEN_TTL_S + MAX_CLOCK_TOLERANCE_S) * 1000 + DEFAULT_REFRESH_INTERVAL_MS;

export interface KeyRingOptions {
  /** The algorithm of keys this process creates (the first key, rotations). */
  readonly algorithm: SigningAlgorithm;
  /** The longest lifetime of a token signed with these keys (`--token-ttl`). */
  readonly maxTokenTtlS: number;
  readonly clockToleranceS: number;
  /** ms since the Unix epoch. */
  readonly now: () => number;
  readonly refreshIntervalMs?: number;
}

/** What signing needs. The private key is a non-extractable CryptoKey: it cannot be exported or logged. */
export interface SigningKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly privateKey: CryptoKey;
}

export interface RotatedKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  /** ms since the Unix epoch. */
  readonly createdAt: number;
  /** The key that signed until now (still published until its tokens have expired). */
  readonly previousKid: string | undefined;
  /** Kids of retired keys whose files were deleted because no token they signed can still be valid. */
  readonly pruned: readonly string[];
}

export function keyDirectory(dataDir: string): string {
  return join(dataDir, KEY_DIRECTORY);
}

/** The signing keys in one directory (by default the data directory's), re-read when another process adds or removes one. */
export class KeyRing {
  readonly directory: string;

  readonly #options: KeyRingOptions;
  readonly #intervalMs: number;
  /** Oldest first; the last one signs. */
  #keys: readonly StoredKey[] = [];
  #listing: string | undefined;
  #checkedAt = -Infinity;
  #reloading: Promise<void> | undefined;

  private constructor(keysDir: string, options: KeyRingOptions) {
    this.directory = keysDir;
    this.#options = options;
    this.#intervalMs = options.refreshIntervalMs ?? DEFAULT_REFRESH_INTERVAL_MS;
  }

  /** Loads the keys, creating the first one when there is none. Refuses an active key of another algorithm. */
  static async open(keysDir: string, options: KeyRingOptions): Promise<KeyRing> {
    const ring = new KeyRing(keysDir, options);
    await ring.refresh();
    const active = ring.#active();
    if (active.alg !== options.algorithm) {
      throw new FailedPrecondition(
        `the active signing key in ${ring.directory} is ${active.alg}, not ${options.algorithm} as configured: run \`jitgate keys rotate\` with the new algorithm to switch`,
      );
    }
    return ring;
  }

  /** The key that signs now. */
  async signingKey(): Promise<SigningKey> {
    await this.#refreshIfDue();
    const { kid, alg, privateKey } = this.#active();
    return { kid, alg, privateKey };
  }

  /** The public keys that verify tokens still in their lifetime: the active key first, then retired ones. */
  async jwks(): Promise<JSONWebKeySet> {
    await this.#refreshIfDue();
    const now = this.#options.now();
    const windowMs = (this.#options.maxTokenTtlS + this.#options.clockToleranceS) * 1000 + this.#intervalMs;
    const published = this.#keys.filter((key, i) => {
      const successor = this.#keys[i + 1];
      return successor === undefined || now < successor.createdAt + windowMs;
    });
    return { keys: published.reverse().map((key) => ({ ...key.publicJwk })) };
  }

  /** The public half of every key in the directory, retired ones included (for signatures older than tokens, like audit checkpoints). */
  async allPublicKeys(): Promise<JSONWebKeySet> {
    await this.#refreshIfDue();
    const retired = await readRetiredKeys(this.directory, (await listPrivateDirectory(this.directory)) ?? []);
    return { keys: [...[...this.#keys].reverse().map((key) => ({ ...key.publicJwk })), ...retired] };
  }

  /** Creates a new active key (see rotateSigningKey) and uses it at once in this process. */
  async rotate(): Promise<RotatedKey> {
    const rotated = await rotateSigningKey(this.directory, this.#options);
    await this.refresh();
    return rotated;
  }

  /** Re-reads the directory now; concurrent calls share one read. */
  refresh(): Promise<void> {
    this.#reloading ??= this.#reload().finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  #refreshIfDue(): Promise<void> | undefined {
    const now = this.#options.now();
    // A clock that went backwards counts as due, so a wrong jump cannot freeze the ring.
    if (now >= this.#checkedAt && now - this.#checkedAt < this.#intervalMs) return undefined;
    return this.refresh();
  }

  async #reload(): Promise<void> {
    const startedAt = this.#options.now();
    const names = await ensureKeyFiles(this.directory, this.#options);
    const listing = names.join("/");
    if (listing !== this.#listing) {
      const known = new Map(this.#keys.map((k) => [`${k.kid}.json`, k]));
      const keys: StoredKey[] = [];
      for (const name of names) {
        const key = known.get(name) ?? (await loadKey(this.directory, name));
        if (key !== undefined) keys.push(key);
      }
      if (keys.length === 0) throw new FailedPrecondition(`no signing key left in ${this.directory} (removed while being read): retry`);
      this.#keys = Object.freeze(keys.sort(byAge));
      this.#listing = listing;
    }
    // Only a successful read counts: a broken directory is re-checked on every call, failing closed.
    this.#checkedAt = startedAt;
  }

  #active(): StoredKey {
    const key = this.#keys.at(-1);
    if (key === undefined) throw new FailedPrecondition(`no signing key loaded from ${this.directory}`);
    return key;
  }
}

/**
 * `jitgate keys rotate`: adds a new key of `algorithm`, which every process sharing `keysDir` starts signing
 * with within its refresh interval; the previous key stays published until its tokens have expired.
 */
export async function rotateSigningKey(keysDir: string, options: Pick<KeyRingOptions, "algorithm" | "now">): Promise<RotatedKey> {
  const dir = keysDir;
  const existing = await loadAll(dir, await ensureKeyFiles(dir, options));
  const previous = existing.at(-1);
  const now = options.now();
  // Strictly newer than the newest key, so the new key signs even when clocks or a fake clock stand still.
  const createdAt = Math.max(now, (previous?.createdAt ?? 0) + 1);
  const { kid, name, text } = await generateKeyFile(options.algorithm, createdAt);
  await addPrivateFile(dir, name, text);
  const pruned: string[] = [];
  for (const [i, key] of existing.entries()) {
    const retiredAt = (existing[i + 1] ?? { createdAt }).createdAt;
    if (now >= retiredAt + PRUNE_AFTER_MS) {
      // The public half stays: audit checkpoints it signed must still verify after its tokens are long gone.
      await addPrivateFile(dir, retiredKeyFileName(key.kid), JSON.stringify(key.publicJwk));
      await removePrivateFile(key.file);
      pruned.push(key.kid);
    }
  }
  return Object.freeze({ kid, alg: options.algorithm, createdAt, previousKid: previous?.kid, pruned: Object.freeze(pruned) });
}

/**
 * Every public key in `keysDir` (signing, retired, and the kept halves of deleted keys), read
 * without creating or changing anything, for offline verifiers; undefined when there is no key directory.
 */
export async function readPublicKeys(keysDir: string): Promise<JSONWebKeySet | undefined> {
  const dir = keysDir;
  const names = await listPrivateDirectory(dir);
  if (names === undefined) return undefined;
  const current = await loadAll(
    dir,
    names.filter((name) => KEY_FILE_PATTERN.test(name)),
  );
  return { keys: [...current.map((key) => ({ ...key.publicJwk })), ...(await readRetiredKeys(dir, names))] };
}

/** The kept public halves among `names` in `dir`. */
async function readRetiredKeys(dir: string, names: readonly string[]): Promise<JWK[]> {
  const keys: JWK[] = [];
  for (const name of names) {
    const kid = RETIRED_KEY_PATTERN.exec(name)?.[1];
    const text = kid === undefined ? undefined : await readPrivateFile(join(dir, name));
    if (kid !== undefined && text !== undefined) keys.push(await parseRetiredKeyFile(join(dir, name), kid, text));
  }
  return keys;
}

/** The key file names in `dir`, creating the directory with a first key when it is missing or empty. */
async function ensureKeyFiles(dir: string, options: Pick<KeyRingOptions, "algorithm" | "now">): Promise<string[]> {
  const names = await keyFileNames(dir);
  if (names.length > 0) return names;
  const first = await generateKeyFile(options.algorithm, options.now());
  await createPrivateDirectory(dir, first.name, first.text); // false: another process was first, use its key
  return keyFileNames(dir);
}

async function keyFileNames(dir: string): Promise<string[]> {
  return ((await listPrivateDirectory(dir)) ?? []).filter((name) => KEY_FILE_PATTERN.test(name));
}

async function loadAll(dir: string, names: readonly string[]): Promise<StoredKey[]> {
  const keys: StoredKey[] = [];
  for (const name of names) {
    const key = await loadKey(dir, name);
    if (key !== undefined) keys.push(key);
  }
  return keys.sort(byAge);
}

/** undefined when the file vanished between listing and reading (another process pruned it). */
async function loadKey(dir: string, name: string): Promise<StoredKey | undefined> {
  const file = join(dir, name);
  const text = await readPrivateFile(file);
  return text === undefined ? undefined : parseKeyFile(file, name, text);
}

function byAge(a: StoredKey, b: StoredKey): number {
  return a.createdAt - b.createdAt || (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0);
}
