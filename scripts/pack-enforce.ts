// `make enforce-package`: builds the enforcement library (src/enforce, and the proto loader it uses) to plain
// JavaScript with type declarations, beside the .proto files it loads, as the npm package @jitgate/enforce,
// and packs it into dist/. Services install that tarball; Node does not run TypeScript from node_modules.
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dirname, "..");
const OUT = join(ROOT, ".build", "enforce-package");
const DIST = join(ROOT, "dist");
const root = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  version: string;
  license: string;
  dependencies: Record<string, string>;
};

rmSync(OUT, { recursive: true, force: true });
execFileSync(join(ROOT, "node_modules", ".bin", "tsc"), ["-p", join(ROOT, "tsconfig.enforce.json")], { stdio: "inherit" });
// loader.js finds the protos two levels up from src/proto, as in this repository.
cpSync(join(ROOT, "proto"), join(OUT, "proto"), { recursive: true });
const pin = (name: string) => {
  const version = root.dependencies[name];
  if (version === undefined) throw new Error(`package.json has no dependency ${name}`);
  return version;
};
writeFileSync(
  join(OUT, "package.json"),
  `${JSON.stringify(
    {
      name: "@jitgate/enforce",
      version: root.version,
      description:
        "Enforce jitgate access in a gRPC service: a grpc-js server interceptor that verifies jitgate's access tokens offline and follows revocations, and a token source for clients.",
      license: root.license,
      type: "module",
      engines: { node: ">=22" },
      exports: { ".": { types: "./src/enforce/index.d.ts", default: "./src/enforce/index.js" } },
      files: ["src", "proto"],
      dependencies: Object.fromEntries(["@grpc/grpc-js", "@grpc/proto-loader", "jose"].map((name) => [name, pin(name)])),
    },
    null,
    2,
  )}\n`,
);
mkdirSync(DIST, { recursive: true });
const packed = execFileSync("npm", ["pack", "--silent", "--pack-destination", DIST], { cwd: OUT, encoding: "utf8" }).trim();
process.stdout.write(`${join(DIST, packed.split("\n").at(-1) as string)}\n`);
