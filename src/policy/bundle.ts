// Reads an OPA bundle (`opa build -t wasm` output: a .tar.gz holding /policy.wasm, /data.json, /.manifest)
// and turns it into a ready, verified policy: compiled, data loaded, every required entrypoint present and
// answering with the contract's shapes. Anything less is a BundleError that names the file and the problem.
import { readFile } from "node:fs/promises";
import { gunzipSync } from "node:zlib";
import { type LoadedPolicy, loadPolicy } from "@open-policy-agent/opa-wasm";
import { Parser, type ReadEntry } from "tar";
import { BundleError, describeThrown } from "../errors.ts";
import { decodeCheckDecision, decodeRequestPlan, decodeReviewVerdict, ENTRYPOINTS, REQUIRED_ENTRYPOINTS } from "./entrypoints.ts";

export interface PolicyBundle {
  readonly file: string;
  readonly revision: string;
  readonly policy: LoadedPolicy;
  readonly entrypoints: readonly string[];
  /** The bundle file's bytes, so policy workers load exactly what was verified here. */
  readonly bytes: Buffer;
}

const MAX_BUNDLE_BYTES = 64 << 20;
const MAX_UNPACKED_BYTES = 256 << 20;
const GZIP_MAGIC = [0x1f, 0x8b];

export async function loadBundleFile(file: string, hooks: VerificationHooks = {}): Promise<PolicyBundle> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist (run `make bundle`)" : describeThrown(err);
    throw new BundleError(file, reason, { cause: err });
  }
  return loadBundle(file, bytes, hooks);
}

/** Told around each verification evaluation, so a policy worker's watchdog can time them (see pool.ts). */
export interface VerificationHooks {
  readonly beforeEvaluation?: () => void;
  readonly afterEvaluation?: () => void;
  /**
   * Skip the verification inputs: for the serving process, whose policy workers verify the bundle under the
   * evaluation budget (a bundle slow on them must not freeze the thread that answers calls).
   */
  readonly skipVerification?: boolean;
}

export async function loadBundle(file: string, bytes: Buffer, hooks: VerificationHooks = {}): Promise<PolicyBundle> {
  const entries = readArchive(file, bytes);
  const wasm = entries.get("policy.wasm") ?? missing(file, "policy.wasm");
  const manifest = parseJson(file, ".manifest", entries.get(".manifest") ?? missing(file, ".manifest"));
  const data = parseJson(file, "data.json", entries.get("data.json") ?? Buffer.from("{}"));
  const revision = typeof manifest?.revision === "string" ? manifest.revision : "";
  if (revision === "") throw new BundleError(file, ".manifest has no revision (build it with `make bundle`)");
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new BundleError(file, "data.json must hold a JSON object");
  }

  let policy: LoadedPolicy;
  try {
    policy = await loadPolicy(exactArrayBuffer(wasm));
    policy.setData(data);
  } catch (err) {
    throw new BundleError(file, `policy.wasm does not load: ${describeThrown(err)}`, { cause: err });
  }
  const entrypoints = Object.keys(policy.entrypoints as Record<string, number>);
  const absent = REQUIRED_ENTRYPOINTS.filter((e) => !entrypoints.includes(e));
  if (absent.length > 0) {
    throw new BundleError(file, `missing entrypoint(s) ${absent.join(", ")} (build with every -e that src/policy/entrypoints.ts lists)`);
  }
  const timed = <T>(evaluate: () => T): T => {
    hooks.beforeEvaluation?.();
    try {
      return evaluate();
    } finally {
      hooks.afterEvaluation?.();
    }
  };
  if (!hooks.skipVerification) {
    verifyAnswers(file, policy, timed);
    verifyCatalog(file, policy, timed);
  }
  return { file, revision, policy, entrypoints, bytes };
}

/** Every entrypoint must answer even an empty input with a well-formed (fail-closed) result. */
type Timed = <T>(evaluate: () => T) => T;

