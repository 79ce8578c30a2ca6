// Server configuration: read once from flags, then the environment, then the embedded defaults; validated
// here into a frozen object that everything else receives. A bad value is an InvalidArgument naming the
// flag and its environment variable.
import { isAbsolute, resolve } from "node:path";
import { InvalidArgument } from "./errors.ts";

export interface ServeConfig {
  readonly listen: { readonly host: string; readonly port: number };
  readonly dataDir: string;
  readonly bundle: string;
  readonly watchPolicies: boolean;
  readonly policiesDir: string;
  readonly opa: string;
  readonly capabilities: string;
  readonly logLevel: LogLevel;
}

export type LogLevel = "debug" | "info" | "warn" | "error";
const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

/** Values as given on the command line (undefined when absent). */
export interface ServeFlags {
  listen?: string;
  dataDir?: string;
  bundle?: string;
  watchPolicies?: boolean;
  policiesDir?: string;
  opa?: string;
  logLevel?: string;
}

export const DEFAULTS = {
  listen: "127.0.0.1:7443",
  dataDir: "data",
  bundle: "bundles/jitgate.tar.gz",
  policiesDir: "policies",
  opa: "tools/bin/opa",
  capabilities: "build/wasm-capabilities.json",
  logLevel: "info",
} as const;

export function loadServeConfig(flags: ServeFlags, env: NodeJS.ProcessEnv, cwd: string): ServeConfig {
  const pick = (flag: string | undefined, name: string, fallback: string) => flag ?? env[name] ?? fallback;
  const path = (p: string) => (isAbsolute(p) ? p : resolve(cwd, p));
  const logLevel = pick(flags.logLevel, "JITGATE_LOG_LEVEL", DEFAULTS.logLevel);
  if (!LOG_LEVELS.includes(logLevel as LogLevel)) {
    throw new InvalidArgument("--log-level (JITGATE_LOG_LEVEL)", `'${logLevel}' is not one of ${LOG_LEVELS.join(", ")}`);
  }
  return Object.freeze({
    listen: Object.freeze(parseListen(pick(flags.listen, "JITGATE_LISTEN", DEFAULTS.listen))),
    dataDir: path(pick(flags.dataDir, "JITGATE_DATA_DIR", DEFAULTS.dataDir)),
    bundle: path(pick(flags.bundle, "JITGATE_BUNDLE", DEFAULTS.bundle)),
    watchPolicies: flags.watchPolicies ?? env.JITGATE_WATCH_POLICIES === "1",
    policiesDir: path(pick(flags.policiesDir, "JITGATE_POLICIES_DIR", DEFAULTS.policiesDir)),
    opa: path(pick(flags.opa, "OPA", DEFAULTS.opa)),
    capabilities: path(DEFAULTS.capabilities),
    logLevel: logLevel as LogLevel,
  });
}

/** `host:port`, `[v6]:port`; the port may be 0 (any free port, for tests). */
export function parseListen(value: string): { host: string; port: number } {
  const field = "--listen (JITGATE_LISTEN)";
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new InvalidArgument(field, `'${value}' is not host:port (for example 127.0.0.1:7443 or [::1]:7443)`);
  return { host: (m[1] ?? m[2]) as string, port };
}

export function formatListen(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
