// The policy module's public face for the rest of jitgate.
export { type PolicyBundle, loadBundle, loadBundleFile } from "./bundle.ts";
export { type ActiveBundleInfo, type Evaluated, PolicyEngine } from "./engine.ts";
export * from "./entrypoints.ts";
