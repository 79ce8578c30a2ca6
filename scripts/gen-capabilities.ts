// Regenerates build/wasm-capabilities.json: OPA's capabilities restricted to the builtins that run in
// jitgate's engine (those OPA's Wasm compiler implements natively plus those @open-policy-agent/opa-wasm
// implements in JavaScript), so a policy that calls anything else fails at `opa build`, not at request time.
// Usage: node scripts/gen-capabilities.ts OPA_BIN OPA_SRC_DIR   (OPA_SRC_DIR holds wasm.go and builtins.go)
import { execFileSync } from "node:child_process";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const [opaBin, srcDir] = process.argv.slice(2);
if (!opaBin || !srcDir) {
  console.error("usage: node scripts/gen-capabilities.ts OPA_BIN OPA_SRC_DIR");
  process.exit(2);
}

// Builtins the compiler needs for the language itself, even though they are not "functions".
const LANGUAGE = ["eq", "assign", "internal.print"];

const wasmGo = readFileSync(join(srcDir, "wasm.go"), "utf8");
const table = wasmGo.slice(wasmGo.indexOf("var builtinsFunctions"), wasmGo.indexOf("\n}\n", wasmGo.indexOf("var builtinsFunctions")));
const goNames = [...table.matchAll(/ast\.(\w+)\.Name:/g)].map((m) => m[1]);

const builtinsGo = readFileSync(join(srcDir, "builtins.go"), "utf8");
const regoName = new Map([...builtinsGo.matchAll(/^var (\w+) = &Builtin\{\s*Name:\s*"([^"]+)"/gm)].map((m) => [m[1], m[2]]));
const native = goNames.map((go) => {
  const name = regoName.get(go);
  if (!name) throw new Error(`builtins.go has no Name for ast.${go} named in wasm.go`);
  return name;
});

const require = createRequire(import.meta.url);
const sdkEntry = require.resolve("@open-policy-agent/opa-wasm");
const sdk = Object.keys(require(join(dirname(sdkEntry), "builtins", "index.js")));

const supported = new Set([...LANGUAGE, ...native, ...sdk]);
const current = JSON.parse(execFileSync(opaBin, ["capabilities", "--current"], { encoding: "utf8", maxBuffer: 64 << 20 }));
current.builtins = current.builtins.filter((b: { name: string }) => supported.has(b.name));
const missing = [...supported].filter((n) => !current.builtins.some((b: { name: string }) => b.name === n));
if (missing.length > 0) console.error(`note: not in this OPA's capabilities, left out: ${missing.join(", ")}`);

const out = "build/wasm-capabilities.json";
writeFileSync(`${out}.tmp`, `${JSON.stringify(current, null, 2)}\n`);
renameSync(`${out}.tmp`, out);
console.error(`${out}: ${current.builtins.length} builtins (${native.length} native, ${sdk.length} from the JS SDK)`);