function verifyAnswers(file: string, policy: LoadedPolicy, timed: Timed): void {
  const probes = [
    [ENTRYPOINTS.requestPlan, decodeRequestPlan],
    [ENTRYPOINTS.reviewVerdict, decodeReviewVerdict],
    [ENTRYPOINTS.checkDecision, decodeCheckDecision],
  ] as const;
  for (const [entrypoint, decode] of probes) {
    let result: unknown;
    try {
      result = timed(() => (policy.evaluate({}, entrypoint) as { result?: unknown }[])[0]?.result);
    } catch (err) {
      throw new BundleError(file, `entrypoint ${entrypoint} fails to evaluate: ${describeThrown(err)}`, { cause: err });
    }
    if (decode(result) === undefined) {
      throw new BundleError(
        file,
        `entrypoint ${entrypoint} answers an empty input with ${JSON.stringify(result) ?? "nothing"}, not the contract's shape (see policies/README.md)`,
      );
    }
  }
}

/** The policy's own check of its data: a catalogue with mistakes is refused before it can serve. */
function verifyCatalog(file: string, policy: LoadedPolicy, timed: Timed): void {
  let errors: unknown;
  try {
    errors = timed(() => (policy.evaluate({}, ENTRYPOINTS.catalogErrors) as { result?: unknown }[])[0]?.result);
  } catch (err) {
    throw new BundleError(file, `entrypoint ${ENTRYPOINTS.catalogErrors} fails to evaluate: ${describeThrown(err)}`, { cause: err });
  }
  if (!Array.isArray(errors)) throw new BundleError(file, `entrypoint ${ENTRYPOINTS.catalogErrors} does not answer with a list`);
  if (errors.length > 0) {
    throw new BundleError(
      file,
      `the policy data has errors (fix policies/catalog/data.json): ${errors.map((e) => JSON.stringify(e)).join("; ")}`,
    );
  }
}

function readArchive(file: string, bytes: Buffer): Map<string, Buffer> {
  if (bytes.length === 0) throw new BundleError(file, "is empty");
  if (bytes.length > MAX_BUNDLE_BYTES) throw new BundleError(file, `is larger than ${MAX_BUNDLE_BYTES >> 20} MiB`);
  if (bytes[0] !== GZIP_MAGIC[0] || bytes[1] !== GZIP_MAGIC[1])
    throw new BundleError(file, "is not a gzip file (expected `opa build -t wasm` output)");
  let tarBytes: Buffer;
  try {
    tarBytes = gunzipSync(bytes, { maxOutputLength: MAX_UNPACKED_BYTES });
  } catch (err) {
    throw new BundleError(file, `cannot be decompressed (truncated or corrupt?): ${describeThrown(err)}`, { cause: err });
  }

  const entries = new Map<string, Buffer>();
  let problem: string | undefined;
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry: ReadEntry) => {
      const name = entry.path.replace(/^(\.?\/)+/, "");
      const chunks: Buffer[] = [];
      entry.on("data", (c: Buffer) => chunks.push(c));
      entry.on("end", () => {
        if (entry.type === "File") entries.set(name, Buffer.concat(chunks));
      });
    },
  });
  parser.on("warn", (_code: string, message: string | Error) => {
    problem ??= describeThrown(message);
  });
  parser.on("error", (err: Error) => {
    problem ??= err.message;
  });
  // tar's Parser is synchronous when fed a whole buffer: every entry has been read once end() returns.
  parser.end(tarBytes);
  if (problem !== undefined) throw new BundleError(file, `is not a valid tar archive: ${problem}`);
  if (entries.size === 0) throw new BundleError(file, "holds no files (expected `opa build -t wasm` output)");
  return entries;
}

function parseJson(file: string, member: string, bytes: Buffer): Record<string, unknown> | undefined {
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    throw new BundleError(file, `${member} is not valid JSON: ${describeThrown(err)}`, { cause: err });
  }
}

function missing(file: string, member: string): never {
  throw new BundleError(file, `has no ${member} (expected \`opa build -t wasm\` output)`);
}

/** opa-wasm wants an ArrayBuffer of exactly the module's bytes; a Buffer may share a larger pooled one. */
function exactArrayBuffer(bytes: Buffer): ArrayBuffer {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy.buffer;
}
