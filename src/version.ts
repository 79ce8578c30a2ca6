// jitgate's version, from package.json, for labels (decision log) and `jitgate --version`.
import { readFileSync } from "node:fs";

export const JITGATE_VERSION: string = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
).version;
