// `make bundle`: compiles policies/ into the Wasm bundle the server loads, and installs it only if it passes the
// server's own load-time checks, so a bundle `jitgate serve` would refuse never replaces a good one.
// Usage: node scripts/build-bundle.ts OPA_BIN POLICIES_DIR CAPABILITIES_FILE OUT_FILE
import { buildBundle, installVerified } from "../src/policy/build.ts";

const [opa, policiesDir, capabilities, out] = process.argv.slice(2);
if (!opa || !policiesDir || !capabilities || !out) {
  console.error("usage: node scripts/build-bundle.ts OPA_BIN POLICIES_DIR CAPABILITIES_FILE OUT_FILE");
  process.exit(2);
}
const result = await buildBundle({ opa, policiesDir, capabilities, out }, installVerified);
if (!result.ok) {
  console.error(`bundle not built from ${policiesDir}; ${out} is unchanged:\n${result.message}`);
  process.exit(1);
}
console.error(`${out}: revision ${result.revision}`);
