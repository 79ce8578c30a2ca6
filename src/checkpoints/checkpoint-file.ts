// The checkpoints file: JSON lines, appended only, outside the database (ship it to storage the database's
// writers cannot rewrite). Each append is one write of one line, flushed to disk before it counts.
import { constants } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { InvalidArgument } from "../errors.ts";
import type { CheckpointLine } from "./checkpoint.ts";

export const CHECKPOINTS_FILE = "audit-checkpoints.jsonl";

export async function appendCheckpoint(file: string, line: CheckpointLine): Promise<void> {
  const handle = await open(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
  try {
    await handle.write(`${JSON.stringify(line)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A line as read: its number in the file (from 1) and what it holds, or why it could not be read. */
export type ReadLine = { readonly line: number; readonly checkpoint: CheckpointLine } | { readonly line: number; readonly error: string };

export async function readCheckpoints(file: string): Promise<readonly ReadLine[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InvalidArgument("--checkpoints", `cannot read ${file} (${code ?? String(err)})`, { cause: err });
  }
  const lines = text.split("\n");
  // A torn last line (a crash mid-append) has no newline; it is reported like any other bad line.
  if (lines.at(-1) === "") lines.pop();
  return lines.map((raw, i) => parseLine(raw, i + 1));
}

function parseLine(raw: string, line: number): ReadLine {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { line, error: "not JSON" };
  }
  const c = value as Partial<CheckpointLine> | null;
  const ok =
    c !== null &&
    typeof c === "object" &&
    Number.isSafeInteger(c.seq) &&
    typeof c.hash === "string" &&
    typeof c.at === "string" &&
    typeof c.kid === "string" &&
    typeof c.jws === "string";
  return ok ? { line, checkpoint: c as CheckpointLine } : { line, error: "not a checkpoint (needs seq, hash, at, kid, jws)" };
}
