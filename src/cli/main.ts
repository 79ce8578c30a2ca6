// The `jitgate` command: parses arguments (commander) and hands each subcommand its options.
import { Command } from "commander";
import { DEFAULTS } from "../config.ts";
import { evalCommand } from "./eval.ts";
import { EXIT, fail } from "./exit.ts";
import { serveCommand } from "./serve.ts";

const program = new Command()
  .name("jitgate")
  .description("Just-in-time access policy decision point")
  .showHelpAfterError()
  .exitOverride((err) => process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.usage));

program
  .command("serve")
  .description("start the jitgate server")
  .option("--listen <host:port>", `address to listen on (env JITGATE_LISTEN, default ${DEFAULTS.listen})`)
  .option("--data-dir <dir>", `data directory (env JITGATE_DATA_DIR, default ${DEFAULTS.dataDir})`)
  .option("--bundle <file>", `policy bundle to load and watch (env JITGATE_BUNDLE, default ${DEFAULTS.bundle})`)
  .option("--watch-policies", "rebuild the bundle when a file under the policies directory changes")
  .option("--policies-dir <dir>", `policy sources for --watch-policies (default ${DEFAULTS.policiesDir})`)
  .option("--opa <file>", `OPA CLI for --watch-policies (env OPA, default ${DEFAULTS.opa})`)
  .option("--log-level <level>", "debug, info, warn or error (env JITGATE_LOG_LEVEL, default info)")
  .action((opts) => serveCommand(opts));

program
  .command("eval")
  .description("evaluate one entrypoint of a policy bundle and print the JSON result")
  .argument("<entrypoint>", "for example jit/check/decision")
  .requiredOption("--input <file>", "JSON input file, or - for standard input")
  .option("--bundle <file>", "policy bundle", DEFAULTS.bundle)
  .action((entrypoint: string, opts: { input: string; bundle: string }) => evalCommand(entrypoint, opts));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  fail(err);
}
