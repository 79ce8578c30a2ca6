// `jitgate eval ENTRYPOINT --input FILE|-`: evaluates one entrypoint of a bundle and prints the JSON answer,
// so policy authors can try an input without a running server.
import { readFile } from "node:fs/promises";
import { describeThrown, InvalidArgument } from "../errors.ts";
import { loadBundleFile } from "../policy/bundle.ts";
import { PolicyEngine } from "../policy/engine.ts";

export interface EvalOptions {
  readonly bundle: string;
  readonly input: string;
}

export async function evalCommand(entrypoint: string, opts: EvalOptions): Promise<void> {
  const input = await readInput(opts.input);
  const engine = new PolicyEngine();
  engine.activate(await loadBundleFile(opts.bundle));
  const { result, revision } = engine.evaluate(entrypoint, input);
  if (result === undefined) {
    process.stderr.write(`jitgate: ${entrypoint} is undefined for this input (revision ${revision})\n`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

async function readInput(source: string): Promise<unknown> {
  const name = source === "-" ? "standard input" : source;
  let text: string;
  try {
    text = source === "-" ? await readStdin() : await readFile(source, "utf8");
  } catch (err) {
    throw new InvalidArgument("--input", `cannot read ${name}: ${describeThrown(err)}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InvalidArgument("--input", `${name} is not valid JSON (${describeThrown(err)})`);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
