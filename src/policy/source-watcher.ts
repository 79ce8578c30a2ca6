// For policy authors (`make dev`, `jitgate serve --watch-policies`): rebuilds the bundle whenever a Rego or
// data file under policies/ changes. The BundleWatcher then swaps the new bundle in; a compile error is
// reported and the last good bundle keeps serving, because a failed build never replaces the file.
import { type FSWatcher, watch } from "chokidar";
import { type BuildOptions, type BuildResult, buildBundle } from "./build.ts";

const DEBOUNCE_MS = 150;
const SOURCE = /\.(rego|json|ya?ml)$/;

export class PolicySourceWatcher {
  readonly #opts: BuildOptions;
  readonly #onBuilt: (result: BuildResult) => void;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #building: Promise<void> | undefined;
  #again = false;

  constructor(opts: BuildOptions, onBuilt: (result: BuildResult) => void) {
    this.#opts = opts;
    this.#onBuilt = onBuilt;
  }

  async start(): Promise<void> {
    this.#watcher = watch(this.#opts.policiesDir, {
      ignoreInitial: true,
      ignored: (path, stats) => stats?.isFile() === true && !SOURCE.test(path),
    });
    this.#watcher.on("all", () => this.#schedule());
    await new Promise<void>((ok) => this.#watcher?.once("ready", () => ok()));
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#build(), DEBOUNCE_MS);
  }

  async #build(): Promise<void> {
    if (this.#building) {
      this.#again = true;
      return;
    }
    this.#building = (async () => {
      do {
        this.#again = false;
        this.#onBuilt(await buildBundle(this.#opts));
      } while (this.#again);
    })().finally(() => {
      this.#building = undefined;
    });
    await this.#building;
  }

  async close(): Promise<void> {
    clearTimeout(this.#timer);
    await this.#watcher?.close();
    await this.#building;
  }
}
